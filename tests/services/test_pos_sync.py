"""The sync agent against the lab HQ: revocations, sales HQ rejects, and the agent's own endpoints."""

from __future__ import annotations

import http.client
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import yaml

from tests.fixtures_hq import LabHq, service_env
from tests.fixtures_pos import PosCache, PosClient, hq_sales, new_key, sale_lines
from tests.support import ROOT, free_port


def _running_pos(lab_hq: LabHq, pos_factory, **settings) -> PosCache:
    pos: PosCache = pos_factory(lab_hq.url, **settings)
    pos.sync_once()
    pos.start_server()
    return pos


def test_revoked_cashier_refused_after_sync(lab_hq: LabHq, pos_factory):
    pos = _running_pos(lab_hq, pos_factory)
    revoked = pos.client("c002")
    colleague = pos.client("c001")
    assert revoked.sell(new_key(), sale_lines(1)).status == 201

    lab_hq.lab("cashiers", {"store_id": "store-0001", "revoke": ["c002"]})
    # Until the next sync the store does not know; the replica is what applies offline.
    assert revoked.sell(new_key(), sale_lines(2)).status == 201
    pos.sync_once()

    assert revoked.sell(new_key(), sale_lines(3)).status == 401
    assert PosClient(pos.port).login("c002").status == 401
    assert colleague.sell(new_key(), sale_lines(4)).status == 201

    # HQ unreachable from here on: the revocation still holds, also across a restart of the POS server.
    lab_hq.stop()
    pos.sync_once(expect_rc=4)
    assert PosClient(pos.port).login("c002").status == 401
    pos.stop_server()
    pos.start_server()
    assert PosClient(pos.port).login("c002").status == 401
    assert revoked.sell(new_key(), sale_lines(5)).status == 401
    offline = PosClient(pos.port)
    assert offline.login("c003").status == 201
    assert offline.sell(new_key(), sale_lines(6)).status == 201
    colleague.close()
    revoked.close()
    offline.close()


def test_running_agent_applies_revocation(lab_hq: LabHq, pos_factory):
    pos = _running_pos(lab_hq, pos_factory, replica_pull_interval_seconds=0.2)
    pos.start_agent()
    cashier = pos.client("c005")
    assert cashier.sell(new_key(), sale_lines(1)).status == 201
    lab_hq.lab("cashiers", {"store_id": "store-0001", "revoke": ["c005"]})
    pos.wait_until(
        lambda: cashier.sell(new_key(), sale_lines(2)).status == 401, "the agent pulling the revocation", timeout=60
    )
    lab_hq.stop()
    assert cashier.sell(new_key(), sale_lines(3)).status == 401
    assert PosClient(pos.port).login("c005").status == 401
    cashier.close()


def test_new_cashier_replicated_for_offline_login(lab_hq: LabHq, pos_factory):
    pos = _running_pos(lab_hq, pos_factory)
    lab_hq.lab("cashiers", {"store_id": "store-0001", "add": [{"cashier_id": "c042", "password": "s3cret-42"}]})
    assert PosClient(pos.port).login("c042", "s3cret-42").status == 401
    pos.sync_once()
    lab_hq.stop()
    client = PosClient(pos.port)
    assert client.login("c042", "s3cret-42").status == 201
    assert client.sell(new_key(), sale_lines(1)).status == 201
    client.close()


def test_catalog_change_reaches_prices(lab_hq: LabHq, pos_factory):
    pos = _running_pos(lab_hq, pos_factory)
    client = pos.client()
    lab_hq.lab("catalog", {"items": [{"sku": "SKU-00010", "base_price_cents": 4321}]})
    pos.sync_once()
    assert client.request("GET", "/prices?sku=SKU-00010").body["prices_cents"] == {"SKU-00010": 4321}
    assert client.sell(new_key(), [{"sku": "SKU-00010", "qty": 2}]).body["total_cents"] == 8642
    client.close()


def test_invalid_sale_parked_others_delivered(lab_hq: LabHq, pos_factory):
    pos = _running_pos(lab_hq, pos_factory, sync_batch_size=10)
    client = pos.client()
    sale_ids = [client.sell(new_key(), sale_lines(n)).body["sale_id"] for n in range(10)]
    client.close()
    # A document HQ cannot read, as a corrupted or buggy register payload would produce.
    broken = sale_ids[6]
    document = json.loads(pos.query("SELECT document FROM sales WHERE sale_id = ?", broken)[0][0])
    document["lines"][0]["qty"] = "two"
    pos.execute("UPDATE sales SET document = ? WHERE sale_id = ?", json.dumps(document), broken)

    pos.sync_once()

    keys = [sale["idempotency_key"] for sale in hq_sales(lab_hq)[0]]
    assert keys == [sale_id for sale_id in sale_ids if sale_id != broken]
    state = pos.query("SELECT state, hq_status, last_error FROM outbox o WHERE sale_id = ?", broken)[0]
    assert state[:2] == ("rejected", "http_400")
    assert "qty" in state[2]
    health = PosClient(pos.port).request("GET", "/healthz").body
    assert health["outbox"] == {"pending": 0, "rejected": 1, "oldest_pending_age_seconds": 0.0}


def test_conflicting_sale_parked(lab_hq: LabHq, pos_factory):
    pos = _running_pos(lab_hq, pos_factory)
    client = pos.client()
    sale_id = client.sell(new_key(), sale_lines(1)).body["sale_id"]
    pos.sync_once()
    # Same sale id, other content, sent again: HQ responds "conflict" and applies nothing.
    document = json.loads(pos.query("SELECT document FROM sales WHERE sale_id = ?", sale_id)[0][0])
    document["total_cents"] += 1
    pos.execute("UPDATE sales SET document = ? WHERE sale_id = ?", json.dumps(document), sale_id)
    pos.execute("UPDATE outbox SET state = 'pending' WHERE sale_id = ?", sale_id)
    later = client.sell(new_key(), sale_lines(2)).body["sale_id"]

    pos.sync_once()

    sales, _duplicates = hq_sales(lab_hq)
    assert [sale["idempotency_key"] for sale in sales] == [sale_id, later]
    assert pos.query("SELECT state, hq_status FROM outbox WHERE sale_id = ?", sale_id) == [("rejected", "conflict")]
    assert client.request("GET", f"/sales/{sale_id}").body["sync"]["state"] == "rejected"
    client.close()


def test_agent_endpoints_and_lock(lab_hq: LabHq, pos_factory):
    pos = _running_pos(lab_hq, pos_factory)
    pos.start_agent()
    health = pos.agent_health()
    assert health["status"] == "ok"
    assert health["store_id"] == "store-0001"
    second = pos.sync_once(expect_rc=3)
    assert "another sync agent has locked" in second.stderr

    connection = http.client.HTTPConnection("127.0.0.1", pos.agent_port, timeout=10)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    for name in ("pos_outbox_pending_sales", "pos_outbox_oldest_pending_age_seconds", "pos_replica_pulls_total"):
        assert name in text
    logs = [json.loads(line) for line in pos.agent_log.read_text().splitlines() if line.startswith("{")]
    assert any(record["msg"] == "sync agent started" and record["store_id"] == "store-0001" for record in logs)


def _start_inventory_api(work_dir: Path, hq_url: str) -> tuple[subprocess.Popen[bytes], int]:
    """Start the store's inventory API (without its HQ feed worker) and return the process and its port."""
    work_dir.mkdir(parents=True)
    port = free_port()
    config = work_dir / "inventory.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "store_id": "store-0001",
                "hq_url": hq_url,
                "hq_token": "lab-token",
                "db_path": str(work_dir / "inventory.sqlite3"),
                "port": port,
                "metrics_dir": str(work_dir / "metrics"),
            }
        )
    )
    with (work_dir / "inventory.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "retail_edge.inventory.cli", "api", "--config", str(config)],
            cwd=ROOT,
            env=service_env(),
            stdout=log,
            stderr=log,
        )
    PosCache._wait_healthy(proc, port, work_dir / "inventory.log", 30)
    return proc, port


def _inventory_sale_keys(tmp_path: Path) -> set[str]:
    connection = sqlite3.connect(tmp_path / "inventory" / "inventory.sqlite3", timeout=30)
    try:
        return {row[0] for row in connection.execute("SELECT DISTINCT sale_key FROM local_sales")}
    finally:
        connection.close()


def test_sales_forwarded_to_inventory(lab_hq: LabHq, pos_factory, tmp_path: Path):
    inventory, port = _start_inventory_api(tmp_path / "inventory", lab_hq.url)
    try:
        pos = _running_pos(lab_hq, pos_factory, inventory_url=f"http://127.0.0.1:{port}")
        client = pos.client()
        sale_ids = [client.sell(new_key(), sale_lines(n)).body["sale_id"] for n in range(5)]
        client.close()

        # HQ is down, but the inventory API is in the store: it counts the sales now.
        lab_hq.stop()
        pos.sync_once(expect_rc=4)
        connection = sqlite3.connect(tmp_path / "inventory" / "inventory.sqlite3")
        counted = connection.execute("SELECT sale_key, sku, qty FROM local_sales").fetchall()
        connection.close()
        assert {key for key, _sku, _qty in counted} == set(sale_ids)
        expected = sum(line["qty"] for n in range(5) for line in sale_lines(n))
        assert sum(qty for _key, _sku, qty in counted) == expected
        assert pos.query("SELECT target, last_seq FROM delivery_cursors") == [("inventory", 5)]
        assert pos.query("SELECT count(*) FROM outbox WHERE state = 'pending'") == [(5,)]

        # A second pass forwards nothing again: the cursor moved past the five sales.
        pos.sync_once(expect_rc=4)
        assert _inventory_sale_keys(tmp_path) == set(sale_ids)

        # The running agent forwards new sales and delivers everything to HQ once it is back.
        lab_hq.start()
        pos.start_agent()
        client = pos.client()
        sale_ids.append(client.sell(new_key(), sale_lines(5)).body["sale_id"])
        client.close()
        pos.wait_until(lambda: _inventory_sale_keys(tmp_path) == set(sale_ids), "forwarding to the inventory API")
        pos.wait_until(lambda: pos.agent_health()["pending"] == 0, "draining the outbox to HQ")
        assert [sale["idempotency_key"] for sale in hq_sales(lab_hq)[0]] == sale_ids
    finally:
        inventory.terminate()
        inventory.wait(20)

"""Selling through a WAN outage: every sale is accepted offline and reaches HQ exactly once, in order."""

from __future__ import annotations

import json

from tests.fixtures_hq import LabHq
from tests.fixtures_pos import hq_sales, sell_concurrently

SALES = 10_000
REGISTERS = 8


def metric(text: str, prefix: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


def test_outage_sales_arrive_once_in_order(lab_hq: LabHq, pos_factory):
    pos = pos_factory(lab_hq.url, sync_batch_size=500)
    pos.sync_once()
    pos.start_server()
    lab_hq.stop()
    pos.start_agent()

    by_register = sell_concurrently(pos, SALES, REGISTERS)
    acknowledged = [sale_id for sale_ids in by_register.values() for sale_id in sale_ids]
    assert len(acknowledged) == SALES
    assert len(set(acknowledged)) == SALES

    health = pos.agent_health()
    assert health["pending"] == SALES
    assert health["consecutive_failures"] > 0
    client = pos.client()
    metrics = client.request("GET", "/metrics").body
    assert metric(metrics, 'pos_outbox_pending_sales{store_id="store-0001"}') == SALES
    assert metric(metrics, 'pos_outbox_oldest_pending_age_seconds{store_id="store-0001"}') > 0
    assert metric(metrics, "pos_sync_errors_total{") > 0

    lab_hq.start()
    pos.wait_until(lambda: pos.agent_health()["pending"] == 0, "draining the outbox to HQ")

    sales, duplicates = hq_sales(lab_hq)
    keys = [sale["idempotency_key"] for sale in sales]
    assert len(keys) == SALES
    assert set(keys) == set(acknowledged)
    assert duplicates == 0

    commit_order = [row[0] for row in pos.query("SELECT sale_id FROM sales ORDER BY seq")]
    assert keys == commit_order
    position = {key: index for index, key in enumerate(keys)}
    for register, sale_ids in by_register.items():
        positions = [position[sale_id] for sale_id in sale_ids]
        assert positions == sorted(positions), f"register {register}'s sales arrived out of order"

    documents = dict(pos.query("SELECT sale_id, document FROM sales"))
    mismatched = [
        sale["idempotency_key"] for sale in sales if sale["sale"] != json.loads(documents[sale["idempotency_key"]])
    ]
    assert mismatched == []
    assert client.request("GET", f"/sales/{acknowledged[0]}").body["sync"]["hq_status"] == "applied"
    client.close()

"""Inventory API and its HQ sync against a real lab HQ, real SQLite files and real processes."""

from __future__ import annotations

import signal
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

from tests.fixtures_hq import LabHq
from tests.services.conftest import InventoryStack, wait_until


def hq_on_hand(hq: LabHq) -> dict[str, int]:
    items, token = [], None
    while True:
        params = {"limit": 1000, **({"page_token": token} if token else {})}
        page = hq.get("/stock/snapshot", **params).json()
        items += page["items"]
        token = page["next_page_token"]
        if not token:
            return {item["sku"]: item["on_hand"] for item in items}


def on_hand(stack: InventoryStack, sku: str) -> int:
    return stack.get(f"/inventory/{sku}").json()["on_hand"]


def test_sync_from_empty(inventory: InventoryStack):
    expected = hq_on_hand(inventory.hq)
    skus = sorted(expected)
    for start in range(0, len(skus), 100):
        batch = inventory.get("/inventory", skus=",".join(skus[start : start + 100])).json()
        assert batch["unknown"] == []
        assert {item["sku"]: item["on_hand"] for item in batch["items"]} == {
            sku: expected[sku] for sku in skus[start : start + 100]
        }
    item = inventory.get("/inventory/SKU-00001").json()
    assert set(item) == {
        "sku",
        "on_hand",
        "reserved",
        "available",
        "location",
        "updated_at",
        "sold_last_hour",
        "stale",
        "age_s",
    }
    assert item["stale"] is False
    assert item["reserved"] == 0
    assert item["available"] == max(0, item["on_hand"])
    assert inventory.metric("inventory_skus") == 300
    assert inventory.metric("inventory_snapshots") == 1


def test_deltas_applied(inventory: InventoryStack):
    inventory.hq.set_stock([{"sku": "SKU-00002", "on_hand": 5, "location": {"aisle": "7", "bay": "B"}}])
    inventory.hq.set_stock([{"sku": "SKU-00003", "delta": 4}])
    before = hq_on_hand(inventory.hq)["SKU-00003"]
    wait_until(lambda: on_hand(inventory, "SKU-00002") == 5, description="delta for SKU-00002", logs=inventory.logs())
    wait_until(lambda: on_hand(inventory, "SKU-00003") == before, description="delta for SKU-00003")
    assert inventory.get("/inventory/SKU-00002").json()["location"] == {"aisle": "7", "bay": "B"}
    assert inventory.metric("inventory_snapshots") == 1


def test_cursor_resume_after_sigkill(inventory: InventoryStack):
    inventory.hq.set_stock([{"sku": "SKU-00004", "on_hand": 11}])
    wait_until(lambda: on_hand(inventory, "SKU-00004") == 11, description="first delta")
    inventory.sync.stop(signal.SIGKILL)

    inventory.hq.set_stock([{"sku": "SKU-00004", "on_hand": 12}, {"sku": "SKU-00005", "on_hand": 13}])
    assert on_hand(inventory, "SKU-00004") == 11
    inventory.sync.start()
    wait_until(lambda: on_hand(inventory, "SKU-00005") == 13, description="delta after restart", logs=inventory.logs())
    assert on_hand(inventory, "SKU-00004") == 12
    assert inventory.metric("inventory_snapshots") == 1
    with sqlite3.connect(inventory.db_path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_hq_down_marks_stale(inventory: InventoryStack):
    inventory.hq.lab("offline", {"down": True, "mode": "drop"})
    item = wait_until(
        lambda: (body := inventory.get("/inventory/SKU-00001").json())["stale"] and body,
        timeout=15,
        description="stale flag",
        logs=inventory.logs(),
    )
    assert item["age_s"] > 2
    assert inventory.get("/healthz").json()["feed_stale"] is True
    assert inventory.metric("inventory_feed_stale") == 1
    assert inventory.metric("inventory_stale_skus") == 300
    assert inventory.metric("inventory_feed_consecutive_failures") >= 1

    inventory.hq.lab("offline", {"down": True, "mode": "503"})
    assert inventory.get("/inventory/SKU-00001").status_code == 200
    inventory.hq.lab("offline", {"down": False})
    wait_until(lambda: not inventory.get("/inventory/SKU-00001").json()["stale"], description="fresh stock again")
    assert inventory.metric("inventory_feed_consecutive_failures") == 0


def test_hq_process_killed_api_answers(inventory: InventoryStack):
    inventory.hq.stop(signal.SIGKILL)
    wait_until(lambda: inventory.get("/inventory/SKU-00001").json()["stale"], timeout=15, description="stale flag")
    inventory.hq.start()
    inventory.hq.set_stock([{"sku": "SKU-00006", "on_hand": 21}])
    wait_until(
        lambda: on_hand(inventory, "SKU-00006") == 21,
        timeout=15,
        description="sync after HQ restart",
        logs=inventory.logs(),
    )


def test_full_resync_after_cursor_expiry(inventory: InventoryStack):
    inventory.hq.lab("expire-cursors")
    inventory.hq.set_stock([{"sku": "SKU-00007", "on_hand": 31}])
    wait_until(lambda: on_hand(inventory, "SKU-00007") == 31, description="value after resync", logs=inventory.logs())
    assert inventory.metric("inventory_snapshots") == 2
    assert "rejected the stock cursor" in inventory.sync.log_tail()


def test_local_sale_counted_once(inventory: InventoryStack):
    start = on_hand(inventory, "SKU-00008")
    sale = {"idempotency_key": "pos-1-000001", "sale": {"lines": [{"sku": "SKU-00008", "qty": 2}]}}
    first = inventory.post("/inventory/sales", {"sales": [sale]}).json()["results"]
    assert first == [{"idempotency_key": "pos-1-000001", "status": "applied"}]
    assert on_hand(inventory, "SKU-00008") == start - 2
    assert inventory.get("/inventory/SKU-00008").json()["sold_last_hour"] == 2
    again = inventory.post("/inventory/sales", {"sales": [sale]}).json()["results"]
    assert again[0]["status"] == "duplicate"
    assert on_hand(inventory, "SKU-00008") == start - 2

    # HQ applies the same sale; the feed then carries its key and the local adjustment is dropped.
    assert inventory.hq.post("/sales/batches", {"sales": [sale]}).json()["results"][0]["status"] == "applied"
    wait_until(lambda: inventory.metric("inventory_pending_local_sales") == 0, description="adjustment dropped")
    assert on_hand(inventory, "SKU-00008") == start - 2

    late = {"idempotency_key": "pos-1-000002", "sale": {"lines": [{"sku": "SKU-00008", "qty": 1}]}}
    inventory.hq.post("/sales/batches", {"sales": [late]})
    wait_until(lambda: on_hand(inventory, "SKU-00008") == start - 3, description="HQ-applied sale in the feed")
    status = inventory.post("/inventory/sales", {"sales": [late]}).json()["results"][0]["status"]
    assert status == "already_reflected"
    assert on_hand(inventory, "SKU-00008") == start - 3


def test_bad_requests_get_reasons(inventory: InventoryStack):
    unknown = inventory.get("/inventory/SKU-99999")
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "unknown_sku"
    malformed = inventory.get("/inventory/bad%20sku!")
    assert malformed.status_code == 400
    assert "invalid" in malformed.json()["detail"]
    assert inventory.get("/inventory").status_code == 400
    batch = inventory.get("/inventory", skus="SKU-00001,SKU-99999").json()
    assert batch["unknown"] == ["SKU-99999"]
    assert [item["sku"] for item in batch["items"]] == ["SKU-00001"]
    assert inventory.post("/promise", {"lines": [{"sku": "SKU-00001", "qty": 0}]}).status_code == 400
    assert inventory.post("/promise", {"lines": []}).status_code == 400
    assert inventory.http.post("/promise", content=b"{not json").status_code == 400
    sales = inventory.post("/inventory/sales", {"sales": [{"idempotency_key": "k", "sale": {"lines": "x"}}]})
    assert sales.status_code == 400
    assert "sales[0].sale.lines" in sales.json()["detail"]
    assert inventory.get("/nowhere").status_code == 404


def test_metrics_expose_latency(inventory: InventoryStack):
    inventory.get("/inventory/SKU-00001")
    text = inventory.get("/metrics").text
    assert 'inventory_request_duration_seconds_bucket{le="0.001",route="inventory_sku"}' in text
    assert "inventory_feed_age_seconds " in text
    assert "inventory_reservations_active " in text


def test_two_workers_share_metrics(inventory_factory):
    stack = inventory_factory(workers=2)
    wait_until(
        lambda: stack.get("/inventory/SKU-00001").status_code == 200, description="first snapshot", logs=stack.logs()
    )
    for _request in range(20):
        assert stack.get("/inventory/SKU-00001").status_code == 200
    text = stack.get("/metrics").text
    counts = [
        line
        for line in text.splitlines()
        if line.startswith('inventory_request_duration_seconds_count{route="inventory_sku"}')
    ]
    assert len(counts) == 1
    assert float(counts[0].rsplit(" ", 1)[1]) >= 20


def set_stock(stack: InventoryStack, sku: str, value: int) -> None:
    stack.hq.set_stock([{"sku": sku, "on_hand": value}])
    wait_until(lambda: on_hand(stack, sku) == value, description=f"{sku} at {value}")


def test_promise_waits_for_busy_pickers(inventory_factory):
    stack = inventory_factory(pick_seconds_per_line=60, order_overhead_s=120)
    wait_until(lambda: stack.get("/inventory/SKU-00010").status_code == 200, description="first snapshot")
    set_stock(stack, "SKU-00010", 50)
    set_stock(stack, "SKU-00011", 50)
    assert stack.http.put("/pickers", json={"on_shift": 1}).json() == {"on_shift": 1}
    order = {"lines": [{"sku": "SKU-00010", "qty": 1}, {"sku": "SKU-00011", "qty": 1}]}

    first = stack.post("/promise", order).json()
    second = stack.post("/promise", order).json()
    assert first["ready_in_s"] == 240
    assert first["orders_ahead"] == 0
    assert 479 <= second["ready_in_s"] <= 480
    assert second["orders_ahead"] == 1
    assert stack.get("/inventory/SKU-00010").json()["reserved"] == 2

    stack.http.put("/pickers", json={"on_shift": 2})
    third = stack.post("/promise", order).json()
    assert third["picker"] == 1
    assert third["ready_in_s"] == 240

    stack.http.put("/pickers", json={"on_shift": 0})
    none = stack.post("/promise", order)
    assert none.status_code == 409
    assert none.json()["reasons"] == [{"reason": "no_pickers_on_shift"}]


def test_promise_idempotent_by_order_id(inventory: InventoryStack):
    set_stock(inventory, "SKU-00012", 5)
    order = {"order_id": "web-42", "lines": [{"sku": "SKU-00012", "qty": 2}]}
    first = inventory.post("/promise", order)
    retry = inventory.post("/promise", order)
    assert first.status_code == retry.status_code == 201
    assert first.json()["reservation_id"] == retry.json()["reservation_id"]
    assert inventory.get("/inventory/SKU-00012").json()["reserved"] == 2


def test_reservation_expires(inventory_factory):
    stack = inventory_factory(reservation_ttl_s=1)
    wait_until(lambda: stack.get("/inventory/SKU-00013").status_code == 200, description="first snapshot")
    set_stock(stack, "SKU-00013", 3)
    created = stack.post("/promise", {"lines": [{"sku": "SKU-00013", "qty": 3}]})
    assert created.status_code == 201
    reservation_id = created.json()["reservation_id"]
    assert stack.get(f"/reservations/{reservation_id}").status_code == 200
    assert stack.get("/inventory/SKU-00013").json()["available"] == 0
    assert stack.post("/promise", {"lines": [{"sku": "SKU-00013", "qty": 1}]}).status_code == 409
    time.sleep(1.1)
    assert stack.get("/inventory/SKU-00013").json()["available"] == 3
    assert stack.get(f"/reservations/{reservation_id}").status_code == 404
    assert stack.post("/promise", {"lines": [{"sku": "SKU-00013", "qty": 1}]}).status_code == 201


def test_oversell_rejected(inventory: InventoryStack):
    set_stock(inventory, "SKU-00014", 3)
    ok = inventory.post("/promise", {"lines": [{"sku": "SKU-00014", "qty": 2}]})
    assert ok.status_code == 201
    rejected = inventory.post("/promise", {"lines": [{"sku": "SKU-00014", "qty": 2}, {"sku": "SKU-99999", "qty": 1}]})
    assert rejected.status_code == 409
    assert rejected.json()["reasons"] == [
        {"reason": "insufficient_stock", "sku": "SKU-00014", "requested": 2, "available": 1},
        {"reason": "unknown_sku", "sku": "SKU-99999"},
    ]
    assert inventory.http.delete(f"/reservations/{ok.json()['reservation_id']}").status_code == 200
    assert inventory.get("/inventory/SKU-00014").json()["available"] == 3


def test_concurrent_promises_never_oversell(inventory: InventoryStack):
    set_stock(inventory, "SKU-00015", 5)
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(
            pool.map(
                lambda _: inventory.post("/promise", {"lines": [{"sku": "SKU-00015", "qty": 1}]}).status_code, range(12)
            )
        )
    assert sorted(statuses) == [201] * 5 + [409] * 7
    assert inventory.get("/inventory/SKU-00015").json()["available"] == 0

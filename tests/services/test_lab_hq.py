"""The lab HQ over HTTP: stock feed, cursors, sales ingest idempotency, catalog, cashiers and outages."""

from __future__ import annotations

import time

import httpx
import pytest
from argon2 import PasswordHasher

from tests.fixtures_hq import LAB_STORE, LabHq


def test_snapshot_pages_cover_catalog(lab_hq: LabHq):
    first = lab_hq.get("/stock/snapshot", limit=120).json()
    pages, skus = [first], [item["sku"] for item in first["items"]]
    while pages[-1]["next_page_token"]:
        page = lab_hq.get("/stock/snapshot", limit=120, page_token=pages[-1]["next_page_token"]).json()
        pages.append(page)
        skus += [item["sku"] for item in page["items"]]
    assert len(pages) == 3
    assert len(skus) == len(set(skus)) == 300
    assert {page["cursor"] for page in pages} == {first["cursor"]}
    assert first["applied_sales"] == []
    item = first["items"][0]
    assert set(item) == {"sku", "on_hand", "location", "updated_at"}
    assert set(item["location"]) == {"aisle", "bay"}


def test_changes_follow_cursor(lab_hq: LabHq):
    cursor = lab_hq.get("/stock/snapshot", limit=1).json()["cursor"]
    assert lab_hq.get("/stock/changes", after=cursor).json() == {"cursor": cursor, "changes": [], "more": False}

    lab_hq.set_stock([{"sku": "SKU-00001", "on_hand": 7, "location": {"aisle": "12", "bay": "C"}}])
    lab_hq.set_stock([{"sku": "SKU-00002", "delta": -1}, {"sku": "SKU-00003", "on_hand": 0}])
    page = lab_hq.get("/stock/changes", after=cursor, limit=2).json()
    assert page["more"] is True
    assert [change["sku"] for change in page["changes"]] == ["SKU-00001", "SKU-00002"]
    assert page["changes"][0]["on_hand"] == 7
    assert page["changes"][0]["location"] == {"aisle": "12", "bay": "C"}
    assert page["changes"][0]["sale_key"] is None

    rest = lab_hq.get("/stock/changes", after=page["cursor"], limit=2).json()
    assert rest["more"] is False
    assert [change["sku"] for change in rest["changes"]] == ["SKU-00003"]


def test_expired_cursor_gets_410(lab_hq: LabHq):
    cursor = lab_hq.get("/stock/snapshot", limit=1).json()["cursor"]
    assert lab_hq.lab("expire-cursors", {"store_id": LAB_STORE}) == {"expired": [LAB_STORE]}
    response = lab_hq.get("/stock/changes", after=cursor)
    assert response.status_code == 410
    assert response.json()["error"] == "cursor_expired"
    garbage = lab_hq.get("/stock/changes", after="not-a-cursor")
    assert garbage.status_code == 410
    fresh = lab_hq.get("/stock/snapshot", limit=1).json()["cursor"]
    assert lab_hq.get("/stock/changes", after=fresh).status_code == 200


def test_retention_expires_old_cursor(tmp_path):
    hq = LabHq(tmp_path / "hq", skus=50)
    hq.extra_args = ["--change-retention", "3"]
    hq.start()
    try:
        cursor = hq.get("/stock/snapshot", limit=1).json()["cursor"]
        hq.set_stock([{"sku": f"SKU-0000{n}", "on_hand": n} for n in range(1, 6)])
        assert hq.get("/stock/changes", after=cursor).status_code == 410
    finally:
        hq.stop()


def test_auth_rejects_wrong_token(lab_hq: LabHq):
    url = f"{lab_hq.url}/v1/stores/{LAB_STORE}/catalog"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 403
    other = httpx.get(f"{lab_hq.url}/v1/stores/store-9999/catalog", headers=lab_hq.headers())
    assert other.status_code == 403
    mismatch = httpx.get(url, headers={**lab_hq.headers(), "X-Store-Id": "store-0002"})
    assert mismatch.status_code == 400


def _sale(key: str, sku: str, qty: int) -> dict:
    return {"idempotency_key": key, "sale": {"lines": [{"sku": sku, "qty": qty}], "total_cents": 100 * qty}}


def test_sales_idempotent_and_decrement_stock(lab_hq: LabHq):
    snapshot = lab_hq.get("/stock/snapshot", limit=1).json()
    before = snapshot["items"][0]["on_hand"]
    batch = {"sales": [_sale("s-1", "SKU-00001", 2), _sale("s-2", "SKU-00001", 1)]}
    first = lab_hq.post("/sales/batches", batch).json()["results"]
    assert [r["status"] for r in first] == ["applied", "applied"]

    again = lab_hq.post("/sales/batches", {"sales": [_sale("s-1", "SKU-00001", 2), _sale("s-1", "SKU-00001", 5)]})
    assert [r["status"] for r in again.json()["results"]] == ["duplicate", "conflict"]

    readback = lab_hq.get("/sales", after_seq=0).json()
    assert [sale["idempotency_key"] for sale in readback["sales"]] == ["s-1", "s-2"]
    assert readback["duplicates"] == 1
    assert readback["conflicts"] == 1

    changes = lab_hq.get("/stock/changes", after=snapshot["cursor"]).json()["changes"]
    assert [(c["sku"], c["on_hand"], c["sale_key"]) for c in changes] == [
        ("SKU-00001", before - 2, "s-1"),
        ("SKU-00001", before - 3, "s-2"),
    ]
    assert lab_hq.get("/stock/snapshot", limit=1).json()["applied_sales"] == ["s-1", "s-2"]


def test_invalid_sales_batch_applies_nothing(lab_hq: LabHq):
    batch = {"sales": [_sale("ok-1", "SKU-00001", 1), {"idempotency_key": "bad", "sale": {"lines": [{"sku": 5}]}}]}
    response = lab_hq.post("/sales/batches", batch)
    assert response.status_code == 400
    assert "sales[1].sale.lines[0]" in response.json()["detail"]
    assert lab_hq.get("/sales", after_seq=0).json()["sales"] == []
    assert lab_hq.post("/sales/batches", {"sales": []}).status_code == 400
    not_json = httpx.post(f"{lab_hq.url}/v1/stores/{LAB_STORE}/sales/batches", content=b"{", headers=lab_hq.headers())
    assert not_json.status_code == 400


def test_data_survives_restart(lab_hq: LabHq):
    cursor = lab_hq.get("/stock/snapshot", limit=1).json()["cursor"]
    lab_hq.post("/sales/batches", {"sales": [_sale("keep-1", "SKU-00004", 1)]})
    lab_hq.stop()
    lab_hq.start()
    assert lab_hq.get("/stock/changes", after=cursor).json()["changes"][0]["sale_key"] == "keep-1"
    again = lab_hq.post("/sales/batches", {"sales": [_sale("keep-1", "SKU-00004", 1)]}).json()
    assert again["results"][0]["status"] == "duplicate"


def test_catalog_and_cashiers_with_etag(lab_hq: LabHq):
    catalog = lab_hq.get("/catalog")
    items = catalog.json()["items"]
    assert len(items) == 300
    assert any(item["perishable"] and item["expiry_date"] for item in items)
    assert all(item["cost_cents"] < item["base_price_cents"] for item in items)
    etag = catalog.headers["etag"]
    url = f"{lab_hq.url}/v1/stores/{LAB_STORE}/catalog"
    assert httpx.get(url, headers={**lab_hq.headers(), "If-None-Match": etag}).status_code == 304
    assert lab_hq.lab("catalog", {"items": [{"sku": "SKU-00001", "base_price_cents": 999}]}) == {"version": 2}
    assert httpx.get(url, headers={**lab_hq.headers(), "If-None-Match": etag}).status_code == 200

    cashiers = lab_hq.get("/cashiers").json()
    first = cashiers["cashiers"][0]
    assert first["cashier_id"] == "c001"
    assert PasswordHasher().verify(first["password_hash"], "lab-pass-c001")
    lab_hq.lab("cashiers", {"store_id": LAB_STORE, "revoke": ["c002"]})
    after = lab_hq.get("/cashiers").json()
    assert after["revoked"] == ["c002"]
    assert after["version"] == cashiers["version"] + 1
    assert "c002" not in {c["cashier_id"] for c in after["cashiers"]}


def test_outage_503_then_recovers(lab_hq: LabHq):
    lab_hq.lab("offline", {"seconds": 1})
    assert lab_hq.get("/catalog").status_code == 503
    time.sleep(1.2)
    assert lab_hq.get("/catalog").status_code == 200


def test_outage_drop_resets_connections(lab_hq: LabHq):
    lab_hq.lab("offline", {"down": True, "mode": "drop"})
    with pytest.raises(httpx.TransportError):
        lab_hq.get("/catalog")
    lab_hq.lab("offline", {"down": False})
    assert lab_hq.get("/catalog").status_code == 200

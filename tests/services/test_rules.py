"""Rules engine over HTTP with real wasmtime: markdowns, the margin floor, runaway rules and hot reload."""

from __future__ import annotations

import datetime as dt
import os
import sys
import time

import httpx

from tests.fixtures_hq import LabHq
from tests.services.conftest import InventoryStack, ServiceProcess, write_rules
from tests.support import free_port

PERISHABLE = [
    {
        "name": "perishable-markdown",
        "module": "perishable_markdown.wat",
        "categories": ["produce", "dairy", "bakery", "meat"],
    }
]


def catalog_item(hq: LabHq, category: str) -> dict:
    return next(item for item in hq.get("/catalog").json()["items"] if item["category"] == category)


def set_expiry(hq: LabHq, sku: str, days_from_today: int) -> None:
    expiry = (dt.date.today() + dt.timedelta(days=days_from_today)).isoformat()
    hq.lab("catalog", {"items": [{"sku": sku, "expiry_date": expiry}]})


def wait_for_price(rules, sku: str, predicate, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        price = rules.price(sku)
        if predicate(price):
            return price
        assert time.monotonic() < deadline, f"last price of {sku}: {price}\n{rules.log_tail()}"
        time.sleep(0.1)


def test_perishable_near_expiry_marked_down(lab_hq: LabHq, rules_factory):
    item = catalog_item(lab_hq, "dairy")
    base = item["base_price_cents"]
    set_expiry(lab_hq, item["sku"], 10)
    rules = rules_factory(PERISHABLE)
    fresh = wait_for_price(rules, item["sku"], lambda p: p["outcome"] == "ok" and p["promo_id"] is None)
    assert fresh["price_cents"] == base
    assert rules.http.get("/promo/fragment", params={"sku": item["sku"]}).text == ""

    set_expiry(lab_hq, item["sku"], 1)
    marked = wait_for_price(rules, item["sku"], lambda p: p["promo_id"] is not None)
    floor = marked["floor_cents"]
    assert marked["promo_id"] == "expiry-30"
    assert marked["price_cents"] == max(base * 70 // 100, floor)
    assert marked["price_cents"] < base
    fragment = rules.http.get("/promo/fragment", params={"sku": item["sku"]})
    assert fragment.headers["content-type"].startswith("text/html")
    assert 'data-promo="expiry-30"' in fragment.text
    assert '<s class="re-base">' in fragment.text

    set_expiry(lab_hq, item["sku"], 0)
    last_day = wait_for_price(rules, item["sku"], lambda p: p["promo_id"] == "expiry-50")
    assert last_day["price_cents"] == max(base // 2, floor)


def test_margin_floor_holds(lab_hq: LabHq, rules_factory):
    rules = rules_factory([{"name": "one-cent", "module": "below_floor.wat"}])
    for category in ("dairy", "electronics", "household"):
        item = catalog_item(lab_hq, category)
        quote = rules.price(item["sku"])
        floor = quote["floor_cents"]
        assert quote["outcome"] == "floor_applied"
        assert quote["price_cents"] == floor
        exact_floor = item["cost_cents"] * (1 + item["min_margin"])
        assert exact_floor - 1e-6 <= floor < exact_floor + 1


def test_infinite_loop_falls_back(lab_hq: LabHq, rules_factory):
    item = catalog_item(lab_hq, "grocery")
    rules = rules_factory([{"name": "spin", "module": "infinite_loop.wat"}], time_limit_ms=200)
    started = time.monotonic()
    quote = rules.price(item["sku"])
    elapsed = time.monotonic() - started
    assert quote["price_cents"] == item["base_price_cents"]
    assert quote["outcome"] == "fuel_exhausted"
    assert quote["promo_id"] is None
    assert elapsed < 10, "the rule was not cut off"
    assert rules.http.get("/healthz").status_code == 200
    assert rules.metric("rules_fallbacks_total", outcome="fuel_exhausted") >= 1
    assert "rule failed; serving the base price" in rules.log_tail()


def test_infinite_loop_hits_time_limit(lab_hq: LabHq, rules_factory):
    item = catalog_item(lab_hq, "grocery")
    # Fuel metering off: only the epoch deadline (100 ms) can stop the loop.
    rules = rules_factory([{"name": "spin", "module": "infinite_loop.wat"}], fuel_per_call=0, time_limit_ms=100)
    quote = rules.price(item["sku"])
    assert quote["price_cents"] == item["base_price_cents"]
    assert quote["outcome"] == "timeout"
    assert rules.metric("rules_fallbacks_total", outcome="timeout") == 1
    duration_count = rules.metric("rules_call_duration_seconds_count", rule="spin")
    assert duration_count == 1
    assert rules.metric("rules_call_duration_seconds_bucket", rule="spin", le="0.05") == 0
    assert rules.metric("rules_call_duration_seconds_bucket", rule="spin", le="1.0") == 1


def test_trapping_rule_falls_back(lab_hq: LabHq, rules_factory):
    item = catalog_item(lab_hq, "household")
    rules = rules_factory([{"name": "divide-by-zero", "module": "trap.wat"}])
    for _attempt in range(3):
        quote = rules.price(item["sku"])
        assert quote["price_cents"] == item["base_price_cents"]
        assert quote["outcome"] == "trap"
    assert "INTEGER_DIVISION_BY_ZERO" in quote["detail"]
    assert rules.metric("rules_fallbacks_total", outcome="trap") == 3
    assert rules.metric("rules_calls_total", rule="divide-by-zero", outcome="trap") == 3


def test_garbage_results_fall_back(lab_hq: LabHq, rules_factory):
    item = catalog_item(lab_hq, "dairy")
    rules = rules_factory(
        [
            {"name": "negative", "module": "garbage.wat", "categories": ["dairy"]},
            {"name": "bad-promo", "module": "bad_promo.wat"},
        ]
    )
    negative = rules.price(item["sku"])
    assert negative["outcome"] == "invalid_result"
    assert negative["price_cents"] == item["base_price_cents"]
    other = catalog_item(lab_hq, "electronics")
    bad_promo = rules.price(other["sku"])
    assert bad_promo["outcome"] == "invalid_result"
    assert "out of bounds" in bad_promo["detail"]
    assert bad_promo["promo_id"] is None


def test_memory_limit_enforced(lab_hq: LabHq, rules_factory):
    item = catalog_item(lab_hq, "meat")
    rules = rules_factory([{"name": "hog", "module": "memory_hog.wat"}], memory_limit_bytes=1024 * 1024)
    quote = rules.price(item["sku"])
    assert quote["outcome"] == "trap"
    assert quote["price_cents"] == item["base_price_cents"]


def test_rules_reload_without_restart(lab_hq: LabHq, rules_factory):
    item = catalog_item(lab_hq, "bakery")
    set_expiry(lab_hq, item["sku"], 0)
    rules = rules_factory([{"name": "one-cent", "module": "below_floor.wat"}])
    assert rules.price(item["sku"])["rule"] == "one-cent"
    pid = rules.proc.pid

    write_rules(rules.rules_dir, PERISHABLE)
    reloaded = wait_for_price(rules, item["sku"], lambda p: p["rule"] == "perishable-markdown")
    assert reloaded["promo_id"] == "expiry-50"
    version = rules.http.get("/healthz").json()["rules_version"]

    write_rules(rules.rules_dir, [{"name": "broken", "module": "wrong_signature.wat"}])
    deadline = time.monotonic() + 15
    while not rules.http.get("/healthz").json()["last_reload_error"]:
        assert time.monotonic() < deadline, rules.log_tail()
        time.sleep(0.1)
    health = rules.http.get("/healthz").json()
    assert "'price' has params" in health["last_reload_error"]
    assert health["rules_version"] == version
    assert rules.price(item["sku"])["rule"] == "perishable-markdown"
    assert rules.proc.pid == pid
    assert rules.metric("rules_reloads_total", result="failed") == 1


def test_bad_requests_rejected(lab_hq: LabHq, rules_factory):
    rules = rules_factory(PERISHABLE)
    assert rules.http.get("/price/SKU-99999").status_code == 404
    invalid = rules.http.get("/price/not%20a%20sku")
    assert invalid.status_code == 400
    assert invalid.json()["error"] == "invalid_sku"
    assert rules.http.get("/promo/fragment").status_code == 400
    assert rules.http.get("/promo/fragment", params={"sku": "SKU-99999"}).status_code == 404
    assert rules.http.post("/price/SKU-00001").status_code == 405


def test_overstock_promo_uses_stock(lab_hq: LabHq, inventory: InventoryStack, rules_factory):
    item = catalog_item(lab_hq, "grocery")
    lab_hq.set_stock([{"sku": item["sku"], "on_hand": 80}])
    rules = rules_factory(
        [{"name": "overstock-promo", "module": "overstock_promo.wat", "categories": ["grocery"]}],
        inventory_url=inventory.api.url,
    )
    promo = wait_for_price(rules, item["sku"], lambda p: p["promo_id"] == "overstock-15")
    assert promo["price_cents"] == max(item["base_price_cents"] * 85 // 100, promo["floor_cents"])

    sale = {"idempotency_key": "pos-9-1", "sale": {"lines": [{"sku": item["sku"], "qty": 1}]}}
    assert inventory.post("/inventory/sales", {"sales": [sale]}).status_code == 200
    selling = wait_for_price(rules, item["sku"], lambda p: p["promo_id"] is None)
    assert selling["price_cents"] == item["base_price_cents"]


ESI_VCL = """vcl 4.1;
backend pages {{ .host = "127.0.0.1"; .port = "{pages}"; }}
backend rules {{ .host = "127.0.0.1"; .port = "{rules}"; }}
sub vcl_recv {{
    if (req.url ~ "^/promo/") {{ set req.backend_hint = rules; }} else {{ set req.backend_hint = pages; }}
}}
sub vcl_backend_response {{
    if (bereq.url ~ "^/product/") {{ set beresp.do_esi = true; }}
}}
"""


def test_varnish_includes_promo_fragment(lab_hq: LabHq, rules_factory, varnishd, tmp_path):
    item = catalog_item(lab_hq, "produce")
    set_expiry(lab_hq, item["sku"], 0)
    rules = rules_factory(PERISHABLE)
    wait_for_price(rules, item["sku"], lambda p: p["promo_id"] == "expiry-50")

    pages = tmp_path / "pages"
    (pages / "product").mkdir(parents=True)
    page = f'<html><body><h1>{item["name"]}</h1><esi:include src="/promo/fragment?sku={item["sku"]}"/></body></html>'
    (pages / "product" / f"{item['sku']}.html").write_text(page)
    page_port = free_port()
    server = ServiceProcess(
        "page server",
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(pages), str(page_port)],
        dict(os.environ),
        tmp_path / "pages.log",
        page_port,
    ).start()
    try:
        port = varnishd(ESI_VCL.format(pages=page_port, rules=rules.port))
        response = httpx.get(f"http://127.0.0.1:{port}/product/{item['sku']}.html")
    finally:
        server.stop()
    assert response.status_code == 200
    assert "<esi:include" not in response.text
    assert 'data-promo="expiry-50"' in response.text
    assert f"<h1>{item['name']}</h1>" in response.text

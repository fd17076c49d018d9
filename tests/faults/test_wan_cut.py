"""A store's WAN link cut on the service level: lab HQ answers 503 to every store request, then comes back.

Everything runs as real processes on loopback: lab HQ, the inventory API with its sync worker, the POS cache
with its sync agent, and varnishd in front of the product page (HQ's catalog) and of the inventory API. While
HQ is cut off the inventory API must flag its answers stale, Varnish must keep rendering the product page from
grace, and the POS must keep selling. Once HQ is back every sale made during the cut must reach it exactly once.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures_hq import LAB_STORE, LabHq
from tests.fixtures_pos import hq_sales, new_key, sale_lines
from tests.services.conftest import InventoryStack, wait_until
from tests.support import free_port, wait_for_port

CATALOG = f"/v1/stores/{LAB_STORE}/catalog"
SALES_DURING_CUT = 40
ITEM = "/inventory/SKU-00001"


def vcl(hq: LabHq, inventory_port: int) -> str:
    host, port = hq.url.removeprefix("http://").split(":")
    return f"""vcl 4.1;
backend hq {{
    .host = "{host}"; .port = "{port}";
    .probe = {{ .url = "/healthz"; .interval = 0.5s; .timeout = 0.3s; .window = 3; .threshold = 2; }}
}}
backend inventory {{ .host = "127.0.0.1"; .port = "{inventory_port}"; }}

sub vcl_recv {{
    if (req.url ~ "^/inventory") {{
        set req.backend_hint = inventory;
    }} else {{
        set req.backend_hint = hq;
        set req.http.Authorization = "Bearer {hq.tokens[LAB_STORE]}";
    }}
    return (hash);
}}

sub vcl_backend_response {{
    if (beresp.status >= 500 && bereq.is_bgfetch) {{
        return (abandon);
    }}
    set beresp.ttl = 1s;
    set beresp.grace = 1h;
}}
"""


@pytest.fixture
def varnish(lab_hq: LabHq, inventory: InventoryStack, tmp_path: Path) -> Iterator[str]:
    instance = tmp_path / "varnish"
    instance.mkdir()
    instance.chmod(0o755)
    config = instance / "store.vcl"
    config.write_text(vcl(lab_hq, inventory.port))
    config.chmod(0o644)
    port = free_port()
    command = ["varnishd", "-F", "-n", str(instance), "-a", f"127.0.0.1:{port}", "-f", str(config)]
    # No jail: the test's temporary directory is readable by root only, not by the varnish user.
    command += ["-s", "malloc,32m", "-T", "none", "-j", "none"]
    with (instance / "varnishd.log").open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=log)
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def inventory(lab_hq: LabHq, tmp_path: Path) -> Iterator[InventoryStack]:
    (tmp_path / "inventory").mkdir()
    stack = InventoryStack(lab_hq, tmp_path / "inventory").start()
    yield stack
    stack.stop()


def test_store_through_wan_cut(lab_hq: LabHq, inventory: InventoryStack, varnish: str, pos_factory) -> None:
    wait_until(
        lambda: inventory.get(ITEM).status_code == 200,
        description="first sync",
        logs=inventory.logs(),
    )
    pos = pos_factory(lab_hq.url)
    pos.sync_once()
    pos.start_server()
    pos.start_agent()
    http = httpx.Client(base_url=varnish, timeout=10)
    page = http.get(CATALOG)
    assert page.status_code == 200
    product_page = page.content
    assert http.get(ITEM).json()["stale"] is False

    lab_hq.lab("offline", {"down": True, "mode": "503"})
    wait_until(lambda: inventory.get(ITEM).json()["stale"], description="stale flag", logs=inventory.logs())
    time.sleep(1.5)  # past the page's TTL, so only grace can answer
    for _ in range(5):
        during = http.get(CATALOG)
        assert during.status_code == 200
        assert during.content == product_page
        assert int(during.headers["Age"]) >= 1
    # The inventory API still answers; Varnish's background refresh brings its stale flag within a request or two.
    wait_until(lambda: http.get(ITEM).json()["stale"], description="stale flag through Varnish")

    client = pos.client()
    sold = []
    for number in range(SALES_DURING_CUT):
        reply = client.sell(new_key(), sale_lines(number))
        assert reply.status == 201, reply.body
        sold.append(reply.body["sale_id"])
    client.close()
    assert pos.agent_health()["pending"] == SALES_DURING_CUT

    lab_hq.lab("offline", {"down": False})
    pos.wait_until(lambda: pos.agent_health()["pending"] == 0, "draining the outbox to HQ")
    wait_until(
        lambda: not inventory.get(ITEM).json()["stale"],
        description="fresh again",
        logs=inventory.logs(),
    )
    sales, duplicates = hq_sales(lab_hq)
    keys = [sale["idempotency_key"] for sale in sales]
    assert sorted(keys) == sorted(sold)
    assert duplicates == 0

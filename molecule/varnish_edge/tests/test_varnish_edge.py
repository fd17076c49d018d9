"""Behaviour of the varnish_edge role: cache hits, ESI promos, VCL reloads that keep the cache, grace."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.molecule.verify import http_get, instance_address

PORT = 6081


@pytest.fixture
def base_url(host):
    return f"http://{instance_address(host)}:{PORT}"


def _main_pid(host) -> str:
    return host.check_output("systemctl show --property MainPID --value varnish")


def test_varnish_running(host):
    assert host.service("varnish").is_running
    assert host.service("varnish").is_enabled


def test_admin_secret_root_only(host):
    secret = host.file("/etc/varnish/secret")
    assert secret.user == "root"
    assert secret.group == "root"
    assert secret.mode == 0o600


def test_vcl_uses_absolute_includes(host):
    main = host.file("/etc/varnish/retail-edge/main.vcl").content_string
    assert 'include "/etc/varnish/retail-edge/backends.vcl";' in main
    assert 'include "/etc/varnish/retail-edge/routing.vcl";' in main


def test_inventory_answer_then_cache_hit(base_url):
    url = f"{base_url}/api/inventory/items/SKU-1.json?probe={uuid.uuid4().hex}"
    first = http_get(url)
    assert first.status_code == 200
    assert first.json() == {"sku": "SKU-1", "on_hand": 7}
    assert first.headers["X-Cache"] == "MISS"
    second = http_get(url)
    assert second.headers["X-Cache"] == "HIT"
    assert second.json() == first.json()


def test_promo_included_through_esi(base_url):
    page = http_get(f"{base_url}/kiosk/index.html")
    assert page.status_code == 200
    assert '<div class="promo">2 for 1 on SKU-1</div>' in page.text
    assert "esi:include" not in page.text


def test_vcl_reload_keeps_process_and_cache(host, base_url):
    url = f"{base_url}/kiosk/app.js?probe={uuid.uuid4().hex}"
    assert http_get(url).headers["X-Cache"] == "MISS"
    pid_before = _main_pid(host)
    host.run_expect([0], "sudo /usr/share/varnish/varnishreload /etc/varnish/retail-edge/main.vcl")
    assert _main_pid(host) == pid_before
    assert http_get(url).headers["X-Cache"] == "HIT"


def test_purge_refused_from_outside(base_url):
    with httpx.Client(trust_env=False, timeout=10) as client:
        response = client.request("PURGE", f"{base_url}/kiosk/app.js")
    assert response.status_code == 403


def test_stale_inventory_while_api_down(host, base_url):
    url = f"{base_url}/api/inventory/items/SKU-2.json"
    assert http_get(url).status_code == 200
    host.run_expect([0], "sudo systemctl stop standin-inventory")
    try:
        # Past the 2 s TTL and past 3 failed probes at a 2 s interval, so the backend is sick.
        time.sleep(8)
        stale = http_get(url)
        assert stale.status_code == 200
        assert stale.json() == {"sku": "SKU-2", "on_hand": 3}
        assert int(stale.headers["Age"]) >= 2
    finally:
        host.run_expect([0], "sudo systemctl start standin-inventory")

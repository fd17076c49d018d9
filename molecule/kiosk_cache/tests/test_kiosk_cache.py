"""Behaviour of the kiosk_cache role: pages and assets are cached and served stale while the upstream is down."""

from __future__ import annotations

import time

import pytest

from tests.molecule.verify import http_get, instance_address

PORT = 8088


@pytest.fixture
def base_url(host):
    return f"http://{instance_address(host)}:{PORT}"


def test_nginx_running(host):
    assert host.service("nginx").is_running
    assert host.service("nginx").is_enabled


def test_only_kiosk_site_enabled(host):
    assert host.file("/etc/nginx/sites-enabled/kiosk-cache.conf").is_symlink
    assert not host.file("/etc/nginx/sites-enabled/default").exists
    host.run_expect([0], "sudo nginx -t -q")


@pytest.mark.parametrize("path", ["/kiosk/index.html", "/kiosk/app.js", "/kiosk/logo.svg"])
def test_content_cached(base_url, path):
    first = http_get(f"{base_url}{path}")
    assert first.status_code == 200
    second = http_get(f"{base_url}{path}")
    assert second.status_code == 200
    assert second.headers["X-Cache-Status"] == "HIT"
    assert second.content == first.content


def test_stale_page_while_upstream_down(host, base_url):
    assert http_get(f"{base_url}/kiosk/offers.html").status_code == 200
    host.run_expect([0], "sudo systemctl stop standin-kiosk")
    try:
        time.sleep(3)  # past the 2 s page TTL
        stale = http_get(f"{base_url}/kiosk/offers.html")
        assert stale.status_code == 200
        assert "<h1>Offers</h1>" in stale.text
        assert stale.headers["X-Cache-Status"] in {"STALE", "UPDATING"}
        never_cached = http_get(f"{base_url}/kiosk/missing-page.html")
        assert never_cached.status_code == 502
    finally:
        host.run_expect([0], "sudo systemctl start standin-kiosk")

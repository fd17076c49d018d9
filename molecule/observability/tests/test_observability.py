"""Behaviour of the observability role: targets scraped, rules tested and loaded, a backlog alert raised."""

from __future__ import annotations

import time

import pytest

from tests.molecule.verify import http_get, instance_address

ALERTS = {"InventoryLatencyDrift", "VarnishCacheMissRateHigh", "CheckoutQueueTooLong", "PosSyncBacklog"}


@pytest.fixture
def api(host):
    return f"http://{instance_address(host)}:9090/api/v1"


def _query(api: str, expr: str) -> list[dict]:
    body = http_get(f"{api}/query", params={"query": expr}).json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def _wait_for(api: str, expr: str, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = _query(api, expr)
        if result:
            return result
        time.sleep(1)
    raise AssertionError(f"{expr} returned nothing within {timeout} s")


@pytest.mark.parametrize("service", ["prometheus", "prometheus-node-exporter"])
def test_services_running(host, service):
    assert host.service(service).is_running
    assert host.service(service).is_enabled


def test_rule_unit_tests_pass(host):
    host.run_expect([0], "promtool test rules /etc/prometheus/rules.staging/retail-edge.rules.test.yml")


def test_every_job_scraped(api):
    up = _wait_for(api, 'up{job=~"prometheus|node|pos"} == 1')
    assert {sample["metric"]["job"] for sample in up} == {"prometheus", "node", "pos"}


def test_alert_rules_loaded(api):
    groups = http_get(f"{api}/rules").json()["data"]["groups"]
    loaded = {rule["name"] for group in groups for rule in group["rules"] if rule["type"] == "alerting"}
    assert loaded == ALERTS


def test_backlog_alert_pending(api):
    alerts = _wait_for(api, 'ALERTS{alertname="PosSyncBacklog"}')
    assert alerts[0]["metric"]["alertstate"] in {"pending", "firing"}
    assert alerts[0]["metric"]["job"] == "pos"

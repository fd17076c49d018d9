"""Behaviour of the pos_cache role: cashiers sell through the API, and the sync agent delivers sales to HQ."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.molecule.verify import http_get, http_request, installed_wheels, instance_address, poll, unit_property

API_UNIT = "retail-edge-pos"
SYNC_UNIT = "retail-edge-pos-sync"
STORE_ID = "0042"
HQ_TOKEN = "molecule-hq-token"
# The lab HQ seeds cashiers c001..c006 with the password lab-pass-<id>.
CASHIER = {"cashier_id": "c001", "password": "lab-pass-c001"}


@pytest.fixture
def address(host):
    return instance_address(host)


@pytest.fixture
def api(address):
    return f"http://{address}:8470"


@pytest.fixture
def session_token(api):
    ready = poll(lambda: http_get(f"{api}/healthz").json().get("cashiers_ready"), timeout=30)
    assert ready, http_get(f"{api}/healthz").text
    login = http_request("POST", f"{api}/sessions", json={**CASHIER, "register_id": "r1"})
    assert login.status_code == 201, login.text
    return login.json()["token"]


@pytest.fixture
def sku(api, session_token):
    catalog = http_get(f"{api}/catalog", params={"limit": 1}, headers={"Authorization": f"Bearer {session_token}"})
    assert catalog.status_code == 200, catalog.text
    return catalog.json()["items"][0]["sku"]


def sell(api: str, token: str | None, sku: str) -> httpx.Response:
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    response = http_request(
        "POST", f"{api}/sales", headers=headers, json={"register_id": "r1", "lines": [{"sku": sku, "qty": 1}]}
    )
    return response


def hq_sale_keys(address: str) -> set[str]:
    readback = http_get(
        f"http://{address}:8700/v1/stores/{STORE_ID}/sales", headers={"Authorization": f"Bearer {HQ_TOKEN}"}
    )
    assert readback.status_code == 200, readback.text
    return {sale["idempotency_key"] for sale in readback.json()["sales"]}


@pytest.mark.parametrize("unit", [API_UNIT, SYNC_UNIT])
def test_unit_running_as_service_user(host, unit):
    assert host.service(unit).is_running
    assert host.service(unit).is_enabled
    main_pid = unit_property(host, unit, "MainPID")
    assert host.check_output(f"ps -o user= -p {main_pid}") == "retail-pos"


def test_sync_agent_is_own_unit(host, address):
    assert unit_property(host, SYNC_UNIT, "MainPID") != unit_property(host, API_UNIT, "MainPID")
    health = http_get(f"http://{address}:8471/healthz")
    assert health.status_code == 200
    assert health.json()["store_id"] == STORE_ID


def test_pos_wheels_copied(host):
    wheels = installed_wheels(host, "pos")
    assert any(name.startswith("argon2_cffi-") for name in wheels)
    assert not [name for name in wheels if name.startswith(("opencv", "onnxruntime", "wasmtime"))]


def test_sale_refused_without_credentials(api, sku):
    assert sell(api, None, sku).status_code == 401
    assert sell(api, "not-a-session-token", sku).status_code == 401


def test_wrong_password_refused(api, session_token):
    login = http_request("POST", f"{api}/sessions", json={"cashier_id": "c002", "password": "wrong"})
    assert login.status_code == 401
    assert login.json()["error"] == "invalid_credentials"


def test_sale_accepted_and_synced_to_hq(api, address, session_token, sku):
    response = sell(api, session_token, sku)
    assert response.status_code == 201, response.text
    sale_id = response.json()["sale_id"]
    headers = {"Authorization": f"Bearer {session_token}"}
    synced = poll(lambda: http_get(f"{api}/sales/{sale_id}", headers=headers).json()["sync"]["state"] == "synced")
    assert synced, http_get(f"{api}/sales/{sale_id}", headers=headers).text
    assert sale_id in hq_sale_keys(address)


def test_sales_accepted_while_agent_stopped(host, api, address, session_token, sku):
    host.run_expect([0], f"sudo systemctl stop {SYNC_UNIT}")
    try:
        response = sell(api, session_token, sku)
        assert response.status_code == 201, response.text
        sale_id = response.json()["sale_id"]
        assert sale_id not in hq_sale_keys(address)
    finally:
        host.run_expect([0], f"sudo systemctl start {SYNC_UNIT}")
    assert poll(lambda: sale_id in hq_sale_keys(address))


def test_outbox_metrics_for_alerts(api):
    # The observability role's sync backlog alert reads these two series.
    metrics = http_get(f"{api}/metrics").text
    assert "\npos_outbox_pending_sales{" in metrics
    assert "\npos_outbox_oldest_pending_age_seconds{" in metrics

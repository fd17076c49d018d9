"""Per-workload checks: caches configured as declared, the broker refusing anonymous clients, targets up.

Requests go from the controller to the container's address, the way store clients reach it.
"""

from __future__ import annotations

import ipaddress
import json
import threading
import uuid
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
import requests
import yaml

from tests.compliance.conftest import address_of

TIMEOUT_S = 10
# The lab HQ's catalog numbers its SKUs SKU-00001, SKU-00002, ...; each store stocks a part of them.
CANDIDATE_SKUS = ",".join(f"SKU-{number:05d}" for number in range(1, 51))


def url(declared: dict[str, Any], port_key: str, path: str) -> str:
    return f"http://{address_of(declared)}:{declared['ports'][port_key]}{path}"


def varnishadm(host, command: str) -> str:
    return host.check_output(f"varnishadm -S /etc/varnish/secret -T 127.0.0.1:6082 {command}")


@pytest.mark.workload("varnish_edge")
def test_varnish_backends_as_declared(host, declared) -> None:
    active = [line.split()[-1] for line in varnishadm(host, "vcl.list").splitlines() if line.startswith("active")]
    assert len(active) == 1, active
    vcl = varnishadm(host, f"vcl.show -v {active[0]}")
    for name, backend in declared["varnish"]["backends"].items():
        assert f'.host = "{backend["host"]}"' in vcl, f"backend {name} is not {backend['host']}"
        assert f'.port = "{backend["port"]}"' in vcl, f"backend {name} is not on port {backend['port']}"


@pytest.mark.workload("varnish_edge")
def test_varnish_backends_healthy(host) -> None:
    backends = varnishadm(host, "backend.list")
    rows = [line.split() for line in backends.splitlines()[1:] if line.strip()]
    assert rows, backends
    for row in rows:
        assert "healthy" in row, f"backend {row[0]} is not healthy:\n{backends}"


def stocked_sku(declared: dict[str, Any]) -> str:
    """Return a SKU that the store's inventory API stocks, asked directly (not through Varnish)."""
    inventory = f"http://{declared['addresses']['inventory_api']}:{declared['ports']['inventory_api']}"
    answer = requests.get(f"{inventory}/inventory", params={"skus": CANDIDATE_SKUS}, timeout=TIMEOUT_S)
    items = answer.json()["items"]
    assert items, f"the inventory API stocks none of {CANDIDATE_SKUS}: {answer.text[:500]}"
    return str(items[0]["sku"])


@pytest.mark.workload("varnish_edge")
def test_varnish_caches_stock_answers(declared) -> None:
    sku = stocked_sku(declared)
    path = f"{declared['varnish']['inventory_prefix']}{sku}"
    first = requests.get(url(declared, "varnish_edge", path), timeout=TIMEOUT_S)
    second = requests.get(url(declared, "varnish_edge", path), timeout=TIMEOUT_S)
    assert first.status_code == 200, first.text
    assert second.json()["sku"] == sku
    # Varnish's X-Varnish header carries two transaction ids on a cache hit.
    assert len(second.headers["X-Varnish"].split()) == 2, second.headers


@pytest.mark.workload("varnish_edge")
def test_varnish_processes_esi(declared) -> None:
    page = requests.get(url(declared, "varnish_edge", "/kiosk/"), timeout=TIMEOUT_S)
    assert page.status_code == 200
    assert "<esi:include" not in page.text


@pytest.mark.workload("varnish_edge")
def test_varnish_admin_only_on_loopback(host) -> None:
    admin = [line for line in host.check_output("ss -Htln").splitlines() if line.split()[3].endswith(":6082")]
    assert admin, "the management interface does not listen"
    assert all(line.split()[3].startswith("127.0.0.1:") for line in admin), admin


@pytest.mark.workload("kiosk_cache")
def test_nginx_cache_as_declared(host, declared) -> None:
    config = host.check_output("nginx -T 2>/dev/null")
    upstream = declared["kiosk"]["upstream"]
    assert f"server {upstream['host']}:{upstream['port']}" in config
    assert "proxy_cache_path" in config
    assert "proxy_cache_use_stale" in config
    assert f"listen {declared['kiosk']['listen_port']};" in config


@pytest.mark.workload("kiosk_cache")
def test_nginx_serves_kiosk_from_cache(declared) -> None:
    page_url = url(declared, "kiosk_cache", "/kiosk/app.js")
    requests.get(page_url, timeout=TIMEOUT_S)
    second = requests.get(page_url, timeout=TIMEOUT_S)
    assert second.status_code == 200
    assert second.headers.get("X-Cache-Status") == "HIT", second.headers


@pytest.mark.workload("mqtt_broker")
def test_mqtt_refuses_anonymous_client(declared) -> None:
    answered = threading.Event()
    outcome: dict[str, Any] = {}

    def on_connect(_client, _userdata, _flags, reason, _properties) -> None:
        outcome["reason"] = reason
        answered.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"compliance-{uuid.uuid4().hex[:8]}")
    client.on_connect = on_connect
    client.connect(address_of(declared), int(declared["ports"]["mqtt_broker"]), keepalive=10)
    client.loop_start()
    try:
        assert answered.wait(TIMEOUT_S), "the broker did not answer the CONNECT"
    finally:
        client.loop_stop()
        client.disconnect()
    assert outcome["reason"].is_failure
    assert str(outcome["reason"]) in ("Not authorized", "Bad user name or password")


@pytest.mark.workload("mqtt_broker")
def test_mqtt_config_denies_anonymous(host) -> None:
    config = host.check_output("cat /etc/mosquitto/mosquitto.conf /etc/mosquitto/conf.d/*.conf")
    settings = [line.split() for line in config.splitlines() if line.strip() and not line.startswith("#")]
    assert ["allow_anonymous", "false"] in settings
    assert any(setting[0] == "password_file" for setting in settings)
    assert any(setting[0] == "acl_file" for setting in settings)


@pytest.mark.workload("mqtt_broker")
def test_mqtt_users_as_declared(host, declared) -> None:
    users = {line.split(":", 1)[0] for line in host.check_output("cat /etc/mosquitto/passwd").splitlines()}
    assert users == set(declared["mqtt"]["clients"])


@pytest.mark.workload("inventory_api")
def test_inventory_api_healthy_and_synced_from_declared_hq(host, declared) -> None:
    health = requests.get(url(declared, "inventory_api", "/healthz"), timeout=TIMEOUT_S)
    assert health.status_code == 200, health.text
    settings = host.check_output("cat /etc/retail-edge/inventory/settings.yml")
    assert f"hq_url: {declared['hq_url']}" in settings


@pytest.mark.workload("observability")
def test_prometheus_targets_up(declared) -> None:
    answer = requests.get(url(declared, "prometheus", "/api/v1/targets"), timeout=TIMEOUT_S).json()
    targets = answer["data"]["activeTargets"]
    assert targets, json.dumps(answer)[:2000]
    down = [
        (target["labels"]["job"], target["scrapeUrl"], target["lastError"])
        for target in targets
        if target["health"] != "up"
    ]
    assert not down, f"targets not up: {down}"


def service_settings(host, name: str) -> dict[str, Any]:
    return yaml.safe_load(host.file(f"/etc/retail-edge/{name}/settings.yml").content_string)


@pytest.mark.workload("rules_engine")
def test_rules_engine_prices_stocked_sku(declared) -> None:
    health = requests.get(url(declared, "rules_engine", "/healthz"), timeout=TIMEOUT_S)
    assert health.status_code == 200, health.text
    sku = stocked_sku(declared)
    price = requests.get(url(declared, "rules_engine", f"/price/{sku}"), timeout=TIMEOUT_S)
    assert price.status_code == 200, price.text
    assert price.json()["sku"] == sku


@pytest.mark.workload("pos_cache")
def test_pos_cache_healthy_with_local_sync_agent(host, declared) -> None:
    health = requests.get(url(declared, "pos_cache", "/healthz"), timeout=TIMEOUT_S)
    assert health.status_code == 200, health.text
    settings = service_settings(host, "pos")
    assert settings["hq_url"] == declared["hq_url"]
    assert settings["sync_listen_host"] in ("127.0.0.1", "::1", "localhost")


@pytest.mark.workload("vision_inference")
def test_vision_sends_events_only_to_store_broker(host, declared) -> None:
    settings = service_settings(host, "vision")
    assert settings["mqtt"]["host"] == declared["addresses"]["mqtt_broker"]
    for camera in settings["cameras"]:
        source = camera["source"]
        if source["kind"] == "rtsp":
            camera_host = ipaddress.ip_address(urlsplit(source["uri"]).hostname or "0.0.0.0")  # noqa: S104
            assert camera_host in ipaddress.ip_network(declared["store"]["subnet"]), camera["id"]
        else:
            assert str(source["uri"]).startswith("/"), f"camera {camera['id']} reads {source['uri']}"


@pytest.mark.workload("vision_inference")
def test_vision_cannot_store_frames(host) -> None:
    """The unit may write only its data directory, so no frame can land in a file that something ships later."""
    show = host.check_output("systemctl show -p ProtectSystem -p ReadWritePaths -p PrivateTmp retail-edge-vision")
    properties = dict(line.split("=", 1) for line in show.splitlines())
    assert properties["ProtectSystem"] == "strict"
    assert properties["PrivateTmp"] == "yes"
    assert properties["ReadWritePaths"].split() == ["/var/lib/retail-edge/vision"]


@pytest.mark.workload("vision_inference")
def test_vision_healthy_on_footage(declared) -> None:
    health = requests.get(url(declared, "vision_inference", "/healthz"), timeout=TIMEOUT_S)
    assert health.status_code == 200, health.text

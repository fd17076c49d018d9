"""Behaviour of the inventory_api role: API and HQ sync worker run unprivileged and confined, and stock flows."""

from __future__ import annotations

import pytest

from tests.molecule.verify import (
    http_get,
    http_request,
    installed_wheels,
    instance_address,
    poll,
    run_scenario_playbook,
    unit_property,
)

API_UNIT = "retail-edge-inventory"
SYNC_UNIT = "retail-edge-inventory-sync"
HQ_TOKEN = "molecule-hq-token"
STORE_ID = "0042"


@pytest.fixture
def base_url(host):
    return f"http://{instance_address(host)}:8081"


@pytest.fixture
def hq_url(host):
    return f"http://{instance_address(host)}:8700"


@pytest.mark.parametrize("unit", [API_UNIT, SYNC_UNIT])
def test_unit_running_and_enabled(host, unit):
    assert host.service(unit).is_running
    assert host.service(unit).is_enabled


def test_sync_worker_is_own_process(host):
    api_pid = unit_property(host, API_UNIT, "MainPID")
    sync_pid = unit_property(host, SYNC_UNIT, "MainPID")
    assert sync_pid != api_pid
    assert "retail-edge-inventory sync" in host.check_output(f"ps -o args= -p {sync_pid}")


@pytest.mark.parametrize("unit", [API_UNIT, SYNC_UNIT])
def test_runs_as_service_user(host, unit):
    assert unit_property(host, unit, "User") == "retail-inventory"
    main_pid = unit_property(host, unit, "MainPID")
    assert host.check_output(f"ps -o user= -p {main_pid}") == "retail-inventory"


def test_unit_hardened(host):
    properties = "ProtectSystem,PrivateTmp,PrivateDevices,NoNewPrivileges,ReadWritePaths,LimitCORE"
    show = host.check_output(f"systemctl show --property {properties} {API_UNIT}")
    assert "ProtectSystem=strict" in show
    assert "PrivateTmp=yes" in show
    assert "PrivateDevices=yes" in show
    assert "NoNewPrivileges=yes" in show
    assert "ReadWritePaths=/var/lib/retail-edge/inventory" in show
    assert "LimitCORE=0" in show


def test_system_read_only_for_service(host):
    cmd = host.run(
        "sudo systemd-run --quiet --wait --pipe --collect --uid=retail-inventory "
        "--property=ProtectSystem=strict touch /opt/retail-edge/inventory/probe"
    )
    assert cmd.rc != 0


def test_secrets_file_private(host):
    # The configuration directory is 0750 root:retail-inventory, so only root can even stat the file.
    owner = host.check_output("sudo stat -c '%U %G %a' /etc/retail-edge/inventory/secrets.env")
    assert owner == "root retail-inventory 640"
    assert host.run("stat /etc/retail-edge/inventory/secrets.env").rc != 0


def test_only_base_wheels_copied(host):
    wheels = installed_wheels(host, "inventory")
    assert any(name.startswith("retail_edge_services-") for name in wheels)
    assert not [name for name in wheels if name.startswith(("opencv", "onnxruntime", "numpy", "wasmtime"))]


def test_installed_without_pypi(host):
    pip_conf = host.run("/opt/retail-edge/inventory/bin/pip config list")
    assert "index-url" not in pip_conf.stdout


def test_healthz_reports_fresh_feed(base_url):
    health = poll(lambda: http_get(f"{base_url}/healthz").json().get("feed_age_s") is not None)
    assert health
    body = http_get(f"{base_url}/healthz").json()
    assert body["status"] == "ok"
    assert body["feed_stale"] is False
    assert body["feed_last_error"] is None


def test_metrics_exposed(base_url):
    assert "inventory_request_duration_seconds" in http_get(f"{base_url}/metrics").text


def test_hq_stock_change_reaches_api(base_url, hq_url):
    change = http_request(
        "POST", f"{hq_url}/_lab/stock", json={"store_id": STORE_ID, "items": [{"sku": "SKU-00007", "on_hand": 321}]}
    )
    assert change.status_code == 200, change.text
    item = poll(lambda: http_get(f"{base_url}/inventory/SKU-00007").json().get("on_hand") == 321)
    assert item, http_get(f"{base_url}/inventory/SKU-00007").text


def test_snapshot_stock_served(base_url, hq_url):
    snapshot = http_get(
        f"{hq_url}/v1/stores/{STORE_ID}/stock/snapshot",
        params={"limit": 3},
        headers={"Authorization": f"Bearer {HQ_TOKEN}"},
    )
    assert snapshot.status_code == 200, snapshot.text
    expected = snapshot.json()["items"][0]
    served = http_get(f"{base_url}/inventory/{expected['sku']}")
    assert served.status_code == 200
    assert served.json()["location"] == expected["location"]


def test_rebuilt_wheel_reinstalled(host, base_url):
    """A package wheel whose checksum differs from the installed one is reinstalled and the units restart.

    A rebuilt wheel keeps its version number, so the role compares checksums; a stale stamp stands in for it.
    """
    stamp = "/opt/retail-edge/inventory/.retail-edge-package.sha256"
    dist_info = "/opt/retail-edge/inventory/lib/python3*/site-packages/retail_edge_services-*.dist-info"
    expected = host.check_output(f"cat {stamp}")
    installed_before = int(host.check_output(f"stat -c %Y {dist_info}/RECORD"))
    pids_before = {unit: unit_property(host, unit, "MainPID") for unit in (API_UNIT, SYNC_UNIT)}
    host.run_expect([0], f"echo 0000 | sudo tee {stamp}")

    result = run_scenario_playbook("converge.yml")
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    # pip writes RECORD when it installs the package.
    assert int(host.check_output(f"stat -c %Y {dist_info}/RECORD")) > installed_before

    assert host.check_output(f"cat {stamp}") == expected
    for unit, pid in pids_before.items():
        assert unit_property(host, unit, "MainPID") != pid, unit
    assert http_get(f"{base_url}/healthz").status_code == 200

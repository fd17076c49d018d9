"""Behaviour of the inventory_api role: the service answers, runs unprivileged and confined."""

from __future__ import annotations

import pytest

from tests.molecule.verify import http_get, instance_address

UNIT = "retail-edge-inventory"


@pytest.fixture
def base_url(host):
    return f"http://{instance_address(host)}:8081"


def test_unit_running(host):
    assert host.service(UNIT).is_running
    assert host.service(UNIT).is_enabled


def test_runs_as_service_user(host):
    user = host.check_output(f"systemctl show --property User --value {UNIT}")
    assert user == "retail-inventory"
    main_pid = host.check_output(f"systemctl show --property MainPID --value {UNIT}")
    assert host.check_output(f"ps -o user= -p {main_pid}") == "retail-inventory"


def test_unit_hardened(host):
    properties = "ProtectSystem,PrivateTmp,NoNewPrivileges,ReadWritePaths"
    show = host.check_output(f"systemctl show --property {properties} {UNIT}")
    assert "ProtectSystem=strict" in show
    assert "PrivateTmp=yes" in show
    assert "NoNewPrivileges=yes" in show
    assert "ReadWritePaths=/var/lib/retail-edge/inventory" in show


def test_system_read_only_for_service(host):
    cmd = host.run("sudo systemd-run --quiet --wait --pipe --collect --uid=retail-inventory "
                   "--property=ProtectSystem=strict touch /opt/retail-edge/inventory/probe")
    assert cmd.rc != 0


def test_secrets_file_private(host):
    # The configuration directory is 0750 root:retail-inventory, so only root can even stat the file.
    owner = host.check_output("sudo stat -c '%U %G %a' /etc/retail-edge/inventory/secrets.env")
    assert owner == "root retail-inventory 640"
    assert host.run("stat /etc/retail-edge/inventory/secrets.env").rc != 0


def test_installed_without_pypi(host):
    pip_conf = host.run("/opt/retail-edge/inventory/bin/pip config list")
    assert "index-url" not in pip_conf.stdout
    assert host.file("/var/cache/retail-edge/wheelhouse").is_directory


def test_healthz_and_metrics(base_url):
    health = http_get(f"{base_url}/healthz")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    metrics = http_get(f"{base_url}/metrics")
    assert "inventory_request_duration_seconds" in metrics.text

"""Unit tests of the pve_lxc_info module against an in-memory PVE API."""

from __future__ import annotations

import pytest
from ansible_collections.retail.edge.plugins.module_utils import _pve
from ansible_collections.retail.edge.plugins.modules import pve_lxc_info


@pytest.fixture
def cluster(fake_pve):
    fake_pve.add(
        101,
        {
            "hostname": "pos-cache",
            "memory": 512,
            "rootfs": "local-lvm:vm-101-disk-0,size=8192M",
            "features": "nesting=1,keyctl=0",
            "tags": "Edge;pos",
            "onboot": 1,
            "nameserver": "198.51.100.1 198.51.100.2",
        },
        status="running",
    )
    fake_pve.add(102, {"hostname": "kiosk", "tags": "kiosk"}, node="pve2")
    fake_pve.add(103, {"hostname": "vm"}, kind="qemu")
    return fake_pve


def vmids(result):
    return [container["vmid"] for container in result["containers"]]


def test_lists_only_containers(cluster, run_module):
    result = run_module(pve_lxc_info, {})
    assert result["changed"] is False
    assert vmids(result) == [101, 102]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"node": "pve2"}, [102]),
        ({"vmid": 101}, [101]),
        ({"hostname": "kiosk"}, [102]),
        ({"tag": "edge"}, [101]),
        ({"tag": "missing"}, []),
    ],
)
def test_filters(cluster, run_module, filters, expected):
    assert vmids(run_module(pve_lxc_info, filters)) == expected


def test_parsed_config(cluster, run_module):
    container = run_module(pve_lxc_info, {"vmid": 101})["containers"][0]
    parsed = container["parsed"]
    assert container["status"] == "running"
    assert container["tags"] == ["Edge", "pos"]
    assert parsed["rootfs"] == {"volume": "local-lvm:vm-101-disk-0", "size": "8G"}
    assert parsed["features"] == {"nesting": True, "keyctl": False}
    assert parsed["onboot"] is True
    assert parsed["nameserver"] == ["198.51.100.1", "198.51.100.2"]
    assert "digest" not in container["config"]


def test_config_false_reads_only_resources(cluster, run_module):
    result = run_module(pve_lxc_info, {"config": False})
    assert result["api_calls"] == 1
    assert result["containers"][0]["config"] == {}


def test_connection_from_environment(cluster, run_module, monkeypatch):
    seen = {}
    connect = _pve.PveClient._connect

    def spy(self, verify, timeout):
        seen.update(host=self.host, login=self.credentials.login, verify=verify)
        return connect(self, verify, timeout)

    monkeypatch.setattr(_pve.PveClient, "_connect", spy)
    monkeypatch.setenv("PROXMOX_HOST", "pve.example")
    monkeypatch.setenv("PROXMOX_TOKEN_ID", "auditor@pve!read")
    monkeypatch.setenv("PROXMOX_TOKEN_SECRET", "secret")
    monkeypatch.setenv("PROXMOX_CA_PATH", "/etc/retail-edge/pve-root-ca.pem")
    result = run_module(pve_lxc_info, {"api_host": None, "api_user": None, "api_password": None})
    assert result["failed"] is False, result.get("msg")
    assert vmids(result) == [101, 102]
    assert seen == {"host": "pve.example", "login": "auditor@pve!read", "verify": "/etc/retail-edge/pve-root-ca.pem"}

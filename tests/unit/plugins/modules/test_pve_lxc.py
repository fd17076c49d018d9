"""Unit tests of the pve_lxc module against an in-memory PVE API."""

from __future__ import annotations

import copy

import pytest
from ansible_collections.retail.edge.plugins.modules import pve_lxc

TEMPLATE = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
STORED = {
    "hostname": "pos-cache",
    "memory": 512,
    "swap": 512,
    "cores": 1,
    "rootfs": "local-lvm:vm-101-disk-0,size=8G",
    "net0": "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:00:01,ip=dhcp,type=veth",
    "features": "keyctl=1,nesting=1",
    "tags": "edge;web",
    "unprivileged": 1,
}
DECLARED = {
    "vmid": 101,
    "hostname": "pos-cache",
    "memory": 512,
    "disk_size": "8G",
    "netif": {"net0": "name=eth0,bridge=vmbr0,ip=dhcp"},
    "features": "nesting=1,keyctl=1",
    "tags": ["web", "Edge"],
}


@pytest.fixture
def existing(fake_pve):
    fake_pve.add(101, STORED, status="running")
    return fake_pve


def test_same_declaration_is_no_change(existing, run_module):
    result = run_module(pve_lxc, DECLARED)
    assert result["failed"] is False, result["msg"]
    assert result["changed"] is False
    assert result["changed_keys"] == []
    assert existing.writes == []


def test_noop_api_calls(existing, run_module):
    result = run_module(pve_lxc, DECLARED)
    assert [request[1] for request in existing.requests] == [
        "cluster/resources",
        "nodes/pve1/lxc/101/config",
        "nodes/pve1/lxc/101/pending",
    ]
    assert result["api_calls"] == 3


def test_update_memory_and_mount_point(existing, run_module):
    args = {**DECLARED, "memory": 1024, "mounts": {"mp0": {"storage": "local-lvm", "size": "4G", "mp": "/srv"}}}
    result = run_module(pve_lxc, args)
    assert result["changed"] is True
    assert result["changed_keys"] == ["memory", "mp0"]
    assert result["pending_keys"] == []
    assert result["config"]["memory"] == "1024"
    assert result["config"]["mp0"].startswith("local-lvm:vm-101-disk-")
    assert run_module(pve_lxc, args)["changed"] is False


def test_dropping_feature_is_change_and_pending(existing, run_module):
    result = run_module(pve_lxc, {**DECLARED, "features": {"nesting": True}})
    assert result["changed_keys"] == ["features"]
    assert result["pending_keys"] == ["features"]
    assert existing.guests[101]["pending"] == {"features": "nesting=1"}


def test_restart_on_pending_reboots(existing, run_module):
    result = run_module(pve_lxc, {**DECLARED, "features": "nesting=1", "restart_on_pending": True})
    assert result["pending_keys"] == []
    assert any(":vzreboot:" in upid for upid in result["tasks"])
    assert existing.guests[101]["config"]["features"] == "nesting=1"


def test_grow_rootfs_calls_resize(existing, run_module):
    result = run_module(pve_lxc, {**DECLARED, "disk_size": "10G"})
    assert result["changed_keys"] == ["rootfs"]
    assert ("PUT", "nodes/pve1/lxc/101/resize", {"disk": "rootfs", "size": "10G"}) in existing.requests


def test_shrink_rootfs_fails_without_writes(existing, run_module):
    result = run_module(pve_lxc, {**DECLARED, "disk_size": "6G"})
    assert result["failed"] is True
    assert "cannot shrink from 8G to 6G" in result["msg"]
    assert existing.writes == []


def test_check_mode_update_matches_real_run(existing, run_module):
    args = {**DECLARED, "memory": 2048, "tags": ["web"], "disk_size": "12G"}
    before = copy.deepcopy(existing.guests)
    predicted = run_module(pve_lxc, args, check=True)
    assert existing.guests == before
    assert existing.writes == []
    real = run_module(pve_lxc, args)
    assert predicted["changed"] is real["changed"] is True
    assert predicted["diff"] == real["diff"]
    assert predicted["changed_keys"] == real["changed_keys"]


def test_check_mode_create_matches_real_run(fake_pve, run_module):
    args = {
        **DECLARED,
        "vmid": 150,
        "node": "pve1",
        "ostemplate": TEMPLATE,
        "storage": "local-lvm",
        "password": "hunter22",
    }
    predicted = run_module(pve_lxc, args, check=True)
    assert fake_pve.guests == {}
    real = run_module(pve_lxc, args)
    assert predicted["changed"] is real["changed"] is True
    assert predicted["diff"] == real["diff"]
    assert real["diff"]["after"]["password"] == "********"
    assert real["diff"]["after"]["rootfs"] == "local-lvm:8"
    assert real["config"]["rootfs"].startswith("local-lvm:vm-150-disk-")
    assert run_module(pve_lxc, args)["changed"] is False


def test_check_mode_delete_matches_real_run(existing, run_module):
    args = {"vmid": 101, "state": "absent"}
    predicted = run_module(pve_lxc, args, check=True)
    assert 101 in existing.guests
    real = run_module(pve_lxc, args)
    assert predicted["diff"] == real["diff"]
    assert real["changed"] is True
    assert 101 not in existing.guests
    delete = [request for request in existing.requests if request[0] == "DELETE"]
    assert delete[0][2]["force"] == 1
    assert run_module(pve_lxc, args)["changed"] is False


def test_create_needs_node(fake_pve, run_module):
    result = run_module(pve_lxc, {"hostname": "new", "ostemplate": TEMPLATE, "disk_size": "4G"})
    assert result["failed"] is True
    assert "node is not set" in result["msg"]


def test_create_gets_next_vmid(fake_pve, run_module):
    fake_pve.add(120, {"hostname": "other"})
    result = run_module(pve_lxc, {"hostname": "new", "node": "pve2", "ostemplate": TEMPLATE, "disk_size": "4G"})
    assert result["vmid"] == 121
    assert result["node"] == "pve2"
    assert result["config"]["unprivileged"] == "1"


def test_create_task_failure_reports_log(fake_pve, run_module):
    fake_pve.fail_tasks["vzcreate"] = "unable to create CT 150 - storage full"
    args = {"vmid": 150, "node": "pve1", "ostemplate": TEMPLATE, "disk_size": "4G"}
    result = run_module(pve_lxc, args)
    assert result["failed"] is True
    assert "storage full" in result["msg"]
    assert "TASK ERROR" in result["msg"]


def test_hostname_duplicates_fail(fake_pve, run_module):
    fake_pve.add(101, {"hostname": "kiosk"})
    fake_pve.add(102, {"hostname": "kiosk"}, node="pve2")
    result = run_module(pve_lxc, {"hostname": "kiosk", "memory": 256})
    assert result["failed"] is True
    assert "matches 2 containers (101 on pve1, 102 on pve2)" in result["msg"]


def test_node_found_from_resources(fake_pve, run_module):
    fake_pve.add(101, STORED, node="pve2")
    result = run_module(pve_lxc, {**DECLARED, "node": "pve1", "memory": 768})
    assert result["node"] == "pve2"
    assert ("PUT", "nodes/pve2/lxc/101/config") in [request[:2] for request in fake_pve.requests]


def test_vmid_of_qemu_vm_fails(fake_pve, run_module):
    fake_pve.add(101, {"hostname": "vm"}, kind="qemu")
    result = run_module(pve_lxc, DECLARED)
    assert "QEMU virtual machine" in result["msg"]


def test_template_state_idempotent(existing, run_module):
    first = run_module(pve_lxc, {"vmid": 101, "state": "template"})
    assert first["changed"] is True
    assert first["template"] is True
    assert existing.guests[101]["status"] == "stopped"
    second = run_module(pve_lxc, {"vmid": 101, "state": "template"})
    assert second["failed"] is False
    assert second["changed"] is False


def test_started_state_starts_stopped_container(fake_pve, run_module):
    fake_pve.add(101, STORED)
    result = run_module(pve_lxc, {**DECLARED, "state": "started"})
    assert result["changed"] is True
    assert result["status"] == "running"


def test_stopped_state_shuts_down_before_changes(existing, run_module):
    result = run_module(pve_lxc, {**DECLARED, "features": "nesting=1", "state": "stopped"})
    assert result["pending_keys"] == []
    assert existing.guests[101]["config"]["features"] == "nesting=1"
    methods = [request[1] for request in existing.requests if request[0] != "GET"]
    assert methods[:2] == ["nodes/pve1/lxc/101/status/shutdown", "nodes/pve1/lxc/101/config"]


def test_token_cannot_set_device(existing, run_module):
    args = {
        **DECLARED,
        "api_user": None,
        "api_password": None,
        "api_token_id": "root@pam!ci",
        "api_token_secret": "s",
        "devices": {"dev0": "/dev/ttyUSB0,mode=0660"},
    }
    result = run_module(pve_lxc, args)
    assert result["failed"] is True
    assert "root@pam logged in with a password" in result["msg"]
    assert "root@pam!ci" in result["msg"]
    assert existing.writes == []


def test_delete_undeclared(existing, run_module):
    existing.guests[101]["config"]["net1"] = "name=eth1,bridge=vmbr1"
    listed = run_module(pve_lxc, DECLARED)
    assert listed["undeclared_keys"] == ["cores", "net1"]
    assert listed["changed"] is False
    result = run_module(pve_lxc, {**DECLARED, "delete_undeclared": True})
    assert result["changed_keys"] == ["cores", "net1"]
    assert "net1" not in existing.config(101)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"vmid": 99}, "vmid 99 is invalid"),
        ({"netif": {"net0": "name=eth0,bridge=vmbr0,ip=10.1.1.1"}}, "IPv4 address with prefix"),
        ({"netif": {"eth0": "name=eth0"}}, "use net0 to net31"),
        ({"features": "nesting=1,bogus=1"}, "unknown key 'bogus'"),
        ({"mounts": {"mp0": {"storage": "local-lvm", "mp": "/srv"}}}, "needs a size"),
        ({"disk_size": "8"}, "has no unit"),
        ({"password": "abc"}, "at least 5 characters"),
        ({"ssh_public_keys": ["not a key"]}, "ssh_public_keys[0] is not an OpenSSH public key"),
        ({"ostemplate": "debian-12.tar.zst"}, "is not a template volume"),
    ],
)
def test_invalid_declarations_fail_before_api(fake_pve, run_module, args, fragment):
    result = run_module(pve_lxc, {**DECLARED, **args})
    assert result["failed"] is True
    assert fragment in result["msg"]
    assert fake_pve.requests == []


def test_unknown_option_rejected(fake_pve, run_module):
    result = run_module(pve_lxc, {**DECLARED, "memroy": 1024})
    assert result["failed"] is True
    assert "memroy" in result["msg"]
    assert fake_pve.requests == []

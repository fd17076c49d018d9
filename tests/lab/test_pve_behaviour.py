"""Behaviour of the PVE double as a client sees it: containers, pending changes, resize, delete, persistence."""

from __future__ import annotations

import re

import pytest

from lab.pve.testing import PveApiError, PveDouble

TEMPLATE = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
UPID_RE = re.compile(
    r"UPID:(?P<node>[a-zA-Z0-9-]+):(?P<pid>[0-9A-F]{8}):(?P<pstart>[0-9A-F]{8}):(?P<starttime>[0-9A-F]{8}):"
    r"(?P<type>[^:]+):(?P<id>[^:]*):(?P<user>[^:]+):"
)


@pytest.fixture
def pve(pve_double_module: PveDouble) -> PveDouble:
    pve_double_module.reset()
    return pve_double_module


def create_ct(pve: PveDouble, vmid: int = 100, node: str = "pve1", **params: object) -> dict:
    params.setdefault("ostemplate", TEMPLATE)
    params.setdefault("hostname", f"ct{vmid}")
    params.setdefault("rootfs", "local-lvm:8")
    upid = pve.api("POST", f"/nodes/{node}/lxc", vmid=vmid, **params)
    return pve.wait_task(upid)


def start_ct(pve: PveDouble, vmid: int = 100, node: str = "pve1") -> None:
    status = pve.wait_task(pve.api("POST", f"/nodes/{node}/lxc/{vmid}/status/start"))
    assert status["exitstatus"] == "OK"


def config(pve: PveDouble, vmid: int = 100, node: str = "pve1", **params: object) -> dict:
    return pve.api("GET", f"/nodes/{node}/lxc/{vmid}/config", **params)


def test_create_returns_upid_and_builds_config(pve):
    upid = pve.api(
        "POST",
        "/nodes/pve1/lxc",
        vmid=100,
        ostemplate=TEMPLATE,
        hostname="web1",
        rootfs="local-lvm:8",
        mp0="local-lvm:2,mp=/data",
        net0="name=eth0,bridge=vmbr0,ip=dhcp",
        tags="web,Edge",
    )
    match = UPID_RE.fullmatch(upid)
    assert match is not None, upid
    assert match["node"] == "pve1"
    assert match["type"] == "vzcreate"
    assert match["id"] == "100"
    assert match["user"] == "root@pam"

    assert pve.wait_task(upid)["exitstatus"] == "OK"
    conf = config(pve)
    assert conf["rootfs"] == "local-lvm:vm-100-disk-0,size=8G"
    assert conf["mp0"] == "local-lvm:vm-100-disk-1,mp=/data,size=2G"
    assert re.fullmatch(r"name=eth0,bridge=vmbr0,hwaddr=BC:24:11(:[0-9A-F]{2}){3},ip=dhcp,type=veth", conf["net0"])
    assert conf["tags"] == "Edge;web"
    assert conf["ostype"] == "debian"
    assert conf["unprivileged"] == 1
    assert "lock" not in conf
    assert re.fullmatch(r"[0-9a-f]{40}", conf["digest"])


def test_config_locked_while_create_runs(pve):
    pve.inject_fault({"type": "vzcreate"}, after_s=0.5)
    upid = pve.api("POST", "/nodes/pve1/lxc", vmid=101, ostemplate=TEMPLATE)
    assert config(pve, 101)["lock"] == "create"
    with pytest.raises(PveApiError) as error:
        pve.api("PUT", "/nodes/pve1/lxc/101/config", memory=1024)
    assert error.value.status == 500
    assert error.value.message == "CT 101 is locked (create)"
    assert pve.wait_task(upid)["exitstatus"] == "OK"


def test_create_existing_vmid_fails(pve):
    create_ct(pve)
    with pytest.raises(PveApiError) as error:
        pve.api("POST", "/nodes/pve2/lxc", vmid=100, ostemplate=TEMPLATE)
    assert error.value.status == 500
    assert error.value.message == "CT 100 already exists on node 'pve1'"


def test_create_force_replaces_only_with_restore(pve):
    create_ct(pve, memory=512)
    with pytest.raises(PveApiError, match="CT 100 already exists"):
        pve.api("POST", "/nodes/pve1/lxc", vmid=100, ostemplate=TEMPLATE, force=1)
    upid = pve.api("POST", "/nodes/pve1/lxc", vmid=100, ostemplate=TEMPLATE, force=1, restore=1, memory=2048)
    assert ":vzrestore:100:" in upid
    assert pve.wait_task(upid)["exitstatus"] == "OK"
    assert config(pve)["memory"] == 2048


def test_create_failure_removes_config_and_volumes(pve):
    pve.inject_fault({"type": "vzcreate"}, fail="storage full")
    status = create_ct(pve, vmid=102)
    assert status["exitstatus"] == "unable to create CT 102 - storage full"
    with pytest.raises(PveApiError, match=r"Configuration file 'nodes/pve1/lxc/102.conf' does not exist"):
        config(pve, 102)
    log = pve.api("GET", f"/nodes/pve1/tasks/{status['upid']}/log")
    assert log[-1] == {"n": len(log), "t": "TASK ERROR: unable to create CT 102 - storage full"}
    volumes = pve.api("GET", "/nodes/pve1/storage/local-lvm/content")
    assert [entry for entry in volumes if entry["vmid"] == 102] == []


def test_unknown_template_fails_task(pve):
    status = create_ct(pve, vmid=103, ostemplate="local:vztmpl/nope.tar.zst")
    assert status["exitstatus"] == "unable to create CT 103 - volume 'local:vztmpl/nope.tar.zst' does not exist"


def test_start_stop_and_status(pve):
    create_ct(pve)
    assert pve.api("GET", "/nodes/pve1/lxc/100/status/current")["status"] == "stopped"
    start_ct(pve)
    current = pve.api("GET", "/nodes/pve1/lxc/100/status/current")
    assert current["status"] == "running"
    assert current["name"] == "ct100"
    with pytest.raises(PveApiError, match="CT 100 already running"):
        pve.api("POST", "/nodes/pve1/lxc/100/status/start")
    assert pve.wait_task(pve.api("POST", "/nodes/pve1/lxc/100/status/shutdown"))["exitstatus"] == "OK"
    assert pve.api("GET", "/nodes/pve1/lxc/100/status/current")["status"] == "stopped"
    with pytest.raises(PveApiError, match="CT 100 not running"):
        pve.api("POST", "/nodes/pve1/lxc/100/status/stop")


def test_running_container_keeps_unpluggable_changes_pending(pve):
    create_ct(pve, features="nesting=1", memory=512)
    start_ct(pve)
    pve.api(
        "PUT",
        "/nodes/pve1/lxc/100/config",
        memory=1024,
        cores=2,
        features="nesting=1,keyctl=1",
        mp0="local-lvm:4,mp=/data",
        nameserver="198.51.100.53",
    )
    current = config(pve, current=1)
    assert current["memory"] == 1024
    assert current["cores"] == 2
    assert current["mp0"] == "local-lvm:vm-100-disk-1,mp=/data,size=4G"
    assert current["features"] == "nesting=1"
    assert "nameserver" not in current

    merged = config(pve)
    assert merged["features"] == "nesting=1,keyctl=1"
    assert merged["nameserver"] == "198.51.100.53"

    pending = {entry["key"]: entry for entry in pve.api("GET", "/nodes/pve1/lxc/100/pending")}
    assert pending["features"] == {"key": "features", "value": "nesting=1", "pending": "nesting=1,keyctl=1"}
    assert pending["nameserver"] == {"key": "nameserver", "pending": "198.51.100.53"}
    assert "pending" not in pending["memory"]

    assert pve.wait_task(pve.api("POST", "/nodes/pve1/lxc/100/status/reboot"))["exitstatus"] == "OK"
    assert config(pve, current=1)["features"] == "nesting=1,keyctl=1"
    assert all("pending" not in entry for entry in pve.api("GET", "/nodes/pve1/lxc/100/pending"))


def test_pending_delete_and_revert(pve):
    create_ct(pve, swap=256, timezone="UTC")
    start_ct(pve)
    pve.api("PUT", "/nodes/pve1/lxc/100/config", delete="swap,timezone")
    conf = config(pve, current=1)
    assert "swap" not in conf
    assert conf["timezone"] == "UTC"
    pending = {entry["key"]: entry for entry in pve.api("GET", "/nodes/pve1/lxc/100/pending")}
    assert pending["timezone"]["delete"] == 1
    pve.api("PUT", "/nodes/pve1/lxc/100/config", revert="timezone")
    pending = {entry["key"]: entry for entry in pve.api("GET", "/nodes/pve1/lxc/100/pending")}
    assert "delete" not in pending["timezone"]


def test_stopped_container_applies_at_once(pve):
    create_ct(pve, features="nesting=1,keyctl=1")
    pve.api("PUT", "/nodes/pve1/lxc/100/config", features="nesting=1", delete="hostname")
    conf = config(pve, current=1)
    assert conf["features"] == "nesting=1"
    assert "hostname" not in conf


def test_digest_mismatch_rejected(pve):
    create_ct(pve)
    digest = config(pve)["digest"]
    pve.api("PUT", "/nodes/pve1/lxc/100/config", memory=1024, digest=digest)
    with pytest.raises(PveApiError) as error:
        pve.api("PUT", "/nodes/pve1/lxc/100/config", memory=2048, digest=digest)
    assert error.value.message == "detected modified configuration - file changed by other user? Try again."


def test_delete_required_option_rejected(pve):
    create_ct(pve)
    with pytest.raises(PveApiError, match="unable to delete required option 'rootfs'"):
        pve.api("PUT", "/nodes/pve1/lxc/100/config", delete="rootfs")
    with pytest.raises(PveApiError, match="unable to modify read-only option: 'unprivileged'"):
        pve.api("PUT", "/nodes/pve1/lxc/100/config", unprivileged=0)


def test_resize_grows_and_refuses_shrink(pve):
    create_ct(pve, rootfs="local-lvm:8")
    with pytest.raises(PveApiError) as error:
        pve.api("PUT", "/nodes/pve1/lxc/100/resize", disk="rootfs", size="6G")
    assert error.value.status == 500
    assert error.value.message == "unable to shrink disk size"
    upid = pve.api("PUT", "/nodes/pve1/lxc/100/resize", disk="rootfs", size="+2G")
    assert ":resize:100:" in upid
    assert pve.wait_task(upid)["exitstatus"] == "OK"
    assert config(pve)["rootfs"] == "local-lvm:vm-100-disk-0,size=10G"
    assert pve.wait_task(pve.api("PUT", "/nodes/pve1/lxc/100/resize", disk="rootfs", size="12G"))["exitstatus"] == "OK"
    assert config(pve)["rootfs"] == "local-lvm:vm-100-disk-0,size=12G"
    with pytest.raises(PveApiError, match="no such disk 'mp3'"):
        pve.api("PUT", "/nodes/pve1/lxc/100/resize", disk="mp3", size="+1G")


def test_destroy_rules(pve):
    create_ct(pve, protection=1)
    with pytest.raises(PveApiError, match="can't remove CT 100 - protection mode enabled"):
        pve.api("DELETE", "/nodes/pve1/lxc/100")
    pve.api("PUT", "/nodes/pve1/lxc/100/config", protection=0)
    start_ct(pve)
    with pytest.raises(PveApiError, match="unable to destroy CT 100 - container is running"):
        pve.api("DELETE", "/nodes/pve1/lxc/100")
    upid = pve.api("DELETE", "/nodes/pve1/lxc/100", force=1, purge=1, **{"destroy-unreferenced-disks": 1})
    assert pve.wait_task(upid)["exitstatus"] == "OK"
    assert pve.api("GET", "/nodes/pve1/lxc") == []
    assert [entry for entry in pve.api("GET", "/nodes/pve1/storage/local-lvm/content") if entry["vmid"] == 100] == []


def test_template_and_linked_clone(pve):
    create_ct(pve, rootfs="local-lvm:4")
    assert pve.api("POST", "/nodes/pve1/lxc/100/template") is None
    deadline_conf = None
    for _ in range(200):
        deadline_conf = config(pve)
        if deadline_conf.get("template") == 1:
            break
        pve.wait_task(pve.api("GET", "/nodes/pve1/tasks", typefilter="vztemplate", source="all")[0]["upid"])
    assert deadline_conf is not None
    assert deadline_conf["rootfs"] == "local-lvm:base-100-disk-0,size=4G"
    with pytest.raises(PveApiError, match="you can't convert a template to a template"):
        pve.api("POST", "/nodes/pve1/lxc/100/template")
    with pytest.raises(PveApiError, match="you can't start a CT if it's a template"):
        pve.api("POST", "/nodes/pve1/lxc/100/status/start")

    upid = pve.api("POST", "/nodes/pve1/lxc/100/clone", newid=200, hostname="clone1")
    assert ":vzclone:100:" in upid
    assert pve.wait_task(upid)["exitstatus"] == "OK"
    clone = config(pve, 200)
    assert clone["hostname"] == "clone1"
    assert clone["rootfs"] == "local-lvm:base-100-disk-0/vm-200-disk-0,size=4G"
    assert "template" not in clone

    upid = pve.api("POST", "/nodes/pve1/lxc/100/clone", newid=201, full=1, storage="local-lvm")
    assert pve.wait_task(upid)["exitstatus"] == "OK"
    assert config(pve, 201)["rootfs"] == "local-lvm:vm-201-disk-0,size=4G"


def test_cluster_views(pve):
    create_ct(pve, vmid=100, node="pve1", tags="web")
    create_ct(pve, vmid=105, node="pve2")
    resources = pve.api("GET", "/cluster/resources", type="vm")
    assert [(entry["id"], entry["node"], entry["type"]) for entry in resources] == [
        ("lxc/100", "pve1", "lxc"),
        ("lxc/105", "pve2", "lxc"),
    ]
    assert resources[0]["tags"] == "web"
    assert {entry["type"] for entry in pve.api("GET", "/cluster/resources")} == {"lxc", "node", "storage", "pool"}
    assert pve.api("GET", "/cluster/nextid") == "101"
    assert pve.api("GET", "/cluster/nextid", vmid=150) == "150"
    with pytest.raises(PveApiError) as error:
        pve.api("GET", "/cluster/nextid", vmid=105)
    assert error.value.status == 400
    assert error.value.errors == {"vmid": "VM 105 already exists"}
    assert [node["node"] for node in pve.api("GET", "/nodes")] == ["pve1", "pve2", "pve3"]
    assert pve.api("GET", "/version")["version"] == "9.1.3"
    templates = pve.api("GET", "/nodes/pve2/storage/local/content", content="vztmpl")
    assert TEMPLATE in [entry["volid"] for entry in templates]
    storages = {entry["storage"] for entry in pve.api("GET", "/nodes/pve1/storage", content="rootdir")}
    assert storages == {"local", "local-lvm"}


def test_unknown_node_and_container(pve):
    with pytest.raises(PveApiError) as error:
        pve.api("GET", "/nodes/nope/lxc")
    assert error.value.status == 500
    assert "hostname lookup 'nope' failed" in error.value.message
    with pytest.raises(PveApiError) as error:
        pve.api("GET", "/nodes/pve1/lxc/999/config")
    assert error.value.message == "Configuration file 'nodes/pve1/lxc/999.conf' does not exist"
    with pytest.raises(PveApiError) as error:
        pve.api("GET", "/nodes/pve1/qemu")
    assert error.value.status == 501


def test_state_survives_restart(pve_double):
    create_ct(pve_double, vmid=300, memory=768)
    start_ct(pve_double, vmid=300)
    upid = pve_double.api("POST", "/nodes/pve1/lxc/300/status/shutdown")
    pve_double.wait_task(upid)
    port = pve_double.port
    pve_double.stop()
    pve_double.start()
    assert pve_double.port == port
    assert config(pve_double, 300)["memory"] == 768
    assert pve_double.api("GET", f"/nodes/pve1/tasks/{upid}/status")["exitstatus"] == "OK"
    assert pve_double.api("GET", "/cluster/nextid") == "100"


def test_hung_task_stays_running_until_faults_cleared(pve):
    create_ct(pve)
    pve.inject_fault({"type": "vzstart"}, hang=True)
    upid = pve.api("POST", "/nodes/pve1/lxc/100/status/start")
    with pytest.raises(TimeoutError):
        pve.wait_task(upid, timeout=0.5)
    assert pve.api("GET", f"/nodes/pve1/tasks/{upid}/status")["status"] == "running"
    pve.clear_faults()
    assert pve.wait_task(upid)["exitstatus"] == "OK"


def test_stats_count_requests_per_route(pve):
    create_ct(pve)
    pve.reset_stats()
    config(pve)
    config(pve)
    pve.api("GET", "/nodes")
    stats = pve.stats()
    assert stats["requests"] == 3
    assert stats["by_route"] == {"GET /nodes/{node}/lxc/{vmid}/config": 2, "GET /nodes": 1}


def test_json_request_body_accepted(pve):
    session = pve.session()
    answer = session.post(
        f"{pve.url}/nodes/pve1/lxc",
        json={"vmid": 110, "ostemplate": TEMPLATE, "memory": 1024, "onboot": True, "cpulimit": 1.5},
        headers={"CSRFPreventionToken": pve.csrf_token},
        verify=str(pve.ca_file),
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    pve.wait_task(answer.json()["data"])
    conf = config(pve, 110)
    assert conf["memory"] == 1024
    assert conf["onboot"] == 1
    assert conf["cpulimit"] == "1.5"


def test_pool_membership(pve):
    create_ct(pve, vmid=120, pool="edge")
    assert pve.api("GET", "/pools/edge")["members"] == [
        {"id": "lxc/120", "type": "lxc", "vmid": 120, "node": "pve1", "name": "ct120"}
    ]
    assert pve.api("GET", "/cluster/resources", type="vm")[0]["pool"] == "edge"
    with pytest.raises(PveApiError, match="pool 'nope' does not exist"):
        pve.api("POST", "/nodes/pve1/lxc", vmid=121, ostemplate=TEMPLATE, pool="nope")

"""Tasks, faults, control endpoints, persistence and extensions of the PVE double."""

from __future__ import annotations

import json
import time

import pytest
import requests

from lab.pve.tasks import parse_upid
from lab.pve.testing import PveApiError, PveDouble

TEMPLATE = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"


@pytest.fixture
def pve(pve_double_module: PveDouble) -> PveDouble:
    pve_double_module.reset()
    return pve_double_module


def create(pve: PveDouble, vmid: int = 100, node: str = "pve1") -> str:
    return pve.api("POST", f"/nodes/{node}/lxc", vmid=vmid, ostemplate=TEMPLATE, rootfs="local-lvm:4")


def test_upid_fields_decode(pve):
    before = int(time.time())
    upid = create(pve)
    fields = parse_upid(upid)
    assert fields is not None
    assert fields["node"] == "pve1"
    assert fields["type"] == "vzcreate"
    assert fields["id"] == "100"
    assert fields["user"] == "root@pam"
    assert before - 1 <= fields["starttime"] <= int(time.time()) + 1
    status = pve.wait_task(upid)
    assert {key: status[key] for key in ("pid", "pstart", "starttime")} == {
        key: fields[key] for key in ("pid", "pstart", "starttime")
    }


def test_task_log_paging_and_total(pve):
    upid = create(pve)
    pve.wait_task(upid)
    answer = pve.request("GET", f"/nodes/pve1/tasks/{upid}/log", {"start": 1, "limit": 2})
    body = answer.json()
    assert [line["n"] for line in body["data"]] == [2, 3]
    assert body["total"] >= 4
    full = pve.api("GET", f"/nodes/pve1/tasks/{upid}/log")
    assert full[-1]["t"] == "TASK OK"


def test_task_status_errors(pve):
    with pytest.raises(PveApiError) as error:
        pve.api("GET", "/nodes/pve1/tasks/not-a-upid/status")
    assert error.value.errors == {"upid": "unable to parse worker upid"}
    with pytest.raises(PveApiError) as error:
        pve.api("GET", "/nodes/pve1/tasks/UPID:pve1:00000001:00000001:00000001:vzstart:1:root@pam:/status")
    assert error.value.errors == {"upid": "no such task"}


def test_task_list_filters(pve):
    pve.wait_task(create(pve, 100))
    pve.inject_fault({"type": "vzcreate", "id": "101"}, fail="storage full")
    pve.wait_task(create(pve, 101))
    tasks = pve.api("GET", "/nodes/pve1/tasks")
    assert [task["id"] for task in tasks] == ["101", "100"]
    assert tasks[0]["status"] == "unable to create CT 101 - storage full"
    assert [task["id"] for task in pve.api("GET", "/nodes/pve1/tasks", errors=1)] == ["101"]
    assert [task["id"] for task in pve.api("GET", "/nodes/pve1/tasks", vmid=100)] == ["100"]
    assert pve.api("GET", "/nodes/pve1/tasks", typefilter="vzstart") == []
    assert len(pve.api("GET", "/nodes/pve1/tasks", limit=1)) == 1
    assert pve.api("GET", "/nodes/pve2/tasks") == []


def test_fault_times_limits_failures(pve):
    pve.inject_fault({"type": "vzcreate"}, fail="storage full", times=1)
    assert pve.wait_task(create(pve, 100))["exitstatus"] == "unable to create CT 100 - storage full"
    assert pve.wait_task(create(pve, 100))["exitstatus"] == "OK"


def test_fault_delay_keeps_task_running(pve):
    pve.inject_fault({"type": "vzcreate"}, after_s=0.6)
    upid = create(pve)
    time.sleep(0.2)
    assert pve.api("GET", f"/nodes/pve1/tasks/{upid}/status")["status"] == "running"
    assert pve.wait_task(upid)["exitstatus"] == "OK"


def test_stopping_hung_task(pve):
    pve.wait_task(create(pve))
    pve.inject_fault({"type": "vzstart"}, hang=True)
    upid = pve.api("POST", "/nodes/pve1/lxc/100/status/start")
    assert pve.api("DELETE", f"/nodes/pve1/tasks/{upid}") is None
    assert pve.wait_task(upid)["exitstatus"] == "interrupted by signal"
    assert pve.api("GET", "/nodes/pve1/lxc/100/status/current")["status"] == "stopped"


def test_invalid_fault_rejected(pve):
    answer = requests.post(
        f"{pve.base_url}/_lab/faults", json={"fail": "no match"}, verify=str(pve.ca_file), timeout=10
    )
    assert answer.status_code == 400
    assert "match" in answer.reason
    assert pve.control("GET", "faults") == {"faults": []}


def test_faults_from_lab_config(make_pve_double):
    double = make_pve_double({"faults": [{"match": {"type": "vzcreate"}, "fail": "storage full"}]})
    status = double.wait_task(create(double))
    assert status["exitstatus"] == "unable to create CT 100 - storage full"
    log = double.api("GET", f"/nodes/pve1/tasks/{status['upid']}/log")
    assert log[-1]["t"] == "TASK ERROR: unable to create CT 100 - storage full"


def test_task_durations_from_lab_config(make_pve_double):
    double = make_pve_double({"tasks": {"durations": {"default": 0.01, "vzcreate": 0.5}}})
    upid = create(double)
    time.sleep(0.15)
    assert double.api("GET", f"/nodes/pve1/tasks/{upid}/status")["status"] == "running"
    assert double.wait_task(upid)["exitstatus"] == "OK"


def test_storage_capacity_enforced(make_pve_double):
    double = make_pve_double({"storages": {"local": {"type": "dir", "content": ["vztmpl", "rootdir"], "size_gib": 5}}})
    upid = double.api("POST", "/nodes/pve1/lxc", vmid=100, ostemplate=TEMPLATE, rootfs="local:8")
    status = double.wait_task(upid)
    assert status["exitstatus"].startswith("unable to create CT 100 - unable to allocate")


def test_state_dump_and_reset(pve):
    pve.wait_task(create(pve))
    state = pve.state()
    assert state["guests"]["100"]["node"] == "pve1"
    pve.reset()
    assert pve.state()["guests"] == {}
    assert pve.api("GET", "/nodes/pve1/lxc") == []


def test_crash_keeps_state_written_before_it(pve_double):
    pve_double.wait_task(create(pve_double))
    pve_double.control("POST", "flush")
    pve_double.inject_fault({"type": "vzstart"}, hang=True)
    upid = pve_double.api("POST", "/nodes/pve1/lxc/100/status/start")
    time.sleep(0.3)  # longer than the write interval, so the running task reaches the state file
    pve_double.kill()
    pve_double.start()
    assert pve_double.api("GET", "/nodes/pve1/lxc/100/config")["rootfs"] == "local-lvm:vm-100-disk-0,size=4G"
    status = pve_double.api("GET", f"/nodes/pve1/tasks/{upid}/status")
    assert status["status"] == "stopped"
    assert status["exitstatus"] == "unexpected status"


def test_state_file_is_json_after_stop(pve_double):
    pve_double.wait_task(create(pve_double))
    pve_double.stop()
    state = json.loads((pve_double.state_dir / "state.json").read_text())
    assert "100" in state["guests"]
    assert not (pve_double.state_dir / "ready").exists()
    pve_double.start()


def test_extension_adds_route_storage_and_task_type(make_pve_double):
    double = make_pve_double({"extensions": ["tests.lab.pve_sample_extension"]})
    upid = double.api("POST", "/nodes/pve2/sample/alpha")
    assert ":samplework:alpha:root@pam:" in upid
    assert double.wait_task(upid)["exitstatus"] == "OK"
    assert double.state()["extra"]["sample"] == ["alpha"]
    assert "sample-rbd" in [entry["storage"] for entry in double.api("GET", "/storage")]
    upid = double.api("POST", "/nodes/pve1/lxc", vmid=100, ostemplate=TEMPLATE, rootfs="sample-rbd:2")
    assert double.wait_task(upid)["exitstatus"] == "OK"
    assert double.api("GET", "/nodes/pve1/lxc/100/config")["rootfs"] == "sample-rbd:vm-100-disk-0,size=2G"
    assert double.stats()["by_route"]["POST /nodes/{node}/sample/{name}"] == 1
    assert "tests.lab.pve_sample_extension" in double.control("GET", "health")["extensions"]


def test_invalid_lab_config_stops_start(make_pve_double):
    with pytest.raises(RuntimeError, match="node name"):
        make_pve_double({"nodes": ["bad_node!"]})

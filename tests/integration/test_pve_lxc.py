"""retail.edge.pve_lxc and pve_lxc_info driven through ansible-playbook against the PVE API double.

Every test runs one playbook (tests/integration/playbooks/pve_lxc/) over verified TLS (ca_path) and
reads the registered results the playbook writes to a JSON file. The tests share one double and
use distinct vmids, so they do not depend on each other's containers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lab.pve.testing import PveDouble
from tests.support import ROOT, run_playbook

PLAYBOOKS = ROOT / "tests" / "integration" / "playbooks" / "pve_lxc"
OSTEMPLATE = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
WRITE_METHODS = ("POST", "PUT", "DELETE")


@pytest.fixture
def pve(pve_double_module: PveDouble) -> PveDouble:
    pve_double_module.clear_faults()
    pve_double_module.reset_stats()
    yield pve_double_module
    pve_double_module.clear_faults()


def play(pve: PveDouble, name: str, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    """Run one case playbook with --diff and return the results it wrote."""
    result_file = tmp_path / f"{name}.json"
    extra_vars = {
        "pve": pve.module_defaults(),
        "ostemplate": OSTEMPLATE,
        "result_file": str(result_file),
        **extra,
    }
    run_playbook(PLAYBOOKS / f"{name}.yml", "--diff", extra_vars=extra_vars, timeout=300)
    return json.loads(result_file.read_text())


def writes(stats: dict[str, Any]) -> dict[str, int]:
    """Return the write requests (POST/PUT/DELETE, login excluded) from /_lab/stats by route."""
    return {
        route: count
        for route, count in stats["by_route"].items()
        if route.startswith(WRITE_METHODS) and route != "POST /access/ticket"
    }


def test_update_running_container_in_place(pve, tmp_path):
    results = play(pve, "update_running", tmp_path, vmid=301)
    assert results["created"]["status"] == "running"

    updated = results["updated"]
    assert updated["changed"] is True
    assert updated["changed_keys"] == ["memory", "mp0"]
    assert updated["status"] == "running"
    assert updated["config"]["memory"] == 1024
    assert updated["config"]["mp0"].startswith("local-lvm:vm-301-disk-")
    assert "mp=/var/lib/pos" in updated["config"]["mp0"]
    assert updated["pending_keys"] == []

    again = results["again"]
    assert again["changed"] is False
    assert again["changed_keys"] == []
    assert pve.api("GET", "/nodes/pve1/lxc/301/status/current")["status"] == "running"


def test_features_dropped_flag_reordered_flags(pve, tmp_path):
    results = play(pve, "features", tmp_path, vmid=302)
    assert results["created"]["config"]["features"] in ("keyctl=1,nesting=1", "nesting=1,keyctl=1")
    assert results["reordered"]["changed"] is False
    assert results["as_dict"]["changed"] is False

    dropped = results["dropped"]
    assert dropped["changed"] is True
    assert dropped["changed_keys"] == ["features"]
    assert dropped["config"]["features"] == "nesting=1"
    assert dropped["diff"]["before"]["features"] in ("keyctl=1,nesting=1", "nesting=1,keyctl=1")
    assert dropped["diff"]["after"]["features"] == "nesting=1"


def test_rootfs_same_grow_and_shrink(pve, tmp_path):
    results = play(pve, "rootfs_size", tmp_path, vmid=303)
    assert results["created"]["config"]["rootfs"] == "local-lvm:vm-303-disk-0,size=8G"
    assert results["same"]["changed"] is False
    assert results["same_in_mib"]["changed"] is False

    grown = results["grown"]
    assert grown["changed"] is True
    assert grown["changed_keys"] == ["rootfs"]
    assert grown["config"]["rootfs"] == "local-lvm:vm-303-disk-0,size=10G"
    assert any(":resize:303:" in upid for upid in grown["tasks"])
    assert pve.stats()["by_route"].get("PUT /nodes/{node}/lxc/{vmid}/resize") == 1

    shrunk = results["shrunk"]
    assert shrunk["failed"] is True
    assert "cannot shrink from 10G to 6G" in shrunk["msg"]
    assert "PVE can only grow volumes" in shrunk["msg"]
    assert "size=10G" in pve.api("GET", "/nodes/pve1/lxc/303/config")["rootfs"]


def test_tags_order_and_case(pve, tmp_path):
    results = play(pve, "tags", tmp_path, vmid=304)
    assert results["created"]["config"]["tags"] == "edge;web"
    reordered = results["reordered"]
    assert reordered["changed"] is False
    assert reordered["changed_keys"] == []
    listed = [container["vmid"] for container in results["listed"]["containers"]]
    assert 304 in listed


def test_template_state_is_idempotent(pve, tmp_path):
    results = play(pve, "template", tmp_path, vmid=305)
    converted = results["converted"]
    assert converted["changed"] is True
    assert converted["template"] is True
    assert converted["status"] == "stopped"

    again = results["again"]
    assert again.get("failed", False) is False
    assert again["changed"] is False
    assert again["template"] is True


def test_failed_create_task_fails_fast_with_log(pve, tmp_path):
    delay = 1.0
    pve.inject_fault({"type": "vzcreate"}, fail="storage full", after_s=delay, times=1)
    pve.inject_fault({"type": "vzstart"}, hang=True)
    results = play(pve, "task_failure", tmp_path, vmid=306, hang_vmid=307)

    failed = results["failed_create"]
    assert failed["failed"] is True
    assert "storage full" in failed["msg"]
    assert "Last lines of its log" in failed["msg"]
    assert "TASK ERROR" in failed["msg"]
    upid = failed["failed_task"]
    assert ":vzcreate:306:" in upid

    # The failure comes from polling the task's status, not from the module's 120 s task timeout,
    # whose message names the 'timeout' option. Elapsed time is not asserted: it depends on load.
    polls = pve.stats()["by_route"].get("GET /nodes/{node}/tasks/{upid}/status", 0)
    assert polls >= 1
    assert "'timeout' option" not in failed["msg"]

    hung = results["hung_start"]
    assert hung["failed"] is True
    assert hung["failed_task"] in hung["msg"]
    assert ":vzstart:307:" in hung["failed_task"]
    assert "'timeout' option" in hung["msg"]


def test_token_auth_and_root_only_device(pve, tmp_path):
    token_id, secret = "root@pam!automation", pve.tokens["root@pam!automation"]
    user, name = token_id.split("!")
    results = play(pve, "token_auth", tmp_path, vmid=308, token_user=user, token_name=name, token_secret=secret)

    assert results["full_form"]["changed"] is True
    assert results["full_form"]["vmid"] == 308
    assert results["bare_form"]["changed"] is True
    assert results["bare_form"]["config"]["memory"] == 384

    rejected = results["device_with_token"]
    assert rejected["failed"] is True
    assert "dev0" in rejected["msg"]
    assert "root@pam logged in with a password" in rejected["msg"]
    assert "root@pam!automation" in rejected["msg"]

    allowed = results["device_with_password"]
    assert allowed["changed"] is True
    assert allowed["config"]["dev0"].startswith("/dev/ttyACM0")


def test_check_mode_predicts_create_update_delete(pve, tmp_path):
    results = play(pve, "check_mode", tmp_path, vmid=309, root_password="store-root-pw")

    for step in ("create", "update", "delete"):
        check, real = results[f"{step}_check"], results[f"{step}_real"]
        assert check["changed"] is True, step
        assert check["changed"] == real["changed"], step
        assert check["diff"] == real["diff"], step
        assert check["changed_keys"] == real["changed_keys"], step

    assert results["after_create_check"]["containers"] == []
    assert results["create_real"]["diff"]["after"]["password"] == "********"
    assert "store-root-pw" not in json.dumps(results)
    assert results["after_update_check"]["containers"] == results["after_create"]["containers"]
    assert results["update_real"]["changed_keys"] == ["features", "memory", "rootfs", "tags"]
    assert [item["vmid"] for item in results["after_delete_check"]["containers"]] == [309]
    assert results["delete_real"]["status"] == "absent"

    # One real create, one update (config + resize) and one delete reached the double; the
    # check-mode runs wrote nothing.
    assert writes(pve.stats()) == {
        "POST /nodes/{node}/lxc": 1,
        "PUT /nodes/{node}/lxc/{vmid}/config": 1,
        "PUT /nodes/{node}/lxc/{vmid}/resize": 1,
        "DELETE /nodes/{node}/lxc/{vmid}": 1,
    }


def test_invalid_declarations_fail_before_api(pve, tmp_path):
    results = play(pve, "invalid", tmp_path, vmid=310)

    unknown_option = results["unknown_option"]
    assert unknown_option["failed"] is True
    assert "memroy" in unknown_option["msg"]
    assert "Supported parameters include" in unknown_option["msg"]

    unknown_key = results["unknown_key"]
    assert unknown_key["failed"] is True
    assert "unknown key 'keyctrl'" in unknown_key["msg"]
    assert "did you mean 'keyctl'" in unknown_key["msg"]
    assert "valid form: [force_rw_sys=<1|0>]" in unknown_key["msg"]

    malformed = results["malformed_net0"]
    assert malformed["failed"] is True
    assert "netif.net0" in malformed["msg"]
    assert "'eth0' is not of the form key=value" in malformed["msg"]
    assert "valid form: name=<string> [,bridge=<bridge>]" in malformed["msg"]

    low = results["low_vmid"]
    assert low["failed"] is True
    assert "vmid 99 is invalid" in low["msg"]
    assert "from 100 to 999999999" in low["msg"]

    assert pve.stats()["requests"] == 0

"""A Proxmox task that fails in the middle of a multi-container pve_lxc play, then a rerun after the fault clears.

The play declares three containers in one looped task. The double fails the create task of the second one, as
PVE does when a storage fills up half-way through a rollout. The run must fail naming that container and the
UPID of its task, the other containers must be created as declared, and once the fault is cleared a rerun must
create only the missing container; a third run then changes nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

from lab.pve.testing import PveDouble
from tests.support import run_playbook

OSTEMPLATE = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
CONTAINERS = [
    {"vmid": 811, "hostname": "faults-pos", "node": "pve1"},
    {"vmid": 812, "hostname": "faults-inventory", "node": "pve2"},
    {"vmid": 813, "hostname": "faults-vision", "node": "pve3"},
]
FAILING = CONTAINERS[1]


def write_playbook(path: Path, pve: PveDouble) -> Path:
    playbook = [
        {
            "name": "Provision the store containers",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "vars": {"ansible_python_interpreter": sys.executable},
            "module_defaults": {"group/retail.edge.pve": pve.module_defaults()},
            "tasks": [
                {
                    "name": "Declare the containers",
                    "retail.edge.pve_lxc": {
                        "vmid": "{{ item.vmid }}",
                        "hostname": "{{ item.hostname }}",
                        "node": "{{ item.node }}",
                        "ostemplate": OSTEMPLATE,
                        "storage": "local-lvm",
                        "disk_size": "4G",
                        "memory": 512,
                        "state": "started",
                    },
                    "loop": CONTAINERS,
                }
            ],
        }
    ]
    path.write_text(yaml.safe_dump(playbook, sort_keys=False))
    return path


def play(playbook: Path, expect_rc: int) -> list[dict[str, Any]]:
    """Run the playbook with the JSON callback and return the loop's per-item results."""
    proc = run_playbook(playbook, env={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}, expect_rc=expect_rc)
    report = json.loads(proc.stdout[proc.stdout.index("{") :])
    return report["plays"][0]["tasks"][0]["hosts"]["localhost"]["results"]


def test_failed_create_then_rerun_converges(pve_double: PveDouble, tmp_path: Path) -> None:
    playbook = write_playbook(tmp_path / "provision.yml", pve_double)
    pve_double.inject_fault({"type": "vzcreate", "id": str(FAILING["vmid"])}, fail="storage 'local-lvm' is full")

    first = play(playbook, expect_rc=2)
    by_vmid = {item["item"]["vmid"]: item for item in first}
    failed = by_vmid[FAILING["vmid"]]
    assert failed["failed"] is True
    upid = failed["failed_task"]
    assert f":vzcreate:{FAILING['vmid']}:" in upid
    assert upid in failed["msg"]
    assert f"CT {FAILING['vmid']}" in failed["msg"]
    assert "storage 'local-lvm' is full" in failed["msg"]
    for other in (CONTAINERS[0], CONTAINERS[2]):
        assert by_vmid[other["vmid"]].get("failed") is not True, by_vmid[other["vmid"]]
        assert by_vmid[other["vmid"]]["changed"] is True
        status = pve_double.api("GET", f"/nodes/{other['node']}/lxc/{other['vmid']}/status/current")
        assert status["status"] == "running"

    pve_double.clear_faults()
    second = play(playbook, expect_rc=0)
    assert [item["changed"] for item in second] == [False, True, False]
    status = pve_double.api("GET", f"/nodes/{FAILING['node']}/lxc/{FAILING['vmid']}/status/current")
    assert status["status"] == "running"
    assert status["name"] == FAILING["hostname"]

    third = play(playbook, expect_rc=0)
    assert [item["changed"] for item in third] == [False, False, False]

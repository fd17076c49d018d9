"""A node that leaves the cluster while a container is declared on it.

The double has no switch that takes a node offline, so the test restarts it with a configuration that no
longer lists the node (state kept), which is what the API shows once a node is removed from the cluster:
`/nodes/{node}/...` answers that the node does not exist. pve_lxc must fail with a message that names the
node, and the containers on the remaining nodes must keep converging.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from lab.pve.testing import DEFAULT_LAB_CONFIG, PveDouble
from tests.support import run_playbook

OSTEMPLATE = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
CONTAINERS = [{"vmid": 821, "node": "pve1"}, {"vmid": 822, "node": "pve3"}]


def play(double: PveDouble, tmp_path: Path, expect_rc: int) -> list[dict[str, Any]]:
    playbook = [
        {
            "name": "Containers on two nodes",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "vars": {"ansible_python_interpreter": sys.executable},
            "module_defaults": {"group/retail.edge.pve": double.module_defaults()},
            "tasks": [
                {
                    "name": "Declare the containers",
                    "retail.edge.pve_lxc": {
                        "vmid": "{{ item.vmid }}",
                        "hostname": "faults-node-{{ item.vmid }}",
                        "node": "{{ item.node }}",
                        "ostemplate": OSTEMPLATE,
                        "storage": "local-lvm",
                        "disk_size": "4G",
                        "memory": 512,
                    },
                    "loop": CONTAINERS,
                }
            ],
        }
    ]
    path = tmp_path / "nodes.yml"
    path.write_text(yaml.safe_dump(playbook, sort_keys=False))
    proc = run_playbook(path, env={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}, expect_rc=expect_rc)
    report = json.loads(proc.stdout[proc.stdout.index("{") :])
    return report["plays"][0]["tasks"][0]["hosts"]["localhost"]["results"]


def test_node_removed_from_cluster(pve_double: PveDouble, tmp_path: Path) -> None:
    created = play(pve_double, tmp_path, expect_rc=0)
    assert [item["changed"] for item in created] == [True, True]

    pve_double.stop()
    config = copy.deepcopy(DEFAULT_LAB_CONFIG)
    config["nodes"] = ["pve1", "pve2"]
    pve_double.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    pve_double.start()

    after = play(pve_double, tmp_path, expect_rc=2)
    kept, gone = after
    assert kept.get("failed") is not True
    assert kept["changed"] is False
    assert gone["failed"] is True
    assert "/nodes/pve3/" in gone["msg"]
    assert "822" in gone["msg"]

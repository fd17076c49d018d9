"""The lab Ceph cluster's only OSD stopped in the middle of a pool change made with pve_ceph_pool.

Ceph keeps pool settings in the monitors, so a pool task can end while no OSD runs and only the placement
groups stay inactive. A task that does not end (held by an injected fault in the double while the OSD is
stopped) must make the run fail within the module's timeout, naming the pool and the task's UPID. After the
OSD is restarted a rerun must converge to the declaration, and a third run must change nothing.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.ceph import CephPools, LabCeph
from lab.pve.testing import PveDouble
from tests.support import run_playbook

POOL = "faults-osd"


def play(double: PveDouble, tmp_path: Path, options: dict[str, Any], expect_rc: int = 0) -> dict[str, Any]:
    """Run one pve_ceph_pool task with the JSON callback and return its result."""
    playbook = [
        {
            "name": "Ceph pool change",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "vars": {"ansible_python_interpreter": sys.executable},
            "module_defaults": {"group/retail.edge.pve": double.module_defaults()},
            "tasks": [{"name": "Declare the pool", "retail.edge.pve_ceph_pool": options}],
        }
    ]
    path = tmp_path / f"pool-{time.monotonic_ns()}.yml"
    path.write_text(yaml.safe_dump(playbook, sort_keys=False))
    proc = run_playbook(path, env={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}, expect_rc=expect_rc)
    report = json.loads(proc.stdout[proc.stdout.index("{") :])
    return report["plays"][0]["tasks"][0]["hosts"]["localhost"]


def stop_osd(lab: LabCeph) -> None:
    """Stop the lab cluster's OSD (a process of this test session) and wait until it is gone."""
    pid = lab.pid("osd")
    assert pid is not None, "the lab OSD does not run"
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while lab.pid("osd") is not None:
        assert time.monotonic() < deadline, f"ceph-osd (pid {pid}) did not stop within 60 s"
        time.sleep(0.2)


@pytest.fixture
def pool(lab_ceph: LabCeph, ceph_pools: CephPools, pve_ceph_double: PveDouble) -> Iterator[str]:
    yield POOL
    pve_ceph_double.clear_faults()
    if lab_ceph.pid("osd") is None:
        lab_ceph.start()
    if ceph_pools.exists(POOL):
        ceph_pools.delete(POOL)


def test_pool_change_with_osd_stopped(
    pool: str, lab_ceph: LabCeph, ceph_pools: CephPools, pve_ceph_double: PveDouble, tmp_path: Path
) -> None:
    base = {"name": pool, "size": 1, "min_size": 1, "pg_autoscale_mode": "off"}
    created = play(pve_ceph_double, tmp_path, {**base, "pg_num": 8})
    assert created["changed"] is True

    stop_osd(lab_ceph)
    # The pool task waits for the OSD that does not come back within the module's timeout.
    pve_ceph_double.inject_fault({"type": "cephsetpool", "id": pool}, hang=True)
    failed = play(pve_ceph_double, tmp_path, {**base, "pg_num": 16, "timeout": 3}, expect_rc=2)
    assert failed["failed"] is True
    # pve_ceph_pool names the task in its message only (pve_lxc also returns it as failed_task).
    assert re.search(
        rf"task UPID:pve1:[0-9A-F:]+:cephsetpool:{pool}:root@pam: is still running after 3 s", failed["msg"]
    )

    # Clearing the fault lets the hung task finish, as a PVE task does once its OSD answers again.
    pve_ceph_double.clear_faults()
    assert lab_ceph.start() is True
    rerun = play(pve_ceph_double, tmp_path, {**base, "pg_num": 16})
    assert rerun.get("failed") is not True
    assert rerun["pool"]["pg_num"] == 16
    assert ceph_pools.details(pool)["pg_num"] == 16
    again = play(pve_ceph_double, tmp_path, {**base, "pg_num": 16})
    assert again["changed"] is False
    assert again["upids"] == []

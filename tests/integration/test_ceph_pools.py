"""pve_ceph_pool and the ceph_pools role through the PVE double, checked on the real lab Ceph cluster.

Each test runs one playbook with the JSON callback, so every task's result (changed, diff, return values)
is asserted separately, and reads the cluster itself with `ceph osd pool ls detail` and librados.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.ceph import CephPools, LabCeph
from lab.pve.testing import PveDouble
from tests.fixtures_ceph import official_schema
from tests.support import ROOT, run_playbook

GIB = 1024**3


class Play:
    """Runs task lists against the double as one playbook and returns each task's result by task name."""

    def __init__(self, double: PveDouble, tmp_path: Path) -> None:
        self.double = double
        self.tmp_path = tmp_path
        self.count = 0

    def __call__(
        self, *tasks: dict[str, Any], check: bool = False, expect_rc: int = 0, extra_vars: dict[str, Any] | None = None
    ) -> dict:
        self.count += 1
        playbook = [
            {
                "name": "pve_ceph_pool test",
                "hosts": "localhost",
                "connection": "local",
                "gather_facts": False,
                "vars": {"ansible_python_interpreter": sys.executable},
                "module_defaults": {"group/retail.edge.pve": self.double.module_defaults()},
                "tasks": list(tasks),
            }
        ]
        path = self.tmp_path / f"play-{self.count}.yml"
        path.write_text(yaml.safe_dump(playbook, sort_keys=False))
        proc = run_playbook(
            path,
            "--diff",
            *(["--check"] if check else []),
            extra_vars=extra_vars,
            env={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"},
            expect_rc=expect_rc,
            timeout=300,
        )
        report = json.loads(proc.stdout[proc.stdout.index("{") :])
        # Role tasks are named `ROLE : TASK`; tests look them up by the task's own name.
        return {
            task["task"]["name"].split(" : ")[-1]: task["hosts"]["localhost"] for task in report["plays"][0]["tasks"]
        }


def pool_task(title: str, **options: Any) -> dict[str, Any]:
    return {"name": title, "retail.edge.pve_ceph_pool": options}


def ls_detail(lab: LabCeph) -> dict[str, dict[str, Any]]:
    """Return `ceph osd pool ls detail` of the real cluster, keyed by pool name."""
    proc = subprocess.run(
        ["ceph", "-c", str(lab.conf), "osd", "pool", "ls", "detail", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return {pool["pool_name"]: pool for pool in json.loads(proc.stdout)}


def ls_detail_task(title: str, lab: LabCeph) -> dict[str, Any]:
    """A task that records `ceph osd pool ls detail` of the real cluster at that point of the playbook."""
    command = ["ceph", "-c", str(lab.conf), "osd", "pool", "ls", "detail", "--format", "json"]
    return {"name": title, "ansible.builtin.command": {"argv": command}, "changed_when": False}


def pools_in(command_result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {pool["pool_name"]: pool for pool in json.loads(command_result["stdout"])}


@pytest.fixture
def play(pve_ceph_double: PveDouble, tmp_path: Path) -> Play:
    return Play(pve_ceph_double, tmp_path)


@pytest.fixture
def cleanup(ceph_pools: CephPools):
    """Names of pools to delete from the cluster after the test, whatever the test left behind."""
    names: list[str] = []
    yield names
    for name in names:
        ceph_pools.delete(name)


def test_create_cephfs_pool_with_fixed_pgs(play, lab_ceph, cleanup):
    cleanup.append("case-cephfs")
    options = {"name": "case-cephfs", "application": "cephfs", "pg_autoscale_mode": "off", "pg_num": 16}
    results = play(pool_task("create", **options), pool_task("rerun", **options))

    created = results["create"]
    assert created["changed"] is True
    assert created["pool"]["pool_name"] == "case-cephfs"
    assert created["upids"][0].split(":")[5] == "cephcreatepool"
    assert results["rerun"]["changed"] is False
    assert results["rerun"]["upids"] == []

    pool = ls_detail(lab_ceph)["case-cephfs"]
    assert pool["application_metadata"] == {"cephfs": {}}
    assert pool["pg_autoscale_mode"] == "off"
    assert pool["pg_num"] == 16
    # PVE's defaults for what the declaration leaves out.
    assert pool["size"] == 3
    assert pool["min_size"] == 2


def test_target_size_ratio_as_float(play, lab_ceph, ceph_pools, cleanup):
    cleanup.append("case-ratio")
    base = {"name": "case-ratio", "size": 1, "min_size": 1, "pg_num": 8, "pg_autoscale_mode": "warn"}
    results = play(
        pool_task("create", **base, target_size_ratio=0.5),
        pool_task("rerun as text", **base, target_size_ratio="0.50"),
        pool_task("target size in bytes", **base, target_size_ratio=0.5, target_size="10G"),
        pool_task("target size rerun", **base, target_size_ratio=0.5, target_size="10240M"),
    )

    assert results["create"]["changed"] is True
    assert results["create"]["pool"]["target_size_ratio"] == 0.5
    assert results["rerun as text"]["changed"] is False
    assert results["target size in bytes"]["changed_keys"] == ["target_size"]
    assert results["target size in bytes"]["diff"]["after"]["target_size"] == 10 * GIB
    assert results["target size rerun"]["changed"] is False

    pool = ls_detail(lab_ceph)["case-ratio"]
    assert pool["options"]["target_size_ratio"] == 0.5
    assert pool["options"]["target_size_bytes"] == 10 * GIB
    assert ceph_pools.details("case-ratio")["target_size_ratio"] == 0.5


def test_size_and_min_size_change(play, lab_ceph, cleanup):
    cleanup.append("case-size")
    base = {"name": "case-size", "pg_num": 8, "pg_autoscale_mode": "off"}
    results = play(
        pool_task("create", **base, size=1, min_size=1),
        pool_task("grow", **base, size=3, min_size=2),
        pool_task("size only", **base, size=5),
    )

    grown = results["grow"]
    assert grown["changed"] is True
    assert grown["changed_keys"] == ["min_size", "size"]
    assert grown["diff"]["before"] == {
        "name": "case-size",
        "size": 1,
        "min_size": 1,
        "pg_num": 8,
        "pg_autoscale_mode": "off",
    }
    assert grown["diff"]["after"] == {
        "name": "case-size",
        "size": 3,
        "min_size": 2,
        "pg_num": 8,
        "pg_autoscale_mode": "off",
    }

    # Ceph resets min_size on a size change (to 3 for size 5 here); the module sets it back to 2.
    size_only = results["size only"]
    assert size_only["changed_keys"] == ["size"]
    assert len(size_only["upids"]) == 2

    pool = ls_detail(lab_ceph)["case-size"]
    assert pool["size"] == 5
    assert pool["min_size"] == 2


def test_check_mode_predicts_real_run(play, lab_ceph, cleanup):
    cleanup.append("case-check")
    create = {"name": "case-check", "pg_num": 8, "size": 2, "min_size": 1, "application": "rgw"}
    update = {**create, "size": 3, "min_size": 2, "target_size": "1G"}
    absent = {"name": "case-check", "state": "absent"}
    results = play(
        {**pool_task("create check", **create), "check_mode": True},
        ls_detail_task("after create check", lab_ceph),
        pool_task("create", **create),
        {**pool_task("update check", **update), "check_mode": True},
        ls_detail_task("after update check", lab_ceph),
        pool_task("update", **update),
        {**pool_task("absent check", **absent), "check_mode": True},
        ls_detail_task("after absent check", lab_ceph),
        pool_task("absent", **absent),
    )

    assert "case-check" not in pools_in(results["after create check"])
    after_update_check = pools_in(results["after update check"])["case-check"]
    assert (after_update_check["size"], after_update_check["min_size"]) == (2, 1)
    assert "target_size_bytes" not in after_update_check["options"]
    assert "case-check" in pools_in(results["after absent check"])
    assert "case-check" not in ls_detail(lab_ceph)

    for step in ("create", "update", "absent"):
        predicted, applied = results[f"{step} check"], results[step]
        assert predicted["changed"] is True, step
        assert predicted["upids"] == [], step
        assert applied["upids"], step
        assert predicted["changed_keys"] == applied["changed_keys"], step
        assert predicted["diff"] == applied["diff"], f"{step}: predicted {predicted['diff']}, applied {applied['diff']}"
    assert results["update"]["changed_keys"] == ["min_size", "size", "target_size"]


def test_absent_removes_pool(play, lab_ceph, ceph_pools, cleanup):
    cleanup.append("case-absent")
    results = play(
        pool_task("create", name="case-absent", size=1, min_size=1, pg_num=8),
        pool_task("absent", name="case-absent", state="absent"),
        pool_task("absent again", name="case-absent", state="absent"),
    )
    assert results["absent"]["changed"] is True
    assert results["absent"]["upids"][0].split(":")[5] == "cephdestroypool"
    assert results["absent again"]["changed"] is False
    assert results["absent again"]["upids"] == []
    assert "case-absent" not in ls_detail(lab_ceph)
    assert "case-absent" not in ceph_pools.names()


def test_invalid_options_fail_before_api(play, pve_ceph_double):
    cases = [
        (
            "slash in name",
            {"name": "ct/volumes"},
            "name 'ct/volumes' is invalid: a Ceph pool name in PVE must not contain ':', '/' or white space",
        ),
        ("size 9", {"name": "case-invalid", "size": 9}, "size 9 is out of range: PVE accepts 1 to 7"),
        (
            "application nfs",
            {"name": "case-invalid", "application": "nfs"},
            "value of application must be one of: rbd, cephfs, rgw, got: nfs",
        ),
    ]
    pve_ceph_double.reset_stats()
    results = play(*({**pool_task(title, **options), "ignore_errors": True} for title, options, message in cases))

    for title, options, message in cases:
        assert results[title]["failed"] is True, options
        assert message in results[title]["msg"], options
    assert pve_ceph_double.stats()["requests"] == 0


def test_application_and_erasure_coding_unchangeable(play, lab_ceph, cleanup):
    cleanup.append("case-fixed")
    base = {"name": "case-fixed", "size": 1, "min_size": 1, "pg_num": 8, "application": "cephfs"}
    results = play(
        pool_task("create", **base),
        {**pool_task("other application", **{**base, "application": "rbd"}), "ignore_errors": True},
        {**pool_task("erasure", **base, erasure_coding={"k": 2, "m": 1}), "ignore_errors": True},
    )

    assert "already has application 'cephfs'" in results["other application"]["msg"]
    assert "declare application: cephfs" in results["other application"]["msg"]
    assert results["other application"].get("upids") is None
    assert "cannot convert it to erasure coding" in results["erasure"]["msg"]
    assert ls_detail(lab_ceph)["case-fixed"]["application_metadata"] == {"cephfs": {}}


def test_erasure_coded_pool_pair(play, lab_ceph, ceph_pools, pve_ceph_double, cleanup):
    cleanup.extend(["case-ec-data", "case-ec-metadata"])
    options = {"name": "case-ec", "size": 1, "min_size": 1, "pg_num": 8, "pg_autoscale_mode": "off"}
    erasure = {"k": 2, "m": 1, "failure_domain": "osd"}
    results = play(
        pool_task("create", **options, erasure_coding=erasure),
        pool_task("rerun", **options, erasure_coding=erasure),
        pool_task("absent", name="case-ec", state="absent", remove_storages=True),
    )
    created = results["create"]
    assert created["changed"] is True
    assert created["pool"]["pool_name"] == "case-ec-data"
    assert created["pool"]["type"] == "erasure"
    assert created["metadata_pool"]["pool_name"] == "case-ec-metadata"
    assert results["rerun"]["changed"] is False
    assert len(results["absent"]["upids"]) == 2

    pools = ls_detail(lab_ceph)
    assert "case-ec-data" not in pools
    assert "case-ec-metadata" not in pools
    assert ceph_pools.ec_profile("pve_ec_case-ec") is None
    storages = {entry["storage"] for entry in pve_ceph_double.api("GET", "/storage")}
    assert "case-ec" not in storages


def test_role_declares_store_pools(play, lab_ceph, pve_ceph_double, ceph_pools, cleanup):
    names = {"ct-volumes": "role-ct", "asset-cache": "role-assets", "promise-queue": "role-promises"}
    cleanup.extend(names.values())
    role_vars = {
        "ceph_pools_ceph_nodes": ["pve1"],
        "ceph_pools_container_volumes": {
            "name": "role-ct",
            "application": "rbd",
            "add_storages": True,
            "pg_autoscale_mode": "warn",
            "pg_num": 8,
        },
        "ceph_pools_asset_cache": {
            "name": "role-assets",
            "application": "cephfs",
            "pg_autoscale_mode": "warn",
            "pg_num": 8,
            "target_size_ratio": 0.25,
        },
        "ceph_pools_promise_queue": {
            "name": "role-promises",
            "application": "rbd",
            "pg_autoscale_mode": "warn",
            "pg_num": 8,
            "target_size": "1G",
        },
    }
    role = {"name": "converge", "ansible.builtin.include_role": {"name": "retail.edge.ceph_pools"}}
    first = play(role, extra_vars=role_vars)
    second = play({**role, "name": "converge again"}, extra_vars=role_vars)

    assert [item["changed"] for item in first["Declare the store's Ceph pools"]["results"]] == [True, True, True]
    assert [item["changed"] for item in second["Declare the store's Ceph pools"]["results"]] == [False, False, False]

    pools = ls_detail(lab_ceph)
    for name in names.values():
        assert (pools[name]["size"], pools[name]["min_size"]) == (1, 1), name
    assert pools["role-promises"]["options"]["target_size_bytes"] == GIB

    storage = {entry["storage"]: entry for entry in pve_ceph_double.api("GET", "/storage")}["role-ct"]
    assert storage["type"] == "rbd"
    assert set(storage["content"].split(",")) == {"images", "rootdir"}

    # The RBD storage takes a container's root filesystem.
    upid = pve_ceph_double.api(
        "POST",
        "/nodes/pve1/lxc",
        vmid=4101,
        hostname="ceph-rootfs",
        ostemplate="local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
        rootfs="role-ct:1",
    )
    assert pve_ceph_double.wait_task(upid)["exitstatus"] == "OK"
    config = pve_ceph_double.api("GET", "/nodes/pve1/lxc/4101/config")
    assert config["rootfs"].startswith("role-ct:vm-4101-disk-0")
    pve_ceph_double.wait_task(pve_ceph_double.api("DELETE", "/nodes/pve1/lxc/4101", purge=1))


def test_role_two_nodes_warns_and_sizes_two(play, pve_ceph_double):
    role = {"name": "converge", "ansible.builtin.include_role": {"name": "retail.edge.ceph_pools"}}
    results = play(role, check=True, extra_vars={"ceph_pools_ceph_nodes": ["pve1", "pve2"]})
    warning = results["Warn that a two-node store keeps only two replicas"]
    assert "size 2 and min_size 1" in warning["msg"]
    declared = results["Declare the store's Ceph pools"]["results"]
    assert [item["item"]["name"] for item in declared] == ["ct-volumes", "asset-cache", "promise-queue"]
    for item in declared:
        assert item["diff"]["after"]["size"] == 2
        assert item["diff"]["after"]["min_size"] == 1


@pytest.mark.parametrize("auth", ["token", "password"])
def test_playbook_plans_store_pools(pve_ceph_double, tmp_path, auth):
    inventory = tmp_path / "lab.stores.yml"
    store = {
        "id": "lab1",
        "region": "lab",
        "format": "supermarket",
        "wave": "canary",
        "subnet": "198.51.100.0/24",
        "nodes": ["pve1"],
        "pve_api_host": pve_ceph_double.host,
        "pve_api_port": pve_ceph_double.port,
    }
    inventory.write_text(yaml.safe_dump({"plugin": "retail.edge.stores", "stores": [store]}))
    extra_vars: dict[str, Any] = {"retail_edge_pve_api_user": "root@pam"}
    env = {"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}
    if auth == "token":
        # The token secret and the CA come from the environment, which the modules read when the options are unset.
        [(token_id, secret)] = [item for item in pve_ceph_double.tokens.items() if item[0] == "root@pam!automation"]
        extra_vars["retail_edge_pve_api_token_id"] = token_id
        env |= {"PROXMOX_TOKEN_SECRET": secret, "PROXMOX_CA_PATH": str(pve_ceph_double.ca_file)}
    else:
        extra_vars["retail_edge_pve_api_password"] = pve_ceph_double.root_password
        extra_vars["retail_edge_pve_ca_path"] = str(pve_ceph_double.ca_file)

    proc = run_playbook(
        ROOT / "playbooks" / "ceph_pools.yml",
        "--check",
        "--diff",
        inventory=inventory,
        extra_vars=extra_vars,
        env=env,
        timeout=300,
    )

    report = json.loads(proc.stdout[proc.stdout.index("{") :])
    tasks = {task["task"]["name"].split(" : ")[-1]: task["hosts"] for task in report["plays"][0]["tasks"]}
    declared = tasks["Declare the store's Ceph pools"]["pve1"]["results"]
    assert [item["item"]["name"] for item in declared] == ["ct-volumes", "asset-cache", "promise-queue"]
    assert all(item["changed"] for item in declared)
    assert all(item["diff"]["after"]["size"] == 1 for item in declared)


def test_list_and_status_fields_match_schema(pve_ceph_double):
    schema = official_schema()
    list_fields = set(schema["/nodes/{node}/ceph/pool"]["GET"]["returns"]["items"]["properties"])
    status_fields = set(schema["/nodes/{node}/ceph/pool/{name}/status"]["GET"]["returns"]["properties"])

    pools = pve_ceph_double.api("GET", "/nodes/pve1/ceph/pool")
    assert pools, "the lab cluster always has the device_health_metrics pool"
    for pool in pools:
        assert set(pool) <= list_fields, set(pool) - list_fields
        assert {"pool", "pool_name", "size", "min_size", "pg_num", "crush_rule", "type"} <= set(pool)

    status = pve_ceph_double.api("GET", f"/nodes/pve1/ceph/pool/{pools[0]['pool_name']}/status", verbose=1)
    assert set(status) <= status_fields, set(status) - status_fields
    assert {"id", "name", "size", "min_size", "pg_num", "crush_rule", "application_list"} <= set(status)

"""The lab Ceph script (`python -m lab.ceph`) and the librados pool operations, against real Ceph daemons."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lab.ceph import CephCommandError, CephPools, LabCeph, LabCephError, PoolNotFoundError
from lab.ceph.cluster import PORT_WINDOW_FIRST, PORT_WINDOW_LAST
from tests.support import ROOT

CEPH_DEFAULT_PORTS = {3300, 6789, *range(6800, 7301)}


def lab_script(action: str, root: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "lab.ceph", action, "--dir", str(root)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, f"lab.ceph {action} exited {proc.returncode}: {proc.stderr[-4000:]}"
    return json.loads(proc.stdout)


def process_alive(pid: int) -> bool:
    """Return True while pid runs; an exited daemon that init has not reaped yet (state Z) does not count."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def ceph_cli(conf: Path, *args: str, keyring: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = ["ceph", "-c", str(conf), "--connect-timeout", "5"]
    if keyring is not None:
        cmd += ["--keyring", keyring]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=60, check=False)


def test_lab_script_lifecycle(tmp_path):
    root = tmp_path / "ceph"
    lab = LabCeph(root)
    try:
        started = lab_script("start", root)
        assert started["changed"] is True
        pids = started["pids"]
        assert all(pids.values()), pids
        summary = started["pg_summary"]
        assert summary["num_pgs"] > 0
        assert summary["num_pg_by_state"] == [{"name": "active+clean", "num": summary["num_pgs"]}]

        again = lab_script("start", root)
        assert again["changed"] is False
        assert again["pids"] == pids

        with lab.client() as pools:
            assert pools.create("keep-me", 8)
            pools.set("keep-me", "pg_autoscale_mode", "off")

        stopped = lab_script("stop", root)
        assert sorted(stopped["stopped_pids"]) == sorted(pids.values())
        for kind, pid in pids.items():
            assert not process_alive(pid), f"{kind} (pid {pid}) still runs after stop"
        assert lab_script("status", root)["pids"] == {"mon": None, "mgr": None, "osd": None}

        restarted = lab_script("start", root)
        assert restarted["changed"] is True
        assert set(restarted["pids"].values()).isdisjoint(pids.values())
        with lab.client() as pools:
            # memstore keeps its objects across a clean stop (osd fast shutdown = false).
            assert "keep-me" in pools.names()
    finally:
        lab.stop()

    last_pids = [pid for pid in lab.pids().values() if pid]
    assert last_pids == []
    lab_script("purge", root)
    assert not root.exists()


def test_lab_ports_and_cephx(lab_ceph):
    facts = lab_ceph.facts()
    assert PORT_WINDOW_FIRST <= facts.mon_port_v2 < PORT_WINDOW_LAST
    assert facts.mon_port_v1 == facts.mon_port_v2 + 1

    dump = json.loads(ceph_cli(lab_ceph.conf, "osd", "dump", "--format", "json").stdout)
    osd_ports = {
        int(addr["addr"].rsplit(":", 1)[1])
        for key in ("public_addrs", "cluster_addrs")
        for addr in dump["osds"][0][key]["addrvec"]
    }
    assert osd_ports, dump["osds"][0]
    assert all(facts.bind_port_min <= port <= facts.bind_port_max for port in osd_ports), osd_ports
    assert osd_ports.isdisjoint(CEPH_DEFAULT_PORTS)

    # With cephx on, a client without the admin key is turned away.
    denied = ceph_cli(lab_ceph.conf, "health", keyring="/dev/null")
    assert denied.returncode != 0


def test_two_labs_run_side_by_side(lab_ceph, tmp_path):
    other = LabCeph(tmp_path / "other")
    try:
        other.start()
        assert other.facts().mon_port_v2 != lab_ceph.facts().mon_port_v2
        assert all(other.pids().values())
        assert all(lab_ceph.pids().values())
    finally:
        other.purge()
    assert not (tmp_path / "other").exists()


def test_pools_create_existing_returns_false(ceph_pools):
    assert ceph_pools.create("quirk-create", 8) is True
    assert ceph_pools.create("quirk-create", 8) is False
    assert ceph_pools.delete("quirk-create") is True
    assert ceph_pools.delete("quirk-create") is False


def test_pools_create_sets_autoscale_mode(ceph_pools):
    assert ceph_pools.create("quirk-mode", 8, autoscale_mode="warn") is True
    try:
        details = ceph_pools.details("quirk-mode")
        assert details["pg_autoscale_mode"] == "warn"
        assert details["pg_num"] == 8
    finally:
        ceph_pools.delete("quirk-mode")


def test_pools_size_one_and_second_application(ceph_pools):
    ceph_pools.create("quirk-set", 8)
    try:
        ceph_pools.set("quirk-set", "size", 2)
        ceph_pools.set("quirk-set", "size", 1)
        assert ceph_pools.details("quirk-set")["size"] == 1

        ceph_pools.enable_application("quirk-set", "rbd")
        ceph_pools.enable_application("quirk-set", "rbd")
        with pytest.raises(CephCommandError, match="already has an enabled application"):
            ceph_pools.enable_application("quirk-set", "cephfs")
        ceph_pools.enable_application("quirk-set", "cephfs", replace_existing=True)
        assert set(ceph_pools.applications("quirk-set")) == {"rbd", "cephfs"}

        ceph_pools.set("quirk-set", "target_size_ratio", 0.5)
        assert ceph_pools.details("quirk-set")["target_size_ratio"] == 0.5
    finally:
        ceph_pools.delete("quirk-set")


def test_pools_missing_pool_raises(ceph_pools):
    with pytest.raises(PoolNotFoundError, match="unrecognized pool 'no-such-pool'"):
        ceph_pools.details("no-such-pool")


def test_pools_erasure_code_profile(ceph_pools: CephPools):
    ceph_pools.create_ec_profile("quirk-ec", 2, 1, failure_domain="osd")
    try:
        profile = ceph_pools.ec_profile("quirk-ec")
        assert profile is not None
        assert profile["k"] == "2"
        assert profile["m"] == "1"
        assert profile["crush-failure-domain"] == "osd"
    finally:
        ceph_pools.delete_ec_profile("quirk-ec")
    assert ceph_pools.ec_profile("quirk-ec") is None


def test_lab_refuses_foreign_directory(tmp_path):
    foreign = tmp_path / "not-a-cluster"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me\n")
    lab = LabCeph(foreign)
    with pytest.raises(LabCephError, match="holds no lab cluster"):
        lab.purge()
    with pytest.raises(LabCephError, match="holds no lab cluster"):
        lab.start()
    assert (foreign / "notes.txt").read_text() == "keep me\n"

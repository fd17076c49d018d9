"""The PVE double's lxc backend against real LXC containers on the lab bridge."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from ipaddress import IPv4Address

import pytest

from lab.lxc import LabSettings, containers
from lab.lxc.network import mac_for
from lab.pve.testing import PveDouble
from tests.e2e.conftest import TEST_NAME_PREFIX, container_dir

pytestmark = pytest.mark.lab_containers

TEMPLATE = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
NODE = "pve1"
# High host numbers: the LXC lab leases addresses to its own instances from the low end of the pool.
ADDRESS = "198.51.100.241"
NEW_ADDRESS = "198.51.100.242"


def lxc(lab: LabSettings, tool: str, vmid: int, *args: str) -> str:
    proc = subprocess.run(
        [tool, "-P", str(lab.lxcpath), "-n", f"{TEST_NAME_PREFIX}{vmid}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return proc.stdout.strip()


def attach(lab: LabSettings, vmid: int, script: str) -> str:
    return containers.attach(lab, f"{TEST_NAME_PREFIX}{vmid}", script).strip()


def run_task(double: PveDouble, method: str, path: str, **params: object) -> dict:
    upid = double.api(method, path, **params)
    return double.wait_task(upid, timeout=120)


def sshd_answers(address: str) -> bool:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, 22), timeout=1) as sock:
                sock.settimeout(2)
                if sock.recv(4).startswith(b"SSH-"):
                    return True
        except OSError:
            time.sleep(0.2)
    return False


@pytest.fixture(scope="module")
def started_ct(lxc_double: PveDouble, lxc_lab: LabSettings) -> int:
    """CT 901: created from the template with limits, a volume mount point and a device, then started."""
    vmid = 901
    status = run_task(
        lxc_double,
        "POST",
        f"/nodes/{NODE}/lxc",
        vmid=vmid,
        ostemplate=TEMPLATE,
        hostname="e2e-alpha",
        storage="local-lvm",
        rootfs="local-lvm:2",
        memory=256,
        swap=128,
        cores=1,
        cpulimit="0.5",
        cpuunits=200,
        net0=f"name=eth0,bridge=vmbr0,ip={ADDRESS}/24",
        mp0="local-lvm:1,mp=/srv/data",
        dev0="/dev/fuse,mode=0666,uid=0,gid=0",
    )
    assert status["exitstatus"] == "OK", status
    assert (container_dir(lxc_lab, vmid) / "config").is_file()
    status = run_task(lxc_double, "POST", f"/nodes/{NODE}/lxc/{vmid}/status/start")
    assert status["exitstatus"] == "OK", status
    return vmid


def test_start_runs_real_container(lxc_double: PveDouble, lxc_lab: LabSettings, started_ct: int) -> None:
    assert lxc(lxc_lab, "lxc-info", started_ct, "-s", "-H") == "RUNNING"
    current = lxc_double.api("GET", f"/nodes/{NODE}/lxc/{started_ct}/status/current")
    assert current["status"] == "running"
    assert str(current["pid"]) == lxc(lxc_lab, "lxc-info", started_ct, "-p", "-H")
    assert current["mem"] > 0
    assert sshd_answers(ADDRESS)


def test_hostname_and_address_applied(lxc_lab: LabSettings, started_ct: int) -> None:
    assert attach(lxc_lab, started_ct, "hostname") == "e2e-alpha"
    assert attach(lxc_lab, started_ct, "cat /etc/hostname") == "e2e-alpha"
    assert f"{ADDRESS} e2e-alpha" in attach(lxc_lab, started_ct, "cat /etc/hosts")
    addresses = json.loads(attach(lxc_lab, started_ct, "ip -j addr show dev eth0"))[0]
    assert addresses["address"] == mac_for(IPv4Address(ADDRESS))
    assert {"local": ADDRESS, "prefixlen": 24} in [
        {"local": info["local"], "prefixlen": info["prefixlen"]} for info in addresses["addr_info"]
    ]


def test_limits_are_cgroup_limits(lxc_lab: LabSettings, started_ct: int) -> None:
    assert lxc(lxc_lab, "lxc-cgroup", started_ct, "memory.limit_in_bytes") == str(256 * 2**20)
    assert lxc(lxc_lab, "lxc-cgroup", started_ct, "memory.memsw.limit_in_bytes") == str(384 * 2**20)
    assert lxc(lxc_lab, "lxc-cgroup", started_ct, "cpuset.cpus") == "0"
    assert lxc(lxc_lab, "lxc-cgroup", started_ct, "cpu.cfs_quota_us") == "50000"
    assert lxc(lxc_lab, "lxc-cgroup", started_ct, "cpu.shares") == "200"


def test_mount_point_is_volume_directory(lxc_double: PveDouble, lxc_lab: LabSettings, started_ct: int) -> None:
    conf = lxc_double.api("GET", f"/nodes/{NODE}/lxc/{started_ct}/config")
    volid = conf["mp0"].split(",", 1)[0]
    attach(lxc_lab, started_ct, "echo from-the-container > /srv/data/probe")
    host_dir = lxc_lab.lab_dir / "pve-volumes" / volid.replace(":", "/", 1)
    assert (host_dir / "probe").read_text() == "from-the-container\n"


def test_device_node_created_with_mode(lxc_lab: LabSettings, started_ct: int) -> None:
    listing = attach(lxc_lab, started_ct, "stat -c '%F %a %u:%g %t:%T' /dev/fuse")
    host = os.stat("/dev/fuse")
    assert listing == f"character special file 666 0:0 {os.major(host.st_rdev):x}:{os.minor(host.st_rdev):x}"
    allowed = lxc(lxc_lab, "lxc-cgroup", started_ct, "devices.list")
    assert f"c {os.major(host.st_rdev)}:{os.minor(host.st_rdev)} rwm" in allowed


def test_live_memory_change_reaches_cgroup(lxc_double: PveDouble, lxc_lab: LabSettings, started_ct: int) -> None:
    lxc_double.api("PUT", f"/nodes/{NODE}/lxc/{started_ct}/config", memory=384, cores=2)
    assert lxc(lxc_lab, "lxc-cgroup", started_ct, "memory.limit_in_bytes") == str(384 * 2**20)
    assert lxc(lxc_lab, "lxc-cgroup", started_ct, "memory.memsw.limit_in_bytes") == str(512 * 2**20)
    expected_cpus = "0-1" if (os.cpu_count() or 1) >= 2 else "0"
    assert lxc(lxc_lab, "lxc-cgroup", started_ct, "cpuset.cpus") == expected_cpus


def test_live_address_change(lxc_double: PveDouble, lxc_lab: LabSettings, started_ct: int) -> None:
    lxc_double.api("PUT", f"/nodes/{NODE}/lxc/{started_ct}/config", net0=f"name=eth0,bridge=vmbr0,ip={NEW_ADDRESS}/24")
    shown = attach(lxc_lab, started_ct, "ip -4 -o addr show dev eth0")
    assert f"{NEW_ADDRESS}/24" in shown
    assert ADDRESS + "/" not in shown
    leases = lxc_lab.leases_dir
    assert json.loads((leases / NEW_ADDRESS).read_text())["name"] == f"{TEST_NAME_PREFIX}{started_ct}"
    assert not (leases / ADDRESS).exists()


def test_stop_and_destroy_follow_real_container(lxc_double: PveDouble, lxc_lab: LabSettings, started_ct: int) -> None:
    status = run_task(lxc_double, "POST", f"/nodes/{NODE}/lxc/{started_ct}/status/stop")
    assert status["exitstatus"] == "OK", status
    assert lxc(lxc_lab, "lxc-info", started_ct, "-s", "-H") == "STOPPED"
    assert lxc_double.api("GET", f"/nodes/{NODE}/lxc/{started_ct}/status/current")["status"] == "stopped"

    volid = lxc_double.api("GET", f"/nodes/{NODE}/lxc/{started_ct}/config")["mp0"].split(",", 1)[0]
    status = run_task(lxc_double, "DELETE", f"/nodes/{NODE}/lxc/{started_ct}", purge=1)
    assert status["exitstatus"] == "OK", status
    assert not container_dir(lxc_lab, started_ct).exists()
    assert not (lxc_lab.leases_dir / NEW_ADDRESS).exists()
    assert not (lxc_lab.lab_dir / "pve-volumes" / volid.replace(":", "/", 1)).exists()


def test_dhcp_address_fails_create(lxc_double: PveDouble, lxc_lab: LabSettings) -> None:
    status = run_task(
        lxc_double, "POST", f"/nodes/{NODE}/lxc", vmid=902, ostemplate=TEMPLATE, net0="name=eth0,bridge=vmbr0,ip=dhcp"
    )
    assert "no DHCP server" in status["exitstatus"]
    assert not container_dir(lxc_lab, 902).exists()


def test_unknown_template_fails_create(lxc_double: PveDouble, lxc_lab: LabSettings) -> None:
    status = run_task(
        lxc_double,
        "POST",
        f"/nodes/{NODE}/lxc",
        vmid=903,
        ostemplate="local:vztmpl/alpine-3.20-default_20240908_amd64.tar.xz",
        net0="name=eth0,bridge=vmbr0,ip=198.51.100.243/24",
    )
    assert "not available in the lab" in status["exitstatus"]
    assert not container_dir(lxc_lab, 903).exists()
    assert not (lxc_lab.leases_dir / "198.51.100.243").exists()


def test_status_follows_container_stopped_outside(lxc_double: PveDouble, lxc_lab: LabSettings) -> None:
    vmid = 904
    status = run_task(
        lxc_double,
        "POST",
        f"/nodes/{NODE}/lxc",
        vmid=vmid,
        ostemplate=TEMPLATE,
        net0="name=eth0,bridge=vmbr0,ip=198.51.100.244/24",
        start=1,
    )
    assert status["exitstatus"] == "OK", status
    assert lxc_double.api("GET", f"/nodes/{NODE}/lxc/{vmid}/status/current")["status"] == "running"

    lxc(lxc_lab, "lxc-stop", vmid, "-k")
    assert lxc_double.api("GET", f"/nodes/{NODE}/lxc/{vmid}/status/current")["status"] == "stopped"
    run_task(lxc_double, "DELETE", f"/nodes/{NODE}/lxc/{vmid}")

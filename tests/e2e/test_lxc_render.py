"""Translation of PVE container configs into LXC config lines, without containers."""

from __future__ import annotations

import os
import stat
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

import pytest

from lab.pve.backends import lxc_render
from lab.pve.backends.base import BackendError

V1 = lxc_render.HostLimits(cpus=4, cgroup2=False, swap_accounting=True)
V2 = lxc_render.HostLimits(cpus=4, cgroup2=True, swap_accounting=True)


def fake_stat(path: str) -> os.stat_result:
    if path != "/dev/dri/renderD128":
        raise FileNotFoundError(2, "No such file or directory")
    return os.stat_result((stat.S_IFCHR | 0o660, 0, 0, 1, 0, 0, 0, 0, 0, 0), {"st_rdev": os.makedev(226, 128)})


def context(host: lxc_render.HostLimits = V1) -> lxc_render.RenderContext:
    return lxc_render.RenderContext(
        bridge="edgelab0",
        network=IPv4Network("198.51.100.0/24"),
        reserved=frozenset({IPv4Address("198.51.100.1"), IPv4Address("198.51.100.2")}),
        volume_path=lambda volid: Path("/lab/pve-volumes") / volid.replace(":", "/", 1),
        mac_for=lambda address: "02:00:" + ":".join(f"{octet:02x}" for octet in address.packed),
        host=host,
        hook_path=Path("/lab/containers/pve-201/pve-autodev.sh"),
        stat_device=fake_stat,
    )


def test_network_on_lab_bridge() -> None:
    rendered = lxc_render.render(
        201,
        {"hostname": "s001-varnish-edge", "net0": "name=eth0,bridge=vmbr0,ip=198.51.100.21/24,gw=198.51.100.1"},
        context(),
    )
    assert "lxc.uts.name = s001-varnish-edge" in rendered.lines
    assert "lxc.net.0.link = edgelab0" in rendered.lines
    assert "lxc.net.0.hwaddr = 02:00:c6:33:64:15" in rendered.lines
    assert "lxc.net.0.ipv4.address = 198.51.100.21/24" in rendered.lines
    assert not [line for line in rendered.lines if "gateway" in line]
    assert rendered.addresses == [IPv4Interface("198.51.100.21/24")]


@pytest.mark.parametrize(
    ("net0", "message"),
    [
        ("name=eth0,ip=dhcp", "no DHCP server"),
        ("name=eth0", "no DHCP server"),
        ("name=eth0,ip=192.0.2.10/24", "outside the lab network"),
        ("name=eth0,ip=198.51.100.1/24", "reserved"),
        ("name=eth0,ip=198.51.100.255/24", "outside the lab network"),
    ],
)
def test_unusable_address_rejected(net0: str, message: str) -> None:
    with pytest.raises(BackendError, match=message):
        lxc_render.render(201, {"net0": net0}, context())


def test_limits_cgroup_v1() -> None:
    values = lxc_render.cgroup_values({"memory": 1024, "swap": 256, "cores": 2, "cpulimit": "1.5", "cpuunits": 300}, V1)
    assert values == {
        "memory.limit_in_bytes": str(1024 * 2**20),
        "memory.memsw.limit_in_bytes": str(1280 * 2**20),
        "cpuset.cpus": "0-1",
        "cpu.cfs_period_us": "100000",
        "cpu.cfs_quota_us": "150000",
        "cpu.shares": "300",
    }


def test_limits_cgroup_v2() -> None:
    values = lxc_render.cgroup_values({"memory": 512, "swap": 0, "cores": 8, "cpuunits": 50000}, V2)
    assert values == {
        "memory.max": str(512 * 2**20),
        "memory.swap.max": "0",
        "cpuset.cpus": "0-3",
        "cpu.max": "max 100000",
        "cpu.weight": "10000",
    }


def test_pve_default_memory_without_keys() -> None:
    values = lxc_render.cgroup_values({}, V1)
    assert values["memory.limit_in_bytes"] == str(512 * 2**20)
    assert values["cpu.cfs_quota_us"] == "-1"
    assert "cpuset.cpus" not in values


def test_volume_mount_point_is_bind_mount() -> None:
    rendered = lxc_render.render(
        201, {"mp0": "local-lvm:vm-201-disk-1,mp=/var/lib/varnish,ro=1,mountoptions=noatime;nodev,size=8G"}, context()
    )
    assert (
        "lxc.mount.entry = /lab/pve-volumes/local-lvm/vm-201-disk-1 var/lib/varnish none "
        "bind,create=dir,ro,noatime,nodev 0 0"
    ) in rendered.lines
    assert rendered.volume_dirs == [Path("/lab/pve-volumes/local-lvm/vm-201-disk-1")]


def test_missing_bind_source_rejected(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="does not exist"):
        lxc_render.render(201, {"mp0": f"{tmp_path}/absent,mp=/data"}, context())


def test_device_entry_and_hook() -> None:
    rendered = lxc_render.render(205, {"dev0": "/dev/dri/renderD128,mode=0666,gid=44"}, context())
    assert "lxc.cgroup.devices.allow = c 226:128 rwm" in rendered.lines
    assert "lxc.hook.autodev = /lab/containers/pve-201/pve-autodev.sh" in rendered.lines
    hook = lxc_render.autodev_hook(rendered.devices)
    assert 'mknod -m 0666 "$LXC_ROOTFS_MOUNT"/dev/dri/renderD128 c 226 128' in hook
    assert 'chown 0:44 "$LXC_ROOTFS_MOUNT"/dev/dri/renderD128' in hook


def test_missing_device_rejected() -> None:
    with pytest.raises(BackendError, match="does not exist on the host"):
        lxc_render.render(205, {"dev0": "/dev/ttyUSB9"}, context())


def test_merge_config_replaces_block() -> None:
    existing = (
        "lxc.rootfs.path = overlay:/g/rootfs:/c/delta\nlxc.uts.name = golden\n"
        "# Lab network: static address, MAC derived from it\nlxc.net.0.type = veth\n"
    )
    first = lxc_render.merge_config(existing, lxc_render.RenderedContainer("a", lines=["lxc.uts.name = a"]))
    second = lxc_render.merge_config(first, lxc_render.RenderedContainer("b", lines=["lxc.uts.name = b"]))
    assert "lxc.rootfs.path = overlay:/g/rootfs:/c/delta" in second
    assert "lxc.uts.name = golden" not in second
    assert "lxc.net.0.type" not in second
    assert second.count(lxc_render.BLOCK_BEGIN) == 1
    assert "lxc.uts.name = b" in second
    assert "lxc.uts.name = a" not in second


def test_hosts_block_replaced() -> None:
    existing = "127.0.0.1 localhost\n127.0.1.1 golden\n"
    first = lxc_render.merge_hosts(existing, "s001-pos-cache", [IPv4Interface("198.51.100.24/24")])
    second = lxc_render.merge_hosts(first + "10.0.0.5 extra\n", "pos", [IPv4Interface("198.51.100.24/24")])
    assert "golden" not in first
    assert "198.51.100.24 s001-pos-cache" in first
    assert "10.0.0.5 extra" in second
    assert "s001-pos-cache" not in second
    assert second.count("# --- BEGIN PVE ---") == 1

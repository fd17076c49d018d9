"""Translate a PVE container configuration into LXC configuration lines for the lab's real containers.

PVE writes `/var/lib/lxc/<vmid>/config` from `/etc/pve/lxc/<vmid>.conf` before every start; this module
does the same for the LXC backend: network interfaces on the lab bridge, memory and CPU limits as cgroup
limits, mount points as bind mounts of host directories, and `dev[n]` entries as device nodes created by
an autodev hook with the declared mode and owner. Everything here is pure, so tests can check the
translation without starting a container.
"""

from __future__ import annotations

import os
import shlex
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any

from lab.pve import lxcconf
from lab.pve.backends.base import BackendError
from lab.pve.schema import FormatError, parse_property_string

MIB = 1024 * 1024
CFS_PERIOD_US = 100_000
BLOCK_BEGIN = "# --- BEGIN retail-edge PVE double (generated from the CT config on every start) ---"
BLOCK_END = "# --- END retail-edge PVE double ---"
# Keys the generated block owns; lines setting them outside the block are dropped so that ours apply.
# The LXC lab's own comment above the network lines it writes into clones; ours replace them.
LXC_LAB_NETWORK_COMMENT = "# Lab network: static address, MAC derived from it"
OWNED_PREFIXES = ("lxc.net.", "lxc.uts.name", "lxc.cgroup.", "lxc.cgroup2.", "lxc.hook.autodev")


@dataclass(frozen=True)
class HostLimits:
    """What the host offers: CPU count, cgroup layout and whether swap is accounted."""

    cpus: int
    cgroup2: bool
    swap_accounting: bool

    @classmethod
    def detect(cls) -> HostLimits:
        cgroup2 = Path("/sys/fs/cgroup/cgroup.controllers").is_file()
        swap = cgroup2 or Path("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").is_file()
        return cls(cpus=os.cpu_count() or 1, cgroup2=cgroup2, swap_accounting=swap)


@dataclass(frozen=True)
class DeviceNode:
    """A `dev[n]` entry: the node the autodev hook creates inside the container."""

    path: str
    kind: str  # "c" or "b"
    major: int
    minor: int
    mode: str
    uid: int
    gid: int
    deny_write: bool

    @property
    def cgroup_rule(self) -> str:
        access = "rm" if self.deny_write else "rwm"
        return f"{self.kind} {self.major}:{self.minor} {access}"


@dataclass
class RenderedContainer:
    """The LXC side of one container: config lines and the files the backend writes around them."""

    hostname: str
    lines: list[str] = field(default_factory=list)
    addresses: list[IPv4Interface] = field(default_factory=list)
    devices: list[DeviceNode] = field(default_factory=list)
    volume_dirs: list[Path] = field(default_factory=list)
    nameserver: str | None = None
    searchdomain: str | None = None


@dataclass(frozen=True)
class RenderContext:
    """Lab facts the translation needs: bridge, network, where volumes live and how to stat devices."""

    bridge: str
    network: IPv4Network
    reserved: frozenset[IPv4Address]
    volume_path: Callable[[str], Path]
    mac_for: Callable[[IPv4Address], str]
    host: HostLimits
    hook_path: Path
    stat_device: Callable[[str], os.stat_result] = os.stat


def render(vmid: int, conf: Mapping[str, Any], context: RenderContext) -> RenderedContainer:
    """Return the LXC lines and side files for conf; raise BackendError naming the key that cannot apply."""
    rendered = RenderedContainer(hostname=str(conf.get("hostname") or f"CT{vmid}"))
    rendered.lines.append(f"lxc.uts.name = {rendered.hostname}")
    for key in sorted((key for key in conf if key.startswith("net")), key=_index):
        rendered.lines += _network_lines(key, str(conf[key]), context, rendered)
    rendered.lines += _cgroup_lines(conf, context.host)
    for key in sorted((key for key in conf if key.startswith("mp")), key=_index):
        rendered.lines += _mount_point_lines(key, str(conf[key]), context, rendered)
    for key in sorted((key for key in conf if key.startswith("dev")), key=_index):
        rendered.devices.append(_device(key, str(conf[key]), context))
    rendered.lines += _feature_lines(conf.get("features"), context.host)
    rendered.lines += _device_lines(rendered.devices, context)
    if conf.get("nameserver"):
        rendered.nameserver = str(conf["nameserver"])
    if conf.get("searchdomain"):
        rendered.searchdomain = str(conf["searchdomain"])
    return rendered


def _index(key: str) -> int:
    return int("".join(char for char in key if char.isdigit()) or 0)


def _parse(fmt: Any, key: str, text: str) -> dict[str, Any]:
    try:
        return parse_property_string(fmt, text)
    except FormatError as exc:
        raise BackendError(f"unable to parse {key} '{text}': {exc}") from None


# Network


def _network_lines(key: str, text: str, context: RenderContext, rendered: RenderedContainer) -> list[str]:
    """Attach the interface to the lab bridge with its static address and the MAC derived from it.

    The `bridge` of the PVE config names a bridge on a real node (vmbr0); in the lab every interface
    joins the lab bridge. `gw` is ignored because the lab network has no gateway by design.
    """
    values = _parse(lxcconf.NET_FORMAT, key, text)
    ip = values.get("ip")
    if ip is None or ip in ("dhcp", "manual"):
        raise BackendError(
            f"{key}: ip={ip or '(none)'} cannot work in the lab, which has no DHCP server; "
            f"set a static address in {context.network}, such as ip={context.network.network_address + 21}/"
            f"{context.network.prefixlen}"
        )
    interface = IPv4Interface(ip)
    if interface.ip not in context.network or interface.ip in (
        context.network.network_address,
        context.network.broadcast_address,
    ):
        raise BackendError(f"{key}: address {interface.ip} is outside the lab network {context.network}")
    if interface.ip in context.reserved:
        raise BackendError(f"{key}: address {interface.ip} is reserved for the lab host or its golden container")
    rendered.addresses.append(interface)
    index = _index(key)
    prefix = f"lxc.net.{index}"
    lines = [
        f"{prefix}.type = veth",
        f"{prefix}.link = {context.bridge}",
        f"{prefix}.flags = {'down' if values.get('link_down') else 'up'}",
        f"{prefix}.name = {values['name']}",
        f"{prefix}.hwaddr = {context.mac_for(interface.ip)}",
        f"{prefix}.ipv4.address = {interface.with_prefixlen}",
    ]
    if values.get("mtu"):
        lines.append(f"{prefix}.mtu = {values['mtu']}")
    return lines


# Resources


def _cgroup_lines(conf: Mapping[str, Any], host: HostLimits) -> list[str]:
    """Memory, swap, cores, cpulimit and cpuunits as cgroup limits, the way PVE maps them."""
    values = cgroup_values(conf, host)
    key = "lxc.cgroup2" if host.cgroup2 else "lxc.cgroup"
    return [f"{key}.{name} = {value}" for name, value in values.items()]


def cgroup_values(conf: Mapping[str, Any], host: HostLimits) -> dict[str, str]:
    """Return cgroup file -> value for the limits in conf, in the order they can be written to a live cgroup."""
    memory = int(conf.get("memory", 512)) * MIB
    swap = int(conf.get("swap", 512)) * MIB
    values: dict[str, str] = {}
    if host.cgroup2:
        values["memory.max"] = str(memory)
        if host.swap_accounting:
            values["memory.swap.max"] = str(swap)
    else:
        values["memory.limit_in_bytes"] = str(memory)
        if host.swap_accounting:
            values["memory.memsw.limit_in_bytes"] = str(memory + swap)

    cores = conf.get("cores")
    if cores is not None:
        # More cores than the host has means all of them, as on a PVE node.
        values["cpuset.cpus"] = cpu_range(min(int(cores), host.cpus))

    cpulimit = float(conf.get("cpulimit", 0) or 0)
    if host.cgroup2:
        quota = str(int(cpulimit * CFS_PERIOD_US)) if cpulimit > 0 else "max"
        values["cpu.max"] = f"{quota} {CFS_PERIOD_US}"
    else:
        values["cpu.cfs_period_us"] = str(CFS_PERIOD_US)
        values["cpu.cfs_quota_us"] = str(int(cpulimit * CFS_PERIOD_US)) if cpulimit > 0 else "-1"

    if conf.get("cpuunits") is not None:
        units = int(conf["cpuunits"])
        # cgroup v1 cpu.shares takes 2..262144, cgroup v2 cpu.weight 1..10000; PVE clamps the same way.
        values["cpu.weight" if host.cgroup2 else "cpu.shares"] = (
            str(min(max(units, 1), 10_000)) if host.cgroup2 else str(min(max(units, 2), 262_144))
        )
    return values


def cpu_range(count: int) -> str:
    """Return the cpuset of the first count CPUs, such as `0` or `0-3`."""
    return "0" if count <= 1 else f"0-{count - 1}"


# Mount points and devices


def _mount_point_lines(key: str, text: str, context: RenderContext, rendered: RenderedContainer) -> list[str]:
    """Bind-mount the volume's directory (or the bind source) at the mount point.

    NOTE: volumes are directories under the lab directory, so `size` is recorded but not enforced and
    `quota`/`acl` have no effect.
    """
    try:
        values = lxcconf.parse_mount_point(key, text)
    except FormatError as exc:
        raise BackendError(f"unable to parse {key} '{text}': {exc}") from None
    kind = values["type"]
    if kind == "device":
        raise BackendError(f"{key}: device mount points ({values['volume']}) are not supported by the lab")
    if kind == "volume":
        source = context.volume_path(values["volume"])
        rendered.volume_dirs.append(source)
    else:
        source = Path(values["volume"])
        if not source.is_dir():
            raise BackendError(f"mount point '{source}' does not exist")
    options = ["bind", "create=dir"]
    if values.get("ro"):
        options.append("ro")
    options += [option for option in str(values.get("mountoptions", "")).split(";") if option]
    target = str(values["mp"]).lstrip("/")
    return [f"lxc.mount.entry = {source} {target} none {','.join(options)} 0 0"]


def _device(key: str, text: str, context: RenderContext) -> DeviceNode:
    values = _parse(lxcconf.DEVICE_FORMAT, key, text)
    path = str(values.get("path", ""))
    try:
        info = context.stat_device(path)
    except OSError as exc:
        raise BackendError(f"{key}: device '{path}' does not exist on the host: {exc.strerror}") from None
    if stat.S_ISCHR(info.st_mode):
        kind = "c"
    elif stat.S_ISBLK(info.st_mode):
        kind = "b"
    else:
        raise BackendError(f"{key}: '{path}' is not a character or block device")
    return DeviceNode(
        path=path,
        kind=kind,
        major=os.major(info.st_rdev),
        minor=os.minor(info.st_rdev),
        mode=str(values.get("mode", "0660")),
        uid=int(values.get("uid", 0)),
        gid=int(values.get("gid", 0)),
        deny_write=bool(values.get("deny-write", 0)),
    )


def _device_lines(devices: list[DeviceNode], context: RenderContext) -> list[str]:
    if not devices:
        return []
    key = "lxc.cgroup2.devices.allow" if context.host.cgroup2 else "lxc.cgroup.devices.allow"
    lines = [f"{key} = {device.cgroup_rule}" for device in devices]
    lines.append(f"lxc.hook.autodev = {context.hook_path}")
    return lines


def autodev_hook(devices: list[DeviceNode]) -> str:
    """Return the autodev hook that creates the `dev[n]` nodes with their mode and owner, as PVE's hook does."""
    lines = ["#!/bin/sh", "# Generated by the PVE double's LXC backend from the dev[n] entries.", "set -eu"]
    for device in devices:
        target = f'"$LXC_ROOTFS_MOUNT"{shlex.quote(device.path)}'
        lines += [
            f'mkdir -p "$(dirname {target})"',
            f"rm -f {target}",
            f"mknod -m {device.mode} {target} {device.kind} {device.major} {device.minor}",
            f"chown {device.uid}:{device.gid} {target}",
        ]
    return "\n".join(lines) + "\n"


def _feature_lines(text: Any, host: HostLimits) -> list[str]:
    """`nesting` includes LXC's nesting profile; `fuse` allows /dev/fuse. Other flags need nothing here."""
    if not text:
        return []
    values = _parse(lxcconf.FEATURES_FORMAT, "features", str(text))
    lines = []
    if values.get("nesting"):
        lines.append("lxc.include = /usr/share/lxc/config/nesting.conf")
    if values.get("fuse"):
        key = "lxc.cgroup2.devices.allow" if host.cgroup2 else "lxc.cgroup.devices.allow"
        lines += [f"{key} = c 10:229 rwm", "lxc.mount.entry = /dev/fuse dev/fuse none bind,create=file 0 0"]
    return lines


# The config file


def merge_config(existing: str, rendered: RenderedContainer) -> str:
    """Replace the generated block of an LXC config file, dropping lines outside it that set keys it owns."""
    kept: list[str] = []
    inside = False
    for line in existing.splitlines():
        stripped = line.strip()
        if stripped == BLOCK_BEGIN:
            inside = True
            continue
        if stripped == BLOCK_END:
            inside = False
            continue
        if inside or stripped.startswith(OWNED_PREFIXES) or stripped == LXC_LAB_NETWORK_COMMENT:
            continue
        kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    return "\n".join([*kept, "", BLOCK_BEGIN, *rendered.lines, BLOCK_END]) + "\n"


def hosts_block(hostname: str, addresses: list[IPv4Interface]) -> str:
    """Return the /etc/hosts lines PVE manages for a container: its hostname on its first address."""
    address = str(addresses[0].ip) if addresses else "127.0.1.1"
    short = hostname.split(".", 1)[0]
    names = hostname if short == hostname else f"{hostname} {short}"
    return f"# --- BEGIN PVE ---\n{address} {names}\n# --- END PVE ---\n"


def merge_hosts(existing: str, hostname: str, addresses: list[IPv4Interface]) -> str:
    """Replace PVE's block in /etc/hosts (or add it after the loopback lines), keeping every other line."""
    block = hosts_block(hostname, addresses)
    lines = existing.splitlines(keepends=True)
    kept: list[str] = []
    inside = False
    for line in lines:
        if line.strip() == "# --- BEGIN PVE ---":
            inside = True
            continue
        if line.strip() == "# --- END PVE ---":
            inside = False
            continue
        # The golden image names itself on 127.0.1.1; the block below names the container instead.
        if not inside and not line.startswith("127.0.1.1"):
            kept.append(line)
    return "".join(kept) + block


def resolv_conf(nameserver: str | None, searchdomain: str | None) -> str | None:
    if not nameserver and not searchdomain:
        return None
    lines = ["# --- BEGIN PVE ---"]
    if searchdomain:
        lines.append(f"search {searchdomain}")
    lines += [f"nameserver {server}" for server in (nameserver or "").split()]
    lines.append("# --- END PVE ---")
    return "\n".join(lines) + "\n"

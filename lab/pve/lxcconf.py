"""The LXC container configuration of Proxmox VE: its keys, property-string formats and value rules."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from lab.pve import formats
from lab.pve.schema import Indexed, ParamSchema, Prop, PropertyFormat, parse_property_string, schema

MAX_NETWORKS = 32
MAX_MOUNT_POINTS = 256
MAX_UNUSED = 256
MAX_DEVICES = 256

VMID = Prop("integer", optional=False, minimum=100, maximum=999_999_999, format="pve-vmid")
NODE = Prop("string", optional=False, format="pve-node")
_MOUNT_OPTION = r"(?:discard|lazytime|noatime|nodev|noexec|nosuid)"
MOUNT_OPTIONS_RE = rf"{_MOUNT_OPTION}(?:;{_MOUNT_OPTION})*"

# A new volume is requested as STORAGE:SIZE_IN_GIB (or only SIZE on create, with the `storage` default).
NEW_DISK_RE = re.compile(r"(?:([^/:\s]+):)?(\d+(?:\.\d+)?)")

_VOLUME_KEYS = {
    "volume": Prop(optional=False, default_key=True, format="pve-lxc-mp-string"),
    "size": Prop(format="disk-size"),
    "acl": Prop("boolean"),
    "mountoptions": Prop(pattern=MOUNT_OPTIONS_RE),
    "ro": Prop("boolean"),
    "quota": Prop("boolean"),
    "replicate": Prop("boolean", default=1),
    "shared": Prop("boolean", default=0),
}

ROOTFS_FORMAT = PropertyFormat("rootfs", _VOLUME_KEYS)
MOUNT_POINT_FORMAT = PropertyFormat(
    "mp",
    {
        **_VOLUME_KEYS,
        "mp": Prop(optional=False, format="pve-lxc-mp-string"),
        "backup": Prop("boolean"),
        "keepattrs": Prop("boolean", default=0),
    },
)
UNUSED_FORMAT = PropertyFormat("unused", {"volume": Prop(optional=False, default_key=True, format="pve-volume-id")})
NET_FORMAT = PropertyFormat(
    "net",
    {
        "name": Prop(optional=False, pattern=r"[-_.\w\d]+"),
        "bridge": Prop(pattern=r"[-_.\w\d]+"),
        "firewall": Prop("boolean"),
        "gw": Prop(format="ipv4"),
        "gw6": Prop(format="ipv6"),
        "host-managed": Prop("boolean"),
        "hwaddr": Prop(format="mac-addr"),
        "ip": Prop(format="pve-ipv4-config"),
        "ip6": Prop(format="pve-ipv6-config"),
        "link_down": Prop("boolean"),
        "mtu": Prop("integer", minimum=64, maximum=65535),
        "rate": Prop("number", minimum=0),
        "tag": Prop("integer", minimum=1, maximum=4094),
        "trunks": Prop(pattern=r"\d+(?:;\d+)*"),
        "type": Prop(enum=("veth",)),
    },
)
FEATURES_FORMAT = PropertyFormat(
    "features",
    {
        "force_rw_sys": Prop("boolean", default=0),
        "fuse": Prop("boolean", default=0),
        "keyctl": Prop("boolean", default=0),
        "mknod": Prop("boolean", default=0),
        "mount": Prop(pattern=r"[a-zA-Z0-9_; ]+"),
        "nesting": Prop("boolean", default=0),
    },
)
DEVICE_FORMAT = PropertyFormat(
    "dev",
    {
        "path": Prop(default_key=True, format="pve-lxc-dev-string"),
        "deny-write": Prop("boolean", default=0),
        "gid": Prop("integer", minimum=0),
        "mode": Prop(pattern=r"0[0-7]{3}"),
        "uid": Prop("integer", minimum=0),
    },
)

# Keys of /etc/pve/lxc/<vmid>.conf that create and update accept (PVE::LXC::Config's confdesc).
CONFIG_KEYS: dict[str, Prop] = {
    "arch": Prop(enum=("amd64", "i386", "arm64", "armhf", "riscv32", "riscv64"), default="amd64"),
    "cmode": Prop(enum=("shell", "console", "tty"), default="tty"),
    "console": Prop("boolean", default=1),
    "cores": Prop("integer", minimum=1, maximum=8192),
    "cpulimit": Prop("number", minimum=0, maximum=8192, default=0),
    "cpuunits": Prop("integer", minimum=0, maximum=500000),
    "debug": Prop("boolean", default=0),
    "description": Prop(max_length=8192),
    "entrypoint": Prop(pattern=r"[^\x00-\x08\x10-\x1F\x7F]+", default="/sbin/init"),
    "env": Prop(pattern=r"(?:\w+=[^\x00-\x08\x10-\x1F\x7F]*)(?:\0\w+=[^\x00-\x08\x10-\x1F\x7F]*)*"),
    "features": Prop(format=FEATURES_FORMAT),
    "hookscript": Prop(format="pve-volume-id"),
    "hostname": Prop(format="dns-name", max_length=255),
    "lock": Prop(
        enum=(
            "backup",
            "create",
            "destroyed",
            "disk",
            "fstrim",
            "migrate",
            "mounted",
            "rollback",
            "snapshot",
            "snapshot-delete",
        )
    ),
    "memory": Prop("integer", minimum=16, default=512),
    "nameserver": Prop(format="lxc-ip-with-ll-iface-list"),
    "onboot": Prop("boolean", default=0),
    "ostype": Prop(
        enum=(
            "debian",
            "devuan",
            "ubuntu",
            "centos",
            "fedora",
            "opensuse",
            "archlinux",
            "alpine",
            "gentoo",
            "nixos",
            "unmanaged",
        )
    ),
    "protection": Prop("boolean", default=0),
    "rootfs": Prop(format=ROOTFS_FORMAT),
    "searchdomain": Prop(format="dns-name-list"),
    "startup": Prop(format="pve-startup-order"),
    "swap": Prop("integer", minimum=0, default=512),
    "tags": Prop(format="pve-tag-list"),
    "template": Prop("boolean", default=0),
    "timezone": Prop(format="pve-ct-timezone"),
    "tty": Prop("integer", minimum=0, maximum=6, default=2),
    "unprivileged": Prop("boolean", default=0),
}

CONFIG_FAMILIES = (
    Indexed("net", MAX_NETWORKS, Prop(format=NET_FORMAT)),
    Indexed("mp", MAX_MOUNT_POINTS, Prop(format=MOUNT_POINT_FORMAT)),
    Indexed("unused", MAX_UNUSED, Prop(format=UNUSED_FORMAT)),
    Indexed("dev", MAX_DEVICES, Prop(format=DEVICE_FORMAT)),
)

CREATE_ONLY: dict[str, Prop] = {
    "node": NODE,
    "vmid": VMID,
    "ostemplate": Prop(optional=False, max_length=255),
    "bwlimit": Prop("number", minimum=0),
    "force": Prop("boolean"),
    "ha-managed": Prop("boolean", default=0),
    "ignore-unpack-errors": Prop("boolean"),
    "password": Prop(min_length=5),
    "pool": Prop(format="pve-poolid"),
    "restore": Prop("boolean"),
    "ssh-public-keys": Prop(),
    "start": Prop("boolean", default=0),
    "storage": Prop(format="pve-storage-id", default="local"),
    "unique": Prop("boolean", requires="restore"),
}

UPDATE_ONLY: dict[str, Prop] = {
    "node": NODE,
    "vmid": VMID,
    "delete": Prop(format="pve-configid-list"),
    "digest": Prop(max_length=40),
    "revert": Prop(format="pve-configid-list"),
}

CREATE_SCHEMA: ParamSchema = schema({**CONFIG_KEYS, **CREATE_ONLY}, *CONFIG_FAMILIES)
UPDATE_SCHEMA: ParamSchema = schema({**CONFIG_KEYS, **UPDATE_ONLY}, *CONFIG_FAMILIES)

# Keys PVE applies at once to a running container; the rest wait in the pending section until a restart.
FASTPLUG_KEYS = frozenset(
    {"description", "onboot", "startup", "protection", "hostname", "hookscript", "cores", "tags", "lock"}
)
LIVE_KEYS = frozenset({"cpulimit", "cpuunits", "memory", "swap"})
LIVE_DELETE_KEYS = frozenset({"swap", "cpulimit", "cpuunits"})
REQUIRED_KEYS = frozenset({"memory", "rootfs", "ostype"})
NUMBER_KEYS = frozenset(key for key, prop in CONFIG_KEYS.items() if prop.type == "number")


def config_key_prop(key: str) -> Prop | None:
    return UPDATE_SCHEMA.lookup(key) if key not in UPDATE_ONLY else None


def stored_value(key: str, value: Any) -> Any:
    """Return the value as the config file stores it: numbers as their text, integers and booleans as int."""
    if key in NUMBER_KEYS:
        return format_number(value)
    if key == "description":
        return str(value)
    return value


def format_number(value: Any) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def mount_point_format(key: str) -> PropertyFormat:
    if key == "rootfs":
        return ROOTFS_FORMAT
    if key.startswith("unused"):
        return UNUSED_FORMAT
    return MOUNT_POINT_FORMAT


def parse_mount_point(key: str, text: str) -> dict[str, Any]:
    values = parse_property_string(mount_point_format(key), text)
    values["type"] = classify_mount_point(values["volume"])
    return values


def classify_mount_point(volume: str) -> str:
    """Return `volume`, `bind` (a host directory) or `device` (a host block device), as PVE classifies them."""
    if volume.startswith("/"):
        return "device" if volume.startswith("/dev/") else "bind"
    return "volume"


def is_volume_key(key: str) -> bool:
    return key == "rootfs" or bool(re.fullmatch(r"mp\d+", key))


def normalize_tags(text: str) -> str:
    """Deduplicate tags case-insensitively and sort them, as PVE stores `tags` (joined by `;`)."""
    seen: dict[str, str] = {}
    for tag in formats.split_list(text):
        seen.setdefault(tag.lower(), tag)
    return ";".join(sorted(seen.values(), key=str.lower))


def normalize_nameserver(text: str) -> str:
    return " ".join(formats.split_list(text))


def config_digest(conf: Mapping[str, Any], pending: Mapping[str, Any], pending_delete: list[str]) -> str:
    """SHA-1 over the whole configuration, pending section included, like PVE's digest of the config file."""
    payload = json.dumps([conf, pending, pending_delete], sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(payload.encode(), usedforsecurity=False).hexdigest()

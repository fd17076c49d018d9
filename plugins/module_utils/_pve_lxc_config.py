# Copyright: (c) 2025, retail.edge maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Parse, validate, format and compare Proxmox VE LXC configuration values.

Private to the retail.edge collection; the interface may change without notice.

Every configuration key has a type (`ConfigKey`) that turns a value into a canonical Python
form, formats it back into the string PVE stores, and compares two values by meaning.
Property strings ignore key order, `8G` equals `8192M` and `1` equals `true`. Tags ignore
order and case, and a key left out equals its PVE default.  `plan_update` turns a declared
configuration and the current one into the API calls that make them match.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MAX_DEVICES",
    "MAX_MOUNT_POINTS",
    "MAX_NETWORKS",
    "ConfigError",
    "Plan",
    "Volume",
    "as_returned",
    "config_key",
    "format_size",
    "parse_bool",
    "parse_config",
    "parse_size",
    "plan_update",
    "predict_config",
    "predict_pending",
    "require_key",
    "root_only_reasons",
]

# Index limits of PVE 8 (pve-container: MAX_LXC_NETWORKS, MAX_MOUNT_POINTS and the dev[n] range).
MAX_NETWORKS = 32
MAX_MOUNT_POINTS = 256
MAX_DEVICES = 256

SIZE_UNITS = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
GIB = SIZE_UNITS["G"]

_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)([KMGT])?$")
_STORAGE_ID = r"[a-z][a-z0-9\-_.]*[a-z0-9]"
_ALLOC_RE = re.compile(rf"^({_STORAGE_ID}):(\d+(?:\.\d+)?)$", re.IGNORECASE)
_VOLID_RE = re.compile(rf"^({_STORAGE_ID}):(\S+)$", re.IGNORECASE)
_DNS_LABEL = r"[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?"
_DNS_NAME_RE = re.compile(rf"^({_DNS_LABEL}\.)*{_DNS_LABEL}$")
_TAG_RE = re.compile(r"^[a-z0-9_][a-z0-9_\-+.]*$", re.IGNORECASE)
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$", re.IGNORECASE)
_TIMEZONE_RE = re.compile(r"^(host|[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*)$")
_BOOL_TRUE = frozenset({"1", "on", "yes", "true"})
_BOOL_FALSE = frozenset({"0", "off", "no", "false"})


class ConfigError(ValueError):
    """A declared or stored configuration value that does not fit its PVE format."""


# --- scalar values --------------------------------------------------------------------------


def parse_bool(value: Any) -> bool:
    """Parse a boolean as PVE does: 1/0, true/false, yes/no, on/off (any case)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _BOOL_TRUE:
            return True
        if lowered in _BOOL_FALSE:
            return False
    raise ValueError(f"{value!r} is not a boolean; use 1 or 0 (true/false, yes/no and on/off work too)")


def parse_size(value: Any, *, require_unit: bool = True) -> int:
    """Parse a PVE disk size (`8G`, `8192M`, `0.5T`) into bytes.

    PVE reads a bare number as bytes.  Declarations must name a unit (`require_unit`), because
    `size=8` meaning 8 bytes is almost never what a playbook author wants.
    """
    text = str(value).strip().upper()
    if text.endswith("B") and len(text) > 1 and text[-2] in SIZE_UNITS:
        text = text[:-1]
    match = _SIZE_RE.match(text)
    if not match:
        raise ValueError(f"{value!r} is not a size; write a number with a unit K, M, G or T, such as 8G")
    number, unit = match.groups()
    if unit is None and require_unit:
        raise ValueError(f"size {value!r} has no unit; write it with K, M, G or T, such as {value}G")
    return _finite_bytes(float(number) * SIZE_UNITS.get(unit or "", 1), value)


def _finite_bytes(num_bytes: float, value: Any) -> int:
    # 2**63 bytes (8 EiB) is far beyond any disk and beyond what PVE stores in a signed 64-bit size.
    if not math.isfinite(num_bytes) or num_bytes >= 2**63:
        raise ValueError(f"size {value!r} is too large; give a disk size such as 8G or 2T")
    return int(num_bytes)


def format_size(num_bytes: int) -> str:
    """Format bytes with the largest unit that divides them exactly, as PVE prints sizes."""
    for unit in ("T", "G", "M", "K"):
        factor = SIZE_UNITS[unit]
        if num_bytes and num_bytes % factor == 0:
            return f"{num_bytes // factor}{unit}"
    return str(num_bytes)


def format_gib(num_bytes: int) -> str:
    """Format bytes as the GiB number of PVE's `STORAGE:SIZE` volume allocation syntax."""
    gib = num_bytes / GIB
    return str(int(gib)) if gib == int(gib) else f"{gib:.3f}".rstrip("0").rstrip(".")


def _format_number(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


def _check_interface(text: str, version: int, keywords: tuple[str, ...], example: str) -> str:
    if text in keywords:
        return text
    invalid = f"{text!r} is not an IPv{version} address with prefix (such as {example}) or one of {', '.join(keywords)}"
    if "/" not in text:
        raise ValueError(invalid)
    try:
        interface = ipaddress.ip_interface(text)
    except ValueError:
        raise ValueError(invalid) from None
    if interface.version != version:
        raise ValueError(invalid)
    return str(interface)


def _check_ipv4_config(text: str) -> str:
    return _check_interface(text, 4, ("dhcp", "manual"), "198.51.100.10/24")


def _check_ipv6_config(text: str) -> str:
    return _check_interface(text, 6, ("auto", "dhcp", "manual"), "2001:db8::10/64")


def _check_ipv4(text: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise ValueError(f"{text!r} is not an IPv4 address") from None


def _check_ipv6(text: str) -> str:
    try:
        return str(ipaddress.IPv6Address(text))
    except ValueError:
        raise ValueError(f"{text!r} is not an IPv6 address") from None


def _check_mac(text: str) -> str:
    if not _MAC_RE.match(text):
        raise ValueError(f"{text!r} is not a MAC address of the form XX:XX:XX:XX:XX:XX")
    if int(text[:2], 16) & 1:
        raise ValueError(f"{text!r} is a multicast MAC address (its first octet is odd); use a unicast one")
    return text.upper()


def _check_dev_path(text: str) -> str:
    if not text.startswith("/dev/") or "/../" in f"{text}/" or "\0" in text:
        raise ValueError(f"{text!r} is not a device path under /dev/")
    return text


def _check_mp_path(text: str) -> str:
    if not text.startswith("/") or "/../" in f"{text}/":
        raise ValueError(f"{text!r} is not an absolute path without '..'")
    return text.rstrip("/") or "/"


# --- keys inside property strings ----------------------------------------------------------


@dataclass(frozen=True)
class SubKey:
    """One key of a PVE property string, such as `bridge` in `net0` or `nesting` in `features`.

    kind is one of bool, int, number, str, size, set (a `;`-separated list compared as a set).
    default is what PVE assumes when the key is absent; None means "no default", so an absent
    key differs from any value.
    """

    kind: str
    placeholder: str = ""
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    pattern: re.Pattern[str] | None = None
    choices: tuple[str, ...] = ()
    check: Callable[[str], str] | None = None
    required: bool = False

    def parse(self, value: Any, *, strict: bool) -> Any:
        """Turn a value from a property string or a YAML dict into its canonical form."""
        if self.kind == "bool":
            return parse_bool(value)
        if self.kind == "size":
            return parse_size(value, require_unit=strict)
        if self.kind == "int":
            return self._range(self._int(value))
        if self.kind == "number":
            return self._range(self._number(value))
        if self.kind == "set":
            return self._set(value)
        return self._string(value)

    def format(self, value: Any) -> str:
        """Format a canonical value the way PVE writes it."""
        if self.kind == "bool":
            return "1" if value else "0"
        if self.kind == "size":
            return format_size(value)
        if self.kind == "number":
            return _format_number(value)
        if self.kind == "set":
            return ";".join(value)
        return str(value)

    def _int(self, value: Any) -> int:
        if isinstance(value, bool) or not re.fullmatch(r"-?\d+", str(value).strip()):
            raise ValueError(f"{value!r} is not an integer")
        return int(str(value).strip())

    def _number(self, value: Any) -> float:
        if isinstance(value, bool):
            raise ValueError(f"{value!r} is not a number")
        try:
            return float(str(value).strip())
        except ValueError:
            raise ValueError(f"{value!r} is not a number") from None

    def _range(self, number: float) -> Any:
        if not math.isfinite(number):
            raise ValueError(f"{number!r} is not a finite number")
        if self.minimum is not None and number < self.minimum:
            raise ValueError(f"{_format_number(number)} is below the minimum {_format_number(self.minimum)}")
        if self.maximum is not None and number > self.maximum:
            raise ValueError(f"{_format_number(number)} is above the maximum {_format_number(self.maximum)}")
        return number

    def _set(self, value: Any) -> tuple[str, ...]:
        items = value if isinstance(value, list | tuple) else str(value).split(";")
        cleaned = sorted({str(item).strip() for item in items if str(item).strip()})
        for item in cleaned:
            if self.pattern is not None and not self.pattern.fullmatch(item):
                raise ValueError(f"{item!r} is not one of the allowed values ({self.placeholder})")
        return tuple(cleaned)

    def _string(self, value: Any) -> str:
        text = str(value).strip()
        if isinstance(value, bool):
            text = "1" if value else "0"
        if text == "" or "," in text:
            raise ValueError(f"{value!r} is empty or contains a comma")
        if self.choices and text not in self.choices:
            raise ValueError(f"{text!r} is not one of {', '.join(self.choices)}")
        if self.pattern is not None and not self.pattern.fullmatch(text):
            raise ValueError(f"{text!r} does not match {self.placeholder}")
        if self.check is not None:
            text = self.check(text)
        return text


@dataclass(frozen=True)
class PropertyFormat:
    """A PVE property-string format: its keys and the key a bare value belongs to."""

    name: str
    keys: Mapping[str, SubKey]
    default_key: str | None = None
    # Keys PVE fills in itself when they are left out (a generated MAC address, the volume
    # size): they count only when declared.
    filled_keys: frozenset[str] = frozenset()
    # Keys written first; the rest follow in alphabetical order.
    leading_keys: tuple[str, ...] = ()

    @property
    def typetext(self) -> str:
        """Return the valid form of this property string, in PVE's notation."""
        parts = []
        for position, key in enumerate(self._ordered(self.keys)):
            spec = self.keys[key]
            text = f"[{key}=]<{spec.placeholder}>" if key == self.default_key else f"{key}=<{spec.placeholder}>"
            if position:
                text = f",{text}"
            parts.append(text if spec.required or key == self.default_key else f"[{text}]")
        return " ".join(parts)

    def _ordered(self, keys: Iterable[str]) -> list[str]:
        keys = list(keys)
        head = [key for key in (self.default_key, *self.leading_keys) if key in keys]
        return head + sorted(key for key in keys if key not in head)

    def resolve_key(self, key: str) -> str | None:
        """Return the PVE spelling of key, accepting `_` for `-` and the reverse (YAML-friendly)."""
        for candidate in (key, key.replace("_", "-"), key.replace("-", "_")):
            if candidate in self.keys:
                return candidate
        return None

    def parse(self, value: Any, option: str, *, strict: bool = True) -> dict[str, Any]:
        """Parse a property string or a dict of its keys into {key: canonical value}.

        strict applies to declarations: unknown keys, missing required keys and sizes without
        a unit are errors.  Values read back from PVE are parsed leniently and keep unknown keys
        as strings, so a key added by a newer PVE does not break the comparison.
        """
        items = self._split(value, option)
        parsed: dict[str, Any] = {}
        for raw_key, raw_value in items:
            key = self.resolve_key(raw_key)
            if key is None:
                if strict:
                    close = difflib.get_close_matches(raw_key, list(self.keys), n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    raise ConfigError(f"{option}: unknown key {raw_key!r}{hint}; valid form: {self.typetext}")
                parsed[raw_key] = str(raw_value)
                continue
            if key in parsed:
                raise ConfigError(f"{option}: key {key!r} is given twice; valid form: {self.typetext}")
            try:
                parsed[key] = self.keys[key].parse(raw_value, strict=strict)
            except ValueError as exc:
                raise ConfigError(f"{option}: invalid value for {key!r}: {exc}; valid form: {self.typetext}") from None
        if strict:
            missing = [key for key, spec in self.keys.items() if spec.required and key not in parsed]
            if missing:
                raise ConfigError(
                    f"{option}: missing required key {', '.join(map(repr, missing))}; valid form: {self.typetext}"
                )
        return parsed

    def _split(self, value: Any, option: str) -> list[tuple[str, Any]]:
        if isinstance(value, Mapping):
            return [(str(key), item) for key, item in value.items() if item is not None]
        if not isinstance(value, str):
            raise ConfigError(
                f"{option}: expected a PVE property string or a dict, got {type(value).__name__} {value!r}; "
                f"valid form: {self.typetext}"
            )
        items: list[tuple[str, Any]] = []
        for chunk in value.split(","):
            part = chunk.strip()
            if not part:
                continue
            key, sep, item = part.partition("=")
            if sep:
                items.append((key.strip(), item.strip()))
            elif self.default_key is not None:
                items.append((self.default_key, part))
            else:
                raise ConfigError(f"{option}: {part!r} is not of the form key=value; valid form: {self.typetext}")
        return items

    def format(self, values: Mapping[str, Any]) -> str:
        """Format parsed values as a PVE property string (default key bare and first)."""
        parts = []
        for key in self._ordered(values):
            value = values[key]
            if value is None:
                continue
            spec = self.keys.get(key)
            text = spec.format(value) if spec is not None else str(value)
            if isinstance(value, Volume):
                text = value.text
            parts.append(text if key == self.default_key else f"{key}={text}")
        return ",".join(parts)

    def same(self, desired: Mapping[str, Any], current: Mapping[str, Any], ignore: Iterable[str] = ()) -> bool:
        """Compare two parsed values by meaning; an absent key equals its default."""
        skip = set(ignore)
        for key in set(desired) | set(current):
            if key in skip or key not in self.keys:
                continue
            if key in self.filled_keys and key not in desired:
                continue
            default = self.keys[key].default
            desired_value = desired.get(key, default)
            stored = current.get(key, default)
            if desired_value != stored:
                return False
        return True


def _bool(default: bool | None = None) -> SubKey:
    return SubKey("bool", placeholder="1|0", default=default)


_NAME_RE = re.compile(r"[-_.\w\d]+")
_MOUNT_OPTION_RE = re.compile(r"discard|lazytime|noatime|nodev|noexec|nosuid")

NET_FORMAT = PropertyFormat(
    name="net[n]",
    keys={
        "name": SubKey("str", placeholder="string", pattern=_NAME_RE, required=True),
        "bridge": SubKey("str", placeholder="bridge", pattern=_NAME_RE),
        "firewall": _bool(),
        "gw": SubKey("str", placeholder="GatewayIPv4", check=_check_ipv4),
        "gw6": SubKey("str", placeholder="GatewayIPv6", check=_check_ipv6),
        "host-managed": _bool(),
        "hwaddr": SubKey("str", placeholder="XX:XX:XX:XX:XX:XX", check=_check_mac),
        "ip": SubKey("str", placeholder="(IPv4/CIDR|dhcp|manual)", check=_check_ipv4_config),
        "ip6": SubKey("str", placeholder="(IPv6/CIDR|auto|dhcp|manual)", check=_check_ipv6_config),
        "link_down": _bool(),
        "mtu": SubKey("int", placeholder="integer", minimum=64, maximum=65535),
        "rate": SubKey("number", placeholder="mbps", minimum=0),
        "tag": SubKey("int", placeholder="integer", minimum=1, maximum=4094),
        "trunks": SubKey("set", placeholder="vlanid[;vlanid...]", pattern=re.compile(r"\d+")),
        "type": SubKey("str", placeholder="veth", choices=("veth",)),
    },
    filled_keys=frozenset({"hwaddr", "type"}),
    leading_keys=("name",),
)

_VOLUME_OPTION_KEYS: dict[str, SubKey] = {
    "acl": _bool(),
    "mountoptions": SubKey("set", placeholder="opt[;opt...]", pattern=_MOUNT_OPTION_RE),
    "quota": _bool(),
    "replicate": _bool(default=True),
    "ro": _bool(),
    "shared": _bool(default=False),
    "size": SubKey("size", placeholder="DiskSize"),
}

ROOTFS_FORMAT = PropertyFormat(
    name="rootfs",
    keys={"volume": SubKey("str", placeholder="volume"), **_VOLUME_OPTION_KEYS},
    default_key="volume",
    filled_keys=frozenset({"volume", "size"}),
)

MP_FORMAT = PropertyFormat(
    name="mp[n]",
    keys={
        "volume": SubKey("str", placeholder="volume", required=True),
        "mp": SubKey("str", placeholder="Path", check=_check_mp_path, required=True),
        "backup": _bool(),
        "keepattrs": _bool(default=False),
        **_VOLUME_OPTION_KEYS,
    },
    default_key="volume",
    filled_keys=frozenset({"volume", "size"}),
    leading_keys=("mp",),
)

FEATURES_FORMAT = PropertyFormat(
    name="features",
    keys={
        "force_rw_sys": _bool(default=False),
        "fuse": _bool(default=False),
        "keyctl": _bool(default=False),
        "mknod": _bool(default=False),
        "mount": SubKey("set", placeholder="fstype;fstype;...", pattern=re.compile(r"[a-zA-Z0-9_ ]+")),
        "nesting": _bool(default=False),
    },
)

DEV_FORMAT = PropertyFormat(
    name="dev[n]",
    keys={
        "path": SubKey("str", placeholder="Path", check=_check_dev_path, required=True),
        "deny-write": _bool(default=False),
        "gid": SubKey("int", placeholder="integer", minimum=0),
        "mode": SubKey("str", placeholder="Octal access mode", pattern=re.compile(r"0[0-7]{3}")),
        "uid": SubKey("int", placeholder="integer", minimum=0),
    },
    default_key="path",
)

STARTUP_FORMAT = PropertyFormat(
    name="startup",
    keys={
        "order": SubKey("int", placeholder="\\d+", minimum=0),
        "up": SubKey("int", placeholder="\\d+", minimum=0),
        "down": SubKey("int", placeholder="\\d+", minimum=0),
    },
    default_key="order",
)


# --- volumes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Volume:
    """The volume part of `rootfs` or `mp[n]`.

    kind is `alloc` (PVE's `STORAGE:SIZE_IN_GiB` request for a new volume), `volid` (an existing
    volume such as `local-lvm:vm-101-disk-0`) or `path` (a bind mount of a host directory, or a
    device mount when the path is under /dev/).
    """

    kind: str
    text: str
    storage: str | None = None
    size: int | None = None

    @classmethod
    def parse(cls, text: str) -> Volume:
        """Classify a volume string; raise ValueError when it is none of the three forms."""
        if text.startswith("/"):
            return cls("path", _check_mp_path(text))
        alloc = _ALLOC_RE.match(text)
        if alloc:
            storage, gib = alloc.groups()
            return cls("alloc", text, storage=storage, size=_finite_bytes(float(gib) * GIB, text))
        volid = _VOLID_RE.match(text)
        if volid:
            return cls("volid", text, storage=volid.group(1))
        raise ValueError(
            f"{text!r} is not a volume; use STORAGE:SIZE_IN_GiB for a new volume (local-lvm:8), "
            "an existing volume id (local-lvm:vm-101-disk-0) or an absolute host path"
        )

    def __str__(self) -> str:
        return self.text


def _parse_volume_property(fmt: PropertyFormat, value: Any, option: str, *, strict: bool) -> dict[str, Any]:
    """Parse rootfs or mp[n], turning `volume` into a Volume and reconciling alloc size with `size`."""
    parsed = fmt.parse(value, option, strict=strict)
    raw_volume = parsed.get("volume")
    if raw_volume is None:
        return parsed
    try:
        volume = Volume.parse(str(raw_volume))
    except ValueError as exc:
        raise ConfigError(f"{option}: {exc}; valid form: {fmt.typetext}") from None
    parsed["volume"] = volume
    if volume.kind == "alloc":
        declared = parsed.get("size")
        if declared is not None and declared != volume.size:
            raise ConfigError(
                f"{option}: volume {volume.text} requests {format_size(volume.size or 0)} but size= is "
                f"{format_size(declared)}; give the size once"
            )
        parsed["size"] = volume.size
    return parsed


# --- top-level configuration keys ----------------------------------------------------------


class ConfigKey:
    """Type of one top-level key of an LXC configuration (`memory`, `net0`, `features`...)."""

    default: Any = None

    def parse(self, value: Any, option: str, *, strict: bool = True) -> Any:
        raise NotImplementedError

    def format(self, value: Any) -> str:
        return str(value)

    def same(self, desired: Any, current: Any) -> bool:
        desired_value = self.default if desired is None else desired
        stored = self.default if current is None else current
        return bool(desired_value == stored)

    def is_empty(self, value: Any) -> bool:
        """Return True where the value means "key not set", so the key is deleted, not written."""
        return value is None


class ScalarKey(ConfigKey):
    def __init__(self, spec: SubKey, *, max_length: int | None = None) -> None:
        self.spec = spec
        self.default = spec.default
        self.max_length = max_length

    def parse(self, value: Any, option: str, *, strict: bool = True) -> Any:
        if self.max_length is not None and len(str(value)) > self.max_length:
            raise ConfigError(f"{option}: value is {len(str(value))} characters long; the maximum is {self.max_length}")
        try:
            return self.spec.parse(value, strict=strict)
        except ValueError as exc:
            raise ConfigError(f"{option}: {exc}") from None

    def format(self, value: Any) -> str:
        return self.spec.format(value)


class DescriptionKey(ConfigKey):
    """PVE returns the description with a trailing newline per comment line; compare without it."""

    def parse(self, value: Any, option: str, *, strict: bool = True) -> str:
        text = str(value)
        if len(text) > 8192:
            raise ConfigError(f"{option}: description is {len(text)} characters long; the maximum is 8192")
        return text.rstrip()

    def is_empty(self, value: Any) -> bool:
        return value in (None, "")


class PropertyKey(ConfigKey):
    def __init__(self, fmt: PropertyFormat) -> None:
        self.fmt = fmt

    def parse(self, value: Any, option: str, *, strict: bool = True) -> dict[str, Any]:
        return self.fmt.parse(value, option, strict=strict)

    def format(self, value: Mapping[str, Any]) -> str:
        return self.fmt.format(value)

    def same(self, desired: Any, current: Any) -> bool:
        return self.fmt.same(desired or {}, current or {})

    def is_empty(self, value: Any) -> bool:
        return not value or self.fmt.same(value, {})


class VolumeKey(PropertyKey):
    """rootfs and mp[n]: the volume and its size are compared by plan_update, not here."""

    def parse(self, value: Any, option: str, *, strict: bool = True) -> dict[str, Any]:
        return _parse_volume_property(self.fmt, value, option, strict=strict)

    def format(self, value: Mapping[str, Any]) -> str:
        volume = value.get("volume")
        if isinstance(volume, Volume) and volume.kind == "alloc":
            # The size is part of STORAGE:SIZE_IN_GiB; PVE fills in size= after allocating.
            value = {k: v for k, v in value.items() if k != "size"}
        return self.fmt.format(value)

    def same(self, desired: Any, current: Any) -> bool:
        return self.fmt.same(desired or {}, current or {}, ignore=("volume", "size"))

    def is_empty(self, value: Any) -> bool:
        return not value


class TagsKey(ConfigKey):
    """`tags`: a `;`-separated list that PVE treats as a case-insensitive set."""

    def parse(self, value: Any, option: str, *, strict: bool = True) -> tuple[str, ...]:
        items = value if isinstance(value, list | tuple) else re.split(r"[;, ]+", str(value))
        tags: dict[str, str] = {}
        for item in items:
            tag = str(item).strip()
            if not tag:
                continue
            if not _TAG_RE.match(tag):
                raise ConfigError(
                    f"{option}: tag {tag!r} is invalid; a tag starts with a letter, digit or _ and "
                    "contains only letters, digits and _ - + ."
                )
            tags.setdefault(tag.lower(), tag)
        return tuple(tags[key] for key in sorted(tags))

    def format(self, value: Iterable[str]) -> str:
        return ";".join(value)

    def same(self, desired: Any, current: Any) -> bool:
        return {tag.lower() for tag in desired or ()} == {tag.lower() for tag in current or ()}

    def is_empty(self, value: Any) -> bool:
        return not value


class ListKey(ConfigKey):
    """`nameserver` and `searchdomain`: space-separated lists whose order matters."""

    def __init__(self, check: Callable[[str], str], what: str) -> None:
        self.check = check
        self.what = what

    def parse(self, value: Any, option: str, *, strict: bool = True) -> tuple[str, ...]:
        items = value if isinstance(value, list | tuple) else re.split(r"[\s,;]+", str(value))
        result = []
        for item in items:
            text = str(item).strip()
            if not text:
                continue
            try:
                result.append(self.check(text))
            except ValueError:
                raise ConfigError(f"{option}: {text!r} is not {self.what}") from None
        return tuple(result)

    def format(self, value: Iterable[str]) -> str:
        return " ".join(value)

    def same(self, desired: Any, current: Any) -> bool:
        return tuple(desired or ()) == tuple(current or ())

    def is_empty(self, value: Any) -> bool:
        return not value


def _check_nameserver(text: str) -> str:
    address, _separator, interface = text.partition("%")
    parsed = ipaddress.ip_address(address)
    return f"{parsed}%{interface}" if interface else str(parsed)


def _check_dns_name(text: str) -> str:
    if len(text) > 255 or not _DNS_NAME_RE.match(text):
        raise ValueError(text)
    return text


_KEYS: dict[str, ConfigKey] = {
    "arch": ScalarKey(
        SubKey("str", placeholder="arch", choices=("amd64", "i386", "arm64", "armhf", "riscv32", "riscv64"))
    ),
    "cores": ScalarKey(SubKey("int", placeholder="integer", minimum=1, maximum=8192)),
    "cpulimit": ScalarKey(SubKey("number", placeholder="number", minimum=0, maximum=8192, default=0.0)),
    "cpuunits": ScalarKey(SubKey("int", placeholder="integer", minimum=0, maximum=500000)),
    "description": DescriptionKey(),
    "features": PropertyKey(FEATURES_FORMAT),
    "hostname": ScalarKey(
        SubKey("str", placeholder="dns-name", check=_check_dns_name),
        max_length=255,
    ),
    "memory": ScalarKey(SubKey("int", placeholder="integer", minimum=16, default=512)),
    "nameserver": ListKey(_check_nameserver, "an IP address"),
    "onboot": ScalarKey(_bool(default=False)),
    "ostype": ScalarKey(
        SubKey(
            "str",
            placeholder="ostype",
            choices=(
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
            ),
        )
    ),
    "protection": ScalarKey(_bool(default=False)),
    "rootfs": VolumeKey(ROOTFS_FORMAT),
    "searchdomain": ListKey(_check_dns_name, "a DNS domain name"),
    "startup": PropertyKey(STARTUP_FORMAT),
    "swap": ScalarKey(SubKey("int", placeholder="integer", minimum=0, default=512)),
    "tags": TagsKey(),
    "template": ScalarKey(_bool(default=False)),
    "timezone": ScalarKey(SubKey("str", placeholder="timezone", pattern=_TIMEZONE_RE)),
    "unprivileged": ScalarKey(_bool(default=False)),
}
_NET_KEY = PropertyKey(NET_FORMAT)
_MP_KEY = VolumeKey(MP_FORMAT)
_DEV_KEY = PropertyKey(DEV_FORMAT)
_INDEXED = {"net": (MAX_NETWORKS, _NET_KEY), "mp": (MAX_MOUNT_POINTS, _MP_KEY), "dev": (MAX_DEVICES, _DEV_KEY)}
_INDEXED_RE = re.compile(r"^(net|mp|dev)(0|[1-9]\d*)$")

# Keys that `delete_undeclared` may remove: everything a declaration can set, except keys every
# container has (memory, swap, hostname, rootfs) and keys fixed at creation (arch, ostype,
# unprivileged).  Removing an mp[n] with a volume keeps the volume as unused[n].
DELETABLE_KEYS = frozenset(
    {
        "cores",
        "cpulimit",
        "cpuunits",
        "description",
        "features",
        "nameserver",
        "onboot",
        "protection",
        "searchdomain",
        "startup",
        "tags",
        "timezone",
    }
)
# Keys PVE accepts only when the container is created; a different declared value is an error.
CREATE_ONLY_KEYS = frozenset({"unprivileged", "arch"})

# Keys PVE 8 applies to a running container at once (pve-container's hotplug rules); any other
# change stays pending until the next start.  Used only to predict pending keys in check mode.
_HOTPLUG_KEYS = frozenset(
    {
        "cores",
        "cpulimit",
        "cpuunits",
        "description",
        "hookscript",
        "hostname",
        "memory",
        "onboot",
        "protection",
        "startup",
        "swap",
        "tags",
    }
)
_HOTPLUG_DELETE_KEYS = frozenset(
    {"cores", "cpulimit", "cpuunits", "description", "hookscript", "onboot", "protection", "startup", "swap", "tags"}
)


def indexed_key_limit(prefix: str) -> int:
    """Return how many indexed keys PVE allows for prefix (net, mp or dev)."""
    return _INDEXED[prefix][0]


def config_key(name: str) -> ConfigKey | None:
    """Return the type of a top-level LXC configuration key, or None for keys this module does not model."""
    if name in _KEYS:
        return _KEYS[name]
    match = _INDEXED_RE.match(name)
    if match:
        limit, key = _INDEXED[match.group(1)]
        if int(match.group(2)) < limit:
            return key
    return None


def require_key(name: str) -> ConfigKey:
    """Return the type of a configuration key this module manages; raise ConfigError for any other."""
    key = config_key(name)
    if key is None:
        raise ConfigError(f"{name}: not an LXC configuration key this module manages")
    return key


def is_deletable(name: str) -> bool:
    """Return True for keys that `delete_undeclared` may remove."""
    return name in DELETABLE_KEYS or bool(_INDEXED_RE.match(name))


def parse_config(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Parse a configuration as GET .../lxc/{vmid}/config returns it.

    Known keys become canonical values; other keys (lxc.*, unused[n], lock, digest...) stay as
    they are.  A known key whose stored value does not parse also stays a string, so one odd
    value never hides the rest of the configuration.
    """
    parsed: dict[str, Any] = {}
    for name, value in raw.items():
        key = config_key(name)
        if key is None or value is None:
            parsed[name] = value
            continue
        try:
            parsed[name] = key.parse(value, name, strict=False)
        except ConfigError:
            parsed[name] = value
    return parsed


# --- planning ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Resize:
    """A disk to grow with PUT .../resize."""

    disk: str
    size: int
    current: int

    @property
    def size_text(self) -> str:
        return format_size(self.size)


@dataclass
class Plan:
    """Changes that make a container match its declaration."""

    set: dict[str, str] = field(default_factory=dict)
    delete: list[str] = field(default_factory=list)
    resize: list[Resize] = field(default_factory=list)
    undeclared: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # Keys whose stored value is not present before the change (new mp[n], net[n]...).
    added: list[str] = field(default_factory=list)

    @property
    def changed_keys(self) -> list[str]:
        keys = set(self.set) | set(self.delete) | {resize.disk for resize in self.resize}
        return sorted(keys, key=_key_order)

    @property
    def empty(self) -> bool:
        return not (self.set or self.delete or self.resize)


def _key_order(name: str) -> tuple[str, int]:
    match = re.match(r"^(\D+)(\d+)$", name)
    return (match.group(1), int(match.group(2))) if match else (name, -1)


def _plan_volume(name: str, desired: Mapping[str, Any], current: Any, plan: Plan) -> None:
    """Plan changes to an existing rootfs or mp[n]: options, then growth; moving or shrinking is an error."""
    key = require_key(name)
    if not isinstance(current, Mapping) or not isinstance(current.get("volume"), Volume):
        plan.errors.append(f"{name}: the stored value {current!r} cannot be parsed, so it is not changed")
        return
    stored: Volume = current["volume"]
    desired_volume: Volume | None = desired.get("volume")
    volume = stored
    if desired_volume is not None and not _volume_matches(desired_volume, stored):
        if desired_volume.kind == "path" and stored.kind == "path":
            volume = desired_volume
        else:
            plan.errors.append(
                f"{name}: the declaration asks for volume {desired_volume.text} but the container uses {stored.text}; "
                "this module neither moves nor replaces volumes. Declare the stored volume (or only its storage "
                f"and size), or move it with PVE's move-volume first"
            )
            return

    stored_size = current.get("size")
    desired_size = desired.get("size")
    if desired_size is not None and stored_size is not None and volume.kind != "path":
        if desired_size < stored_size:
            plan.errors.append(
                f"{name}: cannot shrink from {format_size(stored_size)} to {format_size(desired_size)}; "
                f"PVE can only grow volumes. Declare a size of at least {format_size(stored_size)}"
            )
            return
        if desired_size > stored_size:
            plan.resize.append(Resize(name, desired_size, stored_size))

    if volume is not stored or not key.same(desired, current):
        values = {k: v for k, v in desired.items() if k not in ("volume", "size")}
        values["volume"] = volume
        if stored_size is not None and volume.kind != "path":
            values["size"] = stored_size
        plan.set[name] = key.format(values)


def _volume_matches(desired_volume: Volume, stored: Volume) -> bool:
    if desired_volume.kind == "alloc":
        return stored.kind == "volid" and desired_volume.storage == stored.storage
    return desired_volume.text == stored.text


def plan_update(
    desired: Mapping[str, Any],
    current_raw: Mapping[str, Any],
    *,
    delete_undeclared: bool = False,
) -> Plan:
    """Compute the changes that make an existing container's configuration match desired.

    desired maps configuration keys to parsed values (from `ConfigKey.parse`); current_raw is the
    configuration as the API returns it.  Nothing here talks to the API.
    """
    plan = Plan()
    current = parse_config(current_raw)

    for name, desired_value in desired.items():
        key = require_key(name)
        stored = current.get(name)

        if name in CREATE_ONLY_KEYS:
            if not key.same(desired_value, stored):
                plan.errors.append(
                    f"{name}: the container has {name}={key.format(stored if stored is not None else key.default)} "
                    f"and PVE cannot change it after creation; recreate the container to get "
                    f"{name}={key.format(desired_value)}"
                )
            continue

        if isinstance(key, VolumeKey) and stored is not None:
            _plan_volume(name, desired_value, stored, plan)
            continue

        if key.is_empty(desired_value):
            if stored is not None and not key.is_empty(stored):
                plan.delete.append(name)
            continue
        unparsed = isinstance(stored, str) and not isinstance(desired_value, str)
        if stored is None or unparsed or not key.same(desired_value, stored):
            plan.set[name] = key.format(desired_value)
            if name not in current_raw:
                plan.added.append(name)

    for name in sorted(current_raw, key=_key_order):
        if name in desired or not is_deletable(name):
            continue
        plan.undeclared.append(name)
        if delete_undeclared:
            plan.delete.append(name)

    plan.delete.sort(key=_key_order)
    return plan


def as_returned(name: str, text: str) -> Any:
    """Return a formatted value typed as GET .../config returns it: numbers and booleans as numbers."""
    key = config_key(name)
    if not isinstance(key, ScalarKey) or key.spec.kind not in ("int", "number", "bool"):
        return text
    if key.spec.kind == "number":
        number = float(text)
        return int(number) if number == int(number) else number
    return int(text)


def predict_config(current_raw: Mapping[str, Any], plan: Plan) -> dict[str, Any]:
    """Return the configuration as it will read after plan is applied (sizes of grown disks included)."""
    after = {name: value for name, value in current_raw.items() if name != "digest"}
    for name in plan.delete:
        after.pop(name, None)
    after.update({name: as_returned(name, text) for name, text in plan.set.items()})
    for resize in plan.resize:
        key = require_key(resize.disk)
        values = key.parse(after[resize.disk], resize.disk, strict=False)
        values["size"] = resize.size
        after[resize.disk] = key.format(values)
    return dict(sorted(after.items(), key=lambda item: _key_order(item[0])))


def predict_pending(plan: Plan) -> list[str]:
    """Predict which planned keys a running container keeps pending until its next start.

    The real list comes from GET .../pending after the change; this prediction serves check mode.
    """
    pending = []
    for name in plan.set:
        live = name in _HOTPLUG_KEYS or name.startswith("net") or (name.startswith("mp") and name in plan.added)
        if not live:
            pending.append(name)
    for name in plan.delete:
        if name not in _HOTPLUG_DELETE_KEYS and not name.startswith("net"):
            pending.append(name)
    return sorted(set(pending), key=_key_order)


def root_only_reasons(
    changes: Mapping[str, Any],
    deleted: Iterable[str],
    current: Mapping[str, Any],
) -> list[str]:
    """List the changes PVE accepts only from root@pam logged in with a password.

    PVE 8 rejects them for every other user and for all API tokens: device passthrough
    (dev[n]), bind and device mount points, and any feature flag other than nesting.
    changes maps keys to parsed values; current is the parsed stored configuration.
    """
    reasons = []
    for name, value in changes.items():
        if name.startswith("dev"):
            reasons.append(f"{name} (device passthrough)")
        elif name.startswith("mp") and isinstance(value, Mapping):
            volume = value.get("volume")
            if isinstance(volume, Volume) and volume.kind == "path":
                reasons.append(f"{name} (bind or device mount of {volume.text})")
        elif name == "features":
            before = current.get("features") if isinstance(current.get("features"), Mapping) else {}
            changed = _changed_feature_flags(value or {}, before or {})
            if changed:
                reasons.append(f"features ({', '.join(changed)}; only nesting is open to other users)")
    for name in deleted:
        if name.startswith("dev"):
            reasons.append(f"{name} (removing device passthrough)")
    return reasons


def _changed_feature_flags(desired_flags: Mapping[str, Any], stored: Mapping[str, Any]) -> list[str]:
    changed = []
    for flag, spec in FEATURES_FORMAT.keys.items():
        if flag == "nesting":
            continue
        if desired_flags.get(flag, spec.default) != stored.get(flag, spec.default):
            changed.append(flag)
    return changed

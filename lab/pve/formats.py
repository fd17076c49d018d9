"""Named formats of the PVE schema (`dns-name`, `pve-volume-id`, ...), written from PVE's documented rules.

Each verifier raises FormatError with the message Proxmox VE prints for that format. Importing this module
registers them in `schema.FORMATS`.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import zoneinfo

from lab.pve.schema import FORMATS, FormatError

STORAGE_CONTENT_TYPES = ("images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import")
TASK_STATUS_TYPES = ("ok", "error", "warning", "unknown")

_DNS_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?"
DNS_NAME_RE = re.compile(rf"(?:{_DNS_LABEL}\.)*{_DNS_LABEL}")
NODE_NAME_RE = re.compile(_DNS_LABEL)
STORAGE_ID_RE = re.compile(r"[a-z][a-z0-9\-_.]*[a-z0-9]", re.IGNORECASE)
CONFIG_ID_RE = re.compile(r"[a-z][a-z0-9_\-]+", re.IGNORECASE)
POOL_ID_RE = re.compile(r"[A-Za-z0-9.\-_]+")
REALM_RE = re.compile(r"[A-Za-z][A-Za-z0-9.\-_]+")
TAG_RE = re.compile(r"[a-z0-9_][a-z0-9_\-+.]*", re.IGNORECASE)
VOLUME_ID_RE = re.compile(r"([a-z][a-z0-9\-_.]*[a-z0-9]):(.+)", re.IGNORECASE)
MAC_RE = re.compile(r"[a-f0-9][02468ace](?::[a-f0-9]{2}){5}", re.IGNORECASE)
DISK_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)([KMGT])?")
PRIVILEGE_RE = re.compile(r"[A-Za-z][A-Za-z.]*")
LIST_SEPARATOR_RE = re.compile(r"[;,\s\0]+")

SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def split_list(text: str) -> list[str]:
    """Split a PVE list value: items separated by commas, semicolons, whitespace or NUL."""
    return [item for item in LIST_SEPARATOR_RE.split(text) if item]


def parse_size(text: str) -> int | None:
    """Return the byte count of a PVE size such as `8G`, `512M` or `1024` (bytes), or None."""
    match = DISK_SIZE_RE.fullmatch(text)
    if match is None:
        return None
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2) or ""])


def format_size(size: int) -> str:
    """Print bytes in the largest unit that divides them exactly, as PVE writes `size=8G`."""
    for unit in ("T", "G", "M", "K"):
        if size and size % SIZE_UNITS[unit] == 0:
            return f"{size // SIZE_UNITS[unit]}{unit}"
    return str(size)


def _regex_verifier(regex: re.Pattern[str], message: str):
    def verify(value: str) -> None:
        if not regex.fullmatch(value):
            raise FormatError(message.format(value=value))

    return verify


def verify_ipv4(value: str) -> None:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        raise FormatError("value does not look like a valid IPv4 address") from None


def verify_ipv6(value: str) -> None:
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        raise FormatError("value does not look like a valid IPv6 address") from None


def verify_ip(value: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise FormatError("value does not look like a valid IP address") from None


def verify_ipv4_config(value: str) -> None:
    if value in ("dhcp", "manual"):
        return
    try:
        ipaddress.IPv4Interface(value)
        if "/" not in value:
            raise ValueError(value)
    except ValueError:
        raise FormatError("value does not look like a valid IPv4 network configuration") from None


def verify_ipv6_config(value: str) -> None:
    if value in ("auto", "dhcp", "manual"):
        return
    try:
        ipaddress.IPv6Interface(value)
        if "/" not in value:
            raise ValueError(value)
    except ValueError:
        raise FormatError("value does not look like a valid IPv6 network configuration") from None


def verify_ip_list_with_link_local(value: str) -> None:
    """Nameserver lists: IP addresses, where an IPv6 link-local one may name its interface (`fe80::1%eth0`)."""
    for item in split_list(value):
        address, _, interface = item.partition("%")
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            raise FormatError(f"unable to parse IP address '{item}'") from None
        if interface and not (parsed.version == 6 and parsed.is_link_local):
            raise FormatError(f"interface suffix only allowed on IPv6 link-local addresses: '{item}'")


def verify_dns_name_list(value: str) -> None:
    for item in split_list(value):
        if not DNS_NAME_RE.fullmatch(item):
            raise FormatError("value does not look like a valid DNS name")


def verify_configid_list(value: str) -> None:
    for item in split_list(value):
        if not CONFIG_ID_RE.fullmatch(item):
            raise FormatError(f"invalid configuration ID '{item}'")


def verify_tag_list(value: str) -> None:
    tags = split_list(value)
    for tag in tags:
        if not TAG_RE.fullmatch(tag):
            raise FormatError(f"invalid characters in tag '{tag}'")


def verify_disk_size(value: str) -> None:
    if parse_size(value) is None:
        raise FormatError(f"value '{value}' is not a valid disk size")


def verify_mount_point_path(value: str) -> None:
    if re.search(r"(?:^|/)\.\.?(?:/|$)", value):
        raise FormatError(f"{value} contains illegal character sequences")


def verify_device_path(value: str) -> None:
    if not value.startswith("/dev/") or re.search(r"/\.\.?(?:/|$)", value):
        raise FormatError(f"{value} is not a valid device path")


def verify_startup_order(value: str) -> None:
    for part in value.split(","):
        if not re.fullmatch(r"(?:order=)?\d+|up=\d+|down=\d+", part):
            raise FormatError("unable to parse startup options")


@functools.cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def verify_ct_timezone(value: str) -> None:
    if value == "host" or value in _time_zones():
        return
    raise FormatError(f"invalid time zone '{value}'")


def verify_storage_content(value: str) -> None:
    if value not in STORAGE_CONTENT_TYPES:
        raise FormatError(f"invalid content type '{value}'")


def verify_storage_content_list(value: str) -> None:
    for item in split_list(value):
        verify_storage_content(item)


def verify_task_status_list(value: str) -> None:
    for item in split_list(value):
        if item not in TASK_STATUS_TYPES:
            raise FormatError(f"invalid task status type '{item}'")


def verify_privilege_list(value: str) -> None:
    for item in split_list(value):
        if not PRIVILEGE_RE.fullmatch(item):
            raise FormatError(f"invalid privilege name '{item}'")


def verify_node_list(value: str) -> None:
    for item in split_list(value):
        if not NODE_NAME_RE.fullmatch(item):
            raise FormatError("value does not look like a valid node name")


_NAMED_FORMATS = {
    "pve-node": _regex_verifier(NODE_NAME_RE, "value does not look like a valid node name"),
    "pve-node-list": verify_node_list,
    "pve-vmid": lambda value: None,  # the integer range in the schema is the whole rule
    "pve-storage-id": _regex_verifier(STORAGE_ID_RE, "storage ID '{value}' contains illegal characters"),
    "pve-configid": _regex_verifier(CONFIG_ID_RE, "invalid configuration ID '{value}'"),
    "pve-configid-list": verify_configid_list,
    "pve-poolid": _regex_verifier(POOL_ID_RE, "pool name '{value}' contains illegal characters"),
    "pve-realm": _regex_verifier(REALM_RE, "realm name '{value}' contains illegal characters"),
    "pve-priv-list": verify_privilege_list,
    "pve-volume-id": _regex_verifier(VOLUME_ID_RE, "unable to parse volume ID '{value}'"),
    "pve-lxc-mp-string": verify_mount_point_path,
    "pve-lxc-dev-string": verify_device_path,
    "pve-startup-order": verify_startup_order,
    "pve-tag-list": verify_tag_list,
    "pve-ct-timezone": verify_ct_timezone,
    "pve-storage-content": verify_storage_content,
    "pve-storage-content-list": verify_storage_content_list,
    "pve-task-status-type-list": verify_task_status_list,
    "pve-ipv4-config": verify_ipv4_config,
    "pve-ipv6-config": verify_ipv6_config,
    "dns-name": _regex_verifier(DNS_NAME_RE, "value does not look like a valid DNS name"),
    "dns-name-list": verify_dns_name_list,
    "disk-size": verify_disk_size,
    "mac-addr": _regex_verifier(MAC_RE, "value does not look like a valid unicast MAC address"),
    "ipv4": verify_ipv4,
    "ipv6": verify_ipv6,
    "ip": verify_ip,
    "lxc-ip-with-ll-iface-list": verify_ip_list_with_link_local,
    "address-list": verify_ip_list_with_link_local,
}

for _name, _verifier in _NAMED_FORMATS.items():
    FORMATS.register(_name, _verifier)

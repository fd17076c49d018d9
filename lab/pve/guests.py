"""Container records in the state and the checks PVE runs before touching one (lock, protection, perms)."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from lab.pve import lxcconf
from lab.pve.app import ApiError, fail, permission_denied
from lab.pve.auth import Caller
from lab.pve.schema import FormatError, parse_property_string, print_property_string

if TYPE_CHECKING:
    from lab.pve.app import PveApp
    from lab.pve.config import Storage

# Proxmox's own OUI prefix, which PVE uses for generated container MAC addresses.
MAC_PREFIX = "BC:24:11"


def guest_record(app: PveApp, vmid: int) -> dict[str, Any] | None:
    return app.store.data["guests"].get(str(vmid))


def load_guest(app: PveApp, node: str, vmid: int) -> dict[str, Any]:
    """Return the container record on node, or fail as PVE does when the config file is missing."""
    app.require_node(node)
    record = guest_record(app, vmid)
    if record is None or record["node"] != node or record["type"] != "lxc":
        raise fail(f"Configuration file 'nodes/{node}/lxc/{vmid}.conf' does not exist")
    return record


def check_vmid_unused(app: PveApp, vmid: int) -> None:
    record = guest_record(app, vmid)
    if record is not None:
        kind = "CT" if record["type"] == "lxc" else "VM"
        raise fail(f"{kind} {vmid} already exists on node '{record['node']}'")


def check_lock(record: dict[str, Any], vmid: int) -> None:
    lock = record["conf"].get("lock")
    if lock:
        raise fail(f"CT {vmid} is locked ({lock})")


def check_protection(record: dict[str, Any], message: str) -> None:
    if record["conf"].get("protection"):
        raise fail(f"{message} - protection mode enabled")


def is_running(app: PveApp, record: dict[str, Any], vmid: int) -> bool:
    return app.backend.status(record["node"], vmid).running


def digest(record: dict[str, Any]) -> str:
    return lxcconf.config_digest(record["conf"], record["pending"], record["pending_delete"])


def check_digest(record: dict[str, Any], expected: str | None) -> None:
    if expected is not None and expected != digest(record):
        raise fail("detected modified configuration - file changed by other user? Try again.")


def merged_config(record: dict[str, Any]) -> dict[str, Any]:
    """The configuration with pending changes applied, which `GET .../config` returns unless `current=1`."""
    merged = dict(record["conf"])
    merged.update(record["pending"])
    for key in record["pending_delete"]:
        merged.pop(key, None)
    return merged


def random_mac() -> str:
    tail = ":".join(f"{random.randrange(256):02X}" for _ in range(3))  # noqa: S311 - a MAC, not a secret
    return f"{MAC_PREFIX}:{tail}"


def normalize_net(text: str, keep_hwaddr: str | None = None) -> str:
    """Print a net[n] value as PVE stores it: `type=veth` and a generated `hwaddr` when none is given."""
    values = parse_property_string(lxcconf.NET_FORMAT, text)
    values["type"] = "veth"
    if not values.get("hwaddr"):
        values["hwaddr"] = keep_hwaddr or random_mac()
    return print_property_string(lxcconf.NET_FORMAT, values)


def storage_for(app: PveApp, storage_id: str, node: str, *, content: str = "rootdir") -> Storage:
    storage = app.storages.get(storage_id)
    if storage is None:
        raise fail(f"storage '{storage_id}' does not exist")
    if not storage.on_node(node):
        raise fail(f"storage '{storage_id}' is not available on node '{node}'")
    if content not in storage.content:
        raise ApiError(
            400,
            "Parameter verification failed.",
            {"storage": f"storage '{storage_id}' does not support container directories"},
        )
    return storage


def mount_point(key: str, text: str) -> dict[str, Any]:
    try:
        return lxcconf.parse_mount_point(key, text)
    except FormatError as exc:
        raise ApiError(400, "Parameter verification failed.", {key: f"invalid format - {exc}"}) from None


def features(text: str | None) -> dict[str, Any]:
    return parse_property_string(lxcconf.FEATURES_FORMAT, text) if text else {}


def check_root_only(
    caller: Caller,
    old_conf: dict[str, Any] | None,
    new_values: dict[str, Any],
    deletes: list[str],
    unprivileged: bool,
) -> None:
    """Reject what PVE leaves to root@pam alone (403), for every caller other than a root@pam password login."""
    if caller.is_root_password_login:
        return
    old_conf = old_conf or {}
    for key, value in new_values.items():
        _check_root_only_key(key, value, old_conf, unprivileged, deleting=False)
    for key in deletes:
        _check_root_only_key(key, None, old_conf, unprivileged, deleting=True)


def _check_root_only_key(key: str, value: Any, old_conf: dict[str, Any], unprivileged: bool, *, deleting: bool) -> None:
    if lxcconf.is_volume_key(key) and not deleting:
        kind = mount_point(key, str(value))["type"]
        if kind != "volume":
            raise permission_denied(f"mount point type {kind} is only allowed for root@pam")
    elif key.startswith("dev") and key[3:].isdigit():
        raise permission_denied("configuring device passthrough is only allowed for root@pam")
    elif key == "hookscript":
        raise permission_denied("changing the hookscript is only allowed for root@pam")
    elif key == "features":
        if not unprivileged:
            raise permission_denied("changing feature flags for privileged container is only allowed for root@pam")
        if _features_other_than_nesting_change(old_conf.get("features"), None if deleting else str(value)):
            raise permission_denied("changing feature flags (except nesting) is only allowed for root@pam")


def _features_other_than_nesting_change(old: str | None, new: str | None) -> bool:
    """Mirror PVE: a change to any flag but nesting, where a lone `nesting=1` counts as nesting only."""
    old_flags = features(old)
    new_flags = features(new)
    if new is not None and old_flags:
        return any(
            str(old_flags.get(key, "")) != str(new_flags.get(key, ""))
            for key in set(old_flags) | set(new_flags)
            if key != "nesting"
        )
    flags = new_flags if new is not None else old_flags
    only_nesting = len(flags) == 1 and bool(flags.get("nesting"))
    return bool(flags) and not only_nesting

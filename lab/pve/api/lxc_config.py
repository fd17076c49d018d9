"""Container configuration: `GET/PUT .../config`, `GET .../pending` and `PUT .../resize`.

Changes follow PVE's pending model. Every change is first written to the pending section. A stopped
container applies all of it at once, while a running one applies only what can change live (hotplug)
and keeps the rest pending until the next start or reboot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lab.pve import guests, lxcconf
from lab.pve.app import ApiError, Request, fail, param_error
from lab.pve.backends.base import BackendError
from lab.pve.formats import format_size, parse_size, split_list
from lab.pve.schema import Prop, parse_property_string, print_property_string, schema

if TYPE_CHECKING:
    from lab.pve.app import PveApp

GIB = 1024**3
PATH = {"node": lxcconf.NODE, "vmid": lxcconf.VMID}

GET_CONFIG_SCHEMA = schema(
    {
        **PATH,
        "current": Prop("boolean", default=0),
        "snapshot": Prop(format="pve-configid", max_length=40),
    }
)
PENDING_SCHEMA = schema(PATH)
RESIZE_SCHEMA = schema(
    {
        **PATH,
        "disk": Prop(
            optional=False,
            enum=("rootfs", *(f"mp{index}" for index in range(lxcconf.MAX_MOUNT_POINTS))),
        ),
        "size": Prop(optional=False, pattern=r"\+?\d+(\.\d+)?[KMGT]?"),
        "digest": Prop(max_length=40),
    }
)


def register(app: PveApp) -> None:
    app.route("GET", "/nodes/{node}/lxc/{vmid}/config", GET_CONFIG_SCHEMA)(get_config)
    app.route("PUT", "/nodes/{node}/lxc/{vmid}/config", lxcconf.UPDATE_SCHEMA)(put_config)
    app.route("GET", "/nodes/{node}/lxc/{vmid}/pending", PENDING_SCHEMA)(get_pending)
    app.route("PUT", "/nodes/{node}/lxc/{vmid}/resize", RESIZE_SCHEMA)(resize)


# Reading


def get_config(request: Request) -> dict[str, Any]:
    params = request.params
    with request.app.store.lock:
        record = guests.load_guest(request.app, params["node"], params["vmid"])
        snapshot = params.get("snapshot")
        if snapshot is not None:
            raise fail(f"snapshot '{snapshot}' does not exist")
        conf = dict(record["conf"]) if params.get("current") else guests.merged_config(record)
        conf["digest"] = guests.digest(record)
    return present_config(conf)


def present_config(conf: dict[str, Any]) -> dict[str, Any]:
    """PVE reads `description` back from comment lines, each ending in a newline."""
    result = dict(conf)
    description = result.get("description")
    if description is not None and not str(description).endswith("\n"):
        result["description"] = f"{description}\n"
    return result


def get_pending(request: Request) -> list[dict[str, Any]]:
    params = request.params
    with request.app.store.lock:
        record = guests.load_guest(request.app, params["node"], params["vmid"])
        conf, pending, deletes = record["conf"], record["pending"], set(record["pending_delete"])
        entries = []
        for key in sorted(set(conf) | set(pending) | deletes):
            entry: dict[str, Any] = {"key": key}
            if key in conf:
                entry["value"] = conf[key]
            if key in pending:
                entry["pending"] = pending[key]
            if key in deletes:
                entry["delete"] = 1
            entries.append(entry)
    return entries


# Updating


def put_config(request: Request) -> None:
    app, params = request.app, dict(request.params)
    node, vmid = params.pop("node"), params.pop("vmid")
    expected_digest = params.pop("digest", None)
    deletes = split_list(params.pop("delete", ""))
    reverts = split_list(params.pop("revert", ""))
    _check_delete_and_revert(params, deletes, reverts)

    with app.store.mutate():
        record = guests.load_guest(app, node, vmid)
        guests.check_digest(record, expected_digest)
        guests.check_lock(record, vmid)
        unprivileged = bool(record["conf"].get("unprivileged"))
        guests.check_root_only(request.caller, guests.merged_config(record), params, deletes, unprivileged)
        running = guests.is_running(app, record, vmid)
        errors = update_config(app, vmid, record, params, deletes=deletes, reverts=reverts, running=running)
    if errors:
        raise param_error(errors)


def _check_delete_and_revert(params: dict[str, Any], deletes: list[str], reverts: list[str]) -> None:
    errors: dict[str, str] = {}
    for key in deletes:
        if key in params:
            errors["delete"] = f"you can't use '-{key}' and -delete {key}' at the same time"
        elif lxcconf.config_key_prop(key) is None:
            errors["delete"] = f"unknown option '{key}'"
    for key in reverts:
        if key in params or key in deletes:
            errors["revert"] = f"you can't use '-{key}' and '-revert {key}' at the same time"
        elif lxcconf.config_key_prop(key) is None:
            errors["revert"] = f"unknown option '{key}'"
    if errors:
        raise param_error(errors)
    if not params and not deletes and not reverts:
        raise fail("no options specified")


def update_config(
    app: PveApp,
    vmid: int,
    record: dict[str, Any],
    values: dict[str, Any],
    *,
    deletes: list[str] | None = None,
    reverts: list[str] | None = None,
    running: bool,
    allow_unprivileged: bool = False,
) -> dict[str, str]:
    """Write values and deletes to the pending section, then apply or hotplug them; return per-key errors.

    Called with the state lock held. `allow_unprivileged` is set on create, where `unprivileged` may be set.
    """
    conf, pending, pending_delete = record["conf"], record["pending"], record["pending_delete"]
    for key in reverts or ():
        pending.pop(key, None)
        if key in pending_delete:
            pending_delete.remove(key)

    modified: set[str] = set()
    for key in deletes or ():
        if key not in conf and key not in pending:
            continue  # PVE only warns: "cannot delete '...' - not set in current configuration!"
        modified.add(key)
        if key in lxcconf.REQUIRED_KEYS:
            raise fail(f"unable to delete required option '{key}'")
        if key.startswith(("unused", "mp")):
            guests.check_protection(record, f"can't remove CT {vmid} drive '{key}'")
        if key == "unprivileged":
            raise fail(f"unable to delete read-only option: '{key}'")
        pending.pop(key, None)
        if key not in pending_delete:
            pending_delete.append(key)

    for key in sorted(values):
        modified.add(key)
        value = _checked_value(app, vmid, record, key, values[key], allow_unprivileged=allow_unprivileged)
        pending[key] = value
        if key in pending_delete:
            pending_delete.remove(key)

    _cleanup_pending(record)
    errors: dict[str, str] = {}
    if running:
        _hotplug_pending(app, vmid, record, modified, errors)
    else:
        apply_pending(app, vmid, record, modified, errors)
    return errors


def _checked_value(
    app: PveApp, vmid: int, record: dict[str, Any], key: str, value: Any, *, allow_unprivileged: bool
) -> Any:
    if lxcconf.is_volume_key(key):
        guests.check_protection(record, f"can't update CT {vmid} drive '{key}'")
        mount_point = guests.mount_point(key, str(value))
        if mount_point["type"] == "volume" and not lxcconf.NEW_DISK_RE.fullmatch(mount_point["volume"]):
            storage_id = mount_point["volume"].split(":", 1)[0]
            storage = app.storages.get(storage_id)
            if storage is None:
                raise fail(f"storage '{storage_id}' does not exist")
            if "rootdir" not in storage.content:
                raise fail(f"storage '{storage_id}' does not allow content type 'rootdir' (Container)")
    elif key in {"nameserver", "searchdomain"}:
        return lxcconf.normalize_nameserver(str(value))
    elif key == "unprivileged" and not allow_unprivileged:
        raise fail(f"unable to modify read-only option: '{key}'")
    elif key == "tags":
        return lxcconf.normalize_tags(str(value))
    elif key.startswith("dev") and "path" not in parse_property_string(lxcconf.DEVICE_FORMAT, str(value)):
        raise fail(f"Path is not defined for passthrough device {key}")
    return lxcconf.stored_value(key, value)


def _cleanup_pending(record: dict[str, Any]) -> None:
    """Drop pending values equal to the current ones and pending deletes of unset keys, as PVE does."""
    conf, pending = record["conf"], record["pending"]
    for key in list(pending):
        if key in conf and str(pending[key]) == str(conf[key]):
            del pending[key]
    record["pending_delete"][:] = [key for key in record["pending_delete"] if key in conf]


def apply_pending(
    app: PveApp, vmid: int, record: dict[str, Any], selection: set[str] | None, errors: dict[str, str]
) -> None:
    """Apply pending deletes and values to a stopped container (on update, start or reboot)."""
    conf, pending, pending_delete = record["conf"], record["pending"], record["pending_delete"]
    for key in sorted(pending_delete):
        if selection is not None and key not in selection:
            continue
        try:
            if key.startswith("mp"):
                mount_point = lxcconf.parse_mount_point(key, conf[key])
                if mount_point["type"] == "volume" and not _volume_in_use(record, mount_point["volume"], skip=key):
                    _add_unused_volume(conf, mount_point["volume"])
            elif key.startswith("unused"):
                _free_unused(app, record, key)
        except BackendError as exc:
            errors[key] = f"unable to apply pending change {key} : {exc}"
            continue
        conf.pop(key, None)
        pending_delete.remove(key)

    _cleanup_pending(record)
    for key in sorted(pending):
        if selection is not None and key not in selection:
            continue
        try:
            if key.startswith("mp"):
                _apply_pending_mount_point(app, vmid, record, key, running=False)
            elif key.startswith("net"):
                pending[key] = guests.normalize_net(pending[key])
        except (BackendError, ApiError) as exc:
            errors[key] = f"unable to apply pending change {key} : {exc}"
            continue
        conf[key] = pending.pop(key)


def _hotplug_pending(
    app: PveApp, vmid: int, record: dict[str, Any], selection: set[str], errors: dict[str, str]
) -> None:
    """Apply to a running container what PVE can change live; everything else stays pending."""
    conf, pending = record["conf"], record["pending"]
    applied: list[str] = []
    for key in sorted(pending):
        if key in selection and key in lxcconf.FASTPLUG_KEYS:
            conf[key] = pending.pop(key)
            applied.append(key)
    applied += _hotplug_deletes(app, record, selection, errors)
    applied += _hotplug_values(app, vmid, record, selection, errors)
    if applied:
        app.backend.apply_live(record["node"], vmid, conf, applied)


def _hotplug_deletes(app: PveApp, record: dict[str, Any], selection: set[str], errors: dict[str, str]) -> list[str]:
    conf, pending_delete = record["conf"], record["pending_delete"]
    applied = []
    for key in sorted(pending_delete):
        live = key in lxcconf.FASTPLUG_KEYS or key in lxcconf.LIVE_DELETE_KEYS or key.startswith(("net", "unused"))
        if key not in selection or not live:
            continue  # not hotpluggable: the delete stays pending
        try:
            if key.startswith("unused"):
                _free_unused(app, record, key)
        except BackendError as exc:
            errors[key] = f"unable to hotplug {key}: {exc}"
            continue
        conf.pop(key, None)
        pending_delete.remove(key)
        applied.append(key)
    return applied


def _hotplug_values(
    app: PveApp, vmid: int, record: dict[str, Any], selection: set[str], errors: dict[str, str]
) -> list[str]:
    conf, pending = record["conf"], record["pending"]
    applied = []
    for key in sorted(pending):
        new_device = key.startswith(("mp", "dev")) and key not in conf  # PVE never hotplugs over an existing one
        if key not in selection or not (key in lxcconf.LIVE_KEYS or key.startswith("net") or new_device):
            continue
        try:
            if key.startswith("net"):
                pending[key] = guests.normalize_net(pending[key])
            elif key.startswith("mp"):
                _apply_pending_mount_point(app, vmid, record, key, running=True)
        except (BackendError, ApiError) as exc:
            errors[key] = f"unable to hotplug {key}: {exc}"
            continue
        conf[key] = pending.pop(key)
        applied.append(key)
    return applied


def _apply_pending_mount_point(app: PveApp, vmid: int, record: dict[str, Any], key: str, *, running: bool) -> None:
    conf, pending = record["conf"], record["pending"]
    mount_point = lxcconf.parse_mount_point(key, pending[key])
    new_disk = lxcconf.NEW_DISK_RE.fullmatch(mount_point["volume"]) if mount_point["type"] == "volume" else None
    if new_disk is not None:
        storage_id, size_gib = new_disk.group(1), float(new_disk.group(2))
        if storage_id is None:
            raise fail(f"{key}: a new volume needs a storage, write it as STORAGE:SIZE_IN_GIB")
        storage = guests.storage_for(app, storage_id, record["node"])
        size = int(size_gib * GIB)
        mount_point["volume"] = app.backend.alloc_volume(record["node"], storage, vmid, size)
        mount_point["size"] = format_size(size)
    elif mount_point["type"] == "volume":
        size = app.backend.volume_size(record["node"], mount_point["volume"])
        if size is not None:
            mount_point["size"] = format_size(size)
    mount_point.pop("type")
    if isinstance(mount_point.get("size"), int):
        mount_point["size"] = format_size(mount_point["size"])
    pending[key] = print_property_string(lxcconf.mount_point_format(key), mount_point)

    old = conf.get(key)
    if old is not None:
        old_mount_point = lxcconf.parse_mount_point(key, old)
        if old_mount_point["type"] == "volume" and not _volume_in_use(record, old_mount_point["volume"], skip=key):
            _add_unused_volume(conf, old_mount_point["volume"])


def _volume_in_use(record: dict[str, Any], volid: str, *, skip: str) -> bool:
    for section in (record["conf"], record["pending"]):
        for key, value in section.items():
            if key == skip or not lxcconf.is_volume_key(key):
                continue
            if lxcconf.parse_mount_point(key, value)["volume"] == volid:
                return True
    return False


def _add_unused_volume(conf: dict[str, Any], volid: str) -> None:
    free_key = None
    for index in range(lxcconf.MAX_UNUSED):
        key = f"unused{index}"
        if key not in conf:
            free_key = free_key or key
        elif conf[key] == volid:
            return
    if free_key is None:
        raise fail("Too many unused volumes - please delete them first.")
    conf[free_key] = volid


def _free_unused(app: PveApp, record: dict[str, Any], key: str) -> None:
    volid = record["conf"][key]
    if not _volume_in_use(record, volid, skip=key):
        app.backend.free_volume(record["node"], volid)


# Resizing


def resize(request: Request) -> str:
    app, params = request.app, request.params
    node, vmid, disk = params["node"], params["vmid"], params["disk"]
    with app.store.mutate():
        record = guests.load_guest(app, node, vmid)
        guests.check_digest(record, params.get("digest"))
        guests.check_lock(record, vmid)
        value = record["conf"].get(disk)
        if value is None:
            raise fail(f"no such disk '{disk}'")
        mount_point = lxcconf.parse_mount_point(disk, value)
        if mount_point["type"] != "volume":
            raise fail(f"unable to resize mount point type {mount_point['type']}")
        volid = mount_point["volume"]
        current = app.backend.volume_size(node, volid)
        if current is None:
            raise fail(f"Could not determine current size of volume '{volid}'")
        size_text = params["size"]
        requested = parse_size(size_text.lstrip("+"))
        if requested is None:
            raise fail(f"invalid size string '{size_text}'")
        new_size = current + requested if size_text.startswith("+") else requested
        if new_size < current:
            raise fail("unable to shrink disk size")

    def work(context: Any) -> None:
        if new_size == current:
            context.log(f"disk '{disk}' is already at {format_size(current)}")
            return
        context.log(f"  Size of logical volume {volid} changed from {format_size(current)} to {format_size(new_size)}.")
        app.backend.resize_volume(node, volid, new_size)
        with app.store.mutate():
            record = guests.load_guest(app, node, vmid)
            resized = lxcconf.parse_mount_point(disk, record["conf"][disk])
            resized.pop("type")
            resized["size"] = format_size(new_size)
            record["conf"][disk] = print_property_string(lxcconf.mount_point_format(disk), resized)

    return app.tasks.spawn(node, "resize", str(vmid), request.caller.authid, work)

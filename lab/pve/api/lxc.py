"""Containers: create, list, destroy, convert to template and clone (`/nodes/{node}/lxc...`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lab.pve import guests, lxcconf
from lab.pve.api.lxc_config import apply_pending, update_config
from lab.pve.app import Request, fail, param_error
from lab.pve.formats import VOLUME_ID_RE, format_size, parse_size
from lab.pve.schema import Prop, print_property_string, schema
from lab.pve.tasks import TaskContext, TaskError

if TYPE_CHECKING:
    from lab.pve.app import PveApp

GIB = 1024**3
PATH = {"node": lxcconf.NODE, "vmid": lxcconf.VMID}
SSH_KEY_RE = re.compile(r"(?:(?:ssh|ecdsa|sk)-[\w@.+-]+)\s+[A-Za-z0-9+/=]+(?:\s.*)?")
OSTYPES = ("debian", "ubuntu", "alpine", "centos", "fedora", "opensuse", "archlinux", "gentoo", "devuan", "nixos")
OSTYPE_ALIASES = {"rockylinux": "centos", "almalinux": "centos", "oracle": "centos"}

LIST_SCHEMA = schema({"node": lxcconf.NODE})
INDEX_SCHEMA = schema(PATH)
DESTROY_SCHEMA = schema(
    {
        **PATH,
        "destroy-unreferenced-disks": Prop("boolean"),
        "force": Prop("boolean", default=0),
        "purge": Prop("boolean", default=0),
    }
)
TEMPLATE_SCHEMA = schema(PATH)
CLONE_SCHEMA = schema(
    {
        **PATH,
        "newid": Prop("integer", optional=False, minimum=100, maximum=999_999_999, format="pve-vmid"),
        "bwlimit": Prop("number", minimum=0),
        "description": Prop(),
        "full": Prop("boolean"),
        "hostname": Prop(format="dns-name"),
        "pool": Prop(format="pve-poolid"),
        "snapname": Prop(format="pve-configid", max_length=40),
        "storage": Prop(format="pve-storage-id"),
        "target": Prop(format="pve-node"),
    }
)


def register(app: PveApp) -> None:
    app.route("GET", "/nodes/{node}/lxc", LIST_SCHEMA)(list_containers)
    app.route("POST", "/nodes/{node}/lxc", lxcconf.CREATE_SCHEMA)(create)
    app.route("GET", "/nodes/{node}/lxc/{vmid}", INDEX_SCHEMA)(index)
    app.route("DELETE", "/nodes/{node}/lxc/{vmid}", DESTROY_SCHEMA)(destroy)
    app.route("POST", "/nodes/{node}/lxc/{vmid}/template", TEMPLATE_SCHEMA)(template)
    app.route("POST", "/nodes/{node}/lxc/{vmid}/clone", CLONE_SCHEMA)(clone)


def new_record(node: str) -> dict[str, Any]:
    return {"node": node, "type": "lxc", "conf": {}, "pending": {}, "pending_delete": []}


def container_status(app: PveApp, vmid: int, record: dict[str, Any]) -> dict[str, Any]:
    """Return the fields that `GET .../lxc`, `status/current` and `/cluster/resources` share for a container."""
    conf = record["conf"]
    runtime = app.backend.status(record["node"], vmid)
    memory = int(conf.get("memory", 512))
    rootfs_size = 0
    if "rootfs" in conf:
        size = lxcconf.parse_mount_point("rootfs", conf["rootfs"]).get("size")
        rootfs_size = parse_size(size) or 0 if isinstance(size, str) else 0
    entry: dict[str, Any] = {
        "vmid": vmid,
        "name": conf.get("hostname", f"CT{vmid}"),
        "status": "running" if runtime.running else "stopped",
        "type": "lxc",
        "uptime": runtime.uptime,
        "cpus": float(conf.get("cores", app.config.node_cpus)),
        "cpu": runtime.cpu,
        "maxmem": memory * 1024 * 1024,
        "mem": runtime.mem,
        "maxswap": int(conf.get("swap", 512)) * 1024 * 1024,
        "swap": runtime.swap,
        "maxdisk": rootfs_size,
        "disk": runtime.disk,
        "netin": runtime.netin,
        "netout": runtime.netout,
        "diskread": runtime.diskread,
        "diskwrite": runtime.diskwrite,
    }
    if runtime.pid is not None:
        entry["pid"] = runtime.pid
    if conf.get("template"):
        entry["template"] = 1
    if conf.get("lock"):
        entry["lock"] = conf["lock"]
    if conf.get("tags"):
        entry["tags"] = conf["tags"]
    return entry


def list_containers(request: Request) -> list[dict[str, Any]]:
    app, node = request.app, request.params["node"]
    app.require_node(node)
    with app.store.lock:
        records = [(int(vmid), record) for vmid, record in app.store.data["guests"].items() if record["node"] == node]
    return [container_status(app, vmid, record) for vmid, record in sorted(records, key=lambda item: item[0])]


def index(request: Request) -> list[dict[str, str]]:
    with request.app.store.lock:
        guests.load_guest(request.app, request.params["node"], request.params["vmid"])
    names = ("config", "pending", "status", "snapshot", "firewall", "rrd", "rrddata", "resize", "clone", "template")
    return [{"subdir": name} for name in names]


# Create


def detect_ostype(ostemplate: str) -> str:
    name = ostemplate.rsplit("/", 1)[-1].lower()
    for prefix, ostype in OSTYPE_ALIASES.items():
        if name.startswith(prefix):
            return ostype
    return next((ostype for ostype in OSTYPES if name.startswith(ostype)), "unmanaged")


def _validate_ssh_keys(keys: str) -> None:
    for line in keys.splitlines():
        if line.strip() and not line.lstrip().startswith("#") and not SSH_KEY_RE.fullmatch(line.strip()):
            raise fail(f"SSH public key validation error: '{line.strip()[:40]}' is not an OpenSSH public key")


@dataclass
class CreatePlan:
    """A validated create (or restore) call: the options PVE takes out before writing the config."""

    node: str
    vmid: int
    ostemplate: str
    restore: bool
    force: bool
    start_after: bool
    unprivileged: int | None
    pool: str | None
    default_storage: str
    settings: dict[str, Any]


def _create_plan(params: dict[str, Any]) -> CreatePlan:
    params = dict(params)
    for ignored in ("unique", "ha-managed", "bwlimit", "ignore-unpack-errors", "password"):
        params.pop(ignored, None)
    ssh_keys = params.pop("ssh-public-keys", None)
    if ssh_keys is not None:
        _validate_ssh_keys(ssh_keys)
    for key in [key for key in params if key.startswith("unused")]:
        del params[key]  # PVE: "ignoring 'unusedN', cannot create/restore with unused volume"
    restore = bool(params.pop("restore", 0))
    unprivileged = params.pop("unprivileged", None)
    if unprivileged is None and not restore:
        unprivileged = 1  # PVE creates unprivileged containers unless the request sets unprivileged=0
    return CreatePlan(
        node=params.pop("node"),
        vmid=params.pop("vmid"),
        ostemplate=params.pop("ostemplate"),
        restore=restore,
        force=bool(params.pop("force", 0)),
        start_after=bool(params.pop("start", 0)),
        unprivileged=unprivileged,
        pool=params.pop("pool", None),
        default_storage=params.pop("storage", "local"),
        settings=params,
    )


def create(request: Request) -> str:
    app, caller = request.app, request.caller
    plan = _create_plan(request.params)
    node, vmid = plan.node, plan.vmid
    app.require_node(node)
    with app.store.mutate() as state:
        replacing = _check_create_target(app, plan)
        guests.check_root_only(caller, None, plan.settings, [], bool(plan.unprivileged))
        _check_ostemplate(app, plan.ostemplate)
        disks = _create_disk_params(app, node, plan.settings, plan.default_storage)
        record = _new_config(app, plan, disks)
        old_record = state["guests"].get(str(vmid)) if replacing else None
        state["guests"][str(vmid)] = record

    allocated: list[str] = []

    def work(context: TaskContext) -> None:
        new_values = _allocate_disks(app, context, node=node, vmid=vmid, disks=disks, allocated=allocated)
        if not plan.restore and plan.ostemplate not in app.config.templates:
            raise TaskError(f"volume '{plan.ostemplate}' does not exist")
        context.log(f"extracting archive '{plan.ostemplate}'")
        if old_record is not None:
            _free_volumes(app, node, old_record)
        app.backend.create_container(node, vmid, record["conf"], plan.ostemplate)
        with app.store.mutate():
            conf = record["conf"]
            conf.update(new_values)
            conf.setdefault("arch", "amd64")
            conf.setdefault("ostype", detect_ostype(plan.ostemplate))
            context.log(f"Detected container architecture: {conf['arch']}")
            conf.pop("lock", None)
        if plan.start_after:
            start_container(app, node, vmid, context)

    def on_error(context: TaskContext, error: str) -> None:
        del error
        for volid in allocated:
            app.backend.free_volume(node, volid)
        with app.store.mutate() as state:
            if state["guests"].get(str(vmid)) is record:
                del state["guests"][str(vmid)]
        context.log(f"removed the configuration of CT {vmid} after the failure")

    verb = "restore" if plan.restore else "create"
    return app.tasks.spawn(
        node,
        "vzrestore" if plan.restore else "vzcreate",
        str(vmid),
        caller.authid,
        work,
        on_error=on_error,
        error_prefix=f"unable to {verb} CT {vmid} - ",
    )


def _check_create_target(app: PveApp, plan: CreatePlan) -> bool:
    """Check the VMID and pool; return True when a restore with `force` replaces an existing container."""
    existing = guests.guest_record(app, plan.vmid)
    replacing = existing is not None and plan.restore and plan.force
    if existing is None or not replacing:
        guests.check_vmid_unused(app, plan.vmid)
    else:
        if guests.is_running(app, existing, plan.vmid):
            raise fail("can't overwrite running container")
        guests.check_protection(existing, f"unable to restore CT {plan.vmid}")
    if plan.pool is not None and plan.pool not in app.config.pools:
        raise fail(f"pool '{plan.pool}' does not exist")
    return replacing


def _new_config(app: PveApp, plan: CreatePlan, disks: dict[str, str]) -> dict[str, Any]:
    """Build the config a create writes at once: the settings applied, `lock: create` until the task ends."""
    record = new_record(plan.node)
    settings = {key: value for key, value in plan.settings.items() if key not in disks}
    errors = update_config(app, plan.vmid, record, settings, running=False, allow_unprivileged=True)
    if errors:
        raise param_error(errors)
    if plan.unprivileged:
        record["conf"]["unprivileged"] = 1
    record["conf"]["lock"] = "create"
    if plan.pool is not None:
        record["pool"] = plan.pool
    return record


def _check_ostemplate(app: PveApp, ostemplate: str) -> None:
    match = VOLUME_ID_RE.fullmatch(ostemplate)
    if match is None:
        raise fail(f"unable to parse volume ID '{ostemplate}'")
    if match.group(1) not in app.storages:
        raise fail(f"storage '{match.group(1)}' does not exist")


def _create_disk_params(app: PveApp, node: str, params: dict[str, Any], default_storage: str) -> dict[str, str]:
    """Pick rootfs and mp[n] out of the create parameters; a bare size means the default storage."""
    disks: dict[str, str] = {}
    for key, value in params.items():
        if lxcconf.is_volume_key(key):
            text = str(value)
            disks[key] = f"{default_storage}:{text}" if re.fullmatch(r"\d+(\.\d+)?", text) else text
    if disks and "rootfs" not in disks:
        raise fail("mount points configured, but 'rootfs' not set - aborting")
    for key, text in disks.items():
        mount_point = guests.mount_point(key, text)
        if mount_point["type"] == "volume":
            guests.storage_for(app, mount_point["volume"].split(":", 1)[0], node)
    if "rootfs" not in disks:
        guests.storage_for(app, default_storage, node)
        disks["rootfs"] = f"{default_storage}:4"  # PVE's default root disk: 4 GiB
    return disks


def _allocate_disks(
    app: PveApp, context: TaskContext, *, node: str, vmid: int, disks: dict[str, str], allocated: list[str]
) -> dict[str, str]:
    values: dict[str, str] = {}
    for key in sorted(disks, key=lambda name: (name != "rootfs", len(name), name)):
        mount_point = lxcconf.parse_mount_point(key, disks[key])
        new_disk = lxcconf.NEW_DISK_RE.fullmatch(mount_point["volume"]) if mount_point["type"] == "volume" else None
        if new_disk is not None:
            storage = guests.storage_for(app, new_disk.group(1), node)
            size = int(float(new_disk.group(2)) * GIB)
            volid = app.backend.alloc_volume(node, storage, vmid, size)
            allocated.append(volid)
            context.log(f'  Logical volume "{volid.split(":", 1)[1]}" created.')
            mount_point["volume"] = volid
            mount_point["size"] = format_size(size)
        elif mount_point["type"] == "volume":
            size = app.backend.volume_size(node, mount_point["volume"])
            if size is None:
                raise TaskError(f"volume '{mount_point['volume']}' does not exist")
            mount_point["size"] = format_size(size)
        mount_point.pop("type")
        values[key] = print_property_string(lxcconf.mount_point_format(key), mount_point)
    return values


def _volumes_of(record: dict[str, Any]) -> list[str]:
    volumes = []
    for key, value in record["conf"].items():
        if lxcconf.is_volume_key(key):
            mount_point = lxcconf.parse_mount_point(key, value)
            if mount_point["type"] == "volume":
                volumes.append(mount_point["volume"])
        elif key.startswith("unused"):
            volumes.append(str(value))
    return volumes


def _free_volumes(app: PveApp, node: str, record: dict[str, Any]) -> None:
    for volid in _volumes_of(record):
        app.backend.free_volume(node, volid)


def start_container(app: PveApp, node: str, vmid: int, context: TaskContext) -> None:
    errors: dict[str, str] = {}
    with app.store.mutate():
        record = guests.load_guest(app, node, vmid)
        if record["pending"] or record["pending_delete"]:
            apply_pending(app, vmid, record, None, errors)
        conf = dict(record["conf"])
    for message in errors.values():
        context.log(message)
    app.backend.start(node, vmid, conf)


# Destroy


def destroy(request: Request) -> str:
    app, params = request.app, request.params
    node, vmid = params["node"], params["vmid"]
    force = bool(params.get("force"))
    unreferenced = bool(params.get("destroy-unreferenced-disks"))
    with app.store.lock:
        record = guests.load_guest(app, node, vmid)
        guests.check_lock(record, vmid)
        guests.check_protection(record, f"can't remove CT {vmid}")
        running = guests.is_running(app, record, vmid)
        if running and not force:
            raise fail(f"unable to destroy CT {vmid} - container is running")

    def work(context: TaskContext) -> None:
        if running:
            app.backend.stop(node, vmid)
            context.log(f"stopped CT {vmid} before destroying it")
        with app.store.lock:
            current = guests.load_guest(app, node, vmid)
        for volid in _volumes_of(current):
            app.backend.free_volume(node, volid)
            context.log(f'  Logical volume "{volid.split(":", 1)[1]}" successfully removed.')
        if unreferenced:
            for storage in app.storages.values():
                if not storage.on_node(node):
                    continue
                for entry in app.backend.list_volumes(node, storage):
                    if entry["vmid"] == vmid:
                        app.backend.free_volume(node, entry["volid"])
                        context.log(f"removed unreferenced volume {entry['volid']}")
        app.backend.destroy(node, vmid)
        with app.store.mutate() as state:
            state["guests"].pop(str(vmid), None)

    return app.tasks.spawn(node, "vzdestroy", str(vmid), request.caller.authid, work)


# Template and clone


def template(request: Request) -> None:
    """Convert to a template in a worker; PVE returns null here, so clients poll the config for `template: 1`."""
    app, params = request.app, request.params
    node, vmid = params["node"], params["vmid"]
    with app.store.lock:
        record = guests.load_guest(app, node, vmid)
        guests.check_lock(record, vmid)
        if record["conf"].get("template"):
            raise fail("you can't convert a template to a template")
        if guests.is_running(app, record, vmid):
            raise fail("you can't convert a CT to template if the CT is running")

    def work(context: TaskContext) -> None:
        with app.store.lock:
            conf = dict(guests.load_guest(app, node, vmid)["conf"])
        converted: dict[str, str] = {}
        for key, value in conf.items():
            if not lxcconf.is_volume_key(key):
                continue
            mount_point = lxcconf.parse_mount_point(key, value)
            if mount_point["type"] != "volume":
                continue
            mount_point["volume"] = app.backend.create_base(node, mount_point["volume"])
            context.log(f"converted {key} to base volume {mount_point['volume']}")
            mount_point.pop("type")
            if isinstance(mount_point.get("size"), int):
                mount_point["size"] = format_size(mount_point["size"])
            converted[key] = print_property_string(lxcconf.mount_point_format(key), mount_point)
        with app.store.mutate():
            record = guests.load_guest(app, node, vmid)
            record["conf"].update(converted)
            record["conf"]["template"] = 1

    app.tasks.spawn(node, "vztemplate", str(vmid), request.caller.authid, work)


def clone(request: Request) -> str:
    app, params = request.app, request.params
    node, vmid, newid = params["node"], params["vmid"], params["newid"]
    target = params.get("target", node)
    storage_id = params.get("storage")
    with app.store.mutate() as state:
        source = guests.load_guest(app, node, vmid)
        guests.check_lock(source, vmid)
        guests.check_vmid_unused(app, newid)
        if params.get("snapname") is not None:
            raise fail(f"snapshot '{params['snapname']}' does not exist")
        is_template = bool(source["conf"].get("template"))
        full = bool(params["full"]) if "full" in params else not is_template
        if not full and not is_template:
            raise fail("linked clone is only possible from a template - set 'full' to copy a container")
        if not full and storage_id is not None:
            raise param_error({"storage": "storage is only allowed for full clones"})
        app.require_node(target)
        pool = params.get("pool")
        if pool is not None and pool not in app.config.pools:
            raise fail(f"pool '{pool}' does not exist")
        disks = _clone_plan(app, source, node, target, storage_id)
        record = _clone_record(source, params, target, disks)
        state["guests"][str(newid)] = record

    allocated: list[str] = []

    def work(context: TaskContext) -> None:
        values: dict[str, str] = {}
        for key, (mount_point, storage) in disks.items():
            volid = app.backend.clone_volume(node, mount_point["volume"], storage, newid, full=full)
            allocated.append(volid)
            context.log(f"create {'full' if full else 'linked'} clone of {key} ({mount_point['volume']})")
            cloned = {**mount_point, "volume": volid}
            cloned.pop("type")
            size = app.backend.volume_size(target, volid)
            if size is not None:
                cloned["size"] = format_size(size)
            values[key] = print_property_string(lxcconf.mount_point_format(key), cloned)
        with app.store.mutate():
            record["conf"].update(values)
            record["conf"].pop("lock", None)

    def on_error(context: TaskContext, error: str) -> None:
        del context, error
        for volid in allocated:
            app.backend.free_volume(target, volid)
        with app.store.mutate() as state:
            if state["guests"].get(str(newid)) is record:
                del state["guests"][str(newid)]

    return app.tasks.spawn(
        node,
        "vzclone",
        str(vmid),
        request.caller.authid,
        work,
        on_error=on_error,
        error_prefix="clone failed: ",
    )


def _clone_record(source: dict[str, Any], params: dict[str, Any], target: str, disks: dict[str, Any]) -> dict[str, Any]:
    """Copy the source config without volumes, template flag and unused disks; new MACs, `lock: create`."""
    record = new_record(target)
    conf = record["conf"]
    for key, value in source["conf"].items():
        if key in ("template", "lock") or key.startswith("unused") or key in disks:
            continue
        conf[key] = guests.normalize_net(value) if key.startswith("net") else value
    conf["hostname"] = params.get("hostname", conf.get("hostname", f"CT{params['newid']}"))
    if "description" in params:
        conf["description"] = params["description"]
    conf["lock"] = "create"
    if params.get("pool") is not None:
        record["pool"] = params["pool"]
    return record


def _clone_plan(
    app: PveApp, source: dict[str, Any], node: str, target: str, storage_id: str | None
) -> dict[str, tuple[dict[str, Any], Any]]:
    plan: dict[str, tuple[dict[str, Any], Any]] = {}
    for key, value in source["conf"].items():
        if not lxcconf.is_volume_key(key):
            continue
        mount_point = lxcconf.parse_mount_point(key, value)
        if mount_point["type"] != "volume":
            raise fail(f"unable to clone mountpoint '{key}' (type {mount_point['type']})")
        source_storage = app.storages[mount_point["volume"].split(":", 1)[0]]
        if target != node and not source_storage.shared:
            raise fail(f"unable to clone to node '{target}': volume '{mount_point['volume']}' is on local storage")
        storage = guests.storage_for(app, storage_id, target) if storage_id else source_storage
        plan[key] = (mount_point, storage)
    return plan

"""Cluster-wide reads: `/version`, `/cluster/status`, `/cluster/resources`, `/cluster/nextid`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lab.pve.api.lxc import container_status
from lab.pve.api.storage import storage_status
from lab.pve.app import Request, fail, param_error
from lab.pve.schema import Prop, schema

if TYPE_CHECKING:
    from lab.pve.app import PveApp

RESOURCES_SCHEMA = schema({"type": Prop(enum=("vm", "storage", "node", "sdn"))})
NEXTID_SCHEMA = schema({"vmid": Prop("integer", minimum=100, maximum=999_999_999, format="pve-vmid")})
POOL_TYPES = ("qemu", "lxc", "storage")
POOLS_SCHEMA = schema({"poolid": Prop(format="pve-poolid"), "type": Prop(enum=POOL_TYPES, requires="poolid")})
POOL_SCHEMA = schema({"poolid": Prop(optional=False, format="pve-poolid"), "type": Prop(enum=POOL_TYPES)})
FIRST_VMID = 100


def register(app: PveApp) -> None:
    app.route("GET", "/version", schema())(version)
    app.route("GET", "/cluster/status", schema())(cluster_status)
    app.route("GET", "/cluster/resources", RESOURCES_SCHEMA)(resources)
    app.route("GET", "/cluster/nextid", NEXTID_SCHEMA)(nextid)
    app.route("GET", "/pools", POOLS_SCHEMA)(list_pools)
    app.route("GET", "/pools/{poolid}", POOL_SCHEMA)(get_pool)


def version(request: Request) -> dict[str, Any]:
    release = ".".join(request.app.config.version.split(".")[:2])
    return {"version": request.app.config.version, "release": release, "repoid": "0d2a5e3c", "console": "xtermjs"}


def cluster_status(request: Request) -> list[dict[str, Any]]:
    config = request.app.config
    entries: list[dict[str, Any]] = [
        {
            "type": "cluster",
            "id": "cluster",
            "name": config.cluster_name,
            "nodes": len(config.nodes),
            "quorate": 1,
            "version": len(config.nodes) + 1,
        }
    ]
    for number, node in enumerate(config.nodes, start=1):
        entries.append(
            {
                "type": "node",
                "id": f"node/{node}",
                "name": node,
                "nodeid": number,
                "ip": f"127.0.0.{number + 1}",
                "online": 1,
                "local": 1 if number == 1 else 0,
                "level": "",
            }
        )
    return entries


def node_resource(request: Request, node: str) -> dict[str, Any]:
    config = request.app.config
    return {
        "id": f"node/{node}",
        "type": "node",
        "node": node,
        "status": "online",
        "maxcpu": config.node_cpus,
        "cpu": 0.02,
        "maxmem": config.node_memory,
        "mem": config.node_memory // 8,
        "maxdisk": 100 * 1024**3,
        "disk": 10 * 1024**3,
        "uptime": 86400,
        "level": "",
        "cgroup-mode": 2,
    }


def resources(request: Request) -> list[dict[str, Any]]:
    app, kind = request.app, request.params.get("type")
    entries: list[dict[str, Any]] = []
    if kind in (None, "vm"):
        with app.store.lock:
            records = sorted(((int(vmid), record) for vmid, record in app.store.data["guests"].items()))
        for vmid, record in records:
            entry = container_status(app, vmid, record)
            entry.update({"id": f"lxc/{vmid}", "node": record["node"], "maxcpu": entry.pop("cpus")})
            entry["template"] = int(bool(record["conf"].get("template")))
            if record.get("pool"):
                entry["pool"] = record["pool"]
            entries.append(entry)
    if kind in (None, "node"):
        entries.extend(node_resource(request, node) for node in app.config.nodes)
    if kind in (None, "storage"):
        for node in app.config.nodes:
            for storage in app.storages.values():
                if not storage.on_node(node):
                    continue
                status = storage_status(app, node, storage)
                entries.append(
                    {
                        "id": f"storage/{node}/{storage.storage}",
                        "type": "storage",
                        "storage": storage.storage,
                        "node": node,
                        "status": "available",
                        "plugintype": storage.type,
                        "content": status["content"],
                        "shared": status["shared"],
                        "maxdisk": status["total"],
                        "disk": status["used"],
                    }
                )
    if kind is None:
        entries.extend({"id": f"pool/{pool}", "type": "pool", "pool": pool} for pool in app.config.pools)
    return entries


def nextid(request: Request) -> str:
    """Return the lowest free VMID; PVE sends it as a JSON string (the Perl scalar was used as a hash key)."""
    app = request.app
    with app.store.lock:
        used = {int(vmid) for vmid in app.store.data["guests"]}
    wanted = request.params.get("vmid")
    if wanted is not None:
        if wanted in used:
            raise param_error({"vmid": f"VM {wanted} already exists"})
        return str(wanted)
    candidate = FIRST_VMID
    while candidate in used:
        candidate += 1
    return str(candidate)


def _pool_members(app: PveApp, pool: str, kind: str | None) -> list[dict[str, Any]]:
    if kind not in (None, "lxc"):
        return []
    with app.store.lock:
        records = sorted((int(vmid), record) for vmid, record in app.store.data["guests"].items())
    return [
        {
            "id": f"lxc/{vmid}",
            "type": "lxc",
            "vmid": vmid,
            "node": record["node"],
            "name": record["conf"].get("hostname"),
        }
        for vmid, record in records
        if record.get("pool") == pool
    ]


def list_pools(request: Request) -> list[dict[str, Any]]:
    app, params = request.app, request.params
    wanted = params.get("poolid")
    if wanted is not None and wanted not in app.config.pools:
        raise fail(f"pool '{wanted}' does not exist")
    return [
        {"poolid": pool, "members": _pool_members(app, pool, params.get("type"))}
        for pool in app.config.pools
        if wanted in (None, pool)
    ]


def get_pool(request: Request) -> dict[str, Any]:
    app, pool = request.app, request.params["poolid"]
    if pool not in app.config.pools:
        raise fail(f"pool '{pool}' does not exist")
    return {"members": _pool_members(app, pool, request.params.get("type"))}

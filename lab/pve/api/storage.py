"""Storages: `GET /storage`, `GET /nodes/{node}/storage` and the content listing (templates, volumes)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lab.pve import lxcconf
from lab.pve.app import Request, fail
from lab.pve.config import Storage
from lab.pve.schema import Prop, schema

if TYPE_CHECKING:
    from lab.pve.app import PveApp

STORAGE_TYPES = (
    "btrfs",
    "cephfs",
    "cifs",
    "dir",
    "esxi",
    "iscsi",
    "iscsidirect",
    "lvm",
    "lvmthin",
    "nfs",
    "pbs",
    "rbd",
    "zfs",
    "zfspool",
)
STORAGE_ID = Prop(format="pve-storage-id")
CONFIG_LIST_SCHEMA = schema({"type": Prop(enum=STORAGE_TYPES)})
NODE_LIST_SCHEMA = schema(
    {
        "node": lxcconf.NODE,
        "content": Prop(format="pve-storage-content-list"),
        "enabled": Prop("boolean", default=0),
        "format": Prop("boolean", default=0),
        "storage": STORAGE_ID,
        "target": Prop(format="pve-node"),
    }
)
CONTENT_SCHEMA = schema(
    {
        "node": lxcconf.NODE,
        "storage": Prop(optional=False, format="pve-storage-id"),
        "content": Prop(format="pve-storage-content"),
        "vmid": Prop("integer", minimum=100, maximum=999_999_999, format="pve-vmid"),
    }
)
TEMPLATE_SIZE = 126 * 1024 * 1024


def register(app: PveApp) -> None:
    app.route("GET", "/storage", CONFIG_LIST_SCHEMA)(list_storage_config)
    app.route("GET", "/nodes/{node}/storage", NODE_LIST_SCHEMA)(list_node_storage)
    app.route("GET", "/nodes/{node}/storage/{storage}/content", CONTENT_SCHEMA)(list_content)


def storage_status(app: PveApp, node: str, storage: Storage) -> dict[str, Any]:
    used = app.backend.storage_used(node, storage)
    if "vztmpl" in storage.content:
        used += TEMPLATE_SIZE * sum(1 for volid in app.config.templates if volid.startswith(f"{storage.storage}:"))
    return {
        "storage": storage.storage,
        "type": storage.type,
        "content": ",".join(sorted(storage.content)),
        "shared": int(storage.shared),
        "active": 1,
        "enabled": 1,
        "total": storage.total,
        "used": used,
        "avail": max(0, storage.total - used),
        "used_fraction": used / storage.total if storage.total else 0.0,
    }


def list_storage_config(request: Request) -> list[dict[str, Any]]:
    kind = request.params.get("type")
    entries = []
    for storage in request.app.storages.values():
        if kind is not None and storage.type != kind:
            continue
        entry: dict[str, Any] = {
            "storage": storage.storage,
            "type": storage.type,
            "content": ",".join(sorted(storage.content)),
            "shared": int(storage.shared),
            "digest": "0" * 40,
        }
        if storage.nodes is not None:
            entry["nodes"] = ",".join(storage.nodes)
        entries.append(entry)
    return entries


def list_node_storage(request: Request) -> list[dict[str, Any]]:
    app, params = request.app, request.params
    node = params["node"]
    app.require_node(node)
    wanted_content = set(params.get("content", "").replace(";", ",").split(",")) - {""}
    entries = []
    for storage in app.storages.values():
        if not storage.on_node(node):
            continue
        if params.get("storage") not in (None, storage.storage):
            continue
        if wanted_content and not wanted_content & set(storage.content):
            continue
        entries.append(storage_status(app, node, storage))
    return entries


def list_content(request: Request) -> list[dict[str, Any]]:
    app, params = request.app, request.params
    node, storage_id = params["node"], params["storage"]
    app.require_node(node)
    storage = app.storages.get(storage_id)
    if storage is None or not storage.on_node(node):
        raise fail(f"storage '{storage_id}' does not exist")
    entries: list[dict[str, Any]] = []
    if "vztmpl" in storage.content:
        entries.extend(
            {"volid": volid, "content": "vztmpl", "format": volid.rsplit(".", 1)[-1], "size": TEMPLATE_SIZE, "ctime": 0}
            for volid in app.config.templates
            if volid.startswith(f"{storage_id}:")
        )
    entries.extend(app.backend.list_volumes(node, storage))
    content = params.get("content")
    if content is not None:
        entries = [entry for entry in entries if entry["content"] == content]
    vmid = params.get("vmid")
    if vmid is not None:
        entries = [entry for entry in entries if entry.get("vmid") == vmid]
    return entries

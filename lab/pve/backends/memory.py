"""A backend that only records volumes and container run states in the double's state file."""

from __future__ import annotations

import re
import time
from typing import Any

from lab.pve.backends.base import Backend, BackendError, RuntimeStatus
from lab.pve.config import Storage

LINKED_CLONE_TYPES = frozenset({"lvmthin", "zfspool", "rbd"})
FILE_TYPES = frozenset({"dir", "nfs", "cifs", "btrfs", "cephfs"})


def volume_scope(node: str, storage: Storage) -> str:
    """Shared storages hold one set of volumes for the cluster; local ones one set per node."""
    return f"shared/{storage.storage}" if storage.shared else f"{node}/{storage.storage}"


class MemoryBackend(Backend):
    name = "memory"

    # Volumes

    def _volumes(self, state: dict[str, Any], node: str, storage: Storage) -> dict[str, Any]:
        return state["volumes"].setdefault(volume_scope(node, storage), {})

    def _split(self, volid: str) -> tuple[Storage, str]:
        storage_id, _, volname = volid.partition(":")
        storage = self.app.storages.get(storage_id)
        if storage is None or not volname:
            raise BackendError(f"storage '{storage_id}' does not exist")
        return storage, volname

    def _volume_name(self, volumes: dict[str, Any], storage: Storage, vmid: int, prefix: str = "vm") -> tuple[str, str]:
        used = {int(match.group(1)) for name in volumes if (match := re.search(rf"-{vmid}-disk-(\d+)", name))}
        index = next(number for number in range(len(used) + 1) if number not in used)
        if storage.type == "zfspool":
            return f"subvol-{vmid}-disk-{index}", "subvol"
        if storage.type in FILE_TYPES:
            return f"{vmid}/{prefix}-{vmid}-disk-{index}.raw", "raw"
        return f"{prefix}-{vmid}-disk-{index}", "raw"

    def alloc_volume(self, node: str, storage: Storage, vmid: int, size: int) -> str:
        with self.app.store.mutate() as state:
            volumes = self._volumes(state, node, storage)
            used = sum(entry["size"] for entry in volumes.values())
            if used + size > storage.total:
                free = storage.total - used
                raise BackendError(
                    f"unable to allocate {size} bytes on storage '{storage.storage}': only {free} bytes free"
                )
            volname, volume_format = self._volume_name(volumes, storage, vmid)
            volumes[volname] = {"size": size, "vmid": vmid, "format": volume_format, "ctime": int(time.time())}
        return f"{storage.storage}:{volname}"

    def free_volume(self, node: str, volid: str) -> None:
        storage, volname = self._split(volid)
        with self.app.store.mutate() as state:
            self._volumes(state, node, storage).pop(volname, None)

    def volume_size(self, node: str, volid: str) -> int | None:
        storage, volname = self._split(volid)
        with self.app.store.lock:
            entry = self._volumes(self.app.store.data, node, storage).get(volname)
            return None if entry is None else int(entry["size"])

    def resize_volume(self, node: str, volid: str, size: int) -> None:
        storage, volname = self._split(volid)
        with self.app.store.mutate() as state:
            volumes = self._volumes(state, node, storage)
            entry = volumes.get(volname)
            if entry is None:
                raise BackendError(f"volume '{volid}' does not exist")
            used = sum(item["size"] for item in volumes.values())
            if used - entry["size"] + size > storage.total:
                raise BackendError(f"unable to resize '{volid}': storage '{storage.storage}' is full")
            entry["size"] = size

    def clone_volume(self, node: str, volid: str, storage: Storage, vmid: int, *, full: bool) -> str:
        source_storage, source_name = self._split(volid)
        size = self.volume_size(node, volid)
        if size is None:
            raise BackendError(f"volume '{volid}' does not exist")
        if full:
            return self.alloc_volume(node, storage, vmid, size)
        if storage.storage != source_storage.storage or storage.type not in LINKED_CLONE_TYPES:
            raise BackendError(f"linked clone feature is not supported for '{volid}' on storage '{storage.storage}'")
        if "base-" not in source_name:
            raise BackendError(f"linked clone needs a template volume, '{volid}' is not one")
        with self.app.store.mutate() as state:
            volumes = self._volumes(state, node, storage)
            own_name, volume_format = self._volume_name(volumes, storage, vmid)
            volname = f"{source_name}/{own_name}"
            volumes[volname] = {"size": size, "vmid": vmid, "format": volume_format, "ctime": int(time.time())}
        return f"{storage.storage}:{volname}"

    def create_base(self, node: str, volid: str) -> str:
        storage, volname = self._split(volid)
        with self.app.store.mutate() as state:
            volumes = self._volumes(state, node, storage)
            entry = volumes.pop(volname, None)
            if entry is None:
                raise BackendError(f"volume '{volid}' does not exist")
            base_name = re.sub(r"(^|/)(vm|subvol)-", r"\1base-", volname, count=1)
            volumes[base_name] = entry
        return f"{storage.storage}:{base_name}"

    def list_volumes(self, node: str, storage: Storage) -> list[dict[str, Any]]:
        with self.app.store.lock:
            volumes = dict(self._volumes(self.app.store.data, node, storage))
        content = "images" if storage.type not in FILE_TYPES else "rootdir"
        return [
            {
                "volid": f"{storage.storage}:{name}",
                "size": entry["size"],
                "vmid": entry["vmid"],
                "format": entry["format"],
                "content": content,
                "ctime": entry.get("ctime", 0),
            }
            for name, entry in sorted(volumes.items())
        ]

    def storage_used(self, node: str, storage: Storage) -> int:
        with self.app.store.lock:
            return sum(entry["size"] for entry in self._volumes(self.app.store.data, node, storage).values())

    # Containers

    def create_container(self, node: str, vmid: int, conf: dict[str, Any], ostemplate: str) -> None:
        del node, vmid, conf, ostemplate

    def start(self, node: str, vmid: int, conf: dict[str, Any]) -> None:
        del node, conf
        with self.app.store.mutate() as state:
            state["runtime"][str(vmid)] = {"status": "running", "started": time.time()}

    def stop(self, node: str, vmid: int) -> None:
        del node
        with self.app.store.mutate() as state:
            state["runtime"][str(vmid)] = {"status": "stopped"}

    def destroy(self, node: str, vmid: int) -> None:
        del node
        with self.app.store.mutate() as state:
            state["runtime"].pop(str(vmid), None)

    def status(self, node: str, vmid: int) -> RuntimeStatus:
        del node
        with self.app.store.lock:
            runtime = self.app.store.data["runtime"].get(str(vmid)) or {}
        if runtime.get("status") != "running":
            return RuntimeStatus(running=False)
        uptime = int(time.time() - runtime.get("started", time.time()))
        return RuntimeStatus(running=True, uptime=uptime, pid=100000 + vmid % 100000, mem=64 * 1024 * 1024)

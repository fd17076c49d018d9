"""The backend interface: where the double keeps volumes and runs containers.

The API layer owns configuration, validation, tasks and locking, and a backend owns what a real node
owns: volumes and running containers. The memory backend only records them, and a backend that creates
real LXC containers implements the same methods. Methods raise `BackendError` with the message PVE would
print in the task log.

Start, stop, create, destroy, clone, template and resize call the backend from a task thread without
the state lock. Configuration updates call `alloc_volume`, `free_volume`, `volume_size` and
`apply_live` with the state lock held (PVE holds the container's config lock there too), and
`status` is called with the lock held, so these calls must be quick.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from lab.pve.app import PveApp
    from lab.pve.config import Storage


class BackendError(Exception):
    """A backend operation failed; the message ends up as the task's exit status."""


@dataclass(frozen=True)
class RuntimeStatus:
    """The live state of a container, as `status/current` reports it."""

    running: bool
    uptime: int = 0
    pid: int | None = None
    mem: int = 0
    swap: int = 0
    disk: int = 0
    cpu: float = 0.0
    netin: int = 0
    netout: int = 0
    diskread: int = 0
    diskwrite: int = 0


class Backend(ABC):
    name: ClassVar[str]

    def __init__(self, app: PveApp, options: dict[str, Any]) -> None:
        self.app = app
        self.options = options

    # Volumes

    @abstractmethod
    def alloc_volume(self, node: str, storage: Storage, vmid: int, size: int) -> str:
        """Allocate a new volume of size bytes for vmid and return its volume id (`local-lvm:vm-100-disk-0`)."""

    @abstractmethod
    def free_volume(self, node: str, volid: str) -> None:
        """Delete a volume; deleting one that does not exist is not an error."""

    @abstractmethod
    def volume_size(self, node: str, volid: str) -> int | None:
        """Return the size in bytes, or None when the volume does not exist."""

    @abstractmethod
    def resize_volume(self, node: str, volid: str, size: int) -> None:
        """Grow a volume to size bytes."""

    @abstractmethod
    def clone_volume(self, node: str, volid: str, storage: Storage, vmid: int, *, full: bool) -> str:
        """Copy (full) or link (from a base volume) a volume for vmid; return the new volume id."""

    @abstractmethod
    def create_base(self, node: str, volid: str) -> str:
        """Turn a volume into a template base volume and return its new id (`base-100-disk-0`)."""

    @abstractmethod
    def list_volumes(self, node: str, storage: Storage) -> list[dict[str, Any]]:
        """Return the volumes on a storage as content entries: volid, size, vmid, format, content."""

    @abstractmethod
    def storage_used(self, node: str, storage: Storage) -> int:
        """Return the bytes allocated on a storage."""

    # Containers

    @abstractmethod
    def create_container(self, node: str, vmid: int, conf: dict[str, Any], ostemplate: str) -> None:
        """Unpack ostemplate into the container's root file system."""

    @abstractmethod
    def start(self, node: str, vmid: int, conf: dict[str, Any]) -> None: ...

    @abstractmethod
    def stop(self, node: str, vmid: int) -> None: ...

    @abstractmethod
    def destroy(self, node: str, vmid: int) -> None:
        """Forget a container's runtime data; its volumes are freed separately."""

    @abstractmethod
    def status(self, node: str, vmid: int) -> RuntimeStatus: ...

    def apply_live(self, node: str, vmid: int, conf: dict[str, Any], keys: list[str]) -> None:
        """Apply changed keys to a running container (hotplug); the memory backend has nothing to do."""
        del node, vmid, conf, keys

    def close(self) -> None:  # noqa: B027 - an optional hook; the memory backend holds nothing
        """Release what the backend holds when the double stops."""

"""The double's cluster state and its persistence to one JSON file in the state directory.

Writes are batched. A mutation marks the state dirty, and a background thread writes it at most every
`interval_s` seconds through a temporary file and an atomic rename. A fleet of hundreds of containers
therefore does not rewrite the file on every request. `close()` writes what is left. A SIGKILL loses at most the
last interval of changes.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

LOG = logging.getLogger("lab.pve.state")
STATE_VERSION = 1


def empty_state() -> dict[str, Any]:
    return {
        "version": STATE_VERSION,
        "guests": {},  # vmid (str) -> {"node", "type", "conf", "pending", "pending_delete"}
        "volumes": {},  # "NODE/STORAGE" or "shared/STORAGE" -> {volname: {"size", "vmid", "format"}}
        "runtime": {},  # vmid (str) -> {"status", "started"}
        "tasks": {},  # node -> list of finished task records, newest last
        "pools": {},
        "extra": {},  # state owned by extensions, one key per extension
        "counters": {"pid": 1000},
    }


class StateStore:
    """Holds the state dict behind one re-entrant lock and writes it to `path` in the background."""

    def __init__(self, path: Path, interval_s: float = 0.05) -> None:
        self.path = path
        self.interval_s = interval_s
        self.lock = threading.RLock()
        self._write_lock = threading.Lock()  # one writer at a time: the background thread or an explicit flush
        self.data = self._load()
        self._dirty = threading.Event()
        self._closed = threading.Event()
        self._writes = 0
        self._writer = threading.Thread(target=self._write_loop, name="pve-state-writer", daemon=True)
        self._writer.start()

    def _load(self) -> dict[str, Any]:
        if not self.path.exists():
            return empty_state()
        data = json.loads(self.path.read_text())
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"{self.path}: state version {data.get('version')} is not {STATE_VERSION}; delete it")
        base = empty_state()
        base.update(data)
        return base

    @contextmanager
    def mutate(self) -> Iterator[dict[str, Any]]:
        """Lock the state for a change and schedule a write when the block ends."""
        with self.lock:
            yield self.data
            self._dirty.set()

    def replace(self, data: dict[str, Any]) -> None:
        with self.lock:
            self.data = data
            self._dirty.set()

    def snapshot(self) -> str:
        with self.lock:
            return json.dumps(self.data, sort_keys=True)

    def flush(self) -> None:
        """Write the state now: serialize under the state lock, write and rename outside it."""
        with self._write_lock:
            with self.lock:
                self._dirty.clear()
                text = json.dumps(self.data, separators=(",", ":"))
            tmp = self.path.with_name(f".{self.path.name}.tmp")
            with tmp.open("w") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
            self._writes += 1

    @property
    def writes(self) -> int:
        return self._writes

    def _write_loop(self) -> None:
        while not self._closed.is_set():
            self._dirty.wait(timeout=1.0)
            if self._closed.is_set():
                break
            if not self._dirty.is_set():
                continue
            time.sleep(self.interval_s)
            try:
                self.flush()
            except OSError:
                LOG.exception("writing state to %s failed; retrying", self.path)
                self._dirty.set()
                time.sleep(1.0)

    def close(self) -> None:
        self._closed.set()
        self._dirty.set()
        self._writer.join(timeout=5)
        self.flush()

"""Backends of the PVE double, selected by `backend:` in the lab configuration."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lab.pve.app import PveApp
    from lab.pve.backends.base import Backend

# Name in the lab config -> "module:class". A later backend registers itself here.
BACKENDS = {
    "memory": "lab.pve.backends.memory:MemoryBackend",
    "lxc": "lab.pve.backends.lxc:LxcBackend",
}


def load_backend(name: str, app: PveApp) -> Backend:
    target = BACKENDS.get(name, name if ":" in name else None)
    if target is None:
        raise ValueError(f"unknown backend '{name}'; known: {sorted(BACKENDS)} or 'package.module:Class'")
    module_name, _, class_name = target.partition(":")
    backend_class = getattr(importlib.import_module(module_name), class_name)
    return backend_class(app, dict(app.config.backend_options))

"""Exceptions of the lab Ceph package."""

from __future__ import annotations

import os


class LabCephError(RuntimeError):
    """A lab cluster operation failed; the message names the daemon, file or command involved."""


class CephCommandError(LabCephError):
    """A mon or mgr command returned a negative errno; `outs` is Ceph's own status line."""

    def __init__(self, prefix: str, code: int, outs: str) -> None:
        self.prefix = prefix
        self.errno = -code
        self.outs = outs
        super().__init__(f"{prefix}: {outs or os.strerror(-code)}")


class PoolNotFoundError(CephCommandError):
    """The named pool does not exist."""

"""The API routes of the double, one module per area of PVE's API tree."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lab.pve.api import access, cluster, lxc, lxc_config, lxc_status, nodes, storage, tasks

if TYPE_CHECKING:
    from lab.pve.app import PveApp


def register_all(app: PveApp) -> None:
    for module in (access, cluster, nodes, storage, tasks, lxc, lxc_config, lxc_status):
        module.register(app)

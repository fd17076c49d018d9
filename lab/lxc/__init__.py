"""LXC lab for molecule scenarios: a host-only bridge, a golden Debian 12 container, snapshot clones,
an apt caching proxy and the services' wheelhouse.

Run ``python -m lab.lxc --help`` for the command line; tests call ensure_lab() and the instances module.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass

from . import aptproxy, containers, golden, instances, network, wheelhouse
from ._proc import LOG, LabError, file_lock
from .settings import LabSettings

__all__ = ["LabError", "LabSettings", "LabStatus", "ensure_lab", "instances", "lab_status", "teardown"]


@dataclass(frozen=True)
class LabStatus:
    """What of the lab exists right now."""

    lab_dir: str
    bridge: bool
    proxy_pid: int | None
    proxy_port: int | None
    golden_current: bool
    wheelhouse: bool
    containers: dict[str, str]


def ensure_lab(settings: LabSettings, *, with_wheelhouse: bool = True) -> None:
    """Bring up bridge, apt proxy, golden container and (optionally) wheelhouse; each step only when missing."""
    with file_lock(settings.lock_file):
        network.ensure_bridge(settings)
        aptproxy.ensure_proxy(settings)
        golden.ensure_golden(settings)
        if with_wheelhouse:
            wheelhouse.ensure_wheelhouse(settings)


def lab_status(settings: LabSettings) -> LabStatus:
    port_file = settings.proxy_dir / "port"
    return LabStatus(
        lab_dir=str(settings.lab_dir),
        bridge=network.bridge_exists(settings),
        proxy_pid=aptproxy.running_pid(settings),
        proxy_port=int(port_file.read_text()) if port_file.is_file() else None,
        golden_current=golden.ensure_ssh_key(settings).is_file() and golden.is_current(settings),
        wheelhouse=(settings.wheelhouse / wheelhouse.STAMP_NAME).is_file(),
        containers={name: containers.state(settings, name) for name in containers.names(settings)},
    )


def teardown(settings: LabSettings, *, keep_images: bool = False) -> None:
    """Remove what the lab made: instances, proxy process, bridge and, unless keep_images, the lab directory.

    keep_images keeps the golden container, the debootstrap and apt caches and the wheelhouse, so the
    next ensure_lab takes seconds instead of minutes.
    """
    with file_lock(settings.lock_file):
        for name in containers.names(settings):
            if name == settings.golden_name:
                containers.stop(settings, name)
                continue
            instances.destroy(settings, name)
            LOG.info("instance %s destroyed", name)
        aptproxy.stop_proxy(settings)
        network.remove_bridge(settings)
        if not keep_images:
            containers.destroy(settings, settings.golden_name)
    if not keep_images:
        shutil.rmtree(settings.lab_dir, ignore_errors=True)
        LOG.info("lab directory %s removed", settings.lab_dir)

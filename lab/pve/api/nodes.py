"""Nodes: `GET /nodes`, `GET /nodes/{node}` and `GET /nodes/{node}/status`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lab.pve import lxcconf
from lab.pve.app import Request
from lab.pve.schema import schema

if TYPE_CHECKING:
    from lab.pve.app import PveApp

NODE_SCHEMA = schema({"node": lxcconf.NODE})
SUBDIRS = ("lxc", "qemu", "status", "storage", "tasks", "network", "version", "time", "dns", "syslog")


def register(app: PveApp) -> None:
    app.route("GET", "/nodes", schema())(list_nodes)
    app.route("GET", "/nodes/{node}", NODE_SCHEMA)(node_index)
    app.route("GET", "/nodes/{node}/status", NODE_SCHEMA)(node_status)


def list_nodes(request: Request) -> list[dict[str, Any]]:
    config = request.app.config
    return [
        {
            "node": node,
            "status": "online",
            "cpu": 0.02,
            "maxcpu": config.node_cpus,
            "mem": config.node_memory // 8,
            "maxmem": config.node_memory,
            "uptime": 86400,
            "level": "",
            "id": f"node/{node}",
            "type": "node",
            "ssl_fingerprint": "",
        }
        for node in config.nodes
    ]


def node_index(request: Request) -> list[dict[str, str]]:
    request.app.require_node(request.params["node"])
    return [{"name": name} for name in SUBDIRS]


def node_status(request: Request) -> dict[str, Any]:
    app = request.app
    app.require_node(request.params["node"])
    memory = app.config.node_memory
    return {
        "uptime": 86400,
        "cpu": 0.02,
        "wait": 0.0,
        "loadavg": ["0.10", "0.08", "0.05"],
        "kversion": "Linux 6.14.8-2-pve #1 SMP PREEMPT_DYNAMIC PMX 6.14.8-2",
        "pveversion": f"pve-manager/{app.config.version}/0d2a5e3c",
        "cpuinfo": {"cpus": app.config.node_cpus, "cores": app.config.node_cpus, "sockets": 1, "model": "lab CPU"},
        "memory": {"total": memory, "used": memory // 8, "free": memory - memory // 8},
        "swap": {"total": 8 * 1024**3, "used": 0, "free": 8 * 1024**3},
        "rootfs": {"total": 100 * 1024**3, "used": 10 * 1024**3, "free": 90 * 1024**3, "avail": 90 * 1024**3},
        "boot-info": {"mode": "efi", "secureboot": 0},
        "current-kernel": {"sysname": "Linux", "release": "6.14.8-2-pve", "machine": "x86_64", "version": "#1 SMP"},
    }

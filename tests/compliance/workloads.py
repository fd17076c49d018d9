"""What each workload runs: its systemd units, the users they run as and the ports they serve."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Unit:
    """A systemd unit of a workload and the non-root user that does its work.

    `root_master`: the unit keeps one root parent that only supervises (nginx's master, varnishd's
    manager), while every process that handles requests runs as `user`.
    """

    name: str
    user: str
    root_master: bool = False


@dataclass(frozen=True)
class Workload:
    units: tuple[Unit, ...]
    # Keys of retail_edge_ports that the workload serves on its container address.
    ports: tuple[str, ...]
    # Files that hold secrets and must not be readable by other users.
    secret_files: tuple[str, ...] = ()


WORKLOADS: dict[str, Workload] = {
    "varnish_edge": Workload(
        units=(Unit("varnish", "vcache"),),
        ports=("varnish_edge",),
        secret_files=("/etc/varnish/secret",),
    ),
    "inventory_api": Workload(
        units=(
            Unit("retail-edge-inventory", "retail-inventory"),
            Unit("retail-edge-inventory-sync", "retail-inventory"),
        ),
        ports=("inventory_api",),
        secret_files=("/etc/retail-edge/inventory/secrets.env",),
    ),
    "rules_engine": Workload(
        units=(Unit("retail-edge-rules", "retail-rules"),),
        ports=("rules_engine",),
        secret_files=("/etc/retail-edge/rules/secrets.env",),
    ),
    "pos_cache": Workload(
        units=(Unit("retail-edge-pos", "retail-pos"), Unit("retail-edge-pos-sync", "retail-pos")),
        ports=("pos_cache",),
        secret_files=("/etc/retail-edge/pos/secrets.env",),
    ),
    "vision_inference": Workload(
        units=(Unit("retail-edge-vision", "retail-vision"),),
        ports=("vision_inference",),
        secret_files=("/etc/retail-edge/vision/secrets.env",),
    ),
    "kiosk_cache": Workload(units=(Unit("nginx", "www-data", root_master=True),), ports=("kiosk_cache",)),
    "mqtt_broker": Workload(
        units=(Unit("mosquitto", "mosquitto"),),
        ports=("mqtt_broker",),
        secret_files=("/etc/mosquitto/passwd",),
    ),
    "observability": Workload(
        units=(Unit("prometheus", "prometheus"), Unit("prometheus-node-exporter", "prometheus")),
        ports=("prometheus", "node_exporter"),
    ),
}

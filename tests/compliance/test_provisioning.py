"""Each store's containers as its Proxmox VE API reports them, against the inventory (per PVE node)."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.pve_node


def containers_of_node(host: Any, declared: dict[str, Any], declared_all: dict[str, dict[str, Any]]) -> list[dict]:
    node = host.backend.host
    store = declared["store"]["id"]
    return [
        entry["container"]
        for entry in declared_all.values()
        if entry["kind"] == "container" and entry["store"]["id"] == store and entry["container"]["node"] == node
    ]


def test_declared_containers_exist_on_node(host, declared, declared_all, pve_containers) -> None:
    reported = pve_containers[declared["store"]["id"]]
    for container in containers_of_node(host, declared, declared_all):
        entry = reported.get(container["hostname"])
        assert entry is not None, f"{container['hostname']} is not in the PVE API of store {declared['store']['id']}"
        assert entry["vmid"] == container["vmid"]
        assert entry["node"] == host.backend.host


def test_containers_running_and_start_on_boot(host, declared, declared_all, pve_containers) -> None:
    reported = pve_containers[declared["store"]["id"]]
    for container in containers_of_node(host, declared, declared_all):
        entry = reported[container["hostname"]]
        assert entry["status"] == "running", container["hostname"]
        assert entry["parsed"].get("onboot") is True, container["hostname"]


def test_container_resources_as_declared(host, declared, declared_all, pve_containers) -> None:
    reported = pve_containers[declared["store"]["id"]]
    for container in containers_of_node(host, declared, declared_all):
        parsed = reported[container["hostname"]]["parsed"]
        assert parsed["memory"] == container["memory"], container["hostname"]
        assert parsed["cores"] == container["cores"], container["hostname"]
        assert parsed["rootfs"]["size"] == f"{container['disk']}G", container["hostname"]
        assert parsed["net0"]["ip"] == f"{container['address']}/{container['prefix_length']}", container["hostname"]


def test_containers_unprivileged_and_tagged(host, declared, declared_all, pve_containers) -> None:
    reported = pve_containers[declared["store"]["id"]]
    for container in containers_of_node(host, declared, declared_all):
        entry = reported[container["hostname"]]
        assert entry["parsed"].get("unprivileged") is True, container["hostname"]
        assert f"store-{declared['store']['id']}" in entry["tags"]
        assert container["workload"].replace("_", "-") in entry["tags"]

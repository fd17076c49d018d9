"""playbooks/drift.yml and the retail.edge.drift_report callback against a provisioned fleet."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pytest

from tests.fleet.fleetlab import PLAYBOOKS, FleetLab
from tests.support import ROOT, free_port

DRIFT = ROOT / "playbooks" / "drift.yml"
PROVISION = PLAYBOOKS / "provision.yml"
DEPLOY = PLAYBOOKS / "deploy.yml"
WAVES = ["canary", "wave1", "wave1", "wave1", "wave2", "wave2"]


@pytest.fixture
def converged(make_fleet, tmp_path) -> FleetLab:
    """Six stores with two containers each, provisioned and deployed as declared."""
    fleet = make_fleet(WAVES, workloads=["inventory_api", "pos_cache"], nodes=3)
    fleet.playbook(PROVISION, "--forks", "25")
    fleet.playbook(DEPLOY, "--forks", "25", extra_vars={"fleet_config_root": str(tmp_path / "config")})
    return fleet


def drift(fleet: FleetLab, tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    settings = {
        "drift_playbooks": [str(PROVISION), str(DEPLOY)],
        "drift_report_dir": str(tmp_path / "drift"),
        "drift_extra_vars": {"fleet_config_root": str(tmp_path / "config")},
        **overrides,
    }
    fleet.playbook(DRIFT, "--forks", "25", extra_vars=settings)
    return json.loads((tmp_path / "drift" / "latest.json").read_text())


def container_path(fleet: FleetLab, store: str, vmid: int) -> str:
    cluster = fleet.cluster(store)
    node = next(item["node"] for item in cluster.api("GET", "/cluster/resources", type="vm") if item["vmid"] == vmid)
    return f"/nodes/{node}/lxc/{vmid}/config"


def changed_memory(fleet: FleetLab, store: str, vmid: int, memory: int) -> None:
    """Change a container's memory through the store's PVE API, as someone at the console would."""
    fleet.cluster(store).api("PUT", container_path(fleet, store, vmid), memory=memory)


def drifted(report: dict[str, Any]) -> dict[str, list[str]]:
    return {store: entry["keys"] for store, entry in report["stores"].items() if entry["status"] != "in_sync"}


def test_report_names_changed_stores_and_keys(converged, tmp_path):
    changed_memory(converged, "s002", 204, 1024)  # pos_cache declared with 512 MiB
    changed_memory(converged, "s005", 202, 2048)  # inventory_api declared with 512 MiB
    settings = tmp_path / "config" / "s004-pos-cache" / "settings.yml"
    settings.write_text(settings.read_text().replace("version: 1.0.0", "version: 0.9.9-hotfix"))

    report = drift(converged, tmp_path)

    assert drifted(report) == {
        "s002": ["s002-pos-cache: memory"],
        "s004": [f"s004-pos-cache: {settings}"],
        "s005": ["s005-inventory-api: memory"],
    }
    assert report["summary"] == {"stores": 6, "drifted": 3, "errors": 0, "in_sync": 3, "hosts": 12}
    assert report["check_mode"] is True
    assert report["other_hosts"] == {}

    container = report["stores"]["s002"]["hosts"]["s002-pos-cache"]["changes"][0]
    assert container["category"] == "container"
    assert container["action"] == "retail.edge.pve_lxc"
    assert "-memory: 1024\n+memory: 512\n" in container["patch"]
    config = report["stores"]["s004"]["hosts"]["s004-pos-cache"]["changes"][0]
    assert config["category"] == "config"
    assert "-version: 0.9.9-hotfix\n+version: 1.0.0\n" in config["patch"]

    # Check mode reported the drift and left it in place.
    assert converged.cluster("s002").api("GET", container_path(converged, "s002", 204))["memory"] == 1024

    page = (tmp_path / "drift" / "latest.html").read_text()
    for store in ("s002", "s004", "s005"):
        assert f'id="store-{store}"' in page
    assert 'id="store-s001"' not in page
    assert html.escape("-memory: 1024") in page


def test_missing_containers_and_unreachable_store(converged, tmp_path):
    converged.cluster("s006").reset()  # the store's cluster lost every container
    unreachable = next(store for store in converged.stores if store["id"] == "s005")
    unreachable["pve_api_port"] = free_port()
    converged.write_inventory()

    report = drift(converged, tmp_path, drift_limit="wave_wave2:wave_canary")

    assert {store: entry["status"] for store, entry in report["stores"].items()} == {
        "s001": "in_sync",
        "s005": "error",
        "s006": "drifted",
    }
    errors = report["stores"]["s005"]["hosts"]["s005-pos-cache"]["errors"]
    assert errors[0]["kind"] == "failed"
    assert "Declare the container" in errors[0]["task"]
    # Check mode predicts the creation of a missing container: every declared key differs.
    assert {"s006-inventory-api: memory", "s006-pos-cache: net0"} <= set(report["stores"]["s006"]["keys"])

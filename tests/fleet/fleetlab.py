"""A fleet of store clusters on one PVE double, with the store registry and inventory that describe it.

Used by the fleet tests (through the `make_fleet` fixture) and by bench/fleet_scale.py.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lab.pve.fleet import FleetDouble
from lab.pve.testing import DEFAULT_LAB_CONFIG, PveDouble
from tests.support import run_playbook

HERE = Path(__file__).resolve().parent
PLAYBOOKS = HERE / "playbooks"
TOKEN_ID = "root@pam!automation"
TOKEN_SECRET = DEFAULT_LAB_CONFIG["tokens"][TOKEN_ID]["secret"]
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)


def recap(stdout: str) -> dict[str, dict[str, int]]:
    """Return the PLAY RECAP counters of an ansible-playbook run per host."""
    return {
        host: {"ok": int(ok), "changed": int(changed), "unreachable": int(unreachable), "failed": int(failed)}
        for host, ok, changed, unreachable, failed in RECAP.findall(stdout)
    }


def base_config() -> dict[str, Any]:
    """Lab configuration every store cluster shares: instant tasks, room for many containers."""
    config = copy.deepcopy(DEFAULT_LAB_CONFIG)
    config.pop("nodes")
    config["tasks"] = {"durations": {"default": 0.0}}
    # Writing 200 state files every 50 ms is wasted work in a test; half a second is plenty.
    config["persist"] = {"interval_s": 0.5}
    return config


def store_entry(store_id: str, index: int, wave: str, nodes: int) -> dict[str, Any]:
    return {
        "id": store_id,
        "region": ("eu-west", "eu-central", "us-east")[index % 3],
        "format": "fleet",
        "wave": wave,
        # One /24 per store: 10.<100 + index // 250>.<index % 250>.0.
        "subnet": f"10.{100 + index // 250}.{index % 250}.0/24",
        "nodes": [f"{store_id}-pve{number}" for number in range(1, nodes + 1)],
    }


@dataclass
class FleetLab:
    """Store clusters served by one double, their registry, and the inventory source that reads it."""

    root: Path
    double: FleetDouble
    stores: list[dict[str, Any]]
    workloads: list[str]
    extra_inventory: dict[str, Any] = field(default_factory=dict)

    @property
    def inventory(self) -> Path:
        return self.root / "inventory"

    def write_inventory(self) -> None:
        """Write the registry (outside the inventory folder, as the plugin requires) and the inventory source."""
        registry = self.root / "registry" / "stores.yml"
        registry.parent.mkdir(parents=True, exist_ok=True)
        registry.write_text(yaml.safe_dump({"stores": self.stores}, sort_keys=False))
        self.inventory.mkdir(parents=True, exist_ok=True)
        source = {
            "plugin": "retail.edge.stores",
            "registry": "../registry/stores.yml",
            "formats": {"fleet": {"workloads": self.workloads}},
            # The controller's interpreter for every host, also in nested ansible-playbook runs.
            "compose": {"ansible_python_interpreter": repr(sys.executable)},
            **self.extra_inventory,
        }
        (self.inventory / "fleet.stores.yml").write_text(yaml.safe_dump(source, sort_keys=False))

    def cluster(self, store_id: str) -> PveDouble:
        return self.double.cluster(store_id)

    def env(self) -> dict[str, str]:
        """Connection settings as AWX's PVE credential type injects them: one token, one CA bundle."""
        return {
            "PROXMOX_TOKEN_ID": TOKEN_ID,
            "PROXMOX_TOKEN_SECRET": TOKEN_SECRET,
            "PROXMOX_CA_PATH": str(self.double.ca_file),
        }

    def playbook(
        self,
        playbook: str | Path,
        *args: str,
        extra_vars: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        expect_rc: int | None = 0,
        timeout: float = 900,
    ) -> subprocess.CompletedProcess[str]:
        """Run a playbook against the fleet inventory with the fleet's connection settings."""
        return run_playbook(
            playbook,
            *args,
            inventory=self.inventory,
            extra_vars={"ansible_python_interpreter": sys.executable, **(extra_vars or {})},
            env={**self.env(), **(env or {})},
            expect_rc=expect_rc,
            timeout=timeout,
        )


def start_fleet(
    root: Path,
    waves: Sequence[str],
    *,
    workloads: Sequence[str] = ("inventory_api", "pos_cache"),
    nodes: int = 3,
    store_vars: Callable[[str], dict[str, Any]] | None = None,
    extra_inventory: Mapping[str, Any] | None = None,
) -> FleetLab:
    """Start one double serving a cluster per store (one store per entry of waves) and write the inventory.

    Each store's registry entry points `pve_api_host`/`pve_api_port` at its own cluster.
    """
    entries = [store_entry(f"s{index + 1:03d}", index, wave, nodes) for index, wave in enumerate(waves)]
    clusters = {entry["id"]: {"nodes": entry["nodes"], "cluster": entry["id"]} for entry in entries}
    double = FleetDouble(root / "pve", base_config(), clusters).start()
    for entry in entries:
        entry["pve_api_host"] = "127.0.0.1"
        entry["pve_api_port"] = double.ports[entry["id"]]
        if store_vars is not None:
            entry["vars"] = store_vars(entry["id"])
    lab = FleetLab(root, double, entries, list(workloads), dict(extra_inventory or {}))
    lab.write_inventory()
    return lab

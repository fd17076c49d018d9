"""Names and paths the demo and the end-to-end tests share."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from lab.lxc import LabSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
STORE_ID = "s001"
INVENTORY = REPO_ROOT / "inventories" / "lab"
# The node names of store s001 in inventories/lab; the double's lab configuration must list the same.
NODES = ("s001-pve1", "s001-pve2", "s001-pve3")


@dataclass(frozen=True)
class DemoSettings:
    """Where the lab lives and how its LXC containers are named.

    `RETAIL_EDGE_LAB_DIR` moves the lab directory (default `<repo>/.lab`). `RETAIL_EDGE_LAB_NAME_PREFIX`
    puts a prefix in front of every LXC container name of the store and renames the golden container to
    `<prefix>golden`, so two labs on one host never share an LXC name.
    """

    lab: LabSettings
    name_prefix: str

    @classmethod
    def from_env(cls) -> DemoSettings:
        lab = LabSettings.from_env()
        prefix = os.environ.get("RETAIL_EDGE_LAB_NAME_PREFIX", "")
        if prefix:
            lab = dataclasses.replace(lab, golden_name=f"{prefix}golden")
        return cls(lab=lab, name_prefix=f"{prefix}pve-")

    @property
    def lab_dir(self) -> Path:
        return self.lab.lab_dir

    @property
    def demo_dir(self) -> Path:
        """Files of the demo itself: the double's lab configuration, credentials, logs, PID files."""
        return self.lab_dir / "demo"

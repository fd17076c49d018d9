"""Fixtures of the end-to-end tests: the real LXC lab and a PVE double whose containers are LXC containers."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.demo.settings import DemoSettings
from lab.lxc import LabSettings, ensure_lab
from lab.pve.testing import DEFAULT_LAB_CONFIG, PveDouble

# LXC names of the containers these tests create start with this prefix, so they never collide with
# the demo's or another test area's containers on the same host.
TEST_NAME_PREFIX = "e2e-ct"


@pytest.fixture(scope="session")
def lxc_lab() -> LabSettings:
    """The LXC lab (bridge, apt proxy, golden container), built once and left in place for later runs."""
    settings = DemoSettings.from_env().lab
    ensure_lab(settings, with_wheelhouse=False)
    return settings


@pytest.fixture(scope="module")
def lxc_double(lxc_lab: LabSettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PveDouble]:
    """A PVE double with the lxc backend; every container it makes is destroyed at the end of the module."""
    config = copy.deepcopy(DEFAULT_LAB_CONFIG)
    config["backend"] = "lxc"
    config["backend_options"] = {
        "lab_dir": str(lxc_lab.lab_dir),
        "golden_name": lxc_lab.golden_name,
        "name_prefix": TEST_NAME_PREFIX,
    }
    double = PveDouble(tmp_path_factory.mktemp("pve-lxc"), config).start()
    yield double
    try:
        for vmid in list(double.state()["guests"]):
            node = double.state()["guests"][vmid]["node"]
            double.wait_task(double.api("DELETE", f"/nodes/{node}/lxc/{vmid}", force=1, purge=1), timeout=60)
    finally:
        double.stop()
        leftovers = [path.name for path in lxc_lab.lxcpath.glob(f"{TEST_NAME_PREFIX}*")]
        assert not leftovers, f"LXC containers left behind: {leftovers}"


def container_dir(lab: LabSettings, vmid: int) -> Path:
    return lab.lxcpath / f"{TEST_NAME_PREFIX}{vmid}"

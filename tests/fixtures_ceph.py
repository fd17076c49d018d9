"""Fixtures that run the real lab Ceph cluster (lab/ceph) for the tests that need one.

The cluster starts once per test session (about 5 s on 2 cores) and is stopped by pid at the end.
Tests that need a fresh cluster of their own start one in their tmp_path and stop it themselves.
`pve_ceph_double` is a PVE double whose pool routes act on that cluster.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.ceph import CephPools, LabCeph
from lab.pve.testing import DEFAULT_LAB_CONFIG, PveDouble
from tests.support import PVE_API_SCHEMA, pve_api_schema_index

# RETAIL_EDGE_PVE_API_SCHEMA points at the schema where the checkout does not sit beside it (a git worktree).
SCHEMA_PATH = Path(os.environ.get("RETAIL_EDGE_PVE_API_SCHEMA", str(PVE_API_SCHEMA)))


@pytest.fixture(scope="session")
def lab_ceph(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabCeph]:
    """A running single-node Ceph cluster shared by the session; pools made by a test are its to remove."""
    lab = LabCeph(tmp_path_factory.mktemp("lab-ceph"))
    try:
        lab.start()
        yield lab
    finally:
        lab.stop()


@pytest.fixture(scope="session")
def ceph_pools(lab_ceph: LabCeph) -> Iterator[CephPools]:
    """librados pool operations as client.admin on the session's lab cluster."""
    pools = CephPools(str(lab_ceph.conf))
    yield pools
    pools.close()


@pytest.fixture(scope="module")
def pve_ceph_double(lab_ceph: LabCeph, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PveDouble]:
    """A PVE double whose Ceph routes act on the session's lab cluster, shared by one test module."""
    config = copy.deepcopy(DEFAULT_LAB_CONFIG)
    config["extension_settings"] = {"ceph": {"conf": str(lab_ceph.conf)}}
    double = PveDouble(tmp_path_factory.mktemp("pve-ceph"), config).start()
    yield double
    double.stop()


def official_schema() -> dict[str, dict[str, Any]]:
    """Return the official PVE API schema as {path: {method: definition}}, skipping the test when it is absent.

    The schema is not part of this repository; CI and the developers' checkouts have it beside the project.
    """
    if not SCHEMA_PATH.is_file():
        pytest.skip(f"the PVE API schema is absent at {SCHEMA_PATH}; set RETAIL_EDGE_PVE_API_SCHEMA to apidata.json")
    return pve_api_schema_index(SCHEMA_PATH)

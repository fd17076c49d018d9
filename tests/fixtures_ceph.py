"""Fixtures that run the real lab Ceph cluster (lab/ceph) for the tests that need one.

The cluster starts once per test session (about 5 s) and is stopped by pid at the end. Tests that
need a fresh cluster of their own start one in their tmp_path and stop it themselves.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lab.ceph import CephPools, LabCeph


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

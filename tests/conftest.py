"""Fixtures shared across test areas."""

pytest_plugins = ["tests.fixtures_pve", "tests.fixtures_ceph"]

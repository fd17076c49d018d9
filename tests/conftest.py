"""Fixtures shared across test areas, registered as plugins so every test directory sees them."""

pytest_plugins = ["tests.fixtures_ceph"]

"""Fixture plugins shared by several test areas."""

pytest_plugins = [
    "tests.fixtures_pve",
    "tests.fixtures_ceph",
    "tests.fixtures_hq",
    "tests.fixtures_pos",
    "tests.fixtures_vault",
    "tests.fixtures_vision",
]

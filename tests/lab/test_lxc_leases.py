"""Address leases of the LXC lab, on a temporary lease directory (no containers are started)."""

from __future__ import annotations

import json
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from lab.lxc import LabError, LabSettings, instances


@pytest.fixture
def settings(tmp_path: Path) -> LabSettings:
    return LabSettings(lab_dir=tmp_path / "lab", run_dir=tmp_path / "run")


def make_live(settings: LabSettings, name: str) -> None:
    """Give name the config file that marks a lab container as existing, so its leases are not stale."""
    config = settings.lxcpath / name / "config"
    config.parent.mkdir(parents=True)
    config.write_text("lxc.uts.name = test\n")


def lease_names(settings: LabSettings) -> dict[str, str]:
    return {path.name: json.loads(path.read_text())["name"] for path in settings.leases_dir.iterdir()}


def test_reserve_addresses_exact_set(settings):
    make_live(settings, "ct1")
    instances.reserve_addresses(settings, "ct1", [IPv4Address("198.51.100.200"), IPv4Address("198.51.100.201")])
    assert lease_names(settings) == {"198.51.100.200": "ct1", "198.51.100.201": "ct1"}

    instances.reserve_addresses(settings, "ct1", [IPv4Address("198.51.100.201")])
    assert lease_names(settings) == {"198.51.100.201": "ct1"}


def test_reserve_addresses_held_by_other(settings):
    make_live(settings, "ct1")
    make_live(settings, "ct2")
    instances.reserve_addresses(settings, "ct1", [IPv4Address("198.51.100.200")])

    with pytest.raises(LabError, match=r"198\.51\.100\.200 is in use by lab container ct1"):
        instances.reserve_addresses(settings, "ct2", [IPv4Address("198.51.100.200")])
    assert lease_names(settings) == {"198.51.100.200": "ct1"}


def test_reserve_addresses_takes_stale_lease(settings):
    instances.reserve_addresses(settings, "gone", [IPv4Address("198.51.100.200")])
    make_live(settings, "ct2")

    instances.reserve_addresses(settings, "ct2", [IPv4Address("198.51.100.200")])
    assert lease_names(settings) == {"198.51.100.200": "ct2"}


def test_pool_lease_skips_reserved_address(settings):
    make_live(settings, "ct1")
    first_pool_address = settings.address_for(settings.pool_first)
    instances.reserve_addresses(settings, "ct1", [first_pool_address])

    assert instances.lease_address(settings, "ct2") == settings.address_for(settings.pool_first + 1)
    assert instances.lease_address(settings, "ct1") == first_pool_address

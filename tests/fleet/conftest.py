"""Fixtures of the fleet tests: store clusters on one PVE double, with their registry and inventory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fleet.fleetlab import FleetLab, start_fleet


@pytest.fixture
def make_fleet(tmp_path: Path) -> Iterator[Callable[..., FleetLab]]:
    """Start a fleet: `make_fleet(waves, workloads=[...], nodes=3)`, one store per wave name (see start_fleet)."""
    started: list[FleetLab] = []

    def make(waves, **options) -> FleetLab:
        lab = start_fleet(tmp_path / f"fleet-{len(started)}", waves, **options)
        started.append(lab)
        return lab

    yield make
    for lab in started:
        lab.double.stop()

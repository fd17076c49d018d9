"""Pytest fixtures that run the Proxmox VE API double (lab/pve) for any test area.

`pve_double` gives each test a fresh double; `pve_double_module` shares one per test module (call its
`.reset()` for an empty cluster). `make_pve_double` starts doubles with a custom lab configuration.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.pve.testing import DEFAULT_LAB_CONFIG, PveApiError, PveDouble

__all__ = ["DEFAULT_LAB_CONFIG", "PveApiError", "PveDouble"]


@pytest.fixture
def make_pve_double(tmp_path: Path) -> Iterator[Callable[..., PveDouble]]:
    """Start doubles with a config of your own: `make_pve_double({"nodes": ["a", "b"]})` merges the keys."""
    started: list[PveDouble] = []

    def make(overrides: dict[str, Any] | None = None, *, name: str = "pve") -> PveDouble:
        config = copy.deepcopy(DEFAULT_LAB_CONFIG)
        config.update(overrides or {})
        double = PveDouble(tmp_path / f"{name}-{len(started)}", config).start()
        started.append(double)
        return double

    yield make
    for double in started:
        double.stop()


@pytest.fixture
def pve_double(tmp_path: Path) -> Iterator[PveDouble]:
    double = PveDouble(tmp_path / "pve", copy.deepcopy(DEFAULT_LAB_CONFIG)).start()
    yield double
    double.stop()


@pytest.fixture(scope="module")
def pve_double_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PveDouble]:
    double = PveDouble(tmp_path_factory.mktemp("pve-module"), copy.deepcopy(DEFAULT_LAB_CONFIG)).start()
    yield double
    double.stop()

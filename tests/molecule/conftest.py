"""Fixtures of the molecule entry point: the LXC lab must exist before any scenario runs."""

from __future__ import annotations

import pytest

from lab.lxc import LabSettings, ensure_lab


@pytest.fixture(scope="session")
def lxc_lab() -> LabSettings:
    """Bring up bridge, apt proxy, golden container and wheelhouse once per test session (idempotent)."""
    settings = LabSettings.from_env()
    ensure_lab(settings, with_wheelhouse=True)
    return settings

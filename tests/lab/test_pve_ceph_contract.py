"""The double's Ceph pool routes against the official Proxmox VE API schema (apidata.json).

Each parameter of each route must match the schema's definition: the same names, types, optional flags,
enums, ranges, patterns and named formats, and for `erasure-coding` the same property-string keys.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from lab.pve.app import PveApp
from lab.pve.config import parse_config
from lab.pve.schema import Prop, PropertyFormat
from lab.pve.state import StateStore
from lab.pve.testing import DEFAULT_LAB_CONFIG
from tests.fixtures_ceph import official_schema

PATTERN_SAMPLES = ("ct-volumes", "pool.1", "a/b", "a:b", "a b", "", "10G", "1.5T", "10X", "G")


@pytest.fixture(scope="module")
def ceph_routes(tmp_path_factory) -> dict[tuple[str, str], dict[str, Prop]]:
    config = {**DEFAULT_LAB_CONFIG, "extension_settings": {"ceph": {"conf": "/nonexistent/ceph.conf"}}}
    store = StateStore(tmp_path_factory.mktemp("contract") / "state.json")
    app = PveApp(parse_config(config), store)
    try:
        return {
            (route.method, route.template): dict(route.schema.props)
            for route in app.router.routes()
            if "/ceph/" in route.template
        }
    finally:
        app.shutdown()


def pve_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a pattern as PVE writes it (`(?^:^...$)` from Perl, or plain) for Python's re."""
    perl = re.fullmatch(r"\(\?\^:(.*)\)", pattern)
    return re.compile(perl.group(1) if perl else pattern)


def assert_same_prop(where: str, official: dict[str, Any], ours: Prop) -> None:
    assert ours.type == official.get("type", "string"), where
    assert ours.optional == bool(official.get("optional", 0)), where
    assert ours.enum == (tuple(official["enum"]) if "enum" in official else None), where
    assert ours.minimum == official.get("minimum"), where
    assert ours.maximum == official.get("maximum"), where
    if "pattern" in official:
        assert ours.pattern is not None, where
        for sample in PATTERN_SAMPLES:
            expected = pve_pattern(official["pattern"]).search(sample) is not None
            assert (re.fullmatch(ours.pattern, sample) is not None) == expected, f"{where}: {sample!r}"
    else:
        assert ours.pattern is None, where
    official_format = official.get("format")
    if isinstance(official_format, dict):
        assert isinstance(ours.format, PropertyFormat), where
        assert set(ours.format.keys) == set(official_format), where
        for key, definition in official_format.items():
            assert_same_prop(f"{where}.{key}", definition, ours.format.keys[key])
    elif official_format is not None:
        assert ours.format == official_format, where


def test_ceph_routes_exist_in_schema(ceph_routes):
    schema = official_schema()
    for method, template in ceph_routes:
        assert method in schema.get(template, {}), f"{method} {template} is not in the PVE API schema"
    assert len(ceph_routes) == 7


def test_ceph_route_parameters_match_schema(ceph_routes):
    schema = official_schema()
    for (method, template), props in ceph_routes.items():
        official = schema[template][method]["parameters"].get("properties", {})
        assert set(props) == set(official), f"{method} {template}"
        for name, definition in official.items():
            assert_same_prop(f"{method} {template} {name}", definition, props[name])


def test_no_ceph_routes_without_settings(tmp_path):
    app = PveApp(parse_config(dict(DEFAULT_LAB_CONFIG)), StateStore(tmp_path / "state.json"))
    try:
        templates = [route.template for route in app.router.routes()]
    finally:
        app.shutdown()
    assert "lab.pve.ceph" in app.extensions
    assert not [template for template in templates if "/ceph/" in template]

"""Fuzzing of the LXC property-string parser that pve_lxc uses for declarations and for PVE's answers.

Inputs are built from the tokens these strings are made of (key names of every format, separators, numbers
with and without units, booleans, addresses) mixed with arbitrary text, so that most examples reach the value
parsers instead of failing at the first character. Every input must either parse or raise ConfigError, the
error the module turns into a message naming the option; anything else would reach the user as a traceback.
A value that parses must format into a string that parses back to the same value.

Numbers beyond the float range and the words inf and nan are left out of the generated inputs and checked by
the explicit cases at the end, which expect a ConfigError naming the option.
"""

from __future__ import annotations

import importlib.util
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import ROOT


def _load_parser():
    path = ROOT / "plugins" / "module_utils" / "_pve_lxc_config.py"
    spec = importlib.util.spec_from_file_location("retail_edge_fuzz_pve_lxc_config", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


lxc = _load_parser()
KEY_NAMES = sorted({*lxc._KEYS, "net0", "net31", "mp0", "mp255", "dev0", "dev9"})
SUB_KEYS = sorted(
    {name for key in (lxc.config_key(n) for n in KEY_NAMES) if hasattr(key, "fmt") for name in key.fmt.keys}
)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

values = st.one_of(
    st.sampled_from(["1", "0", "yes", "off", "8G", "0.5T", "512", "-1", "1e30", "1.5", "", " "]),
    st.sampled_from(["local-lvm:8", "local-lvm:vm-100-disk-0", "/srv/data", "198.51.100.7/24", "dhcp", "manual"]),
    st.sampled_from(["fe80::1/64", "auto", "vmbr0", "BC:24:11:00:00:01", "eth0", "nesting=1", "a;b", "/dev/ttyUSB0"]),
    st.from_regex(r"\A[0-9]{1,290}(\.[0-9]{1,5})?[KMGTB]{0,2}\Z"),
    st.text(max_size=20),
)
pairs = st.tuples(st.sampled_from([*SUB_KEYS, "x", ""]), values).map(lambda kv: f"{kv[0]}={kv[1]}" if kv[0] else kv[1])
property_strings = st.lists(pairs, max_size=6).map(",".join)
declared = st.one_of(
    property_strings,
    values,
    st.dictionaries(st.sampled_from([*SUB_KEYS, "bogus"]), st.one_of(values, st.integers(), st.booleans())),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.lists(values, max_size=3),
)


def parse_or_reject(name: str, value: object, strict: bool) -> object:
    key = lxc.config_key(name)
    assert key is not None
    try:
        return key.parse(value, name, strict=strict)
    except lxc.ConfigError as exc:
        message = str(exc)
    assert name in message, f"the error does not name the option {name!r}: {message}"
    return None


@FUZZ
@given(name=st.sampled_from(KEY_NAMES), value=declared, strict=st.booleans())
def test_keys_parse_or_reject(name: str, value: object, strict: bool) -> None:
    parse_or_reject(name, value, strict)


@FUZZ
@given(name=st.sampled_from(KEY_NAMES), value=declared)
def test_format_parse_round_trip(name: str, value: object) -> None:
    parsed = parse_or_reject(name, value, strict=True)
    if parsed is None:
        return
    key = lxc.config_key(name)
    text = key.format(parsed)
    assert key.same(key.parse(text, name, strict=False), parsed), (value, text)


@FUZZ
@given(raw=st.dictionaries(st.sampled_from([*KEY_NAMES, "lxc.apparmor.profile", "unused0", "digest"]), values))
def test_stored_config_never_raises(raw: dict[str, str]) -> None:
    parsed = lxc.parse_config(raw)
    assert set(parsed) == set(raw)


@FUZZ
@given(text=values)
def test_sizes_parse_or_reject(text: str) -> None:
    try:
        size = lxc.parse_size(text)
    except ValueError:
        return
    assert lxc.parse_size(lxc.format_size(size), require_unit=False) == size


NON_FINITE = [
    ("cpulimit", "inf"),
    ("cpulimit", "1e400"),
    ("cpulimit", "nan"),
    ("rootfs", "local-lvm:8,size=" + "9" * 400 + "G"),
    ("mp0", "local-lvm:" + "9" * 400 + ",mp=/srv/data"),
]


@pytest.mark.parametrize(("name", "value"), NON_FINITE)
def test_non_finite_numbers_rejected(name: str, value: str) -> None:
    key = lxc.config_key(name)
    with pytest.raises(lxc.ConfigError, match=name):
        key.format(key.parse(value, name, strict=True))

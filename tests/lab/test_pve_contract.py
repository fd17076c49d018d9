"""Contract of the PVE double against the official Proxmox VE API schema (apidata.json).

For every method and path the double serves, these tests read the schema's parameter definitions. They
check that the double accepts each parameter with values generated from its type, range, enum, pattern
and format, and that it requires exactly the non-optional ones. They also check that it rejects values
out of range, outside an enum, or breaking a pattern, a named format or a property-string format, with
a 400 that names the parameter.

Validation requests carry one extra, unknown parameter (the probe). PVE and the double check all
parameters before running the handler, so the probe keeps every request free of side effects: the
answer must be a 400 whose errors name the probe and, for invalid values, the parameter under test.
"""

from __future__ import annotations

import copy
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
import requests

from lab.pve.app import PveApp
from lab.pve.config import parse_config
from lab.pve.state import StateStore
from lab.pve.testing import DEFAULT_LAB_CONFIG, PveDouble
from tests.support import PVE_API_SCHEMA

# RETAIL_EDGE_PVE_API_SCHEMA points at the schema where the checkout does not sit beside it (a git worktree).
SCHEMA_PATH = Path(os.environ.get("RETAIL_EDGE_PVE_API_SCHEMA", str(PVE_API_SCHEMA)))
PROBE = "contract-probe"
MISSING = "property is missing and it is not optional"
UNDEFINED = "property is not defined in schema and the schema does not allow additional properties"
TEMPLATE = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
SAMPLE_UPID = "UPID:pve1:00001234:00ABCDEF:6700AB12:vzstart:100:root@pam:"

# Values each named format accepts and rejects. A format the schema uses but this table lacks fails
# the test, so a new format in the schema cannot slip through unchecked.
VALID_FORMAT_SAMPLES = {
    "disk-size": "8G",
    "dns-name": "ct1.store.example",
    "dns-name-list": "store.example lab.example",
    "ipv4": "198.51.100.1",
    "ipv6": "fd00::1",
    "lxc-ip-with-ll-iface-list": "198.51.100.53 fe80::1%eth0",
    "mac-addr": "BC:24:11:00:00:01",
    "pve-configid": "memory",
    "pve-configid-list": "memory;swap",
    "pve-ct-timezone": "Europe/Berlin",
    "pve-ipv4-config": "198.51.100.10/24",
    "pve-ipv6-config": "fd00::10/64",
    "pve-lxc-dev-string": "/dev/null",
    "pve-lxc-mp-string": "/srv/data",
    "pve-node": "pve1",
    "pve-poolid": "edge",
    "pve-priv-list": "VM.Audit;Sys.Modify",
    "pve-realm": "pam",
    "pve-startup-order": "order=1,up=30,down=60",
    "pve-storage-content": "vztmpl",
    "pve-storage-content-list": "rootdir;images",
    "pve-storage-id": "local",
    "pve-tag-list": "web;edge",
    "pve-task-status-type-list": "ok;error",
    "pve-volume-id": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
}
INVALID_FORMAT_SAMPLES = {
    "disk-size": "10X",
    "dns-name": "bad_name!",
    "dns-name-list": "store.example bad_name!",
    "ipv4": "300.1.1.1",
    "ipv6": "fd00::g",
    "lxc-ip-with-ll-iface-list": "198.51.100.300",
    "mac-addr": "01:00:5E:00:00:01",
    "pve-configid": "1memory",
    "pve-configid-list": "memory;1swap",
    "pve-ct-timezone": "Mars/Olympus_Mons",
    "pve-ipv4-config": "198.51.100.10",
    "pve-ipv6-config": "fd00::10",
    "pve-lxc-dev-string": "/tmp/device",
    "pve-lxc-mp-string": "/srv/../etc",
    "pve-node": "-pve1-",
    "pve-poolid": "edge pool",
    "pve-priv-list": "VM.Audit;9bad",
    "pve-realm": "1pam",
    "pve-startup-order": "order=first",
    "pve-storage-content": "movies",
    "pve-storage-content-list": "rootdir;movies",
    "pve-storage-id": "1local",
    "pve-tag-list": "web;bad tag!",
    "pve-task-status-type-list": "ok;maybe",
    "pve-volume-id": "no-storage-prefix",
}
PATTERN_SAMPLES = ("eth0", "1", "1;2", "noatime;nodev", "nfs;cifs", "0644", "+2G", "10G", "FOO=bar", "/sbin/init")
PATTERN_BREAKERS = ("bad value!", "\x01", "%%%")
PATH_SAMPLES = {"node": "pve1", "vmid": "100", "storage": "local", "upid": SAMPLE_UPID}


# Schema access


def _schema_index() -> dict[str, dict[str, Any]]:
    if not SCHEMA_PATH.is_file():
        return {}
    index: dict[str, dict[str, Any]] = {}

    def walk(nodes: list[dict[str, Any]]) -> None:
        for node in nodes:
            index[node["path"]] = node.get("info", {})
            walk(node.get("children", []))

    walk(json.loads(SCHEMA_PATH.read_text()))
    return index


def _implemented_routes() -> list[tuple[str, str, list[str]]]:
    """(method, path template, parameter names) of every route the double serves, read from the app itself."""
    with tempfile.TemporaryDirectory() as directory:
        store = StateStore(Path(directory) / "state.json")
        app = PveApp(parse_config(copy.deepcopy(DEFAULT_LAB_CONFIG)), store)
        try:
            return [(route.method, route.template, sorted(route.schema.names())) for route in app.router.routes()]
        finally:
            app.shutdown()


SCHEMA = _schema_index()
ROUTES = _implemented_routes()
ROUTE_IDS = [f"{method} {template}" for method, template, _ in ROUTES]

pytestmark = pytest.mark.skipif(
    not SCHEMA, reason=f"the official PVE API schema is not at {SCHEMA_PATH} (it sits beside the project in CI)"
)


def _method_schema(method: str, template: str) -> dict[str, Any]:
    info = SCHEMA.get(template, {}).get(method)
    assert info is not None, f"{method} {template} is served by the double but absent from the PVE API schema"
    return info


def _properties(method: str, template: str) -> dict[str, dict[str, Any]]:
    return _method_schema(method, template)["parameters"].get("properties", {})


def _path_names(template: str) -> list[str]:
    return re.findall(r"\{(\w+)\}", template)


def _concrete_names(name: str) -> list[str]:
    """`net[n]` stands for net0, net1, ...: check the first two indexes."""
    return [name.replace("[n]", "0"), name.replace("[n]", "1")] if name.endswith("[n]") else [name]


def _python_pattern(pattern: str) -> re.Pattern[str]:
    """Translate a Perl regex as the schema prints it (`(?^:...)`, `(?^i:...)`) to Python."""
    return re.compile(pattern.replace("(?^i:", "(?i:").replace("(?^:", "(?:"), re.DOTALL)


# Value generation


def valid_values(prop: dict[str, Any]) -> list[str]:
    """Values the schema allows for prop, boundaries included."""
    kind = prop.get("type", "string")
    if kind == "boolean":
        return ["1", "0"]
    if kind in ("integer", "number"):
        return _valid_numbers(prop)
    if "enum" in prop:
        values = [str(value) for value in prop["enum"]]
        return values if len(values) <= 12 else [*values[:3], values[-1]]
    fmt = prop.get("format")
    if isinstance(fmt, dict):
        return _valid_property_strings(fmt)
    if isinstance(fmt, str):
        if fmt not in VALID_FORMAT_SAMPLES:
            pytest.fail(f"no valid sample for format '{fmt}': add one to VALID_FORMAT_SAMPLES")
        return [VALID_FORMAT_SAMPLES[fmt]]
    return [_valid_plain_string(prop)]


def _valid_plain_string(prop: dict[str, Any]) -> str:
    if "pattern" in prop:
        regex = _python_pattern(prop["pattern"])
        matching = [sample for sample in PATTERN_SAMPLES if regex.fullmatch(sample)]
        assert matching, f"no sample in PATTERN_SAMPLES matches {prop['pattern']!r}"
        return matching[0]
    return "contract-value".ljust(int(prop.get("minLength", 1)), "x")


def _valid_numbers(prop: dict[str, Any]) -> list[str]:
    kind = prop["type"]
    values = []
    if "minimum" in prop:
        values.append(_number_text(float(prop["minimum"]), kind))
    if "maximum" in prop:
        values.append(_number_text(float(prop["maximum"]), kind))
    if not values:
        values.append("7")
    if kind == "number":
        low = float(prop.get("minimum", 0))
        values.append(f"{low + 0.5}")
    return values


def _number_text(value: float, kind: str) -> str:
    return str(int(value)) if kind == "integer" or value.is_integer() else str(value)


def _property_string(fmt: dict[str, Any], values: dict[str, str]) -> str:
    parts = []
    for key, value in values.items():
        if fmt[key].get("default_key"):
            parts.insert(0, value)
        else:
            parts.append(f"{key}={value}")
    return ",".join(parts)


def _required_subkeys(fmt: dict[str, Any]) -> dict[str, str]:
    return {key: valid_values(sub)[0] for key, sub in fmt.items() if not sub.get("optional") and not sub.get("alias")}


def _valid_property_strings(fmt: dict[str, Any]) -> list[str]:
    """A string with every key, and one per optional key with only the required keys beside it."""
    required = _required_subkeys(fmt)
    keys = [key for key, sub in fmt.items() if not sub.get("alias")]
    full = {key: valid_values(fmt[key])[0] for key in keys}
    strings = [_property_string(fmt, full)]
    for key in keys:
        if key in required:
            continue
        for value in valid_values(fmt[key]):
            strings.append(_property_string(fmt, {**required, key: value}))
    return strings


def invalid_values(prop: dict[str, Any]) -> list[tuple[str, str]]:
    """(what is wrong, value) pairs PVE rejects for prop."""
    kind = prop.get("type", "string")
    if kind == "boolean":
        return [("not a boolean", "maybe")]
    if kind in ("integer", "number"):
        cases = [("not a number", "many")]
        if "minimum" in prop:
            cases.append(("below minimum", _number_text(float(prop["minimum"]) - 1, kind)))
        if "maximum" in prop:
            cases.append(("above maximum", _number_text(float(prop["maximum"]) + 1, kind)))
        return cases
    cases = []
    if "enum" in prop:
        cases.append(("outside the enum", "not-in-enum"))
    if "pattern" in prop:
        regex = _python_pattern(prop["pattern"])
        breaking = [sample for sample in PATTERN_BREAKERS if not regex.fullmatch(sample)]
        assert breaking, f"no sample in PATTERN_BREAKERS breaks {prop['pattern']!r}"
        cases.append(("breaks the pattern", breaking[0]))
    if "maxLength" in prop:
        cases.append(("longer than maxLength", "a" * (int(prop["maxLength"]) + 1)))
    if int(prop.get("minLength", 0)) > 1:
        cases.append(("shorter than minLength", "a" * (int(prop["minLength"]) - 1)))
    fmt = prop.get("format")
    if isinstance(fmt, dict):
        cases += _invalid_property_strings(fmt)
    elif isinstance(fmt, str) and fmt != "pve-vmid":
        if fmt not in INVALID_FORMAT_SAMPLES:
            pytest.fail(f"no invalid sample for format '{fmt}': add one to INVALID_FORMAT_SAMPLES")
        cases.append((f"breaks format {fmt}", INVALID_FORMAT_SAMPLES[fmt]))
    return cases


def _invalid_property_strings(fmt: dict[str, Any]) -> list[tuple[str, str]]:
    required = _required_subkeys(fmt)
    cases = [("an unknown key", _property_string(fmt, required) + ",contract-key=1")]
    for key in required:
        rest = {name: value for name, value in required.items() if name != key}
        cases.append((f"without required key {key}", _property_string(fmt, rest) or "="))
    for key, sub in fmt.items():
        if sub.get("alias"):
            continue
        for reason, value in invalid_values(sub):
            if "," in value:
                continue
            cases.append((f"{key} {reason}", _property_string(fmt, {**required, key: value})))
    return cases


# Requests


class Client:
    """Sends API calls as root@pam with a password ticket and CSRF token."""

    def __init__(self, double: PveDouble) -> None:
        self.double = double
        self.session = double.session()

    def send(
        self, method: str, template: str, params: dict[str, str], path_values: dict[str, str]
    ) -> requests.Response:
        path = template
        for name, value in path_values.items():
            path = path.replace("{" + name + "}", requests.utils.quote(value, safe=""))
        return self.double.request(method, path, params)


def _path_values(method: str, template: str, **overrides: str) -> dict[str, str]:
    """Valid values for the path parameters: known objects where they matter, else schema samples."""
    props = _properties(method, template)
    values = {name: PATH_SAMPLES.get(name) or valid_values(props[name])[0] for name in _path_names(template)}
    values.update({name: value for name, value in overrides.items() if name in values})
    return values


def _errors(answer: requests.Response) -> dict[str, str]:
    if answer.status_code != 400:
        return {}
    return answer.json().get("errors") or {}


def _required_body(method: str, template: str) -> dict[str, str]:
    """Valid values for every required parameter that is not part of the path."""
    props = _properties(method, template)
    body = {}
    for name, prop in props.items():
        if not prop.get("optional") and name not in _path_names(template):
            body[name] = valid_values(prop)[0]
    return body


def _partner(props: dict[str, dict[str, Any]], name: str) -> dict[str, str]:
    """The parameter that `requires` names must come along with name."""
    partner = props[name].get("requires")
    return {partner: valid_values(props[partner])[0]} if partner else {}


def _send_one(client: Client, method: str, template: str, *, name: str, concrete: str, value: str) -> requests.Response:
    """Send the required parameters, the probe and concrete=value (in the path where it belongs there)."""
    props = _properties(method, template)
    path_values = _path_values(method, template)
    body = {**_required_body(method, template), PROBE: "1"}
    if concrete in path_values:
        path_values[concrete] = value
    else:
        body.update(_partner(props, name))
        body[concrete] = value
    return client.send(method, template, body, path_values)


@pytest.fixture(scope="module")
def client(pve_double_module: PveDouble) -> Client:
    return Client(pve_double_module)


# Tests


def test_schema_lists_every_route():
    missing = [f"{method} {template}" for method, template, _ in ROUTES if method not in SCHEMA.get(template, {})]
    assert missing == [], f"routes of the double that PVE's API does not have: {missing}"


@pytest.mark.parametrize(("method", "template", "names"), ROUTES, ids=ROUTE_IDS)
def test_parameter_names_match_schema(method, template, names):
    expected = sorted(_properties(method, template))
    assert names == expected


@pytest.mark.parametrize(("method", "template", "names"), ROUTES, ids=ROUTE_IDS)
def test_accepts_every_schema_parameter(client, method, template, names):
    del names
    failures = []
    for name, prop in _properties(method, template).items():
        for concrete in _concrete_names(name):
            for value in valid_values(prop):
                answer = _send_one(client, method, template, name=name, concrete=concrete, value=value)
                errors = _errors(answer)
                if errors != {PROBE: UNDEFINED}:
                    failures.append(f"{concrete}={value!r}: HTTP {answer.status_code} {answer.reason} {errors}")
    assert failures == [], "\n".join(failures)


@pytest.mark.parametrize(("method", "template", "names"), ROUTES, ids=ROUTE_IDS)
def test_requires_exactly_the_non_optional_parameters(client, method, template, names):
    del names
    props = _properties(method, template)
    base = _required_body(method, template)
    answer = client.send(method, template, {**base, PROBE: "1"}, _path_values(method, template))
    assert _errors(answer) == {PROBE: UNDEFINED}, f"with all required parameters: {answer.status_code} {answer.text}"
    for name in base:
        body = {key: value for key, value in base.items() if key != name}
        answer = client.send(method, template, {**body, PROBE: "1"}, _path_values(method, template))
        assert answer.status_code == 400, f"without {name}: {answer.status_code} {answer.text}"
        assert answer.reason == "Parameter verification failed."
        assert answer.json()["data"] is None
        assert _errors(answer) == {name: MISSING, PROBE: UNDEFINED}, f"without {name}"
    optional_in_path = [name for name in _path_names(template) if props[name].get("optional")]
    assert optional_in_path == []


@pytest.mark.parametrize(("method", "template", "names"), ROUTES, ids=ROUTE_IDS)
def test_rejects_invalid_values(client, method, template, names):
    del names
    failures = []
    for name, prop in _properties(method, template).items():
        concrete = _concrete_names(name)[0]
        for reason, value in invalid_values(prop):
            if concrete in _path_names(template) and ("/" in value or not value.strip()):
                continue  # such a value would change the route, not the parameter
            answer = _send_one(client, method, template, name=name, concrete=concrete, value=value)
            errors = _errors(answer)
            if answer.status_code != 400 or concrete not in errors:
                failures.append(f"{concrete} {reason} ({value!r}): HTTP {answer.status_code} {answer.reason} {errors}")
    assert failures == [], "\n".join(failures)


def test_unknown_index_rejected(client):
    answer = client.send("PUT", "/nodes/{node}/lxc/{vmid}/config", {"net32": "name=eth0"}, PATH_SAMPLES)
    assert _errors(answer) == {"net32": UNDEFINED}


def test_error_messages_use_pve_wording(client):
    answer = client.send(
        "POST",
        "/nodes/{node}/lxc",
        {
            "vmid": "99",
            "ostemplate": TEMPLATE,
            "memory": "8",
            "cores": "lots",
            "arch": "sparc",
            "net0": "bridge=vmbr0",
            "onboot": "perhaps",
            "hostname": "bad_name",
        },
        {"node": "pve1"},
    )
    assert answer.status_code == 400
    assert answer.reason == "Parameter verification failed."
    body = answer.json()
    assert body["data"] is None
    assert body["message"] == "Parameter verification failed.\n"
    assert body["errors"] == {
        "vmid": "value must have a minimum value of 100",
        "memory": "value must have a minimum value of 16",
        "cores": "type check ('integer') failed - got 'lots'",
        "arch": "value 'sparc' does not have a value in the enumeration 'amd64, i386, arm64, armhf, riscv32, riscv64'",
        "net0": f"invalid format - format error\nname: {MISSING}",
        "onboot": "type check ('boolean') failed - got 'perhaps'",
        "hostname": "invalid format - value does not look like a valid DNS name",
    }


def test_get_routes_answer_for_existing_objects(client):
    double = client.double
    double.reset()
    upid = double.api("POST", "/nodes/pve1/lxc", vmid=100, ostemplate=TEMPLATE, rootfs="local-lvm:4")
    double.wait_task(upid)
    failures = []
    for method, template, _ in ROUTES:
        if method != "GET":
            continue
        path_values = _path_values(method, template, upid=upid)
        answer = client.send(method, template, _required_body(method, template), path_values)
        if answer.status_code != 200:
            failures.append(f"GET {template}: {answer.status_code} {answer.reason}")
    assert failures == [], "\n".join(failures)

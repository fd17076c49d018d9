"""Compliance suite of a deployed store (pytest-testinfra).

Run it against the hosts of one store or wave of an inventory:

    pytest --hosts=ansible://store_s001 --ansible-inventory=inventories/lab tests/compliance

or through playbooks/compliance.yml, which writes a JUnit report. testinfra connects to each host with
its inventory variables. A test marked `workload("varnish_edge")` runs only on hosts of that workload.
One marked `container` runs on every workload container, and one marked `pve_node` on the store's
Proxmox VE nodes. Other combinations are deselected, not skipped. The values a test compares with (ports, backends,
addresses) are what the playbooks declare: Ansible itself renders them (see declared.yml).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from testinfra.utils import ansible_runner

from lab.demo.ansible import render_host_vars
from lab.demo.processes import DemoError
from tests.support import ROOT, VENV_BIN, ansible_env, ensure_collection_link

DECLARED_VARS = Path(__file__).with_name("declared.yml")
CONTAINER_REPORT_PLAYBOOK = ROOT / "playbooks" / "container_report.yml"


def _unwrap_unsafe(value: Any) -> Any:
    """Return value without the `{"__ansible_unsafe": ...}` wrappers of ansible-inventory's JSON."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {key: _unwrap_unsafe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unwrap_unsafe(item) for item in value]
    return value


def _read_inventory_unwrapped(*args: Any, **kwargs: Any) -> Any:
    return _unwrap_unsafe(_read_inventory(*args, **kwargs))


# ansible-core 2.19 wraps variables of inventory plugins that are not trusted by default in
# {"__ansible_unsafe": value} in `ansible-inventory --list`; testinfra 10 expects plain strings.
_read_inventory = ansible_runner.get_ansible_inventory
ansible_runner.get_ansible_inventory = _read_inventory_unwrapped


def pytest_configure(config: pytest.Config) -> None:
    # testinfra runs ansible-inventory itself and needs it, and this collection, to be found.
    os.environ["PATH"] = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ.setdefault("ANSIBLE_CONFIG", str(ROOT / "ansible.cfg"))
    # testinfra opens one ssh connection per command; a shared master connection per host makes the
    # suite several times faster.
    control_dir = Path(tempfile.mkdtemp(prefix="compliance-ssh-"))
    ssh_args = f"-o ControlMaster=auto -o ControlPersist=120s -o ControlPath={control_dir}/%C"
    # testinfra's ssh ignores Ansible's host_key_checking; follow it, as the playbooks' connections do.
    from ansible import constants as ansible_constants  # noqa: PLC0415 - reads the ANSIBLE_CONFIG set above

    if not ansible_constants.HOST_KEY_CHECKING:
        ssh_args += " -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
    os.environ.setdefault("ANSIBLE_SSH_COMMON_ARGS", ssh_args)
    ensure_collection_link()
    config.addinivalue_line("markers", "workload(*names): the test applies to hosts of these workloads only")
    config.addinivalue_line("markers", "container: the test applies to every workload container")
    config.addinivalue_line("markers", "pve_node: the test applies to the store's Proxmox VE nodes")


def _host_patterns(config: pytest.Config) -> list[str]:
    hosts = config.option.hosts or ""
    patterns = [spec.removeprefix("ansible://").split("?", 1)[0] for spec in hosts.split(",") if spec]
    if not patterns or not all(spec.startswith("ansible://") for spec in hosts.split(",")):
        raise pytest.UsageError(
            "the compliance suite reads each host's declared state from its Ansible inventory: "
            "run it with --hosts=ansible://<store group or wave> --ansible-inventory=<inventory>"
        )
    return patterns


def load_declared(config: pytest.Config) -> dict[str, dict[str, Any]]:
    """Return host name -> declared state for every host the run targets, rendered by Ansible once per session."""
    cached = getattr(config, "_compliance_declared", None)
    if cached is not None:
        return cached
    inventory = config.option.ansible_inventory
    if not inventory:
        raise pytest.UsageError("--ansible-inventory is required: the suite compares hosts with their inventory")
    try:
        declared = render_host_vars(
            Path(inventory).resolve(), ":".join(_host_patterns(config)), "__compliance_declared", DECLARED_VARS
        )
    except DemoError as exc:
        raise pytest.UsageError(str(exc)) from exc
    config._compliance_declared = declared  # type: ignore[attr-defined]
    return declared


def _host_name(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    host = callspec.params.get("_testinfra_host") if callspec is not None else None
    return getattr(getattr(host, "backend", None), "host", None)


def _applies(item: pytest.Item, declared: dict[str, Any]) -> bool:
    workload = item.get_closest_marker("workload")
    if workload is not None:
        return declared["kind"] == "container" and declared["container"]["workload"] in workload.args
    if item.get_closest_marker("container") is not None:
        return declared["kind"] == "container"
    if item.get_closest_marker("pve_node") is not None:
        return declared["kind"] == "pve_node"
    return True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the tests that do not apply to a host, so the report lists only real checks."""
    declared = load_declared(config)
    selected, deselected = [], []
    for item in items:
        name = _host_name(item)
        if name is not None and name in declared and not _applies(item, declared[name]):
            deselected.append(item)
        else:
            selected.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


@pytest.fixture
def declared(request: pytest.FixtureRequest, host: Any) -> dict[str, Any]:
    """The declared state of the host under test."""
    return load_declared(request.config)[host.backend.host]


@pytest.fixture(scope="session")
def pve_containers(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Containers as each store's PVE API reports them: store id -> hostname -> pve_lxc_info entry."""
    config = request.config
    output = tmp_path_factory.mktemp("pve") / "containers.json"
    proc = subprocess.run(
        [
            str(VENV_BIN / "ansible-playbook"),
            "-i",
            str(Path(config.option.ansible_inventory).resolve()),
            str(CONTAINER_REPORT_PLAYBOOK),
            "--limit",
            ":".join(_host_patterns(config)),
            "-e",
            json.dumps({"container_report_file": str(output)}),
        ],
        cwd=ROOT,
        env=ansible_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"reading the containers from the PVE API failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    return json.loads(output.read_text())


def address_of(declared: dict[str, Any]) -> str:
    return str(declared["container"]["address"])


@pytest.fixture
def declared_all(request: pytest.FixtureRequest) -> dict[str, dict[str, Any]]:
    """The declared state of every host the run targets."""
    return load_declared(request.config)

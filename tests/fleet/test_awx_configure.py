"""playbooks/awx_configure.yml and its declaration in playbooks/vars/awx.yml: valid, lint-clean, consistent."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fleet.awx_stub import AwxStub
from tests.support import ROOT, VENV_BIN, run, run_playbook

PLAYBOOK = ROOT / "playbooks" / "awx_configure.yml"
DECLARATION = ROOT / "playbooks" / "vars" / "awx.yml"
# Credential types AWX ships; the others must be declared in awx_credential_types.
BUILT_IN_CREDENTIAL_TYPES = {"Machine", "Source Control", "Vault", "Container Registry"}


class AnsibleLoader(yaml.SafeLoader):
    """A YAML loader that reads Ansible's !unsafe strings as plain strings."""


AnsibleLoader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


@pytest.fixture(scope="module")
def awx() -> dict[str, Any]:
    return yaml.load(DECLARATION.read_text(), Loader=AnsibleLoader)  # noqa: S506 - a SafeLoader subclass


def test_syntax_check_passes():
    proc = run([str(VENV_BIN / "ansible-playbook"), "--syntax-check", str(PLAYBOOK)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_production_lint_passes():
    proc = run(
        [
            str(VENV_BIN / "ansible-lint"),
            "--profile",
            "production",
            "--offline",
            "--nocolor",
            str(PLAYBOOK),
            str(DECLARATION),
        ]
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]


def test_job_template_playbooks_exist(awx):
    missing = {
        template["name"]: template["playbook"]
        for template in awx["awx_job_templates"]
        if not (ROOT / template["playbook"]).is_file()
    }
    assert missing == {}, f"job templates name playbooks that are not in the project: {missing}"


def test_fleet_jobs_and_schedules_declared(awx):
    playbooks = {Path(template["playbook"]).name for template in awx["awx_job_templates"]}
    assert {"provision.yml", "deploy.yml", "rollout.yml", "compliance.yml", "drift.yml", "rotate_secrets.yml"} <= (
        playbooks
    )
    schedules = {schedule["name"]: schedule for schedule in awx["awx_schedules"]}
    assert "FREQ=DAILY" in schedules["Nightly compliance"]["rrule"]
    assert "FREQ=DAILY" in schedules["Nightly drift report"]["rrule"]
    assert "FREQ=WEEKLY" in schedules["Weekly patch wave"]["rrule"]


def test_references_resolve(awx):
    templates = {template["name"] for template in awx["awx_job_templates"]}
    assert {schedule["job_template"] for schedule in awx["awx_schedules"]} <= templates
    credentials = {credential["name"] for credential in awx["awx_credentials"]}
    used = {name for template in awx["awx_job_templates"] for name in template["credentials"]}
    assert used <= credentials
    types = {credential_type["name"] for credential_type in awx["awx_credential_types"]}
    assert {credential["credential_type"] for credential in awx["awx_credentials"]} <= types | BUILT_IN_CREDENTIAL_TYPES
    for source in awx["awx_inventory_sources"]:
        assert (ROOT / source["source_path"]).is_file(), source


def test_patch_wave_playbook_exists(awx):
    patch = next(template for template in awx["awx_job_templates"] if template["name"] == "retail.edge patch wave")
    change = patch["extra_vars"]["rollout_change"]
    assert change["recurring"] == "weekly"
    assert (ROOT / "playbooks" / change["playbook"]).is_file()


def test_no_secret_values_in_git(awx):
    assert all("inputs" not in credential for credential in awx["awx_credentials"])
    for credential_type in awx["awx_credential_types"]:
        secrets = {field["id"] for field in credential_type["inputs"]["fields"] if field.get("secret")}
        assert secrets, f"{credential_type['name']} declares no secret field"
        # Injectors only pass the inputs through; literal values would be secrets in Git.
        for variable, value in credential_type["injectors"]["env"].items():
            assert value.startswith("{{") or value in ("true", "false"), (variable, value)


def test_injectors_set_module_variables(awx):
    env = {
        name: set(entry["injectors"]["env"]) for name, entry in ((t["name"], t) for t in awx["awx_credential_types"])
    }
    assert {"PROXMOX_TOKEN_ID", "PROXMOX_TOKEN_SECRET", "PROXMOX_CA_PATH"} <= env["Proxmox VE API token (retail.edge)"]
    assert {"VAULT_ADDR", "VAULT_ROLE_ID", "VAULT_SECRET_ID", "VAULT_CACERT"} <= env["Vault AppRole (retail.edge)"]
    module_utils = (ROOT / "plugins" / "module_utils" / "_pve.py").read_text()
    for variable in ("PROXMOX_TOKEN_ID", "PROXMOX_TOKEN_SECRET", "PROXMOX_CA_PATH"):
        assert f'"{variable}"' in module_utils


CREDENTIAL_INPUTS = {
    "retail.edge PVE automation token": {
        "token_id": "automation@pve!ansible",
        "token_secret": "00000000-0000-0000-0000-000000000000",
        "ca_bundle": "-----BEGIN CERTIFICATE-----\nlab\n-----END CERTIFICATE-----\n",
    },
    "retail.edge Vault AppRole": {
        "url": "https://127.0.0.1:8200",
        "role_id": "role",
        "secret_id": "secret",
        "ca_cert": "-----BEGIN CERTIFICATE-----\nlab\n-----END CERTIFICATE-----\n",
    },
}


@pytest.fixture
def controller():
    stub = AwxStub().start()
    yield stub
    stub.stop()


def configure(controller: AwxStub, expect_rc: int = 0):
    env = {"CONTROLLER_HOST": controller.url, "CONTROLLER_OAUTH_TOKEN": "lab-token", "CONTROLLER_VERIFY_SSL": "false"}
    return run_playbook(PLAYBOOK, extra_vars={"awx_credential_inputs": CREDENTIAL_INPUTS}, env=env, expect_rc=expect_rc)


def test_missing_credential_stops_before_templates(controller):
    proc = configure(controller, expect_rc=2)

    assert "credentials ['retail.edge store SSH'] do not exist in AWX" in proc.stdout
    assert set(controller.named("credentials")) == set(CREDENTIAL_INPUTS)
    assert controller.named("job_templates") == {}


def test_configures_awx_and_reruns_without_change(controller, awx):
    machine = controller.named("credential_types")["Machine"]["id"]
    controller.add("credentials", {"name": "retail.edge store SSH", "credential_type": machine})

    configure(controller)

    types = controller.named("credential_types")
    pve = types["Proxmox VE API token (retail.edge)"]
    assert pve["injectors"]["env"]["PROXMOX_TOKEN_SECRET"] == "{{ token_secret }}"
    assert pve["kind"] == "cloud"
    credentials = {item["id"]: name for name, item in controller.named("credentials").items()}
    templates = controller.named("job_templates")
    assert set(templates) == {template["name"] for template in awx["awx_job_templates"]}
    for template in awx["awx_job_templates"]:
        created = templates[template["name"]]
        assert created["playbook"] == template["playbook"]
        assert created["forks"] == 25
        linked = controller.associated("job_templates", created["id"], "credentials")
        assert sorted(credentials[item] for item in linked) == sorted(template["credentials"])
    rollout = json.loads(templates["retail.edge rollout"]["extra_vars"])
    assert rollout == {"rollout_state_dir": "/var/lib/awx/retail-edge/rollout"}

    schedules = controller.named("schedules")
    by_id = {item["id"]: name for name, item in templates.items()}
    assert {name: by_id[item["unified_job_template"]] for name, item in schedules.items()} == {
        schedule["name"]: schedule["job_template"] for schedule in awx["awx_schedules"]
    }
    source = controller.named("inventory_sources")["Store registry"]
    assert (source["source"], source["source_path"]) == ("scm", "inventories/example/fleet.stores.yml")
    assert source["source_project"] == controller.named("projects")["retail.edge"]["id"]

    rerun = configure(controller)

    assert re.search(r"localhost\s+:\s+ok=\d+\s+changed=0\s", rerun.stdout), rerun.stdout[-3000:]

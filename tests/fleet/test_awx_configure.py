"""playbooks/awx_configure.yml and its declaration in playbooks/vars/awx.yml: valid, lint-clean, consistent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import ROOT, VENV_BIN, run

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

"""Helpers for the Vault integration tests: test playbooks, inventories of local store hosts, output checks."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import yaml

from tests.fixtures_vault import OpenBaoServer
from tests.support import VENV_BIN, run_playbook

PLAYBOOKS = Path(__file__).parent / "vault_playbooks"
TEST_ROLES = PLAYBOOKS / "roles"


# Workload catalog for tests that need only the POS: one AppRole and one secret per store keeps runs short.
POS_ONLY_WORKLOADS = [{"name": "pos", "secrets": [{"name": "hq_sync", "fields": ["api_key", "hmac_key"]}]}]


def unique_store(prefix: str) -> str:
    """Return a store id no other test uses on the shared server, for example t5-3f9a1c."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def pos_host_vars(root: Path, store_id: str) -> dict[str, Any]:
    """Return host variables of a POS host of store_id whose files live under root/store_id."""
    base = root / store_id
    (base / "restarts").mkdir(parents=True, exist_ok=True)
    return {
        "store_id": store_id,
        "workload_secrets_store_id": store_id,
        "workload_secrets_workload": "pos",
        "workload_secrets_env": [
            {"name": "POS_HQ_API_KEY", "path": "hq_sync", "field": "api_key"},
            {"name": "POS_HQ_HMAC_KEY", "path": "hq_sync", "field": "hmac_key"},
        ],
        "workload_secrets_env_file": str(base / "etc/retail-edge/pos/secrets.env"),
        "workload_secrets_group": "daemon",
        "workload_secrets_vault_ca_cert": str(base / "etc/retail-edge/vault-ca.pem"),
        "workload_secrets_handler": "Restart pos",
        "test_restart_dir": str(base / "restarts"),
    }


def write_inventory(path: Path, store_hosts: dict[str, dict[str, Any]]) -> Path:
    """Write a YAML inventory: localhost plus the given hosts in group `stores`, all reached locally."""
    inventory = {
        "all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": str(VENV_BIN / "python"),
            },
            "hosts": {"localhost": {}},
            "children": {"stores": {"hosts": store_hosts}},
        }
    }
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    return path


def restart_count(root: Path, store_id: str) -> int:
    """Return how often the test handler of store_id fired (it leaves one file per run)."""
    return len(list((root / store_id / "restarts").glob("restart.*")))


def env_file_values(root: Path, store_id: str) -> dict[str, str]:
    """Parse the POS environment file of store_id."""
    path = root / store_id / "etc/retail-edge/pos/secrets.env"
    values = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, value = line.split("=", 1)
            values[name] = value
    return values


def play(
    name: str,
    openbao: OpenBaoServer,
    *args: str,
    inventory: Path | str = "localhost,",
    extra_vars: dict[str, Any] | None = None,
    token: bool = True,
    expect_rc: int | None = 0,
):
    """Run a test playbook (or a path) with VAULT_* pointing at openbao and the test roles on the role path."""
    playbook = Path(name) if "/" in name else PLAYBOOKS / name
    env = openbao.env(token=token)
    env["ANSIBLE_ROLES_PATH"] = f"{TEST_ROLES}:{PLAYBOOKS.parents[2] / 'roles'}"
    if inventory == "localhost,":
        args = (*args, "-c", "local", "-e", f"ansible_python_interpreter={VENV_BIN / 'python'}")
    return run_playbook(playbook, *args, inventory=inventory, extra_vars=extra_vars, env=env, expect_rc=expect_rc)

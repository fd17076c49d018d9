"""Helpers for the Vault integration tests: test playbooks, inventories of local store hosts, output checks."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import yaml

from tests.fixtures_vault import OpenBaoServer
from tests.support import ROOT, VENV_BIN, run_playbook

PLAYBOOKS = Path(__file__).parent / "vault_playbooks"
TEST_ROLES = PLAYBOOKS / "roles"
ROTATE_PLAYBOOK = ROOT / "playbooks" / "rotate_secrets.yml"
BOOTSTRAP_PLAYBOOK = ROOT / "playbooks" / "vault_bootstrap.yml"

# Workload catalog for tests that need only the POS cache: one AppRole and one secret per store
# keeps the runs short.
POS_ONLY_WORKLOADS = [{"name": "pos_cache", "secrets": [{"name": "hq", "fields": ["token", "hmac_key"]}]}]
POS_ONLY = {"vault_store_bootstrap_workloads": POS_ONLY_WORKLOADS}


def unique_store(prefix: str) -> str:
    """Return a store id that no other test uses on the shared server, for example t5-3f9a1c."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def pos_host_vars(root: Path, store_id: str, address: str = "127.0.0.1") -> dict[str, Any]:
    """Return host variables of the POS cache container of store_id, with its files under root/store_id.

    The retail_edge_* variables have the shape the retail.edge.stores inventory plugin gives them.
    """
    base = root / store_id
    (base / "restarts").mkdir(parents=True, exist_ok=True)
    return {
        "retail_edge_store": {"id": store_id},
        "retail_edge_container": {"workload": "pos_cache", "address": address},
        "workload_secrets_env": [
            {"name": "RETAIL_EDGE_POS_HQ_TOKEN", "path": "hq", "field": "token"},
            {"name": "RETAIL_EDGE_POS_HMAC_KEY", "path": "hq", "field": "hmac_key"},
        ],
        "workload_secrets_env_file": str(base / "etc/retail-edge/pos_cache/secrets.env"),
        "workload_secrets_group": "daemon",
        "workload_secrets_vault_ca_cert": str(base / "etc/retail-edge/vault-ca.pem"),
        "workload_secrets_handler": "Restart pos_cache",
        # The local target is the test machine, whose venv Python already has hvac.
        "workload_secrets_install_client": False,
        "test_restart_dir": str(base / "restarts"),
    }


def write_inventory(path: Path, root: Path, stores: list[str], address: str = "127.0.0.1") -> Path:
    """Write a YAML inventory with one local POS cache host per store, grouped as the stores plugin does."""
    hosts = {f"{store}-pos-cache": pos_host_vars(root, store, address) for store in stores}
    store_groups = {f"store_{store.replace('-', '_')}": {"hosts": {f"{store}-pos-cache": {}}} for store in stores}
    inventory = {
        "all": {
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": str(VENV_BIN / "python")},
            "hosts": {"localhost": {}, **hosts},
            "children": {
                "stores": {"children": store_groups},
                "containers": {"hosts": dict.fromkeys(hosts)},
                "pos_cache": {"hosts": dict.fromkeys(hosts)},
            },
        }
    }
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    return path


def restart_count(root: Path, store_id: str) -> int:
    """Return how often the test handler of store_id fired (it leaves one file per run)."""
    return len(list((root / store_id / "restarts").glob("restart.*")))


def env_file_values(root: Path, store_id: str) -> dict[str, str]:
    """Parse the POS cache environment file of store_id."""
    path = root / store_id / "etc/retail-edge/pos_cache/secrets.env"
    values = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, value = line.split("=", 1)
            values[name] = value
    return values


def recap_changed(stdout: str, host: str) -> int:
    """Return the changed= count of host in the PLAY RECAP."""
    line = next(line for line in stdout.splitlines() if line.startswith(f"{host} "))
    return int(line.split("changed=")[1].split()[0])


def play(
    name: str | Path,
    openbao: OpenBaoServer,
    *args: str,
    inventory: Path | str = "localhost,",
    extra_vars: dict[str, Any] | None = None,
    token: bool = True,
    expect_rc: int | None = 0,
):
    """Run a test playbook (or a path) with VAULT_* pointing at openbao and the test roles on the role path."""
    playbook = Path(name) if Path(name).is_absolute() else PLAYBOOKS / name
    env = openbao.env(token=token)
    env["ANSIBLE_ROLES_PATH"] = f"{TEST_ROLES}:{ROOT / 'roles'}"
    if inventory == "localhost,":
        args = (*args, "-c", "local", "-e", f"ansible_python_interpreter={VENV_BIN / 'python'}")
    return run_playbook(playbook, *args, inventory=inventory, extra_vars=extra_vars, env=env, expect_rc=expect_rc)

"""OpenBao sealed while a store's secrets are being deployed.

The lab server is sealed for real (PUT sys/seal with the root token) after a first deploy and a change of
one secret value, so the next deploy has work to do. The run must fail with a message that names the
sealed server, its address, the store's secrets and the fix (unseal), and must leave the environment file
on the target exactly as it was. After unsealing with the lab's stored unseal key, a rerun writes the new
value and a further rerun changes nothing.

Two credential paths reach the sealed server at different steps. By default the controller issues a wrapped
secret_id for each run, so the first Vault call to fail runs on the controller. A target given its own
AppRole role_id and secret_id first meets the sealed server in vault_env_file on the target.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures_vault import OpenBaoServer
from tests.integration.vault_support import (
    BOOTSTRAP_PLAYBOOK,
    POS_ONLY,
    env_file_values,
    play,
    pos_host_vars,
    recap_changed,
    restart_count,
    unique_store,
    write_inventory,
)

TOKEN, HMAC = "RETAIL_EDGE_POS_HQ_TOKEN", "RETAIL_EDGE_POS_HMAC_KEY"


def own_approle_credentials(openbao: OpenBaoServer, store: str) -> dict[str, Any]:
    """Return role variables that give the target its own role_id and a fresh single-use secret_id."""
    approle = openbao.client().auth.approle
    role = f"store-{store}-pos_cache"
    return {
        "workload_secrets_vault_role_id": approle.read_role_id(role)["data"]["role_id"],
        "workload_secrets_vault_secret_id": approle.generate_secret_id(role)["data"]["secret_id"],
    }


def deploy(openbao: OpenBaoServer, inventory: Path, store: str, own_approle: bool, expect_rc: int = 0):
    extra_vars = own_approle_credentials(openbao, store) if own_approle else None
    return play("workload_deploy.yml", openbao, inventory=inventory, extra_vars=extra_vars, expect_rc=expect_rc)


def file_state(path: Path) -> tuple[bytes, int, int, int, int]:
    """Return the content, mode, owner, group and inode of path."""
    info = path.stat()
    return path.read_bytes(), info.st_mode, info.st_uid, info.st_gid, info.st_ino


@pytest.mark.parametrize("own_approle", [False, True], ids=["controller-issued", "target-approle"])
def test_sealed_openbao_during_deploy(openbao: OpenBaoServer, tmp_path: Path, own_approle: bool) -> None:
    store = unique_store("sealed")
    host = f"{store}-pos-cache"
    secret_path = f"stores/{store}/pos_cache/hq"
    inventory = write_inventory(tmp_path / "inventory.yml", tmp_path, [store])
    env_file = Path(pos_host_vars(tmp_path, store)["workload_secrets_env_file"])
    play(BOOTSTRAP_PLAYBOOK, openbao, inventory=inventory, extra_vars=POS_ONLY)
    deploy(openbao, inventory, store, own_approle)
    old = openbao.read(secret_path)
    before = file_state(env_file)
    assert env_file_values(tmp_path, store) == {TOKEN: old["token"], HMAC: old["hmac_key"]}

    new_token = secrets.token_hex(20)
    openbao.write(secret_path, {"token": new_token, "hmac_key": old["hmac_key"]})
    # The secret_id must be issued before the seal: a sealed server cannot issue one.
    extra_vars = own_approle_credentials(openbao, store) if own_approle else None
    openbao.lab.seal()
    try:
        assert openbao.lab.status()["sealed"] is True
        failed = play("workload_deploy.yml", openbao, inventory=inventory, extra_vars=extra_vars, expect_rc=2)
    finally:
        openbao.lab.unseal()

    output = failed.stdout + failed.stderr
    assert f"Vault (OpenBao) at {openbao.url} is sealed (HTTP 503)" in output, output[-3000:]
    assert f"bao operator unseal -address={openbao.url}" in output
    if own_approle:
        assert f"reading the secrets for {env_file} from kv/stores/{store}/pos_cache failed" in output
        assert "auth/approle/login" in output
    else:
        assert f"Issuing a wrapped secret_id for store {store}, workload pos_cache failed" in output
        assert f"auth/approle/role/store-{store}-pos_cache/" in output
    assert f"{env_file} was not changed" in output
    assert new_token not in output
    assert old["token"] not in output

    assert file_state(env_file) == before
    assert [entry.name for entry in env_file.parent.iterdir()] == [env_file.name], "a temporary file is left"
    assert restart_count(tmp_path, store) == 1

    converged = deploy(openbao, inventory, store, own_approle)
    # The environment file and the restart handler it notifies.
    assert recap_changed(converged.stdout, host) == 2, converged.stdout[-3000:]
    assert env_file_values(tmp_path, store) == {TOKEN: new_token, HMAC: old["hmac_key"]}
    after = env_file.stat()
    assert (after.st_mode, after.st_uid, after.st_gid) == before[1:4]
    assert restart_count(tmp_path, store) == 2

    again = deploy(openbao, inventory, store, own_approle)
    assert recap_changed(again.stdout, host) == 0, again.stdout[-3000:]
    assert restart_count(tmp_path, store) == 2
    assert os.listdir(env_file.parent) == [env_file.name]

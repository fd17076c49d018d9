"""Per-store AppRoles against the real lab OpenBao: bootstrap, isolation between stores, wrapped secret_ids."""

from __future__ import annotations

from pathlib import Path

import hvac
import pytest

from tests.fixtures_vault import OpenBaoServer
from tests.integration.vault_support import POS_ONLY_WORKLOADS, play, pos_host_vars, unique_store, write_inventory


@pytest.fixture(scope="module")
def two_stores(openbao: OpenBaoServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """Bootstrap two stores with the role's default workloads and return their ids."""
    root = tmp_path_factory.mktemp("access")
    first, second = unique_store("a"), unique_store("b")
    inventory = write_inventory(
        root / "inventory.yml", {f"{store}-pos": pos_host_vars(root, store) for store in (first, second)}
    )
    play(
        "bootstrap.yml",
        openbao,
        inventory=inventory,
        extra_vars={"vault_store_bootstrap_workloads": POS_ONLY_WORKLOADS},
    )
    return first, second


def _recap_changed(stdout: str) -> int:
    line = next(line for line in stdout.splitlines() if line.startswith("localhost"))
    return int(line.split("changed=")[1].split()[0])


def test_bootstrap_creates_and_keeps_secrets(openbao: OpenBaoServer, tmp_path: Path):
    store = unique_store("boot")
    inventory = write_inventory(tmp_path / "inventory.yml", {f"{store}-pos": pos_host_vars(tmp_path, store)})

    play("bootstrap.yml", openbao, inventory=inventory)
    created = openbao.read(f"stores/{store}/pos/hq_sync")
    assert sorted(created) == ["api_key", "hmac_key"]
    assert all(len(value) == 40 and value.isalnum() for value in created.values())
    assert openbao.read(f"stores/{store}/inventory_api/erp_feed").keys() == {"token"}

    policy = openbao.client().sys.read_acl_policy(f"store-{store}-pos")["data"]["policy"]
    assert f'path "kv/data/stores/{store}/pos/*"' in policy
    assert 'capabilities = ["read"]' in policy
    role = openbao.client().adapter.get(f"/v1/auth/approle/role/store-{store}-pos")["data"]
    assert role["token_policies"] == [f"store-{store}-pos"]
    assert role["secret_id_num_uses"] == 1

    openbao.write(f"stores/{store}/pos/hq_sync", {"api_key": "kept-by-operator", "hmac_key": created["hmac_key"]})
    again = play("bootstrap.yml", openbao, inventory=inventory)
    assert _recap_changed(again.stdout) == 0, again.stdout[-3000:]
    assert openbao.read(f"stores/{store}/pos/hq_sync")["api_key"] == "kept-by-operator"


def test_approle_reads_only_its_own_store(openbao: OpenBaoServer, two_stores: tuple[str, str]):
    store, other_store = two_stores

    proc = play(
        "approle_isolation.yml",
        openbao,
        token=False,
        extra_vars={"test_store": store, "test_other_store": other_store, "test_admin_token": openbao.root_token},
    )

    assert "permission denied (HTTP 403)" in proc.stdout
    # The refused write left the secret as the bootstrap made it.
    assert openbao.read(f"stores/{store}/pos/hq_sync")["api_key"] != "written-by-the-store-itself"


def test_wrapped_secret_id_works_once(openbao: OpenBaoServer, two_stores: tuple[str, str]):
    store, _ = two_stores

    play(
        "wrapped_once.yml",
        openbao,
        token=False,
        extra_vars={"test_store": store, "test_admin_token": openbao.root_token},
    )

    # The AppRole login revoked its token: no token of the store role is left alive.
    accessors = openbao.client().adapter.list("/v1/auth/token/accessors")["data"]["keys"]
    client = openbao.client()
    live_policies = [client.auth.token.lookup_accessor(accessor)["data"]["policies"] for accessor in accessors]
    assert not any(f"store-{store}-pos" in policies for policies in live_policies)


def test_wrapped_secret_id_rejected_by_other_role(openbao: OpenBaoServer, two_stores: tuple[str, str]):
    store, other_store = two_stores
    client = openbao.client()
    wrapped = client.adapter.post(
        f"/v1/auth/approle/role/store-{other_store}-pos/secret-id", headers={"X-Vault-Wrap-TTL": "60"}
    )["wrap_info"]["token"]
    secret_id = hvac.Client(url=openbao.url, token=wrapped, verify=openbao.ca_file).sys.unwrap()["data"]["secret_id"]
    role_id = client.adapter.get(f"/v1/auth/approle/role/store-{store}-pos/role-id")["data"]["role_id"]

    with pytest.raises(hvac.exceptions.InvalidRequest):
        hvac.Client(url=openbao.url, verify=openbao.ca_file).auth.approle.login(role_id=role_id, secret_id=secret_id)

"""Per-store AppRoles against the real lab OpenBao: bootstrap, isolation between stores, wrapped secret_ids."""

from __future__ import annotations

from pathlib import Path

import hvac
import pytest

from tests.fixtures_vault import OpenBaoServer
from tests.integration.vault_support import (
    BOOTSTRAP_PLAYBOOK,
    POS_ONLY,
    play,
    recap_changed,
    unique_store,
    write_inventory,
)


@pytest.fixture(scope="module")
def two_stores(openbao: OpenBaoServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """Bootstrap the POS cache of two stores and return their ids."""
    root = tmp_path_factory.mktemp("access")
    stores = [unique_store("a"), unique_store("b")]
    inventory = write_inventory(root / "inventory.yml", root, stores)
    play(BOOTSTRAP_PLAYBOOK, openbao, inventory=inventory, extra_vars=POS_ONLY)
    return stores[0], stores[1]


def test_bootstrap_creates_and_keeps_secrets(openbao: OpenBaoServer, tmp_path: Path):
    store = unique_store("boot")
    inventory = write_inventory(tmp_path / "inventory.yml", tmp_path, [store])

    play(BOOTSTRAP_PLAYBOOK, openbao, inventory=inventory)

    created = openbao.read(f"stores/{store}/pos_cache/hq")
    assert list(created) == ["token"]
    assert len(created["token"]) == 40
    assert created["token"].isalnum()
    for workload, secret in [("inventory_api", "hq"), ("vision_inference", "mqtt"), ("varnish_edge", "admin")]:
        assert openbao.read(f"stores/{store}/{workload}/{secret}"), f"{workload}/{secret} was not created"

    client = openbao.client()
    policy = client.sys.read_acl_policy(f"store-{store}-pos_cache")["data"]["policy"]
    assert f'path "kv/data/stores/{store}/pos_cache/*"' in policy
    assert 'capabilities = ["read"]' in policy
    role = client.adapter.get(f"/v1/auth/approle/role/store-{store}-pos_cache")["data"]
    assert role["token_policies"] == [f"store-{store}-pos_cache"]
    assert role["secret_id_num_uses"] == 1
    assert role["secret_id_bound_cidrs"] == ["127.0.0.1/32"], "not bound to the container address"
    # A workload without a container in this store gets no address binding.
    assert client.adapter.get(f"/v1/auth/approle/role/store-{store}-varnish_edge")["data"]["secret_id_bound_cidrs"] in (
        None,
        [],
    )

    openbao.write(f"stores/{store}/pos_cache/hq", {"token": "kept-by-operator"})
    again = play(BOOTSTRAP_PLAYBOOK, openbao, inventory=inventory)
    assert recap_changed(again.stdout, "localhost") == 0, again.stdout[-3000:]
    assert openbao.read(f"stores/{store}/pos_cache/hq") == {"token": "kept-by-operator"}


def test_approle_reads_only_its_own_store(openbao: OpenBaoServer, two_stores: tuple[str, str]):
    store, other_store = two_stores

    proc = play(
        "approle_isolation.yml",
        openbao,
        token=False,
        extra_vars={"test_store": store, "test_other_store": other_store, "test_admin_token": openbao.root_token},
    )

    assert "permission denied (HTTP 403)" in proc.stdout
    assert openbao.read(f"stores/{store}/pos_cache/hq")["token"] != "written-by-the-store-itself"


def test_wrapped_secret_id_works_once(openbao: OpenBaoServer, two_stores: tuple[str, str]):
    store = two_stores[0]

    play(
        "wrapped_once.yml",
        openbao,
        token=False,
        extra_vars={"test_store": store, "test_admin_token": openbao.root_token},
    )

    # The module revoked the token of its AppRole login: no token with the store's policy is alive.
    client = openbao.client()
    accessors = client.adapter.list("/v1/auth/token/accessors")["data"]["keys"]
    live_policies = [client.auth.token.lookup_accessor(accessor)["data"]["policies"] for accessor in accessors]
    assert not any(f"store-{store}-pos_cache" in policies for policies in live_policies)


def test_approle_bound_to_other_address_rejected(openbao: OpenBaoServer, tmp_path: Path):
    store = unique_store("cidr")
    # The container of this store lives at a lab bridge address, not at 127.0.0.1 where the test runs.
    inventory = write_inventory(tmp_path / "inventory.yml", tmp_path, [store], address="198.51.100.77")
    play(BOOTSTRAP_PLAYBOOK, openbao, inventory=inventory, extra_vars=POS_ONLY)

    proc = play("workload_deploy.yml", openbao, inventory=inventory, expect_rc=2)

    assert "AppRole login at auth/approle/login failed" in proc.stdout, proc.stdout[-3000:]
    assert "CIDR binding" in proc.stdout


def test_secret_id_of_other_store_rejected(openbao: OpenBaoServer, two_stores: tuple[str, str]):
    store, other_store = two_stores
    client = openbao.client()
    secret_id = client.adapter.post(f"/v1/auth/approle/role/store-{other_store}-pos_cache/secret-id")["data"][
        "secret_id"
    ]
    role_id = client.adapter.get(f"/v1/auth/approle/role/store-{store}-pos_cache/role-id")["data"]["role_id"]

    with pytest.raises(hvac.exceptions.InvalidRequest):
        hvac.Client(url=openbao.url, verify=openbao.ca_file).auth.approle.login(role_id=role_id, secret_id=secret_id)

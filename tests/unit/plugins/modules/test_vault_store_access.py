"""Unit tests of vault_store_access: policy text, CIDR handling, idempotent AppRole comparison."""

from __future__ import annotations

import re

import pytest
from ansible_collections.retail.edge.plugins.module_utils._vault import VaultConfigError, VaultNotFound
from ansible_collections.retail.edge.plugins.modules.vault_store_access import (
    StoreAccess,
    normalize_cidrs,
    render_policy,
)


def test_policy_allows_only_reading_one_workload_folder():
    policy = render_policy("kv", "stores", "s001", "pos_cache")
    assert 'path "kv/data/stores/s001/pos_cache/*" {\n  capabilities = ["read"]\n}' in policy
    assert 'path "kv/metadata/stores/s001/pos_cache/*" {\n  capabilities = ["read"]\n}' in policy
    assert policy.count("capabilities") == 2


def test_normalize_cidrs():
    assert normalize_cidrs(["10.0.0.5", "10.0.0.0/24", "10.0.0.5/32", "2001:db8::1"]) == [
        "10.0.0.0/24",
        "10.0.0.5/32",
        "2001:db8::1/128",
    ]
    with pytest.raises(VaultConfigError, match="'pos-host' is not an IP address"):
        normalize_cidrs(["pos-host"])


class FakeSys:
    """Policies and AppRoles in memory, returned as Vault returns them (a /32 token CIDR without its suffix)."""

    def __init__(self):
        self.policies = {}
        self.roles = {}
        self.writes = []

    def request(self, method, path, payload=None, headers=None, authenticated=True):
        if method != "GET":
            self.writes.append((method, path))
        if path.startswith("sys/policies/acl/"):
            name = path.rsplit("/", 1)[1]
            if method == "PUT":
                self.policies[name] = payload["policy"]
                return None
            if name not in self.policies:
                raise VaultNotFound("not found (HTTP 404)")
            return {"data": {"policy": self.policies[name]}}
        name = path.split("/")[3]
        if path.endswith("/role-id"):
            if name not in self.roles:
                raise VaultNotFound("not found (HTTP 404)")
            return {"data": {"role_id": f"id-{name}"}}
        if method == "POST":
            stored = dict(payload)
            stored["token_bound_cidrs"] = [cidr.removesuffix("/32") for cidr in payload["token_bound_cidrs"]]
            self.roles[name] = stored
            return None
        if name not in self.roles:
            raise VaultNotFound("not found (HTTP 404)")
        return {"data": {**self.roles[name], "token_type": "default", "local_secret_ids": False}}


def access_params(**overrides):
    base = {
        "store_id": "s001",
        "workload": "pos_cache",
        "state": "present",
        "mount_point": "kv",
        "secrets_prefix": "stores",
        "policy_name": None,
        "role_name": None,
        "approle_mount_point": "approle",
        "secret_id_ttl": "10m",
        "secret_id_num_uses": 1,
        "token_ttl": "5m",
        "token_max_ttl": "15m",
        "bound_cidrs": ["10.20.1.24"],
        "wrap_ttl": None,
        "secret_id_metadata": None,
    }
    base.update(overrides)
    return base


def test_present_is_idempotent(module_stub):
    vault = FakeSys()
    first = StoreAccess(module_stub(access_params()), vault).run()
    second = StoreAccess(module_stub(access_params()), vault).run()
    assert first["changed"] is True
    assert second["changed"] is False
    assert second["role_id"] == "id-store-s001-pos_cache"
    assert vault.roles["store-s001-pos_cache"]["secret_id_ttl"] == 600
    assert len(vault.writes) == 2


def test_present_check_mode_writes_nothing(module_stub):
    vault = FakeSys()
    result = StoreAccess(module_stub(access_params(), check_mode=True), vault).run()
    assert result["changed"] is True
    assert "role_id" not in result
    assert vault.writes == []


def test_changed_ttl_is_reported_in_diff(module_stub):
    vault = FakeSys()
    StoreAccess(module_stub(access_params()), vault).run()
    result = StoreAccess(module_stub(access_params(token_ttl="1h")), vault).run()
    assert result["changed"] is True
    assert result["diff"]["before"]["role"]["token_ttl"] == 300
    assert result["diff"]["after"]["role"]["token_ttl"] == 3600


def test_invalid_store_id_is_rejected(module_stub):
    with pytest.raises(VaultConfigError, match=re.escape("store_id='s1/../s2'")):
        StoreAccess(module_stub(access_params(store_id="s1/../s2")), FakeSys())


def test_issue_for_missing_role_explains(module_stub):
    with pytest.raises(VaultConfigError, match="create it first with state=present"):
        StoreAccess(module_stub(access_params(state="issued")), FakeSys()).run()

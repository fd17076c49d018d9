"""Test doubles shared by the unit tests of the Vault plugins."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from ansible_collections.retail.edge.plugins.module_utils._vault import (
    VaultInvalidRequest,
    VaultNotFound,
    VaultPermissionDenied,
)


class FakeKv:
    """In-memory KV version 2 engine behind the VaultConnection.request() interface.

    It serves the paths the plugins use (data, metadata, delete, undelete, destroy) as Vault
    does, including the 404 body of a deleted version and check-and-set rejections.
    """

    def __init__(self, mount: str = "kv") -> None:
        self.mount = mount
        self.secrets: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.forbidden: set[str] = set()

    # -- seeding --------------------------------------------------------------

    def put(self, path: str, data: dict[str, Any]) -> int:
        entry = self.secrets.setdefault(path, {"versions": {}, "custom_metadata": {}, "max_versions": 0})
        number = len(entry["versions"]) + 1
        entry["versions"][number] = {"data": dict(data), "deletion_time": "", "destroyed": False}
        return number

    def delete(self, path: str, number: int) -> None:
        self.secrets[path]["versions"][number]["deletion_time"] = "2026-01-01T00:00:00Z"

    # -- request interface ----------------------------------------------------

    def request(self, method, path, payload=None, headers=None, authenticated=True):
        self.requests.append((method, path))
        if path in self.forbidden:
            raise VaultPermissionDenied(f"permission denied (HTTP 403) on {method} {path}")
        prefix, rest = path.split("/", 1)
        assert prefix == self.mount, path
        kind, secret = rest.split("/", 1)
        secret, query = secret.split("?", 1) if "?" in secret else (secret, "")
        handler = getattr(self, f"_{kind}_{method.lower()}")
        return handler(secret, query, copy.deepcopy(payload))

    def _entry(self, secret: str) -> dict[str, Any]:
        if secret not in self.secrets:
            raise VaultNotFound(f"not found (HTTP 404) on {secret}")
        return self.secrets[secret]

    def _current(self, secret: str) -> int:
        versions = self.secrets[secret]["versions"] if secret in self.secrets else {}
        return max(versions, default=0)

    def _data_get(self, secret, query, _payload):
        entry = self._entry(secret)
        number = int(query.split("=")[1]) if query else self._current(secret)
        version = entry["versions"].get(number)
        if version is None:
            raise VaultNotFound("not found (HTTP 404)")
        meta = {"version": number, "deletion_time": version["deletion_time"], "destroyed": version["destroyed"]}
        if version["deletion_time"] or version["destroyed"]:
            raise VaultNotFound("not found (HTTP 404)", body={"data": {"data": None, "metadata": meta}})
        meta.update(created_time="2026-01-01T00:00:00Z", custom_metadata=entry["custom_metadata"])
        return {"data": {"data": copy.deepcopy(version["data"]), "metadata": meta}}

    def _check_cas(self, secret, payload):
        cas = (payload.get("options") or {}).get("cas")
        if cas is not None and cas != self._current(secret):
            raise VaultInvalidRequest(
                "Vault rejected (HTTP 400)", errors=["check-and-set parameter did not match the current version"]
            )

    def _data_post(self, secret, _query, payload):
        self._check_cas(secret, payload)
        return {"data": {"version": self.put(secret, payload["data"])}}

    def _data_patch(self, secret, _query, payload):
        self._check_cas(secret, payload)
        entry = self._entry(secret)
        merged = dict(entry["versions"][self._current(secret)]["data"])
        for key, value in payload["data"].items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        return {"data": {"version": self.put(secret, merged)}}

    def _metadata_get(self, secret, _query, _payload):
        entry = self._entry(secret)
        versions = {
            str(number): {"deletion_time": version["deletion_time"], "destroyed": version["destroyed"]}
            for number, version in entry["versions"].items()
        }
        return {
            "data": {
                "current_version": self._current(secret),
                "oldest_version": 0,
                "max_versions": entry["max_versions"],
                "cas_required": entry.get("cas_required", False),
                "custom_metadata": entry["custom_metadata"],
                "versions": versions,
            }
        }

    def _metadata_post(self, secret, _query, payload):
        entry = self.secrets.setdefault(secret, {"versions": {}, "custom_metadata": {}, "max_versions": 0})
        entry.update(payload)

    def _metadata_delete(self, secret, _query, _payload):
        self.secrets.pop(secret, None)

    def _delete_post(self, secret, _query, payload):
        for number in payload["versions"]:
            self.delete(secret, number)

    def _undelete_post(self, secret, _query, payload):
        for number in payload["versions"]:
            self.secrets[secret]["versions"][number]["deletion_time"] = ""

    def _destroy_put(self, secret, _query, payload):
        for number in payload["versions"]:
            self.secrets[secret]["versions"][number].update(destroyed=True, data=None)

    def writes(self) -> list[tuple[str, str]]:
        return [(method, path) for method, path in self.requests if method != "GET"]


class ModuleStub:
    """The parts of AnsibleModule that the module classes use: params, check mode, no_log, warnings."""

    def __init__(self, params: dict[str, Any], check_mode: bool = False, no_log: bool = True) -> None:
        self.params = params
        self.check_mode = check_mode
        self.no_log = no_log
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        self.warnings.append(message)


@pytest.fixture
def fake_kv() -> FakeKv:
    return FakeKv()


@pytest.fixture
def module_stub():
    return ModuleStub

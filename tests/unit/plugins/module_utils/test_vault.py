"""Unit tests of the shared Vault client: option handling, error translation, token and AppRole login."""

from __future__ import annotations

from typing import ClassVar

import hvac.exceptions
import pytest
import requests.exceptions
from ansible_collections.retail.edge.plugins.module_utils import _vault
from ansible_collections.retail.edge.plugins.module_utils._vault import (
    VaultAuthError,
    VaultConfigError,
    VaultConnection,
    VaultConnectionError,
    VaultError,
    VaultInvalidRequest,
    VaultNotFound,
    VaultPermissionDenied,
    VaultSealed,
    options_with_environment,
    parse_duration,
    translate_error,
    validate_name,
    validate_secret_path,
)

URL = "https://vault.example:8200"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(None, None), (30, 30), ("45", 45), ("90s", 90), ("15m", 900), ("1h30m", 5400), ("7d", 604800), ("0", 0)],
)
def test_parse_duration_accepts(value, seconds):
    assert parse_duration(value, "ttl") == seconds


@pytest.mark.parametrize("value", ["", "1x", "m", "-5", "1.5h", -1])
def test_parse_duration_rejects(value):
    with pytest.raises(VaultConfigError, match="ttl="):
        parse_duration(value, "ttl")


@pytest.mark.parametrize("value", ["s001", "pos_cache", "store-7.b"])
def test_validate_name_accepts(value):
    assert validate_name(value, "store_id") == value


@pytest.mark.parametrize("value", ["", "s0/01", "..", "a..b", "*", "-x", "s 1"])
def test_validate_name_rejects(value):
    with pytest.raises(VaultConfigError, match="store_id="):
        validate_name(value, "store_id")


def test_validate_secret_path_accepts():
    assert validate_secret_path("stores/s001/pos_cache/hq") == "stores/s001/pos_cache/hq"


@pytest.mark.parametrize("path", ["", "/a", "a/", "a//b", "a/../b", "a b", "a/*"])
def test_validate_secret_path_rejects(path):
    with pytest.raises(VaultConfigError, match="without leading or trailing"):
        validate_secret_path(path)


class TaggedStr(str):
    """Stands in for Ansible's tagged strings, which requests rejects in headers."""


def test_environment_fills_only_unset_options():
    environ = {"VAULT_ADDR": URL, "VAULT_TOKEN": "env-token", "VAULT_ROLE_ID": "env-role"}
    merged = options_with_environment({"url": None, "token": "option-token", "role_id": ""}, environ)
    assert merged == {
        "url": URL,
        "token": "option-token",
        "role_id": "env-role",
        "_from_environment": ["url", "role_id"],
    }


def test_environment_turns_str_subclasses_into_str():
    merged = options_with_environment({"token": TaggedStr("t")}, {})
    assert merged["token"].__class__ is str


@pytest.mark.parametrize(
    ("exc", "kind", "fragment"),
    [
        (hvac.exceptions.Forbidden(errors=["permission denied"]), VaultPermissionDenied, "HTTP 403"),
        (hvac.exceptions.InvalidPath(), VaultNotFound, "HTTP 404"),
        (hvac.exceptions.VaultDown(errors=["Vault is sealed"]), VaultSealed, "is sealed (HTTP 503)"),
        (hvac.exceptions.VaultDown(errors=["Vault is sealed"]), VaultSealed, "bao operator unseal -address="),
        (hvac.exceptions.VaultDown(errors=["no active node"]), VaultSealed, "wait for a leader"),
        (hvac.exceptions.Unauthorized(errors=["bad token"]), VaultAuthError, "HTTP 401"),
        (hvac.exceptions.InvalidRequest(errors=["bad"]), VaultInvalidRequest, "HTTP 400"),
        (hvac.exceptions.InternalServerError(errors=["boom"]), VaultError, "boom"),
        (requests.exceptions.SSLError("certificate verify failed"), VaultConnectionError, "ca_cert"),
        (requests.exceptions.ConnectionError("refused"), VaultConnectionError, "VAULT_ADDR"),
        (requests.exceptions.Timeout("slow"), VaultConnectionError, "cannot connect"),
    ],
)
def test_translate_error(exc, kind, fragment):
    error = translate_error(exc, "GET", "kv/data/x", URL)
    assert error.__class__ is kind
    assert fragment in str(error)
    assert "GET kv/data/x" in str(error)


def test_translate_error_hides_text_of_unknown_errors():
    error = translate_error(ValueError("Header part ('s.SECRET') must be str"), "GET", "kv/data/x", URL)
    assert "s.SECRET" not in str(error)
    assert "ValueError" in str(error)


def test_translate_error_keeps_404_body():
    body = {"data": {"metadata": {"version": 3}}}
    error = translate_error(hvac.exceptions.InvalidPath(json=body), "GET", "kv/data/x", URL)
    assert error.body == body


class FakeAdapter:
    def __init__(self, client: FakeClient) -> None:
        self.client = client

    def request(self, method, url, headers=None, **kwargs):
        FakeClient.calls.append((method, url, self.client.token, kwargs.get("json")))
        return FakeClient.responses.pop((method, url))


class FakeClient:
    """Records every request with the token it carried and returns responses from a table."""

    calls: ClassVar[list] = []
    responses: ClassVar[dict] = {}

    def __init__(self, url, token, verify, timeout, namespace):
        self.url, self.token, self.verify, self.namespace = url, token, verify, namespace
        self.adapter = FakeAdapter(self)


@pytest.fixture
def fake_hvac(monkeypatch):
    FakeClient.calls = []
    FakeClient.responses = {}
    monkeypatch.setattr(_vault.hvac, "Client", FakeClient)
    return FakeClient


def test_missing_url_names_option_and_variable():
    with pytest.raises(VaultConfigError, match="VAULT_ADDR"):
        VaultConnection({"token": "t"})


def test_missing_credentials_name_both_methods(fake_hvac):
    with pytest.raises(VaultConfigError, match=r"VAULT_TOKEN.*VAULT_ROLE_ID"):
        VaultConnection({"url": URL})


def test_approle_without_secret_id_fails(fake_hvac):
    with pytest.raises(VaultConfigError, match="secret_id"):
        VaultConnection({"url": URL, "role_id": "r"})


def test_missing_ca_file_fails(fake_hvac, tmp_path):
    with pytest.raises(VaultConfigError, match="ca_cert="):
        VaultConnection({"url": URL, "token": "t", "validate_certs": True, "ca_cert": str(tmp_path / "none.pem")})


def test_token_login_is_never_revoked(fake_hvac):
    connection = VaultConnection({"url": URL, "token": "user-token"}).login()
    connection.close()
    assert connection.client.token == "user-token"
    assert fake_hvac.calls == []


def test_approle_login_then_revoke(fake_hvac):
    fake_hvac.responses = {
        ("POST", "/v1/auth/approle/login"): {"auth": {"client_token": "login-token"}},
        ("POST", "/v1/auth/token/revoke-self"): None,
    }
    connection = VaultConnection({"url": URL, "role_id": "r", "secret_id": "s"}).login()
    connection.close()
    login, revoke = fake_hvac.calls
    assert login == ("POST", "/v1/auth/approle/login", None, {"role_id": "r", "secret_id": "s"})
    assert revoke == ("POST", "/v1/auth/token/revoke-self", "login-token", None)


def test_wrapped_secret_id_unwrap_token(fake_hvac):
    fake_hvac.responses = {
        ("POST", "/v1/sys/wrapping/unwrap"): {"data": {"secret_id": "unwrapped"}},
        ("POST", "/v1/auth/ar/login"): {"auth": {"client_token": "login-token"}},
    }
    VaultConnection(
        {"url": URL, "role_id": "r", "wrapped_secret_id": "wrap-token", "approle_mount_point": "ar"}
    ).login()
    unwrap, login = fake_hvac.calls
    assert unwrap == ("POST", "/v1/sys/wrapping/unwrap", "wrap-token", None)
    assert login == ("POST", "/v1/auth/ar/login", None, {"role_id": "r", "secret_id": "unwrapped"})


def test_used_wrapping_token_fails_clearly(fake_hvac, monkeypatch):
    def reject(self, method, url, headers=None, **kwargs):
        raise hvac.exceptions.InvalidRequest(errors=["wrapping token is not valid or does not exist"])

    monkeypatch.setattr(FakeAdapter, "request", reject)
    connection = VaultConnection({"url": URL, "role_id": "r", "wrapped_secret_id": "used"})
    with pytest.raises(VaultAuthError, match="only once"):
        connection.login()


def test_rejected_login_explains_causes(fake_hvac, monkeypatch):
    def reject(self, method, url, headers=None, **kwargs):
        raise hvac.exceptions.InvalidRequest(errors=["source address unauthorized through CIDR restrictions"])

    monkeypatch.setattr(FakeAdapter, "request", reject)
    with pytest.raises(VaultAuthError, match="CIDR binding") as raised:
        VaultConnection({"url": URL, "role_id": "r", "secret_id": "s"}).login()
    assert "unauthorized through CIDR" in str(raised.value)


def test_task_token_wins_over_role_id_from_environment(fake_hvac):
    options = options_with_environment({"url": URL, "token": "task-token"}, {"VAULT_ROLE_ID": "env-role"})
    assert VaultConnection(options).auth_method == "token"


def test_task_role_id_wins_over_token_from_environment(fake_hvac):
    options = options_with_environment({"url": URL, "role_id": "r", "secret_id": "s"}, {"VAULT_TOKEN": "env-token"})
    assert VaultConnection(options).auth_method == "approle"


def test_error_text_drops_list_wrapper():
    exc = hvac.exceptions.Forbidden(errors=["1 error occurred:\n\t* permission denied\n\n"])
    error = translate_error(exc, "GET", "kv/data/x", URL)
    assert "permission denied (HTTP 403) on GET kv/data/x: permission denied." in str(error)

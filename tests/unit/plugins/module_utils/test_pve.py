"""Unit tests of the shared PVE client: credentials, error messages and task waiting."""

from __future__ import annotations

import pytest
from ansible_collections.retail.edge.plugins.module_utils import _pve
from ansible_collections.retail.edge.plugins.module_utils._pve import (
    PveClient,
    PveError,
    PveTaskError,
    PveTaskTimeout,
    describe_api_error,
    resolve_credentials,
    upid_node,
)
from proxmoxer import ResourceException

UPID = "UPID:pve1:0000A1B2:0012D3E4:6630A1B2:vzcreate:201:root@pam:"


class StubModule:
    def __init__(self, **params):
        self.params = {
            "api_host": "127.0.0.1",
            "api_port": 8006,
            "api_user": "root@pam",
            "api_password": "secret",
            "api_token_id": None,
            "api_token_secret": None,
            "validate_certs": True,
            "ca_path": None,
            "api_timeout": 30,
            **params,
        }

    def fail_json(self, **kwargs):
        raise AssertionError(kwargs)


class FakeResource:
    """Stands in for a proxmoxer resource: routes method calls to FakeApi.handle."""

    def __init__(self, api, path):
        self.api = api
        self.path = path

    def get(self, **params):
        return self.api.handle("GET", self.path, params)

    def post(self, **params):
        return self.api.handle("POST", self.path, params)


class FakeApi:
    def __init__(self, statuses, log=None):
        self.statuses = list(statuses)
        self.log = log or []
        self.requests = []

    def __call__(self, path):
        return FakeResource(self, path)

    def handle(self, method, path, params):
        self.requests.append((method, path, params))
        if path.endswith("/status"):
            return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        if path.endswith("/log"):
            return self.log
        if path == "fail":
            raise ResourceException(
                400, "Bad Request", "Parameter verification failed.", errors={"net0": "invalid format\n"}
            )
        return None


@pytest.fixture
def no_sleep(monkeypatch):
    slept = []
    monkeypatch.setattr(_pve.time, "sleep", slept.append)
    return slept


def make_client(monkeypatch, api, **params):
    monkeypatch.setattr(PveClient, "_connect", lambda self, verify, timeout: api)
    return PveClient(StubModule(**params))


# --- credentials ---------------------------------------------------------------------------


def test_credentials_password():
    creds = resolve_credentials({"api_user": "root@pam", "api_password": "x"})
    assert creds.login == "root@pam"
    assert creds.is_root_password_login


def test_credentials_full_token_id():
    creds = resolve_credentials({"api_token_id": "ansible@pve!ci", "api_token_secret": "s"})
    assert creds.user == "ansible@pve"
    assert creds.token_name == "ci"
    assert creds.login == "ansible@pve!ci"
    assert not creds.is_root_password_login


def test_credentials_bare_token_with_user():
    creds = resolve_credentials({"api_user": "root@pam", "api_token_id": "ci", "api_token_secret": "s"})
    assert creds.login == "root@pam!ci"
    assert creds.is_token
    assert not creds.is_root_password_login


def test_credentials_bare_token_without_user():
    with pytest.raises(PveError, match="api_user is required"):
        resolve_credentials({"api_token_id": "ci", "api_token_secret": "s"})


def test_credentials_token_user_mismatch():
    with pytest.raises(PveError, match="belongs to 'a@pve'"):
        resolve_credentials({"api_user": "root@pam", "api_token_id": "a@pve!ci"})


def test_credentials_user_without_realm():
    with pytest.raises(PveError, match="NAME@REALM"):
        resolve_credentials({"api_user": "root", "api_password": "x"})


# --- errors ------------------------------------------------------------------------------


def test_api_error_names_parameter():
    exc = ResourceException(400, "Bad Request", "Parameter verification failed.", errors={"net0": "invalid\nformat"})
    message = describe_api_error("PUT", "nodes/pve1/lxc/101/config", exc)
    assert "PUT /nodes/pve1/lxc/101/config" in message
    assert "HTTP 400" in message
    assert "net0: invalid format" in message


def test_api_error_401_hints_credentials():
    exc = ResourceException(401, "Unauthorized", "authentication failure")
    assert "check api_user" in describe_api_error("GET", "version", exc)


def test_request_wraps_resource_exception(monkeypatch):
    client = make_client(monkeypatch, FakeApi([{}]))
    with pytest.raises(PveError, match="net0: invalid format"):
        client.get("fail")


def test_upid_node():
    assert upid_node(UPID) == "pve1"
    with pytest.raises(PveError, match="not a PVE task id"):
        upid_node("UPID:broken")


def test_verify_uses_ca_path(monkeypatch):
    seen = {}

    def connect(self, verify, timeout):
        seen["verify"] = verify
        return FakeApi([{}])

    monkeypatch.setattr(PveClient, "_connect", connect)
    PveClient(StubModule(ca_path="/tmp/ca.pem"))
    assert seen["verify"] == "/tmp/ca.pem"
    PveClient(StubModule(ca_path="/tmp/ca.pem", validate_certs=False))
    assert seen["verify"] is False


# --- task waiting ------------------------------------------------------------------------


def test_wait_for_task_ok(monkeypatch, no_sleep):
    api = FakeApi([{"status": "running"}, {"status": "running"}, {"status": "stopped", "exitstatus": "OK"}])
    client = make_client(monkeypatch, api)
    assert client.wait_for_task(UPID, 10)["exitstatus"] == "OK"
    assert no_sleep == [0.1, 0.2]
    assert api.requests[0][1] == f"nodes/pve1/tasks/{UPID}/status"


def test_wait_for_task_warnings_are_success(monkeypatch, no_sleep):
    client = make_client(monkeypatch, FakeApi([{"status": "stopped", "exitstatus": "WARNINGS: 2"}]))
    assert client.wait_for_task(UPID, 10)["exitstatus"] == "WARNINGS: 2"


def test_wait_for_task_failure_shows_last_log_lines(monkeypatch, no_sleep):
    log = [{"n": index, "t": f"line {index}"} for index in range(1, 31)]
    log[-1] = {"n": 30, "t": "TASK ERROR: unable to create CT 201 - storage full"}
    client = make_client(
        monkeypatch, FakeApi([{"status": "stopped", "exitstatus": "unable to create CT 201 - storage full"}], log)
    )
    with pytest.raises(PveTaskError) as error:
        client.wait_for_task(UPID, 10)
    message = str(error.value)
    assert UPID in message
    assert "storage full" in message
    assert "line 21" in message
    assert "line 20\n" not in message
    assert len(error.value.log) == 10


def test_wait_for_task_timeout_names_upid_and_option(monkeypatch, no_sleep):
    clock = iter(range(0, 1000, 5))
    monkeypatch.setattr(_pve.time, "monotonic", lambda: next(clock))
    client = make_client(monkeypatch, FakeApi([{"status": "running"}]))
    with pytest.raises(PveTaskTimeout) as error:
        client.wait_for_task(UPID, 12, option="timeout")
    message = str(error.value)
    assert UPID in message
    assert "'timeout' option" in message
    assert "12 s" in message


def test_run_task_synchronous_returns_none(monkeypatch):
    client = make_client(monkeypatch, FakeApi([{}]))
    assert client.run_task("POST", "nodes/pve1/lxc/101/template", 10) is None

# Copyright: (c) 2025, retail.edge maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Proxmox VE API client shared by every Proxmox module of retail.edge.

Private to the retail.edge collection; the interface may change without notice.

It connects with proxmoxer's `https` backend (password ticket or API token), verifies TLS by
default, turns PVE's error responses into messages that name the rejected parameter, and waits
for tasks (UPIDs) by polling their status, failing with the task's last log lines.
"""

from __future__ import annotations

import re
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib

try:
    import requests
    from proxmoxer import AuthenticationError, ProxmoxAPI, ResourceException

    HAS_PROXMOXER = True
    PROXMOXER_IMPORT_ERROR = None
except ImportError:
    HAS_PROXMOXER = False
    PROXMOXER_IMPORT_ERROR = traceback.format_exc()

# Connection options of every Proxmox module in this collection; documented by the
# retail.edge.pve doc fragment.  Modules merge it into their own argument_spec.
PVE_AUTH_SPEC: dict[str, dict[str, Any]] = {
    "api_host": {"type": "str", "required": True, "fallback": (env_fallback, ["PROXMOX_HOST"])},
    "api_port": {"type": "int", "default": 8006, "fallback": (env_fallback, ["PROXMOX_PORT"])},
    "api_user": {"type": "str", "fallback": (env_fallback, ["PROXMOX_USER"])},
    "api_password": {"type": "str", "no_log": True, "fallback": (env_fallback, ["PROXMOX_PASSWORD"])},
    "api_token_id": {"type": "str", "no_log": False, "fallback": (env_fallback, ["PROXMOX_TOKEN_ID"])},
    "api_token_secret": {"type": "str", "no_log": True, "fallback": (env_fallback, ["PROXMOX_TOKEN_SECRET"])},
    "validate_certs": {"type": "bool", "default": True, "fallback": (env_fallback, ["PROXMOX_VALIDATE_CERTS"])},
    "ca_path": {"type": "path", "fallback": (env_fallback, ["PROXMOX_CA_PATH"])},
    "api_timeout": {"type": "int", "default": 30},
}
PVE_AUTH_MUTUALLY_EXCLUSIVE = [("api_password", "api_token_id")]
PVE_AUTH_REQUIRED_ONE_OF = [("api_password", "api_token_id")]
PVE_AUTH_REQUIRED_TOGETHER = [("api_token_id", "api_token_secret")]

_USER_RE = re.compile(r"^[^\s:/@!]+@[A-Za-z][A-Za-z0-9.\-_]+$")
_TOKEN_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9.\-_]+$")
_UPID_RE = re.compile(r"^UPID:([^:]+):[0-9A-Fa-f]+:[0-9A-Fa-f]+:[0-9A-Fa-f]+:([^:]*):([^:]*):([^:]*):")

TASK_LOG_LINES = 10
TASK_POLL_MAX_S = 0.5


class PveError(Exception):
    """An API call or task that failed; str() is the message for the user."""


class PveTaskError(PveError):
    """A task that stopped with an exit status other than OK."""

    def __init__(self, message: str, upid: str, exitstatus: str, log: list[str]) -> None:
        super().__init__(message)
        self.upid = upid
        self.exitstatus = exitstatus
        self.log = log


class PveTaskTimeout(PveError):
    """A task still running when the wait ran out."""

    def __init__(self, message: str, upid: str) -> None:
        super().__init__(message)
        self.upid = upid


@dataclass(frozen=True)
class Credentials:
    """Login identity resolved from the module options."""

    user: str
    password: str | None = None
    token_name: str | None = None
    token_secret: str | None = None

    @property
    def is_token(self) -> bool:
        return self.token_name is not None

    @property
    def login(self) -> str:
        """Return the identity PVE authenticates: `user@realm` or `user@realm!tokenid`."""
        return f"{self.user}!{self.token_name}" if self.is_token else self.user

    @property
    def is_root_password_login(self) -> bool:
        """Return True for root@pam with a password: the only login PVE allows to set root-only keys."""
        return self.user == "root@pam" and not self.is_token


def resolve_credentials(params: Mapping[str, Any]) -> Credentials:
    """Work out user and token from the options; raise PveError naming the option to fix.

    The token id may be the bare token name with api_user (`ci` + `root@pam`) or the full
    form `root@pam!ci`, as PVE prints it.
    """
    user = params.get("api_user")
    token_id = params.get("api_token_id")
    if token_id:
        if "!" in token_id:
            token_user, _separator, token_name = token_id.partition("!")
            if user and user != token_user:
                raise PveError(
                    f"api_token_id {token_id!r} belongs to {token_user!r} but api_user is {user!r}; "
                    "drop api_user or make the two agree"
                )
            user = token_user
        else:
            token_name = token_id
            if not user:
                raise PveError(
                    f"api_token_id {token_id!r} is a bare token name, so api_user is required; "
                    f"set api_user (such as root@pam) or give the full form USER@REALM!{token_id}"
                )
        if not _TOKEN_NAME_RE.match(token_name):
            raise PveError(f"api_token_id {token_id!r} has an invalid token name {token_name!r}")
    else:
        token_name = None
        if not user:
            raise PveError("api_user is required with api_password (such as root@pam)")
    if not _USER_RE.match(user):
        raise PveError(f"api user {user!r} is invalid; PVE users have the form NAME@REALM, such as root@pam")
    return Credentials(
        user=user,
        password=params.get("api_password"),
        token_name=token_name,
        token_secret=params.get("api_token_secret") if token_name else None,
    )


def describe_api_error(method: str, path: str, exc: Exception) -> str:
    """Turn a proxmoxer ResourceException into one readable line naming the rejected parameters."""
    status = getattr(exc, "status_code", None)
    reason = str(getattr(exc, "content", "") or getattr(exc, "status_message", "") or exc).strip()
    message = f"PVE API {method} /{path} failed with HTTP {status}: {reason}"
    errors = getattr(exc, "errors", None)
    if isinstance(errors, Mapping) and errors:
        details = "; ".join(f"{param}: {_one_line(text)}" for param, text in sorted(errors.items()))
        message = f"{message.rstrip('.')} ({details})"
    if status == 401:
        message += "; check api_user and api_password, or api_token_id and api_token_secret"
    return message


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def upid_node(upid: str) -> str:
    """Return the node a task runs on (the second field of its UPID)."""
    match = _UPID_RE.match(upid)
    if not match:
        raise PveError(f"{upid!r} is not a PVE task id (UPID:node:pid:pstart:starttime:type:id:user:)")
    return match.group(1)


class PveClient:
    """One authenticated connection to the PVE API for the lifetime of a module run."""

    def __init__(self, module: AnsibleModule) -> None:
        if not HAS_PROXMOXER:
            module.fail_json(msg=missing_required_lib("proxmoxer"), exception=PROXMOXER_IMPORT_ERROR)
        self.module = module
        params = module.params
        self.credentials = resolve_credentials(params)
        self.host = params["api_host"]
        self.port = params["api_port"]
        verify: bool | str = bool(params["validate_certs"])
        if verify and params.get("ca_path"):
            verify = params["ca_path"]
        self._api = self._connect(verify, params["api_timeout"])
        # Number of API requests sent after login.
        self.calls = 0

    def _connect(self, verify: bool | str, timeout: int) -> Any:
        creds = self.credentials
        auth: dict[str, Any] = {"user": creds.user}
        if creds.is_token:
            auth.update(token_name=creds.token_name, token_value=creds.token_secret)
        else:
            auth["password"] = creds.password
        try:
            return ProxmoxAPI(
                self.host,
                port=self.port,
                backend="https",
                verify_ssl=verify,
                timeout=timeout,
                **auth,
            )
        except AuthenticationError as exc:
            raise PveError(
                f"login as {creds.login} to {self.host}:{self.port} failed ({exc}); check api_user and api_password"
            ) from None
        except requests.exceptions.SSLError as exc:
            raise PveError(self._tls_message(exc)) from None
        except requests.exceptions.RequestException as exc:
            raise PveError(f"cannot reach the PVE API at {self.host}:{self.port}: {exc}") from None

    def _tls_message(self, exc: Exception) -> str:
        return (
            f"TLS verification of {self.host}:{self.port} failed: {exc}. Point ca_path at the CA that signed "
            "the PVE certificate (on a PVE node: /etc/pve/pve-root-ca.pem); set validate_certs: false only "
            "on a trusted network"
        )

    # --- requests -----------------------------------------------------------------------

    def request(self, method: str, path: str, **params: Any) -> Any:
        """Send one API request; path is relative to /api2/json, such as `nodes/pve1/lxc`."""
        resource = self._api(path)
        call = getattr(resource, method.lower())
        clean = {key: value for key, value in params.items() if value is not None}
        self.calls += 1
        try:
            return call(**clean)
        except ResourceException as exc:
            raise PveError(describe_api_error(method.upper(), path, exc)) from None
        except requests.exceptions.SSLError as exc:
            raise PveError(self._tls_message(exc)) from None
        except requests.exceptions.Timeout:
            raise PveError(
                f"PVE API {method.upper()} /{path} got no response within api_timeout "
                f"({self.module.params['api_timeout']} s); raise api_timeout if the cluster is slow"
            ) from None
        except requests.exceptions.RequestException as exc:
            raise PveError(f"PVE API {method.upper()} /{path} failed: {exc}") from None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, **params)

    def post(self, path: str, **params: Any) -> Any:
        return self.request("POST", path, **params)

    def put(self, path: str, **params: Any) -> Any:
        return self.request("PUT", path, **params)

    def delete(self, path: str, **params: Any) -> Any:
        return self.request("DELETE", path, **params)

    # --- tasks --------------------------------------------------------------------------

    def wait_for_task(self, upid: str, timeout: float, *, option: str = "timeout") -> dict[str, Any]:
        """Wait until a task stops and return its status; raise at once when it failed.

        Polls GET nodes/{node}/tasks/{upid}/status, first every 0.1 s and backing off to 0.5 s, so
        a failure surfaces within about half a second of the task ending.  option names the module
        option that sets timeout, for the message when the wait runs out.
        """
        node = upid_node(upid)
        deadline = time.monotonic() + timeout
        delay = 0.1
        while True:
            status = self.get(f"nodes/{node}/tasks/{upid}/status")
            if status.get("status") == "stopped":
                exitstatus = str(status.get("exitstatus", ""))
                if exitstatus == "OK" or exitstatus.startswith("WARNINGS"):
                    return status
                log = self.task_log_tail(upid)
                lines = "\n".join(f"  {line}" for line in log) or "  (the task log is empty)"
                raise PveTaskError(
                    f"task {upid} failed: {exitstatus}. Last lines of its log:\n{lines}", upid, exitstatus, log
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PveTaskTimeout(
                    f"task {upid} is still running after {timeout:g} s; it goes on in PVE. Raise the "
                    f"'{option}' option if this task needs longer, or look at its log on node {node}",
                    upid,
                )
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, TASK_POLL_MAX_S)

    def task_log_tail(self, upid: str, lines: int = TASK_LOG_LINES) -> list[str]:
        """Return the last lines of a task log (up to the first 1000 lines are read)."""
        node = upid_node(upid)
        # NOTE: proxmoxer drops the `total` field of the response, so a log longer than 1000
        # lines shows lines 990-1000 here, not its real end.
        try:
            entries = self.get(f"nodes/{node}/tasks/{upid}/log", start=0, limit=1000)
        except PveError as exc:
            return [f"(reading the task log failed: {exc})"]
        ordered = sorted(entries or [], key=lambda entry: int(entry.get("n", 0)))
        return [str(entry.get("t", "")) for entry in ordered][-lines:]

    def run_task(
        self,
        method: str,
        path: str,
        wait: float,
        params: Mapping[str, Any] | None = None,
        *,
        option: str = "timeout",
    ) -> str | None:
        """Send a request that may start a task, wait up to wait seconds for it and return its UPID.

        Returns None for a synchronous call, where PVE returns no UPID.
        """
        result = self.request(method, path, **dict(params or {}))
        if isinstance(result, str) and result.startswith("UPID:"):
            self.wait_for_task(result, wait, option=option)
            return result
        return None

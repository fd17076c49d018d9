# Copyright: retail.edge maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the retail.edge collection: the interface may change without notice.

"""Shared Vault/OpenBao client for the retail.edge modules and lookups.

One place builds the hvac client, authenticates (token, or AppRole with a plain or
response-wrapped secret_id), sends raw API requests and turns HTTP failures into
VaultError subclasses whose messages name the request and the fix.
"""

from __future__ import annotations

import contextlib
import os
import re
import traceback
from collections.abc import Callable
from typing import Any

try:
    import hvac
    import hvac.exceptions as hvac_exceptions
    import requests.exceptions as requests_exceptions
except ImportError:
    HAS_HVAC = False
    HVAC_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    HAS_HVAC = True
    HVAC_IMPORT_ERROR = None

# Connection and authentication options shared by every module (documented in the
# retail.edge.vault doc fragment). Lookups read the same names through their own options.
VAULT_ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "url": {"type": "str"},
    "ca_cert": {"type": "path"},
    "validate_certs": {"type": "bool", "default": True},
    "namespace": {"type": "str"},
    "timeout": {"type": "int", "default": 30},
    "auth_method": {"type": "str", "default": "auto", "choices": ["auto", "token", "approle"]},
    "token": {"type": "str", "no_log": True},
    "role_id": {"type": "str", "no_log": True},
    "secret_id": {"type": "str", "no_log": True},
    "wrapped_secret_id": {"type": "str", "no_log": True},
    "approle_mount_point": {"type": "str", "default": "approle"},
}

VAULT_MUTUALLY_EXCLUSIVE = [["secret_id", "wrapped_secret_id"]]


def vault_argument_spec(**module_options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Return the shared connection options plus a module's own options, as one argument_spec."""
    spec = {name: dict(option) for name, option in VAULT_ARGUMENT_SPEC.items()}
    spec.update(module_options)
    return spec


def vault_options(params: dict[str, Any]) -> dict[str, Any]:
    """Pick the connection options out of a module's params."""
    return {name: params.get(name) for name in VAULT_ARGUMENT_SPEC}


# Key under which options_with_environment() lists the options it took from the environment.
FROM_ENVIRONMENT = "_from_environment"

# Option name -> environment variable read when the option is not set.
ENVIRONMENT_FALLBACK = {
    "url": "VAULT_ADDR",
    "token": "VAULT_TOKEN",
    "ca_cert": "VAULT_CACERT",
    "role_id": "VAULT_ROLE_ID",
    "secret_id": "VAULT_SECRET_ID",
    "namespace": "VAULT_NAMESPACE",
}

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_DURATION_PART = re.compile(r"(\d+)([smhd])")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_ERROR_LIST_HEADER = re.compile(r"^\d+ errors? occurred:$")


class VaultError(Exception):
    """A Vault request failed; str() is a message fit for a user."""

    status: int | None = None

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class VaultConfigError(VaultError):
    """Options are missing or inconsistent; no request was sent."""


class VaultConnectionError(VaultError):
    """The server could not be reached or its TLS certificate was not trusted."""


class VaultAuthError(VaultError):
    """Login failed or the token is invalid (HTTP 400 on login, 401, 403 on login)."""


class VaultPermissionDenied(VaultError):
    """HTTP 403: the token's policies do not allow the request."""

    status = 403


class VaultNotFound(VaultError):
    """HTTP 404: nothing at this path (or the version has no data)."""

    status = 404

    def __init__(self, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.body = body or {}


class VaultInvalidRequest(VaultError):
    """HTTP 400: Vault rejected the request (for example a check-and-set mismatch)."""

    status = 400

    def __init__(self, message: str, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class VaultSealed(VaultError):
    """HTTP 503: the server is sealed or on standby without a leader."""

    status = 503


def parse_duration(value: int | str | None, option: str) -> int | None:
    """Convert a Vault duration (seconds, or "90s", "15m", "1h30m", "7d") to seconds."""
    if value is None:
        return None
    if isinstance(value, int):
        seconds = value
    else:
        text = str(value).strip().lower()
        if text.isdigit():
            seconds = int(text)
        elif text and _DURATION_PART.sub("", text) == "":
            seconds = sum(int(number) * _DURATION_UNITS[unit] for number, unit in _DURATION_PART.findall(text))
        else:
            raise VaultConfigError(
                f"{option}={value!r} is not a duration; use seconds or a value such as 90s, 15m, 1h30m or 7d"
            )
    if seconds < 0:
        raise VaultConfigError(f"{option}={value!r} is negative; use 0 for the mount's default or a positive duration")
    return seconds


def validate_name(value: str, option: str) -> str:
    """Check that value can be one path segment and one policy-name part (no '/', '*' or '..')."""
    if not _NAME_PATTERN.match(value or "") or ".." in value:
        raise VaultConfigError(
            f"{option}={value!r} is invalid: use letters, digits, '_', '-' and '.', starting with a letter or digit"
        )
    return value


def validate_secret_path(path: str, option: str = "path") -> str:
    """Check a KV path relative to its mount (for example stores/s001/pos/db); return it unchanged."""
    segments = (path or "").split("/")
    if not path or any(not _NAME_PATTERN.match(segment) or ".." in segment for segment in segments):
        raise VaultConfigError(
            f"{option}={path!r} is invalid: give the path below the mount without leading or trailing '/', "
            "made of segments of letters, digits, '_', '-' and '.' (for example stores/s001/pos/db)"
        )
    return path


def options_with_environment(options: dict[str, Any], environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Return a copy of options where unset connection options take their VAULT_* environment variable."""
    environ = os.environ if environ is None else environ
    # str() drops subclasses such as Ansible's tagged strings, which requests rejects in headers.
    merged = {name: str(value) if isinstance(value, str) else value for name, value in options.items()}
    from_environment = []
    for option, variable in ENVIRONMENT_FALLBACK.items():
        if merged.get(option) in (None, "") and environ.get(variable):
            merged[option] = environ[variable]
            from_environment.append(option)
    merged[FROM_ENVIRONMENT] = from_environment
    return merged


def _error_text(exc: Exception) -> str:
    """Return Vault's error text on one line, without the "N errors occurred:" list wrapper."""
    errors = getattr(exc, "errors", None)
    if errors:
        text = "\n".join(str(error) for error in errors)
    elif exc.args:
        text = str(exc.args[0])
    else:
        text = ""
    lines = [line.strip().lstrip("* ") for line in text.splitlines()]
    kept = [line for line in lines if line and not _ERROR_LIST_HEADER.match(line)]
    return "; ".join(kept) or exc.__class__.__name__


def _unavailable_error(request: str, url: str, detail: str) -> VaultSealed:
    """Build the error for HTTP 503, which a sealed server and a standby without a leader both return."""
    if "sealed" in detail.lower():
        return VaultSealed(
            f"Vault (OpenBao) at {url} is sealed (HTTP 503) on {request}, so no secret can be read or written. "
            f"Unseal it with the unseal key(s) (bao operator unseal -address={url}, run once per key share) "
            "and rerun"
        )
    return VaultSealed(
        f"Vault at {url} is sealed or has no active node (HTTP 503) on {request}: {detail}. "
        "Unseal it (bao operator unseal) or wait for a leader to be elected, and rerun"
    )


def translate_error(exc: Exception, method: str, path: str, url: str) -> VaultError:
    """Map an exception raised while sending a request to a VaultError that names the request and what to do."""
    request = f"{method} {path}"
    detail = _error_text(exc)
    body = getattr(exc, "json", None)
    # Order matters: SSLError is a subclass of ConnectionError, and every hvac error of VaultError.
    rules: list[tuple[type[BaseException], Callable[[], VaultError]]] = [
        (
            hvac_exceptions.Forbidden,
            lambda: VaultPermissionDenied(
                f"permission denied (HTTP 403) on {request}: {detail}. The token's policies do not grant this "
                "operation on this path; use a token or AppRole whose policy allows it"
            ),
        ),
        (
            hvac_exceptions.InvalidPath,
            lambda: VaultNotFound(f"not found (HTTP 404) on {request}", body=body if isinstance(body, dict) else None),
        ),
        (hvac_exceptions.VaultDown, lambda: _unavailable_error(request, url, detail)),
        (
            hvac_exceptions.Unauthorized,
            lambda: VaultAuthError(f"authentication failed (HTTP 401) on {request}: {detail}", status=401),
        ),
        (
            hvac_exceptions.InvalidRequest,
            lambda: VaultInvalidRequest(
                f"Vault rejected {request} (HTTP 400): {detail}", errors=getattr(exc, "errors", None)
            ),
        ),
        (hvac_exceptions.VaultError, lambda: VaultError(f"Vault request {request} failed: {detail}")),
        (
            requests_exceptions.SSLError,
            lambda: VaultConnectionError(
                f"TLS verification of {url} failed on {request}: {exc}. Set ca_cert (or VAULT_CACERT) to the "
                "CA file that signed the server certificate"
            ),
        ),
        (
            (requests_exceptions.ConnectionError, requests_exceptions.Timeout),
            lambda: VaultConnectionError(
                f"cannot connect to Vault at {url} ({request}): {exc}. "
                "Check url (or VAULT_ADDR) and that the server runs"
            ),
        ),
    ]
    for kinds, build in rules:
        if isinstance(exc, kinds):
            return build()
    # The text of other exceptions can quote request headers, which hold the token: name the type only.
    return VaultError(f"Vault request {request} to {url} failed with {type(exc).__name__}")


class VaultConnection:
    """An authenticated hvac client plus raw API calls with translated errors.

    A token obtained by AppRole login belongs to this connection: close() revokes it, so a
    deploy leaves no live token behind. A token passed in by the caller is never revoked.
    """

    def __init__(self, options: dict[str, Any]) -> None:
        if not HAS_HVAC:
            raise VaultConfigError("the hvac Python library is required (pip install hvac)")
        self.options = options
        self.url = (options.get("url") or "").rstrip("/")
        if not self.url:
            raise VaultConfigError("url is missing: set the url option or the VAULT_ADDR environment variable")
        self.auth_method = self._select_auth_method()
        self.client = self._new_client(token=None)
        self._owns_token = False

    def _select_auth_method(self) -> str:
        method = self.options.get("auth_method") or "auto"
        if method == "auto":
            # An option given to the task wins over a credential found in the environment.
            from_environment = self.options.get(FROM_ENVIRONMENT) or []
            given = [name for name in ("role_id", "token") if self.options.get(name) and name not in from_environment]
            if given:
                method = "approle" if given[0] == "role_id" else "token"
            else:
                method = "approle" if self.options.get("role_id") else "token"
        if method == "token" and not self.options.get("token"):
            raise VaultConfigError(
                "no Vault credentials: set token (or VAULT_TOKEN), or role_id with secret_id or "
                "wrapped_secret_id (or VAULT_ROLE_ID and VAULT_SECRET_ID)"
            )
        if method == "approle":
            if not self.options.get("role_id"):
                raise VaultConfigError("auth_method=approle needs role_id (or VAULT_ROLE_ID)")
            if not (self.options.get("secret_id") or self.options.get("wrapped_secret_id")):
                raise VaultConfigError(
                    "auth_method=approle needs secret_id (or VAULT_SECRET_ID) or wrapped_secret_id; "
                    "issue one with retail.edge.vault_store_access state=issued"
                )
        return method

    def _new_client(self, token: str | None) -> Any:
        verify: bool | str = self.options.get("validate_certs", True)
        if verify and self.options.get("ca_cert"):
            verify = self.options["ca_cert"]
            if not os.path.isfile(verify):
                raise VaultConfigError(f"ca_cert={verify!r} does not exist or is not a file")
        return hvac.Client(
            url=self.url,
            token=token,
            verify=verify,
            timeout=self.options.get("timeout") or 30,
            namespace=self.options.get("namespace") or None,
        )

    def login(self) -> VaultConnection:
        """Authenticate with the selected method; return self for chaining."""
        if self.auth_method == "token":
            self.client.token = self.options["token"]
            return self
        secret_id = self.options.get("secret_id")
        if not secret_id:
            secret_id = self._unwrap_secret_id(self.options["wrapped_secret_id"])
        mount = self.options.get("approle_mount_point") or "approle"
        path = f"auth/{mount}/login"
        try:
            response = self.request(
                "POST", path, payload={"role_id": self.options["role_id"], "secret_id": secret_id}, authenticated=False
            )
        except (VaultInvalidRequest, VaultPermissionDenied) as exc:
            raise VaultAuthError(
                f"AppRole login at {path} failed: {exc}. Check role_id, and that the secret_id is unexpired, has "
                "uses left and is used from an address its CIDR binding allows",
                status=exc.status,
            ) from None
        self.client.token = response["auth"]["client_token"]
        self._owns_token = True
        return self

    def _unwrap_secret_id(self, wrapping_token: str) -> str:
        # The wrapping token authenticates its own unwrap call; no other token is needed.
        unwrapper = self._new_client(token=wrapping_token)
        try:
            response = self._call(unwrapper, "POST", "sys/wrapping/unwrap", None, None)
        except (VaultInvalidRequest, VaultPermissionDenied, VaultAuthError) as exc:
            raise VaultAuthError(
                f"unwrapping the wrapped secret_id failed: {exc}. A response-wrapping token can be unwrapped "
                "only once and only within its TTL; issue a new wrapped secret_id "
                "(retail.edge.vault_store_access state=issued wrap_ttl=...)",
                status=exc.status,
            ) from None
        data = (response or {}).get("data") or {}
        if "secret_id" not in data:
            raise VaultAuthError(
                "the wrapped response contains no secret_id; wrap the response of "
                "auth/<approle mount>/role/<role>/secret-id (retail.edge.vault_store_access state=issued)"
            )
        return data["secret_id"]

    def request(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        authenticated: bool = True,
    ) -> dict[str, Any] | None:
        """Send one API request (path without /v1/); return the JSON body, or None for an empty response."""
        client = self.client if authenticated else self._new_client(token=None)
        return self._call(client, method, path, payload, headers)

    def _call(
        self, client: Any, method: str, path: str, payload: dict[str, Any] | None, headers: dict[str, str] | None
    ) -> dict[str, Any] | None:
        kwargs: dict[str, Any] = {}
        if payload is not None:
            kwargs["json"] = payload
        try:
            response = client.adapter.request(method, f"/v1/{path}", headers=headers, **kwargs)
        except Exception as exc:  # every failure becomes a VaultError without secrets in its text
            raise translate_error(exc, method, path, self.url) from None
        if isinstance(response, dict):
            return response
        if getattr(response, "status_code", 204) == 204 or not getattr(response, "content", b""):
            return None
        try:
            return response.json()
        except ValueError:
            return None

    def close(self) -> None:
        """Revoke the token this connection obtained by login (best effort)."""
        if not self._owns_token:
            return
        # The token expires on its own TTL anyway, so a failed revoke must not fail the task.
        with contextlib.suppress(VaultError):
            self.request("POST", "auth/token/revoke-self")
        self._owns_token = False


def connect(options: dict[str, Any], environ: dict[str, str] | None = None) -> VaultConnection:
    """Build a VaultConnection from module or lookup options (plus VAULT_* variables) and log in."""
    return VaultConnection(options_with_environment(options, environ)).login()


def run_with_connection(options: dict[str, Any], action: Callable[[VaultConnection], Any]) -> Any:
    """Connect, run action(connection) and revoke a login token afterwards, even when action raises."""
    connection = connect(options)
    try:
        return action(connection)
    finally:
        connection.close()

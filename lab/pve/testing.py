"""Run the PVE double as a subprocess and talk to it; used by the pytest fixtures and the benchmarks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests
import yaml

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0

DEFAULT_LAB_CONFIG: dict[str, Any] = {
    "cluster": "store-lab",
    "nodes": ["pve1", "pve2", "pve3"],
    "users": {
        "root@pam": {"password": "lab-root-password"},
        "ops@pve": {"password": "lab-ops-password"},
    },
    "tokens": {
        "root@pam!automation": {"secret": "5b5d3c1e-0f7a-4c36-9a77-2b8f3e0c9d10", "privsep": False},
        "ops@pve!ci": {"secret": "0c9e2f4a-6b1d-4e8f-a3c5-7d9b1f2e4a60", "privsep": True},
    },
    "storages": {
        "local": {"type": "dir", "content": ["vztmpl", "iso", "backup", "rootdir", "snippets"], "size_gib": 100},
        "local-lvm": {"type": "lvmthin", "content": ["rootdir", "images"], "size_gib": 500},
    },
    "templates": [
        "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
        "local:vztmpl/alpine-3.20-default_20240908_amd64.tar.xz",
    ],
    "pools": ["edge"],
    "tasks": {"durations": {"default": 0.05}},
}


class PveApiError(Exception):
    """An error response of the double: HTTP status, PVE's message and the per-parameter errors."""

    def __init__(self, status: int, message: str, errors: dict[str, str] | None = None) -> None:
        detail = f" {errors}" if errors else ""
        super().__init__(f"{status} {message}{detail}")
        self.status = status
        self.message = message
        self.errors = errors or {}


class PveDouble:
    """One double process with its config file and state directory; `stop()` and `start()` keep the state."""

    host = "127.0.0.1"

    def __init__(self, state_dir: Path, config: Mapping[str, Any] | None = None, *, port: int = 0) -> None:
        self.state_dir = state_dir
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.config: dict[str, Any] = dict(config or DEFAULT_LAB_CONFIG)
        self.config_path = state_dir / "lab.yml"
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        self.port = port
        self._process: subprocess.Popen[bytes] | None = None
        self._session: requests.Session | None = None
        self._csrf: str | None = None

    # Lifecycle

    def start(self) -> PveDouble:
        if self._process is not None:
            return self
        (self.state_dir / "ready").unlink(missing_ok=True)
        command = [
            sys.executable,
            "-m",
            "lab.pve",
            "serve",
            "--config",
            str(self.config_path),
            "--state-dir",
            str(self.state_dir),
            "--port",
            str(self.port),
        ]
        with (self.state_dir / "double.log").open("ab") as log:
            self._process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (self.state_dir / "ready").exists():
            if self._process.poll() is not None:
                log_text = (self.state_dir / "double.log").read_text()[-4000:]
                self._process = None
                raise RuntimeError(f"the PVE double exited during start-up:\n{log_text}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the PVE double did not write {self.state_dir / 'ready'} in {START_TIMEOUT_S} s")
            time.sleep(0.02)
        self.port = int((self.state_dir / "port").read_text())
        return self

    def stop(self) -> None:
        """Stop the process with SIGTERM, so that it writes its state file, and wait for it."""
        process, self._process = self._process, None
        self._close_session()
        if process is None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def kill(self) -> None:
        """Kill the process without letting it write its state (a crash)."""
        process, self._process = self._process, None
        self._close_session()
        if process is not None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=5)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # Connection details

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}/api2/json"

    @property
    def base_url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.state_dir / "ca.pem"

    @property
    def root_password(self) -> str:
        return str(self.config["users"]["root@pam"]["password"])

    @property
    def tokens(self) -> dict[str, str]:
        return {token_id: entry["secret"] for token_id, entry in (self.config.get("tokens") or {}).items()}

    def module_defaults(self) -> dict[str, Any]:
        """Connection options for the collection's Proxmox modules, as root@pam with a password."""
        return {
            "api_host": self.host,
            "api_port": self.port,
            "api_user": "root@pam",
            "api_password": self.root_password,
            "ca_path": str(self.ca_file),
            "validate_certs": True,
        }

    # API calls

    def _close_session(self) -> None:
        if self._session is not None:
            self._session.close()
        self._session = None
        self._csrf = None

    def session(self) -> requests.Session:
        """Return a session logged in as root@pam with a password ticket; the CSRF token is kept for writes."""
        if self._session is None:
            session = requests.Session()
            answer = session.post(
                f"{self.url}/access/ticket",
                data={"username": "root@pam", "password": self.root_password},
                verify=str(self.ca_file),
                timeout=30,
            )
            answer.raise_for_status()
            data = answer.json()["data"]
            session.cookies.set("PVEAuthCookie", data["ticket"])
            self._csrf = data["CSRFPreventionToken"]
            self._session = session
        return self._session

    @property
    def csrf_token(self) -> str:
        """The CSRF prevention token of the root@pam session, for writes sent through `session()`."""
        self.session()
        return self._csrf or ""

    def request(self, method: str, path: str, params: Mapping[str, Any] | None = None) -> requests.Response:
        """Send one API call as root@pam and return the raw response.

        `verify` goes with every request because requests lets REQUESTS_CA_BUNDLE override `Session.verify`.
        """
        session = self.session()
        headers = {"CSRFPreventionToken": self._csrf or ""} if method != "GET" else {}
        url = f"{self.url}{path}"
        verify = str(self.ca_file)
        if method == "GET":
            return session.get(url, params=params, headers=headers, verify=verify, timeout=30)
        return session.request(method, url, data=params, headers=headers, verify=verify, timeout=30)

    def api(self, method: str, path: str, **params: Any) -> Any:
        """Call the API as root@pam and return `data`, or raise PveApiError."""
        answer = self.request(method, path, params)
        body = answer.json() if answer.content else {}
        if answer.status_code != 200:
            raise PveApiError(answer.status_code, answer.reason, body.get("errors"))
        return body.get("data")

    def wait_task(self, upid: str, timeout: float = 30.0) -> dict[str, Any]:
        """Wait until a task has stopped and return its status (exitstatus "OK" or the error)."""
        node = upid.split(":")[1]
        deadline = time.monotonic() + timeout
        while True:
            status = self.api("GET", f"/nodes/{node}/tasks/{upid}/status")
            if status["status"] == "stopped":
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"task {upid} still running after {timeout} s")
            time.sleep(0.02)

    # Lab control endpoints

    def control(self, method: str, path: str, json: Any = None) -> Any:
        answer = requests.request(
            method, f"{self.base_url}/_lab/{path.lstrip('/')}", json=json, verify=str(self.ca_file), timeout=30
        )
        answer.raise_for_status()
        return answer.json()

    def stats(self) -> dict[str, Any]:
        return self.control("GET", "stats")

    def reset_stats(self) -> None:
        self.control("POST", "stats/reset")

    def inject_fault(
        self,
        match: Mapping[str, str],
        *,
        fail: str | None = None,
        hang: bool = False,
        after_s: float | None = None,
        times: int | None = None,
    ) -> None:
        fault: dict[str, Any] = {"match": dict(match), "hang": hang}
        if fail is not None:
            fault["fail"] = fail
        if after_s is not None:
            fault["after_s"] = after_s
        if times is not None:
            fault["times"] = times
        self.control("POST", "faults", json=fault)

    def clear_faults(self) -> None:
        self.control("DELETE", "faults")

    def state(self) -> dict[str, Any]:
        return self.control("GET", "state")

    def reset(self) -> None:
        """Empty the cluster, clear faults and statistics."""
        self.control("POST", "reset")

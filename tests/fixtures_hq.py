"""A real lab HQ process for tests of the store services: start, stop, kill, restart and lab controls."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import ROOT, free_port

LAB_STORE = "store-0001"
LAB_TOKEN = "lab-token"


def service_env() -> dict[str, str]:
    """Return an environment that imports lab/ and src/ from this checkout, not from the venv's editable install."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class LabHq:
    """One lab HQ process with its data directory; it keeps its port across restarts so clients can reconnect."""

    def __init__(self, data_dir: Path, *, skus: int = 300, seed: int = 42, tokens: dict[str, str] | None = None):
        self.data_dir = data_dir
        self.skus = skus
        self.seed = seed
        self.tokens = tokens or {LAB_STORE: LAB_TOKEN}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "hq.log"
        self.extra_args: list[str] = []

    def start(self, timeout: float = 30.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ready = self.data_dir / "ready"
        # A SIGKILLed HQ leaves its ready file behind; only the new process may write the next one.
        ready.unlink(missing_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "lab.hq",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--seed",
            str(self.seed),
            "--skus",
            str(self.skus),
        ]
        for store_id, token in self.tokens.items():
            cmd += ["--token", f"{store_id}={token}"]
        cmd += self.extra_args
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=service_env(), stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"lab hq exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"lab hq wrote no ready file within {timeout} s:\n{self.log_tail()}")
            time.sleep(0.05)
        assert json.loads(ready.read_text())["pid"] == self.proc.pid

    def log_tail(self) -> str:
        return self.log_path.read_text()[-4000:]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)
        self.proc = None

    def headers(self, store_id: str = LAB_STORE) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[store_id]}"}

    def get(self, path: str, store_id: str = LAB_STORE, **params: Any) -> httpx.Response:
        return httpx.get(f"{self.url}/v1/stores/{store_id}{path}", params=params, headers=self.headers(store_id))

    def post(self, path: str, body: Any, store_id: str = LAB_STORE) -> httpx.Response:
        return httpx.post(f"{self.url}/v1/stores/{store_id}{path}", json=body, headers=self.headers(store_id))

    def lab(self, control: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST a lab control (stock, offline, expire-cursors, catalog, cashiers) and return its JSON response."""
        response = httpx.post(f"{self.url}/_lab/{control}", json=body or {})
        response.raise_for_status()
        return response.json()

    def set_stock(self, items: list[dict[str, Any]], store_id: str = LAB_STORE) -> dict[str, Any]:
        return self.lab("stock", {"store_id": store_id, "items": items})


@pytest.fixture
def lab_hq(tmp_path: Path) -> Iterator[LabHq]:
    """A started lab HQ with a 300-SKU catalog and one store (store-0001, token lab-token)."""
    hq = LabHq(tmp_path / "hq")
    hq.start()
    yield hq
    hq.stop()

"""Fixtures of the service tests: real lab HQ, inventory and rules processes on loopback ports."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.fixtures_hq import LAB_STORE, LAB_TOKEN, LabHq, service_env
from tests.support import ROOT, free_port, wait_for_port

# The venv's editable install may point at another checkout; import this checkout's src/ first.
sys.path.insert(0, str(ROOT / "src"))


class ServiceProcess:
    """A service started as a real process, with its output in a log file."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log_path: Path, port: int | None = None):
        self.name = name
        self.cmd = cmd
        self.env = env
        self.log_path = log_path
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env=self.env, stdout=log, stderr=log)
        if self.port is not None:
            try:
                wait_for_port(self.port, timeout=30)
            except TimeoutError as exc:
                raise TimeoutError(f"{self.name} did not listen:\n{self.log_tail()}") from exc
        return self

    def log_tail(self) -> str:
        return self.log_path.read_text()[-4000:] if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc is None:
            return None
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(timeout=15)
        self.proc = None
        return code

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class InventoryStack:
    """Inventory API plus its sync worker, both pointed at one lab HQ and one SQLite file."""

    def __init__(self, hq: LabHq, work_dir: Path, **settings: Any) -> None:
        self.hq = hq
        self.work_dir = work_dir
        self.port = free_port()
        self.db_path = work_dir / "inventory.sqlite3"
        env = service_env()
        values = {
            "store_id": LAB_STORE,
            "hq_url": hq.url,
            "hq_token": LAB_TOKEN,
            "db_path": str(self.db_path),
            "port": str(self.port),
            "metrics_dir": str(work_dir / "metrics"),
            "poll_interval_s": "0.2",
            "stale_after_s": "2",
            "backoff_initial_s": "0.1",
            "backoff_max_s": "0.4",
            "hq_timeout_s": "2",
            "page_limit": "100",
        }
        values.update({key: str(value) for key, value in settings.items()})
        env.update({f"RETAIL_EDGE_INVENTORY_{key.upper()}": value for key, value in values.items()})
        cli = [sys.executable, "-m", "retail_edge.inventory.cli"]
        self.api = ServiceProcess("inventory api", [*cli, "api"], env, work_dir / "api.log", self.port)
        self.sync = ServiceProcess("inventory sync", [*cli, "sync"], env, work_dir / "sync.log")
        self.http = httpx.Client(base_url=self.api.url, timeout=10)

    def start(self) -> InventoryStack:
        self.sync.start()
        self.api.start()
        return self

    def stop(self) -> None:
        self.http.close()
        self.api.stop()
        self.sync.stop()

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(path, params=params)

    def post(self, path: str, body: Any) -> httpx.Response:
        return self.http.post(path, json=body)

    def metric(self, name: str) -> float:
        for line in self.get("/metrics").text.splitlines():
            if line.startswith(f"{name} ") or line.startswith(f"{name}{{"):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"metric {name} not exposed")

    def logs(self) -> str:
        parts = {"api": self.api.log_tail(), "sync": self.sync.log_tail(), "hq": self.hq.log_tail()}
        return "\n".join(f"--- {name} ---\n{text}" for name, text in parts.items())


def wait_until(
    condition: Callable[[], Any], timeout: float = 20.0, description: str = "condition", logs: str = ""
) -> Any:
    """Poll ``condition`` every 50 ms until it returns a truthy value, which is returned; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {description}\n{logs}")
        time.sleep(0.05)


@pytest.fixture
def inventory_factory(lab_hq: LabHq, tmp_path: Path) -> Iterator[Callable[..., InventoryStack]]:
    """Start inventory stacks against the test's lab HQ; each is stopped at the end of the test."""
    stacks: list[InventoryStack] = []

    def start(**settings: Any) -> InventoryStack:
        work_dir = tmp_path / f"inventory-{len(stacks)}"
        work_dir.mkdir()
        stack = InventoryStack(lab_hq, work_dir, **settings)
        stacks.append(stack)
        return stack.start()

    yield start
    for stack in stacks:
        stack.stop()


@pytest.fixture
def inventory(inventory_factory: Callable[..., InventoryStack]) -> InventoryStack:
    """A started inventory stack that has finished its first snapshot."""
    stack = inventory_factory()
    wait_until(
        lambda: stack.get("/inventory/SKU-00001").status_code == 200, description="first snapshot", logs=stack.logs()
    )
    return stack


RULE_SOURCES = [ROOT / "src" / "retail_edge" / "rules" / "examples", ROOT / "tests" / "services" / "rules"]


def write_rules(rules_dir: Path, rules: list[dict[str, Any]]) -> None:
    """Copy the named modules into ``rules_dir`` and write its rules.yaml (written last, like a deploy)."""
    rules_dir.mkdir(parents=True, exist_ok=True)
    for rule in rules:
        source = next(base / rule["module"] for base in RULE_SOURCES if (base / rule["module"]).exists())
        shutil.copy(source, rules_dir / rule["module"])
    partial = rules_dir / "rules.yaml.tmp"
    partial.write_text(yaml.safe_dump({"rules": rules}))
    partial.replace(rules_dir / "rules.yaml")


class RulesService(ServiceProcess):
    """The rules engine process, reading its catalog from the lab HQ."""

    def __init__(self, hq: LabHq, work_dir: Path, inventory_url: str, **settings: Any) -> None:
        self.rules_dir = work_dir / "rules"
        port = free_port()
        values = {
            "store_id": LAB_STORE,
            "hq_url": hq.url,
            "hq_token": LAB_TOKEN,
            "rules_dir": str(self.rules_dir),
            "catalog_cache_path": str(work_dir / "catalog.json"),
            "inventory_url": inventory_url,
            "port": str(port),
            "reload_interval_s": "0.2",
            "catalog_refresh_s": "0.3",
            "price_cache_s": "0",
        }
        values.update({key: str(value) for key, value in settings.items()})
        env = service_env()
        env.update({f"RETAIL_EDGE_RULES_{key.upper()}": value for key, value in values.items()})
        cmd = [sys.executable, "-m", "retail_edge.rules.cli", "serve"]
        super().__init__("rules engine", cmd, env, work_dir / "rules.log", port)
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def price(self, sku: str) -> dict[str, Any]:
        response = self.http.get(f"/price/{sku}")
        assert response.status_code == 200, response.text
        return response.json()

    def metric(self, name: str, **labels: str) -> float:
        expected_labels = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
        for line in self.http.get("/metrics").text.splitlines():
            series, _space, value = line.rpartition(" ")
            metric_name, _brace, label_text = series.partition("{")
            if metric_name == name and ",".join(sorted(label_text.rstrip("}").split(","))) == expected_labels:
                return float(value)
        return 0.0


@pytest.fixture
def rules_factory(lab_hq: LabHq, tmp_path: Path) -> Iterator[Callable[..., RulesService]]:
    """Start rules engines with a given rule list; the inventory URL defaults to a closed port (no signals)."""
    services: list[RulesService] = []

    def start(rules: list[dict[str, Any]], inventory_url: str | None = None, **settings: Any) -> RulesService:
        work_dir = tmp_path / f"rules-{len(services)}"
        work_dir.mkdir()
        service = RulesService(lab_hq, work_dir, inventory_url or f"http://127.0.0.1:{free_port()}", **settings)
        write_rules(service.rules_dir, rules)
        services.append(service)
        service.start()
        wait_until(
            lambda: service.http.get("/healthz").json()["catalog_skus"] > 0,
            description="catalog",
            logs=service.log_tail(),
        )
        return service

    yield start
    for service in services:
        service.http.close()
        service.stop()


@pytest.fixture
def varnishd() -> Iterator[Callable[[str], int]]:
    """Start varnishd instances with a given VCL (``{port}`` placeholders already filled); return the port.

    The instance directory lives directly under /tmp with mode 0755 because varnishd's VCL compiler runs as
    an unprivileged user that cannot enter pytest's 0700 temporary directories.
    """
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(vcl: str) -> int:
        instance = Path(tempfile.mkdtemp(prefix="commerce-varnish-"))
        instance.chmod(0o755)
        (instance / "main.vcl").write_text(vcl)
        (instance / "main.vcl").chmod(0o644)
        port = free_port()
        cmd = [
            "varnishd",
            "-F",
            "-n",
            str(instance),
            "-a",
            f"127.0.0.1:{port}",
            "-f",
            str(instance / "main.vcl"),
            "-s",
            "malloc,32m",
            "-T",
            "none",
        ]
        log = (instance / "varnishd.log").open("wb")
        procs.append((subprocess.Popen(cmd, stdout=log, stderr=log), instance))
        try:
            wait_for_port(port, timeout=30)
        except TimeoutError as exc:
            raise TimeoutError((instance / "varnishd.log").read_text()[-3000:]) from exc
        return port

    yield start
    for proc, instance in procs:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(instance, ignore_errors=True)

"""Real POS cache processes for the tests: the API server, the sync agent, keep-alive clients and a TCP proxy.

Everything runs as separate processes on loopback with real SQLite files, against the lab HQ of
``tests.fixtures_hq``. The server and the agent are started with ``python -m retail_edge.pos`` from this checkout.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures_hq import LAB_STORE, LAB_TOKEN, LabHq, service_env
from tests.support import ROOT, free_port

LAB_PASSWORD = "lab-pass-{}"  # the lab HQ seeds cashiers c001-c006 with this password pattern


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any


class PosClient:
    """A register: one keep-alive HTTP connection to the POS server, optionally with a session token."""

    def __init__(self, port: int, token: str | None = None, timeout: float = 30.0) -> None:
        self.port = port
        self.token = token
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Reply:
        """Send one request; raises OSError or http.client errors when the server is gone.

        Like browsers and HTTP libraries, a request that finds its idle keep-alive connection closed by the server
        is sent once more on a new connection. A server that is down still raises, because the new connection
        is refused.
        """
        all_headers = {"Connection": "keep-alive"}
        if self.token:
            all_headers["Authorization"] = f"Bearer {self.token}"
        payload = None
        if body is not None:
            payload = body if isinstance(body, bytes) else json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        reused = self._conn is not None
        try:
            return self._send(method, path, payload, all_headers)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            if not reused:
                raise
        return self._send(method, path, payload, all_headers)

    def _send(self, method: str, path: str, payload: bytes | None, headers: dict[str, str]) -> Reply:
        if self._conn is None:
            self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            self._conn.request(method, path, body=payload, headers=headers)
            response = self._conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        text = raw.decode()
        is_json = response.getheader("content-type", "").startswith("application/json")
        parsed = json.loads(text) if text and is_json else text
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, parsed)

    def login(self, cashier_id: str, password: str | None = None) -> Reply:
        reply = self.request(
            "POST", "/sessions", {"cashier_id": cashier_id, "password": password or LAB_PASSWORD.format(cashier_id)}
        )
        if reply.status == 201:
            self.token = reply.body["token"]
        return reply

    def sell(self, key: str, lines: list[dict[str, Any]], register_id: str = "r1", **extra: Any) -> Reply:
        return self.request(
            "POST", "/sales", {"register_id": register_id, "lines": lines, **extra}, {"Idempotency-Key": key}
        )


def sale_lines(number: int) -> list[dict[str, Any]]:
    """Return one or two lines over the lab catalog's first 300 SKUs, varied by the sale number."""
    first = {"sku": f"SKU-{number % 300 + 1:05d}", "qty": number % 3 + 1}
    if number % 2:
        return [first]
    return [first, {"sku": f"SKU-{(number * 7) % 300 + 1:05d}", "qty": 1}]


def sell_concurrently(pos: PosCache, total: int, registers: int) -> dict[int, list[str]]:
    """Sell ``total`` sales from ``registers`` keep-alive clients; return each register's sale ids in send order."""
    per_register = total // registers
    failures: list[str] = []
    lock = threading.Lock()

    def register_loop(number: int) -> list[str]:
        client = pos.client(f"c00{number % 6 + 1}")
        sale_ids = []
        for index in range(per_register):
            reply = client.sell(new_key(), sale_lines(number * per_register + index), register_id=f"r{number}")
            if reply.status != 201:
                with lock:
                    failures.append(f"register {number} sale {index}: {reply.status} {reply.body}")
                break
            sale_ids.append(reply.body["sale_id"])
        client.close()
        return sale_ids

    with ThreadPoolExecutor(registers) as pool:
        results = list(pool.map(register_loop, range(registers)))
    assert failures == []
    return dict(enumerate(results))


class PosCache:
    """The POS server and sync agent of one store database, each a real process that tests may kill."""

    def __init__(self, work_dir: Path, hq_url: str, **settings: Any) -> None:
        self.work_dir = work_dir
        work_dir.mkdir(parents=True, exist_ok=True)
        self.db_path = work_dir / "pos.sqlite3"
        self.port = free_port()
        self.agent_port = free_port()
        self.config_path = work_dir / "pos.yml"
        self.settings: dict[str, Any] = {
            "store_id": LAB_STORE,
            "db_path": str(self.db_path),
            "hq_url": hq_url,
            "hq_token": LAB_TOKEN,
            "listen_port": self.port,
            "sync_listen_port": self.agent_port,
            "sync_poll_interval_seconds": 0.05,
            "sync_backoff_initial_seconds": 0.05,
            "sync_backoff_max_seconds": 0.5,
            "replica_pull_interval_seconds": 0.5,
            "sync_request_timeout_seconds": 10,
            "log_level": "INFO",
        }
        self.settings.update(settings)
        self.write_config()
        self.server: subprocess.Popen[bytes] | None = None
        self.agent: subprocess.Popen[bytes] | None = None
        self.spawned: list[subprocess.Popen[bytes]] = []
        self.server_log = work_dir / "server.log"
        self.agent_log = work_dir / "agent.log"

    def write_config(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.settings))

    def _spawn(self, args: list[str], log_path: Path) -> subprocess.Popen[bytes]:
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "retail_edge.pos", *args, "--config", str(self.config_path)],
                cwd=ROOT,
                env=service_env(),
                stdout=log,
                stderr=log,
            )
        self.spawned.append(proc)
        return proc

    def start_server(self, timeout: float = 30.0) -> None:
        self.server = self._spawn([], self.server_log)
        self._wait_healthy(self.server, self.port, self.server_log, timeout)

    def start_agent(self, timeout: float = 30.0, *, wait: bool = True) -> None:
        """Start the sync agent; with wait=False, return at once (for agents a test kills during start-up)."""
        self.agent = self._spawn(["sync"], self.agent_log)
        if wait:
            self._wait_healthy(self.agent, self.agent_port, self.agent_log, timeout)

    def sync_once(self, expect_rc: int = 0) -> subprocess.CompletedProcess[str]:
        """Run ``retail-edge-pos-sync --once`` (pull replicas, push the outbox) and check its exit status."""
        proc = subprocess.run(
            [sys.executable, "-m", "retail_edge.pos", "sync", "--once", "--config", str(self.config_path)],
            cwd=ROOT,
            env=service_env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert proc.returncode == expect_rc, f"sync --once exited {proc.returncode}:\n{proc.stderr[-4000:]}"
        return proc

    @staticmethod
    def _wait_healthy(proc: subprocess.Popen[bytes], port: int, log_path: Path, timeout: float) -> None:
        """Wait until ``proc`` itself answers /healthz on ``port``; an older process on the port does not count."""
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"process exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", "/healthz")
                response = connection.getresponse()
                body = response.read()
                connection.close()
                if response.status == 200 and json.loads(body).get("pid", proc.pid) == proc.pid:
                    return
            except (OSError, http.client.HTTPException, ValueError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no healthy answer on port {port} within {timeout} s:\n{log_path.read_text()[-4000:]}"
                )
            time.sleep(0.02)

    @staticmethod
    def _stop(proc: subprocess.Popen[bytes] | None, sig: int) -> None:
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)

    def stop_server(self, sig: int = signal.SIGTERM) -> None:
        self._stop(self.server, sig)
        self.server = None

    def stop_agent(self, sig: int = signal.SIGTERM) -> None:
        self._stop(self.agent, sig)
        self.agent = None

    def stop(self) -> None:
        self.stop_agent()
        self.stop_server()
        # Also any process a test lost track of, so that none outlives the test.
        for proc in self.spawned:
            self._stop(proc, signal.SIGKILL)

    def client(self, cashier_id: str | None = "c001") -> PosClient:
        client = PosClient(self.port)
        if cashier_id is not None:
            reply = client.login(cashier_id)
            assert reply.status == 201, reply.body
        return client

    def agent_health(self) -> dict[str, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.agent_port, timeout=10)
        connection.request("GET", "/healthz")
        return json.loads(connection.getresponse().read())

    def wait_until(self, condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} did not happen within {timeout} s; agent log:\n{self.agent_log_tail()}")
            time.sleep(0.05)

    def agent_log_tail(self) -> str:
        return self.agent_log.read_text()[-4000:] if self.agent_log.exists() else "(no agent log)"

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Read the store database directly, as an auditor would, through a separate connection."""
        connection = sqlite3.connect(self.db_path, timeout=30)
        try:
            return connection.execute(sql, params).fetchall()
        finally:
            connection.close()

    def execute(self, sql: str, *params: Any) -> None:
        connection = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        try:
            connection.execute(sql, params)
        finally:
            connection.close()


def hq_sales(hq: LabHq, store_id: str = LAB_STORE) -> tuple[list[dict[str, Any]], int]:
    """Return every sale HQ applied for the store in arrival order, and the number of duplicates HQ saw."""
    sales: list[dict[str, Any]] = []
    after, duplicates = 0, 0
    while True:
        page = hq.get("/sales", store_id, after_seq=after, limit=5000).json()
        sales += page["sales"]
        duplicates = page["duplicates"]
        if not page["sales"]:
            return sales, duplicates
        after = page["last_seq"]


def new_key() -> str:
    return str(uuid.uuid4())


class BatchInterceptor:
    """A TCP proxy between the sync agent and HQ that can cut a sales batch off at a chosen point.

    ``arm("after_response")`` lets the next ``POST .../sales/batches`` reach HQ and holds back HQ's answer;
    ``arm("mid_request")`` forwards only the first half of that request. In both cases ``on_cut`` runs (the test
    kills the agent there) and the connection is closed. Other traffic passes unchanged.
    """

    def __init__(self, upstream_port: int, on_cut: Callable[[], None]) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.on_cut = on_cut
        self.mode: str | None = None
        self.cuts: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="batch-interceptor", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def arm(self, mode: str) -> None:
        assert mode in ("after_response", "mid_request")
        self.mode = mode

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            self._loop.close()

    def close(self) -> None:
        async def cancel_connections() -> None:
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel_connections(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _cut(self, mode: str) -> None:
        # The cut is recorded only after on_cut returned, so a test that waits for it never runs ahead of the kill.
        self.mode = None
        self.on_cut()
        self.cuts.append(mode)

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_writer.close()
            return
        batch_in_flight = asyncio.Event()

        async def client_to_upstream() -> None:
            while data := await client_reader.read(65536):
                if b"/sales/batches" in data and data.startswith(b"POST"):
                    if self.mode == "mid_request":
                        upstream_writer.write(data[: len(data) // 2])
                        await upstream_writer.drain()
                        await asyncio.sleep(0.05)
                        self._cut("mid_request")
                        break
                    batch_in_flight.set()
                upstream_writer.write(data)
                await upstream_writer.drain()
            upstream_writer.close()
            client_writer.close()

        async def upstream_to_client() -> None:
            while data := await upstream_reader.read(65536):
                if batch_in_flight.is_set() and self.mode == "after_response":
                    self._cut("after_response")
                    break
                batch_in_flight.clear()
                client_writer.write(data)
                await client_writer.drain()
            client_writer.close()
            upstream_writer.close()

        await asyncio.gather(client_to_upstream(), upstream_to_client(), return_exceptions=True)


@pytest.fixture
def pos_factory(tmp_path: Path) -> Iterator[Callable[..., PosCache]]:
    """Build PosCache instances whose processes are all stopped at teardown."""
    created: list[PosCache] = []

    def make(hq_url: str, name: str = "pos", **settings: Any) -> PosCache:
        cache = PosCache(tmp_path / name, hq_url, **settings)
        created.append(cache)
        return cache

    yield make
    for cache in created:
        cache.stop()

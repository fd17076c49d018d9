"""Latency and throughput of GET /inventory/{sku} on loopback, beside nginx serving the same bytes.

Servers: the inventory API with 1 and 2 worker processes, each direct and behind Varnish (cached responses
allowed, as the API sends Cache-Control: max-age=1), and nginx serving a static file with the same body.
For each server and repeat (servers interleaved within a repeat):

* fixed rate: an open-loop generator sends requests on a fixed schedule (default 1,000 req/s) from several
  processes, each with one keep-alive connection and an interleaved share of the schedule. Latency is
  measured from the scheduled send time, so a slow response also delays the requests queued behind it.
* max rate: closed-loop load with pipelined keep-alive connections for a few seconds; completed responses
  per second.

The client shares the machine's cores with the servers, so max rates are lower bounds.

    /work/venv/bin/python bench/inventory_latency.py [--repeats 3] [--rate 1000] [--duration 6]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import multiprocessing as mp
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from lab.hq.seed import generate_catalog, generate_stock  # noqa: E402
from retail_edge.inventory.store import InventoryStore  # noqa: E402

SKU = "SKU-00042"
PATH = f"/inventory/{SKU}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            status, _body = http_get(port, PATH)
            if status == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"no 200 response for {PATH} on port {port} within {timeout} s")


def http_get(port: int, path: str) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _separator, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


# -- load generation -------------------------------------------------------------------------------------------


class ResponseReader:
    """Reads complete HTTP/1.1 responses (Content-Length bodies) from a keep-alive socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def read_responses(self, count: int) -> None:
        done = 0
        while done < count:
            end = self.buffer.find(b"\r\n\r\n")
            if end >= 0:
                head = self.buffer[:end]
                marker = head.lower().find(b"content-length:")
                line_end = head.find(b"\r\n", marker)
                length = int(head[marker + 15 : line_end if line_end > 0 else None])
                total = end + 4 + length
                if len(self.buffer) >= total:
                    if not head.startswith(b"HTTP/1.1 200"):
                        raise RuntimeError(f"unexpected response: {head[:80]!r}")
                    self.buffer = self.buffer[total:]
                    done += 1
                    continue
            chunk = self.sock.recv(262144)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buffer += chunk


@dataclass(frozen=True)
class Schedule:
    """Share of one sender: requests offset, offset + stride, ... below count, ``interval`` seconds apart."""

    start: float
    interval: float
    offset: int
    stride: int
    count: int


def fixed_rate_worker(port: int, schedule: Schedule, out) -> None:
    """Send this sender's share of the schedule and return its latencies (s) through the pipe ``out``."""
    request = f"GET {PATH} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = ResponseReader(sock)
    latencies = []
    for index in range(schedule.offset, schedule.count, schedule.stride):
        scheduled = schedule.start + index * schedule.interval
        remaining = scheduled - time.perf_counter()
        if remaining > 0.0002:
            time.sleep(remaining - 0.00015)
        while time.perf_counter() < scheduled:
            pass
        sock.sendall(request)
        reader.read_responses(1)
        latencies.append(time.perf_counter() - scheduled)
    sock.close()
    out.send(latencies)


def fixed_rate(port: int, rate: float, duration: float, senders: int) -> dict[str, float]:
    count = int(rate * duration)
    start = time.perf_counter() + 0.5
    pipes, procs = [], []
    for offset in range(senders):
        receiver, sender = mp.Pipe(duplex=False)
        schedule = Schedule(start, 1 / rate, offset, senders, count)
        proc = mp.Process(target=fixed_rate_worker, args=(port, schedule, sender))
        proc.start()
        pipes.append(receiver)
        procs.append(proc)
    latencies = sorted(value for pipe in pipes for value in pipe.recv())
    for proc in procs:
        proc.join()
    return {
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
        "max_ms": 1000 * latencies[-1],
        "requests": len(latencies),
    }


def max_rate_worker(port: int, deadline: float, depth: int, out) -> None:
    request = f"GET {PATH} HTTP/1.1\r\nHost: bench\r\n\r\n".encode() * depth
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = ResponseReader(sock)
    completed = 0
    while time.perf_counter() < deadline:
        sock.sendall(request)
        reader.read_responses(depth)
        completed += depth
    sock.close()
    out.send(completed)


def max_rate(port: int, duration: float, connections: int, depth: int) -> float:
    started = time.perf_counter()
    deadline = started + duration
    pipes, procs = [], []
    for _connection in range(connections):
        receiver, sender = mp.Pipe(duplex=False)
        proc = mp.Process(target=max_rate_worker, args=(port, deadline, depth, sender))
        proc.start()
        pipes.append(receiver)
        procs.append(proc)
    completed = sum(pipe.recv() for pipe in pipes)
    elapsed = time.perf_counter() - started
    for proc in procs:
        proc.join()
    return completed / elapsed


# -- servers ---------------------------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    port: int
    procs: list[subprocess.Popen[bytes]]


def stop_all(servers: list[Server]) -> None:
    for server in servers:
        for proc in server.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in server.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def seed_database(path: Path, sku_count: int = 3000) -> None:
    """Fill the inventory database with the lab's seed of ``sku_count`` SKUs, as a first snapshot would."""
    store = InventoryStore(path)
    skus = [item.sku for item in generate_catalog(42, sku_count, dt.date.today())]
    items = [
        {
            "sku": stock.sku,
            "on_hand": stock.on_hand,
            "location": {"aisle": stock.aisle, "bay": stock.bay},
            "updated_at": "2025-01-01T00:00:00Z",
        }
        for stock in generate_stock(42, "bench", skus)
    ]
    store.replace_stock(items, "bench-cursor", [], time.time())
    store.close()


def start_inventory(work: Path, workers: int, db_path: Path) -> Server:
    port = free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    env.update(
        {
            "RETAIL_EDGE_INVENTORY_STORE_ID": "bench",
            "RETAIL_EDGE_INVENTORY_HQ_URL": "http://127.0.0.1:9",
            "RETAIL_EDGE_INVENTORY_HQ_TOKEN": "unused",
            "RETAIL_EDGE_INVENTORY_DB_PATH": str(db_path),
            "RETAIL_EDGE_INVENTORY_PORT": str(port),
            "RETAIL_EDGE_INVENTORY_WORKERS": str(workers),
            "RETAIL_EDGE_INVENTORY_METRICS_DIR": str(work / f"metrics-{workers}"),
            # No sync worker runs, so keep the response (and its size) the same for the whole run.
            "RETAIL_EDGE_INVENTORY_STALE_AFTER_S": "1e9",
            "RETAIL_EDGE_INVENTORY_LOG_LEVEL": "WARNING",
        }
    )
    log = (work / f"inventory-{workers}.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "retail_edge.inventory.cli", "api"], env=env, stdout=log, stderr=log)
    wait_for_http(port)
    return Server(f"inventory direct, {workers} worker{'s' if workers > 1 else ''}", port, [proc])


def start_varnish(work: Path, backend: Server, label: str) -> Server:
    port = free_port()
    instance = work / f"varnish-{backend.port}"
    instance.mkdir()
    vcl = instance / "bench.vcl"
    # Varnish honours the API's Cache-Control: max-age=1, so at most one request per second reaches it.
    vcl.write_text(f'vcl 4.1;\nbackend api {{ .host = "127.0.0.1"; .port = "{backend.port}"; }}\n')
    vcl.chmod(0o644)
    instance.chmod(0o755)
    cmd = [
        "varnishd",
        "-F",
        "-n",
        str(instance),
        "-a",
        f"127.0.0.1:{port}",
        "-f",
        str(vcl),
        "-s",
        "malloc,64m",
        "-T",
        "none",
        "-p",
        "thread_pool_min=20",
    ]
    log = (instance / "varnishd.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=log)
    wait_for_http(port)
    return Server(f"inventory via Varnish, {label}", port, [proc])


def start_nginx(work: Path, body: bytes) -> Server:
    port = free_port()
    prefix = work / "nginx"
    (prefix / "www" / "inventory").mkdir(parents=True)
    (prefix / "www" / "inventory" / SKU).write_bytes(body)
    for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / name).mkdir()
    conf = prefix / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        root {prefix}/www;
        default_type application/json;
    }}
}}
""")
    proc = subprocess.Popen(
        ["nginx", "-e", str(prefix / "error.log"), "-p", str(prefix), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_http(port)
    return Server("nginx static file (floor)", port, [proc])


@contextlib.contextmanager
def servers(work: Path, sku_count: int = 3000) -> Iterator[list[Server]]:
    started: list[Server] = []
    try:
        db_path = work / "inventory.sqlite3"
        seed_database(db_path, sku_count)
        one = start_inventory(work, 1, db_path)
        started.append(one)
        two = start_inventory(work, 2, db_path)
        started.append(two)
        _status, body = http_get(one.port, PATH)
        started.append(start_nginx(work, body))
        started.append(start_varnish(work, one, "1 worker"))
        started.append(start_varnish(work, two, "2 workers"))
        yield [started[2], started[0], started[1], started[3], started[4]]
    finally:
        stop_all(started)


# -- report ----------------------------------------------------------------------------------------------------


def spread(values: list[float], digits: int) -> str:
    return " / ".join(f"{value:.{digits}f}" for value in (min(values), statistics.median(values), max(values)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--repeats", type=int, default=3, help="rounds over all servers (default: 3)")
    parser.add_argument("--rate", type=float, default=1000.0, help="fixed request rate in req/s (default: 1000)")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds of fixed-rate load (default: 6)")
    parser.add_argument("--senders", type=int, default=4, help="fixed-rate sender processes (default: 4)")
    parser.add_argument("--max-duration", type=float, default=3.0, help="seconds of max-rate load (default: 3)")
    parser.add_argument("--connections", type=int, default=4, help="max-rate connections (default: 4)")
    parser.add_argument("--depth", type=int, default=16, help="pipelined requests per max-rate batch (default: 16)")
    parser.add_argument("--skus", type=int, default=3000, help="SKUs in the seeded database (default: 3000)")
    parser.add_argument("--json", type=Path, help="also write the raw results to this file")
    args = parser.parse_args()

    for tool in ("nginx", "varnishd"):
        if shutil.which(tool) is None:
            print(f"error: {tool} is not installed (Debian package {tool.rstrip('d')})", file=sys.stderr)
            return 1
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="inventory-bench-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)
        with servers(work, args.skus) as targets:
            body_size = len(http_get(targets[0].port, PATH)[1])
            for repeat in range(1, args.repeats + 1):
                for server in targets:
                    fixed_rate(server.port, args.rate, 1.0, args.senders)  # warm-up
                    figures = fixed_rate(server.port, args.rate, args.duration, args.senders)
                    peak = max_rate(server.port, args.max_duration, args.connections, args.depth)
                    entry = results.setdefault(server.name, {"p50_ms": [], "p99_ms": [], "max_rps": []})
                    entry["p50_ms"].append(figures["p50_ms"])
                    entry["p99_ms"].append(figures["p99_ms"])
                    entry["max_rps"].append(peak)
                    print(
                        f"repeat {repeat} {server.name}: p50 {figures['p50_ms']:.3f} ms, p99 "
                        f"{figures['p99_ms']:.3f} ms, max {peak:,.0f} req/s",
                        file=sys.stderr,
                    )

    print(
        f"Body: {body_size} bytes. Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"{platform.platform()}. Figures: min / median / max of {args.repeats} interleaved repeats.\n"
    )
    print(f"| server | p50 at {args.rate:,.0f} req/s (ms) | p99 at {args.rate:,.0f} req/s (ms) | max rate (req/s) |")
    print("|---|---|---|---|")
    for name, entry in results.items():
        print(
            f"| {name} | {spread(entry['p50_ms'], 3)} | {spread(entry['p99_ms'], 3)} | {spread(entry['max_rps'], 0)} |"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"body_bytes": body_size, "args": vars(args) | {"json": str(args.json)}, "results": results}, indent=2
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark of the POS cache: durable sales per second and the drain of a backlog to HQ after an outage.

Durable throughput, each sale committed with synchronous=FULL before it counts, measured four ways in one run.
The loops take turns in blocks of --block sales, so that the noise of a shared machine (its fsync latency
changes from second to second) hits all of them alike:

- raw: a plain sqlite3 loop over the POS schema, one sale row and one outbox row per transaction, with a
  pre-serialized document (the floor any storage layer pays for fsync and indexes);
- storage: ``PosStore.record_sale`` (validation, pricing from the catalog replica, idempotency, JSON);
- api-1 and api-N: ``POST /sales`` to a real POS server process from 1 and N keep-alive clients. With N
  clients, sales that arrive during a commit share the next one (group commit), so api-N may beat raw.

Drain: 10,000 sales queued while HQ is down, then HQ starts and the running sync agent empties the outbox.
``drain`` runs from the start of the first successful batch to the end of the last one, read from the agent's
log. ``recovery`` runs from HQ being ready to the empty queue. It adds the agent's wait for its next retry,
which the backoff caps at --backoff-max seconds.

Run from the repository root: ``python bench/pos_durability.py`` (about two minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from retail_edge.pos.sales import parse_sale_request  # noqa: E402
from retail_edge.pos.storage import SCHEMA, CatalogItem, PosStore  # noqa: E402
from tests.fixtures_hq import LabHq  # noqa: E402
from tests.fixtures_pos import PosCache, PosClient, sale_lines  # noqa: E402

CATALOG_SIZE = 300
# Sales run by each loop before timing starts, so that no loop is timed while its WAL file still grows.
WARMUP = 300


def lab_catalog() -> list[CatalogItem]:
    return [
        CatalogItem(f"SKU-{i:05d}", f"Item {i}", 100 + i, {"sku": f"SKU-{i:05d}", "base_price_cents": 100 + i})
        for i in range(1, CATALOG_SIZE + 1)
    ]


class RawLoop:
    """Plain sqlite3 over the POS schema: one sale row plus one outbox row per transaction."""

    def __init__(self, directory: Path) -> None:
        self.db = sqlite3.connect(directory / "raw.sqlite3", isolation_level=None)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = FULL")
        for statement in SCHEMA.split(";"):
            if statement.strip():
                self.db.execute(statement)
        # A document of the size record_sale writes for the same two-line sale.
        self.document = json.dumps(
            {
                "sale_id": str(uuid.uuid4()),
                "store_id": "store-0001",
                "register_id": "r1",
                "cashier_id": "c001",
                "created_at": "2026-01-01T00:00:00.000Z",
                "lines": [
                    {"sku": "SKU-00001", "name": "Item 1", "qty": 2, "unit_price_cents": 101, "line_total_cents": 202},
                    {"sku": "SKU-00042", "name": "Item 42", "qty": 1, "unit_price_cents": 142, "line_total_cents": 142},
                ],
                "total_cents": 344,
                "payments": [],
            },
            separators=(",", ":"),
        )

    def run(self, count: int) -> float:
        """Commit ``count`` transactions; return the seconds they took."""
        started = time.perf_counter()
        for _sale in range(count):
            sale_id = str(uuid.uuid4())
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute(
                "INSERT INTO sales (sale_id, idempotency_key, request_sha256, cashier_id, register_id, total_cents,"
                " created_at, document) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (sale_id, str(uuid.uuid4()), "0" * 64, "c001", "r1", 344, "2026-01-01T00:00:00.000Z", self.document),
            )
            self.db.execute("INSERT INTO outbox (sale_id, enqueued_at) VALUES (?, ?)", (sale_id, time.time()))
            self.db.execute("COMMIT")
        return time.perf_counter() - started

    def close(self) -> None:
        self.db.close()


class StorageLoop:
    """``PosStore.record_sale``: one two-line sale, priced from the catalog replica, per transaction."""

    def __init__(self, directory: Path) -> None:
        self.store = PosStore(directory / "storage.sqlite3", "store-0001")
        self.store.replace_catalog(lab_catalog(), '"catalog-1"')
        self.request = parse_sale_request(
            {"register_id": "r1", "lines": [{"sku": "SKU-00001", "qty": 2}, {"sku": "SKU-00042", "qty": 1}]}
        )

    def run(self, count: int) -> float:
        started = time.perf_counter()
        for _sale in range(count):
            self.store.record_sale(str(uuid.uuid4()), self.request, "c001")
        return time.perf_counter() - started

    def close(self) -> None:
        self.store.close()


class ApiLoop:
    """``POST /sales`` to a running POS server, split over one keep-alive client thread per session token."""

    def __init__(self, pos: PosCache, tokens: list[str]) -> None:
        self.clients = [PosClient(pos.port, token) for token in tokens]
        self.numbers = iter(range(10**9))

    def run(self, count: int) -> float:
        per_client = count // len(self.clients)
        errors: list[str] = []
        ready = threading.Event()

        def sell(client: PosClient) -> None:
            ready.wait()
            for _sale in range(per_client):
                reply = client.sell(str(uuid.uuid4()), sale_lines(next(self.numbers)))
                if reply.status != 201:
                    errors.append(f"{reply.status} {reply.body}")
                    return

        threads = [threading.Thread(target=sell, args=(client,)) for client in self.clients]
        for thread in threads:
            thread.start()
        started = time.perf_counter()
        ready.set()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        if errors:
            raise RuntimeError(f"API benchmark failed: {errors[:3]}")
        return elapsed

    def close(self) -> None:
        for client in self.clients:
            client.close()


def measure_throughput(work: Path, hq: LabHq, repeat: int, args: argparse.Namespace) -> dict[str, float]:
    """Run every loop in alternating blocks and return each one's sales per second for this repeat."""
    directory = work / f"run-{repeat}"
    directory.mkdir()
    pos = PosCache(directory / "api", hq.url, log_level="WARNING")
    pos.sync_once()
    pos.start_server()
    tokens = [pos.client(f"c00{n % 6 + 1}").token for n in range(args.clients)]
    loops: dict[str, RawLoop | StorageLoop | ApiLoop] = {
        "raw": RawLoop(directory),
        "storage": StorageLoop(directory),
        "api-1": ApiLoop(pos, tokens[:1]),
        f"api-{args.clients}": ApiLoop(pos, tokens),
    }
    try:
        for loop in loops.values():
            loop.run(WARMUP)
        seconds = dict.fromkeys(loops, 0.0)
        for _block in range(args.transactions // args.block):
            for name, loop in loops.items():
                seconds[name] += loop.run(args.block)
        done = args.transactions // args.block * args.block
        return {name: done / elapsed for name, elapsed in seconds.items()}
    finally:
        for loop in loops.values():
            loop.close()
        pos.stop()


def queue_sales(db_path: Path, count: int) -> None:
    """Fill the outbox with ``count`` sales through the storage layer, as the API would while HQ is down."""
    store = PosStore(db_path, "store-0001")
    request = parse_sale_request({"register_id": "r1", "lines": [{"sku": "SKU-00001", "qty": 1}]})
    for _sale in range(count):
        store.record_sale(str(uuid.uuid4()), request, "c001")
    store.close()


def batch_window(agent_log: Path) -> tuple[float, float]:
    """Return the Unix times at which the first logged sales batch started and the last one finished."""
    batches = []
    for line in agent_log.read_text().splitlines():
        if line.startswith("{") and '"sales batch synced"' in line:
            record = json.loads(line)
            finished = dt.datetime.fromisoformat(record["ts"]).timestamp()
            batches.append((finished - record["seconds"], finished))
    if not batches:
        raise RuntimeError(f"no 'sales batch synced' record in {agent_log}")
    return batches[0][0], batches[-1][1]


def bench_drain(work: Path, count: int, backoff_max: float, repeat: int) -> tuple[float, float]:
    """Queue ``count`` sales with HQ down, start HQ, and time the running agent's drain; return (drain, recovery)."""
    hq = LabHq(work / f"drain-hq-{repeat}")
    hq.start()
    pos = PosCache(
        work / f"drain-pos-{repeat}",
        hq.url,
        sync_backoff_initial_seconds=0.5,
        sync_backoff_max_seconds=backoff_max,
        sync_poll_interval_seconds=0.5,
        replica_pull_interval_seconds=30,
    )
    try:
        pos.sync_once()
        hq.stop()
        queue_sales(pos.db_path, count)
        pos.start_agent()
        time.sleep(backoff_max)  # let the agent fail a few times and reach its longest backoff
        hq.start()
        ready = time.time()
        while pos.agent_health()["pending"] > 0:
            time.sleep(0.02)
        empty = time.time()
    finally:
        pos.stop()
        hq.stop()
    first_started, last_finished = batch_window(pos.agent_log)
    return last_finished - first_started, empty - ready


def summary(values: list[float]) -> str:
    return f"{min(values):,.0f} / {statistics.median(values):,.0f} / {max(values):,.0f}"


def summary_seconds(values: list[float]) -> str:
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=3000, help="timed sales per loop and repeat")
    parser.add_argument("--block", type=int, default=100, help="sales per loop before the next loop's turn")
    parser.add_argument("--clients", type=int, default=8, help="concurrent keep-alive clients of api-N")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats")
    parser.add_argument("--drain-sales", type=int, default=10_000, help="sales queued before the drain")
    parser.add_argument("--backoff-max", type=float, default=5.0, help="sync agent backoff cap in seconds")
    parser.add_argument("--json", type=Path, help="also write the raw results to this file")
    args = parser.parse_args()

    results: dict[str, list[float]] = {"raw": [], "storage": [], "api-1": [], f"api-{args.clients}": []}
    drains: list[float] = []
    recoveries: list[float] = []
    with tempfile.TemporaryDirectory(prefix="pos-bench-") as temp:
        work = Path(temp)
        hq = LabHq(work / "hq")
        hq.start()
        try:
            for repeat in range(args.repeats):
                rates = measure_throughput(work, hq, repeat, args)
                for name, rate in rates.items():
                    results[name].append(rate)
                    print(f"repeat {repeat + 1}: {name:8s} {rate:8,.0f} sales/s", flush=True)
        finally:
            hq.stop()

        for repeat in range(args.repeats):
            drain, recovery = bench_drain(work, args.drain_sales, args.backoff_max, repeat)
            drains.append(drain)
            recoveries.append(recovery)
            print(f"repeat {repeat + 1}: drain {drain:.2f} s, recovery {recovery:.2f} s", flush=True)

    ratios = [storage / raw for storage, raw in zip(results["storage"], results["raw"], strict=True)]
    print()
    print(
        f"machine: {platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, SQLite "
        f"{sqlite3.sqlite_version}, load average before the run {os.getloadavg()[0]:.2f}"
    )
    print()
    print("| measurement | min / median / max |")
    print("|---|---|")
    for name, values in results.items():
        print(f"| {name} (sales/s) | {summary(values)} |")
    print(f"| storage / raw (same repeat) | {min(ratios):.0%} / {statistics.median(ratios):.0%} / {max(ratios):.0%} |")
    print(f"| drain of {args.drain_sales:,} sales (s) | {summary_seconds(drains)} |")
    print(f"| recovery, HQ ready to empty queue (s) | {summary_seconds(recoveries)} |")
    if args.json:
        args.json.write_text(json.dumps({**results, "drain": drains, "recovery": recoveries}, indent=2))


if __name__ == "__main__":
    main()

"""Sync agent of the POS cache: pushes the sales outbox to HQ and pulls the catalog and cashier replicas.

It runs as its own process (``retail-edge-pos-sync``) next to the POS server and shares the SQLite file with it,
so a crash or restart of either leaves the other running.

Exactly-once delivery: batches leave in outbox order, one at a time. Each sale carries its sale id as idempotency
key, and outbox rows are marked synced only after HQ responded for the whole batch. A crash between HQ applying a
batch and the agent recording that answer makes the agent resend the batch after restart; HQ answers
"duplicate" for those keys and applies nothing twice. So every sale reaches HQ once and in commit order. The
exception is a sale HQ rejects for good (a conflict, or a sale HQ calls invalid): it is parked as ``rejected``
with the reason and the queue moves on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram

from retail_edge.pos.dbthread import DatabaseThread
from retail_edge.pos.hq_client import HqClient, HqRejected, HqUnavailable
from retail_edge.pos.metrics import OutboxCollector, read_snapshot
from retail_edge.pos.replicas import ReplicaInvalid, parse_cashiers, parse_catalog
from retail_edge.pos.settings import PosSettings
from retail_edge.pos.storage import OutboxEntry, PosStore

log = logging.getLogger("retail_edge.pos.sync")

P = ParamSpec("P")
T = TypeVar("T")

PRUNE_INTERVAL_SECONDS = 3600.0
# Pulled in this order: a revocation matters more than a price change.
REPLICAS = ("cashiers", "catalog")


@dataclass
class Backoff:
    """Exponential backoff with full jitter and a cap.

    The n-th consecutive failure waits a random time between ``initial`` and ``min(maximum, initial * 2**n)``.
    The randomness spreads the retries of hundreds of stores that lost the same WAN link at once.
    """

    initial: float
    maximum: float
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0

    def next_delay(self, retry_after: float | None = None) -> float:
        ceiling = min(self.maximum, self.initial * 2 ** min(self.failures, 32))
        self.failures += 1
        delay = self.rng.uniform(min(self.initial, ceiling), ceiling)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.maximum))
        return delay

    def reset(self) -> None:
        self.failures = 0


class SyncMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.batches = Counter("pos_sync_batches", "Sales batches sent to HQ by result.", ["result"], registry=registry)
        self.sales = Counter(
            "pos_sync_sales",
            "Sales HQ answered for, by HQ status (applied, duplicate, conflict, invalid).",
            ["status"],
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "pos_sync_batch_seconds",
            "Round trip of one sales batch to HQ, recording the answer included.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=registry,
        )
        self.replica_pulls = Counter(
            "pos_replica_pulls",
            "Replica pulls from HQ by replica and result.",
            ["replica", "result"],
            registry=registry,
        )


class SyncAgent:
    """Push and pull loops over one store database and one HQ client."""

    def __init__(
        self,
        settings: PosSettings,
        store: PosStore,
        client: HqClient,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.client = client
        self.store_id = settings.store_id
        rng = rng or random.Random()  # noqa: S311 - jitter needs no cryptographic randomness
        self.push_backoff = Backoff(settings.sync_backoff_initial_seconds, settings.sync_backoff_max_seconds, rng)
        self.pull_backoff = Backoff(settings.sync_backoff_initial_seconds, settings.sync_backoff_max_seconds, rng)
        self.registry = CollectorRegistry()
        self.metrics = SyncMetrics(self.registry)
        # generate_latest runs on the database thread (see status_app), so the collector may use the store.
        self.registry.register(OutboxCollector(functools.partial(read_snapshot, store), settings.store_id))
        self.stopping = asyncio.Event()
        self._clock = clock
        self._db_thread = DatabaseThread("pos-sync-db")
        self._last_prune = 0.0

    async def db(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._db_thread.call(function, *args, **kwargs)

    def close(self) -> None:
        self._db_thread.close()

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake up at once when the agent is asked to stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)

    # Push ----------------------------------------------------------------------------------------------

    async def push_batch(self) -> int:
        """Send the oldest pending sales as one batch and record HQ's response; return how many left the queue."""
        entries = await self.db(self.store.pending_batch, self.settings.sync_batch_size)
        if not entries:
            return 0
        started = time.perf_counter()
        try:
            acknowledged, rejected = await self._deliver(entries)
        except HqUnavailable as exc:
            self.metrics.batches.labels("failed").inc()
            await self.db(self.store.record_sync_failure, "push", exc.kind, exc.detail, [e.seq for e in entries])
            raise
        await self.db(self.store.settle_batch, acknowledged, rejected, self._clock())
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self.metrics.batches.labels("ok").inc()
        for _, status in acknowledged:
            self.metrics.sales.labels(status).inc()
        log.info(
            "sales batch synced",
            extra={
                "store_id": self.store_id,
                "first_seq": entries[0].seq,
                "last_seq": entries[-1].seq,
                "sales": len(entries),
                "applied": sum(1 for _, status in acknowledged if status == "applied"),
                "duplicates": sum(1 for _, status in acknowledged if status == "duplicate"),
                "rejected": len(rejected),
                "seconds": round(time.perf_counter() - started, 3),
            },
        )
        return len(entries)

    async def _deliver(
        self, entries: Sequence[OutboxEntry]
    ) -> tuple[list[tuple[int, str]], list[tuple[int, str, str]]]:
        """Send entries in order and sort them into acknowledged and rejected.

        When HQ rejects a whole batch as invalid, the halves are sent one after the other, down to the single sale
        at fault, which is rejected alone. Order is kept because the first half always goes first.
        """
        try:
            statuses = await self.client.post_sales_batch(entries)
        except HqRejected as exc:
            if len(entries) == 1:
                entry = entries[0]
                self.metrics.sales.labels("invalid").inc()
                log.error(
                    "HQ rejected a sale as invalid; it is parked in the outbox as rejected",
                    extra={"store_id": self.store_id, "sale_id": entry.sale_id, "seq": entry.seq, "error": exc.detail},
                )
                return [], [(entry.seq, f"http_{exc.status}", exc.detail)]
            middle = len(entries) // 2
            first = await self._deliver(entries[:middle])
            second = await self._deliver(entries[middle:])
            return first[0] + second[0], first[1] + second[1]

        acknowledged: list[tuple[int, str]] = []
        rejected: list[tuple[int, str, str]] = []
        for entry in entries:
            status = statuses.get(entry.sale_id)
            if status in ("applied", "duplicate"):
                acknowledged.append((entry.seq, status))
            elif status == "conflict":
                self.metrics.sales.labels("conflict").inc()
                log.error(
                    "HQ has other content under this sale id; the sale is parked in the outbox as rejected",
                    extra={"store_id": self.store_id, "sale_id": entry.sale_id, "seq": entry.seq},
                )
                rejected.append((entry.seq, "conflict", "HQ has a different sale under the same idempotency key"))
            else:
                raise HqUnavailable("protocol", f"HQ's response has status {status!r} for sale {entry.sale_id}")
        return acknowledged, rejected

    async def push_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                sent = await self.push_batch()
            except HqUnavailable as exc:
                delay = self.push_backoff.next_delay(exc.retry_after)
                log.warning(
                    "sales batch not delivered; retrying",
                    extra={
                        "store_id": self.store_id,
                        "kind": exc.kind,
                        "error": exc.detail,
                        "retry_in": round(delay, 2),
                    },
                )
                await self._pause(delay)
                continue
            except Exception:
                delay = self.push_backoff.next_delay()
                log.exception("sales push failed unexpectedly; retrying", extra={"store_id": self.store_id})
                await self._pause(delay)
                continue
            self.push_backoff.reset()
            if sent == 0:
                await self._maybe_prune()
                await self._pause(self.settings.sync_poll_interval_seconds)

    async def _maybe_prune(self) -> None:
        now = self._clock()
        if now - self._last_prune < PRUNE_INTERVAL_SECONDS:
            return
        self._last_prune = now
        cutoff = now - self.settings.synced_retention_days * 86400
        pruned = await self.db(self.store.prune_synced, cutoff)
        if pruned:
            log.info("pruned synced sales", extra={"store_id": self.store_id, "sales": pruned})

    # Pull ----------------------------------------------------------------------------------------------

    async def pull_replica(self, name: str) -> bool:
        """Fetch one replica if HQ has a newer version and store it; return whether it changed."""
        versions = await self.db(self.store.replica_versions)
        current = versions.get(name, {}).get("version")
        replica = await self.client.get_replica(name, current)
        if replica.document is None:
            await self.db(self.store.touch_replica, name, self._clock())
            self.metrics.replica_pulls.labels(name, "unchanged").inc()
            return False
        if name == "catalog":
            items = parse_catalog(replica.document)
            await self.db(self.store.replace_catalog, items, replica.etag, self._clock())
            log.info(
                "catalog replica updated", extra={"store_id": self.store_id, "skus": len(items), "etag": replica.etag}
            )
        else:
            cashiers, revoked = parse_cashiers(replica.document)
            ended = await self.db(self.store.replace_cashiers, cashiers, revoked, replica.etag, self._clock())
            log.info(
                "cashier replica updated",
                extra={
                    "store_id": self.store_id,
                    "cashiers": len(cashiers),
                    "revoked": sorted(revoked),
                    "sessions_ended_for": sorted(ended),
                    "etag": replica.etag,
                },
            )
        self.metrics.replica_pulls.labels(name, "updated").inc()
        return True

    async def pull_all(self) -> None:
        """Pull every replica once; raise HqUnavailable or ReplicaInvalid on the first failure."""
        for name in REPLICAS:
            try:
                await self.pull_replica(name)
            except (HqUnavailable, ReplicaInvalid) as exc:
                kind = exc.kind if isinstance(exc, HqUnavailable) else "invalid_document"
                self.metrics.replica_pulls.labels(name, "failed").inc()
                await self.db(self.store.record_sync_failure, f"pull_{name}", kind, str(exc))
                raise

    async def pull_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                await self.pull_all()
            except (HqUnavailable, ReplicaInvalid) as exc:
                delay = min(self.pull_backoff.next_delay(), self.settings.replica_pull_interval_seconds)
                log.warning(
                    "replica pull failed; keeping the current replicas",
                    extra={"store_id": self.store_id, "error": str(exc), "retry_in": round(delay, 2)},
                )
                await self._pause(delay)
                continue
            except Exception:
                log.exception("replica pull failed unexpectedly", extra={"store_id": self.store_id})
                await self._pause(self.settings.replica_pull_interval_seconds)
                continue
            self.pull_backoff.reset()
            await self._pause(self.settings.replica_pull_interval_seconds)

    # Whole agent ---------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run both loops until ``stopping`` is set."""
        log.info("sync agent started", extra={"store_id": self.store_id, "hq_url": self.settings.hq_url})
        await asyncio.gather(self.push_loop(), self.pull_loop())
        log.info("sync agent stopped", extra={"store_id": self.store_id})

    async def run_once(self) -> int:
        """Pull the replicas once and push until the outbox is empty; return the number of sales that left it."""
        await self.pull_all()
        total = 0
        while True:
            sent = await self.push_batch()
            if sent == 0:
                return total
            total += sent

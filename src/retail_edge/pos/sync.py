"""Sync agent of the POS cache: pushes the sales outbox to HQ and pulls the catalog and cashier replicas.

With ``inventory_url`` set it also forwards every sale to the store's inventory API, under its own cursor.

It runs as its own process (``retail-edge-pos-sync``) next to the POS server and shares the SQLite file with it,
so a crash or restart of either leaves the other running.

Exactly-once delivery: batches leave in outbox order, one at a time. Each sale carries its sale id as idempotency
key, and outbox rows are marked synced only after HQ responded for the whole batch. A crash between HQ applying a
batch and the agent recording the response makes the agent resend the batch after restart. HQ responds
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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram

from retail_edge.pos.clients import HqClient, InventoryClient, RequestRejected, ServiceUnavailable
from retail_edge.pos.dbthread import DatabaseThread
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
INVENTORY_TARGET = "inventory"


@dataclass
class Backoff:
    """Exponential backoff with jitter and a cap.

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
            "Sales HQ responded to, by HQ status (applied, duplicate, conflict, invalid).",
            ["status"],
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "pos_sync_batch_seconds",
            "Round trip of one sales batch to HQ, recording the response included.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=registry,
        )
        self.inventory_sales = Counter(
            "pos_inventory_forwarded_sales",
            "Sales forwarded to the store's inventory API, by its status (applied, duplicate, already_reflected).",
            ["status"],
            registry=registry,
        )
        self.replica_pulls = Counter(
            "pos_replica_pulls",
            "Replica pulls from HQ by replica and result.",
            ["replica", "result"],
            registry=registry,
        )


class SyncAgent:
    """Push, pull and forward loops over one store database, one HQ client and an optional inventory client."""

    def __init__(
        self,
        settings: PosSettings,
        store: PosStore,
        client: HqClient,
        *,
        inventory: InventoryClient | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.client = client
        self.inventory = inventory
        self.store_id = settings.store_id
        rng = rng or random.Random()  # noqa: S311 - jitter needs no cryptographic randomness
        initial, maximum = settings.sync_backoff_initial_seconds, settings.sync_backoff_max_seconds
        self.push_backoff = Backoff(initial, maximum, rng)
        self.pull_backoff = Backoff(initial, maximum, rng)
        self.forward_backoff = Backoff(initial, maximum, rng)
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
        except ServiceUnavailable as exc:
            self.metrics.batches.labels("failed").inc()
            await self.db(self.store.record_sync_failure, "push", exc.kind, exc.detail, [e.seq for e in entries])
            raise
        await self.db(self.store.settle_batch, acknowledged, rejected, self._clock())

        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self.metrics.batches.labels("ok").inc()
        statuses = [status for _seq, status in acknowledged]
        for status in statuses:
            self.metrics.sales.labels(status).inc()
        log.info(
            "sales batch synced",
            extra={
                "store_id": self.store_id,
                "first_seq": entries[0].seq,
                "last_seq": entries[-1].seq,
                "sales": len(entries),
                "applied": statuses.count("applied"),
                "duplicates": statuses.count("duplicate"),
                "rejected": len(rejected),
                "seconds": round(time.perf_counter() - started, 3),
            },
        )
        return len(entries)

    async def _send_bisecting(
        self, entries: Sequence[OutboxEntry], send: Callable[[Sequence[OutboxEntry]], Awaitable[dict[str, str]]]
    ) -> tuple[dict[str, str], dict[int, RequestRejected]]:
        """Send entries in order; return the statuses by sale id and the rejections by outbox seq.

        When the service rejects a whole batch as invalid, the halves are sent one after the other, down to the
        single sale at fault, which is rejected alone. Order is kept because the first half always goes first.
        """
        try:
            return await send(entries), {}
        except RequestRejected as exc:
            if len(entries) == 1:
                return {}, {entries[0].seq: exc}
            middle = len(entries) // 2
            first_statuses, first_rejected = await self._send_bisecting(entries[:middle], send)
            second_statuses, second_rejected = await self._send_bisecting(entries[middle:], send)
            return {**first_statuses, **second_statuses}, {**first_rejected, **second_rejected}

    async def _deliver(
        self, entries: Sequence[OutboxEntry]
    ) -> tuple[list[tuple[int, str]], list[tuple[int, str, str]]]:
        """Send entries to HQ in order and sort them into acknowledged and rejected."""
        statuses, invalid = await self._send_bisecting(entries, self.client.post_sales_batch)
        acknowledged: list[tuple[int, str]] = []
        rejected: list[tuple[int, str, str]] = []
        for entry in entries:
            ids = {"store_id": self.store_id, "sale_id": entry.sale_id, "seq": entry.seq}
            if entry.seq in invalid:
                error = invalid[entry.seq]
                self.metrics.sales.labels("invalid").inc()
                log.error(
                    "HQ rejected a sale as invalid; it is parked in the outbox as rejected",
                    extra={**ids, "error": error.detail},
                )
                rejected.append((entry.seq, f"http_{error.status}", error.detail))
                continue
            status = statuses.get(entry.sale_id)
            if status in ("applied", "duplicate"):
                acknowledged.append((entry.seq, status))
            elif status == "conflict":
                self.metrics.sales.labels("conflict").inc()
                log.error(
                    "HQ has other content under this sale id; the sale is parked in the outbox as rejected", extra=ids
                )
                rejected.append((entry.seq, "conflict", "HQ has a different sale under the same idempotency key"))
            else:
                raise ServiceUnavailable("protocol", f"HQ's response has status {status!r} for sale {entry.sale_id}")
        return acknowledged, rejected

    async def _loop(
        self,
        operation: str,
        step: Callable[[], Awaitable[int]],
        backoff: Backoff,
        idle_seconds: float,
        on_idle: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Repeat ``step`` until the agent stops.

        The next round starts at once while ``step`` returns work done, after ``idle_seconds`` when it returns 0,
        and after the next backoff delay when it fails.
        """
        while not self.stopping.is_set():
            try:
                done = await step()
            except (ServiceUnavailable, ReplicaInvalid) as exc:
                retry_after = exc.retry_after if isinstance(exc, ServiceUnavailable) else None
                delay = backoff.next_delay(retry_after)
                log.warning(
                    "%s failed; retrying",
                    operation,
                    extra={
                        "store_id": self.store_id,
                        "kind": exc.kind if isinstance(exc, ServiceUnavailable) else "invalid_document",
                        "error": str(exc),
                        "retry_in": round(delay, 2),
                    },
                )
                await self._pause(delay)
                continue
            except Exception:
                delay = backoff.next_delay()
                log.exception("%s failed unexpectedly; retrying", operation, extra={"store_id": self.store_id})
                await self._pause(delay)
                continue
            backoff.reset()
            if done == 0:
                if on_idle is not None:
                    await on_idle()
                await self._pause(idle_seconds)

    async def _maybe_prune(self) -> None:
        now = self._clock()
        if now - self._last_prune < PRUNE_INTERVAL_SECONDS:
            return
        self._last_prune = now
        cutoff = now - self.settings.synced_retention_days * 86400
        pruned = await self.db(self.store.prune_synced, cutoff)
        if pruned:
            log.info("pruned synced sales", extra={"store_id": self.store_id, "sales": pruned})

    # Forward to the inventory API ---------------------------------------------------------------------

    async def forward_batch(self) -> int:
        """Send the next sales after the inventory cursor to the inventory API; return how many were forwarded.

        Every sale is forwarded, whatever its state at HQ, so the inventory API can count it against local stock
        until HQ's stock feed reflects it. A sale the inventory API rejects as invalid is skipped and logged.
        """
        assert self.inventory is not None
        cursor = await self.db(self.store.delivery_cursor, INVENTORY_TARGET)
        entries = await self.db(self.store.entries_after, cursor, self.settings.sync_batch_size)
        if not entries:
            return 0
        try:
            statuses, invalid = await self._send_bisecting(entries, self.inventory.post_local_sales)
        except ServiceUnavailable as exc:
            await self.db(self.store.record_sync_failure, "forward_inventory", exc.kind, exc.detail)
            raise
        for entry in entries:
            if entry.seq in invalid:
                log.error(
                    "inventory API rejected a sale; it is not counted against local stock",
                    extra={"store_id": self.store_id, "sale_id": entry.sale_id, "error": invalid[entry.seq].detail},
                )
                self.metrics.inventory_sales.labels("invalid").inc()
            elif entry.sale_id in statuses:
                self.metrics.inventory_sales.labels(statuses[entry.sale_id]).inc()
            else:
                raise ServiceUnavailable("protocol", f"the inventory API returned no status for sale {entry.sale_id}")
        await self.db(self.store.advance_cursor, INVENTORY_TARGET, entries[-1].seq)
        log.info(
            "sales forwarded to the inventory API",
            extra={
                "store_id": self.store_id,
                "first_seq": entries[0].seq,
                "last_seq": entries[-1].seq,
                "sales": len(entries),
            },
        )
        return len(entries)

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

    async def pull_all(self) -> int:
        """Pull every replica once and return 0; raise ServiceUnavailable or ReplicaInvalid on the first failure."""
        for name in REPLICAS:
            try:
                await self.pull_replica(name)
            except (ServiceUnavailable, ReplicaInvalid) as exc:
                kind = exc.kind if isinstance(exc, ServiceUnavailable) else "invalid_document"
                self.metrics.replica_pulls.labels(name, "failed").inc()
                await self.db(self.store.record_sync_failure, f"pull_{name}", kind, str(exc))
                raise
        return 0

    # Whole agent ---------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run the push, pull and (with an inventory client) forward loops until ``stopping`` is set."""
        log.info("sync agent started", extra={"store_id": self.store_id, "hq_url": self.settings.hq_url})
        settings = self.settings
        loops = [
            self._loop(
                "sales push", self.push_batch, self.push_backoff, settings.sync_poll_interval_seconds, self._maybe_prune
            ),
            self._loop("replica pull", self.pull_all, self.pull_backoff, settings.replica_pull_interval_seconds),
        ]
        if self.inventory is not None:
            await self.db(self.store.start_cursor, INVENTORY_TARGET)
            loops.append(
                self._loop(
                    "inventory forward", self.forward_batch, self.forward_backoff, settings.sync_poll_interval_seconds
                )
            )
        await asyncio.gather(*loops)
        log.info("sync agent stopped", extra={"store_id": self.store_id})

    async def run_once(self) -> int:
        """Pull the replicas once and push until the outbox is empty; return the number of sales that left it.

        With an inventory client, every sale after its cursor is forwarded too. A failed pull or forward does not
        stop the push, but its error is raised once the outbox is empty.
        """
        errors: list[ServiceUnavailable | ReplicaInvalid] = []
        try:
            await self.pull_all()
        except (ServiceUnavailable, ReplicaInvalid) as exc:
            errors.append(exc)
        if self.inventory is not None:
            await self.db(self.store.start_cursor, INVENTORY_TARGET)
            try:
                while await self.forward_batch():
                    pass
            except ServiceUnavailable as exc:
                errors.append(exc)
        total = 0
        while sent := await self.push_batch():
            total += sent
        if errors:
            raise errors[0]
        return total

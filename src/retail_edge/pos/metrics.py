"""Prometheus metrics that both POS processes export: the outbox and replica state read from the database.

The server and the sync agent each register an OutboxCollector, so queue depth, age of the oldest unsynced sale
and the persisted sync error counters are visible on either ``/metrics`` even while the other process is down.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from retail_edge.pos.storage import (
    CONSECUTIVE_FAILURES_KEY,
    ERRORS_PREFIX,
    LAST_SUCCESS_KEY,
    OutboxStats,
    PosStore,
)


@dataclass(frozen=True)
class StoreSnapshot:
    outbox: OutboxStats
    sync_state: dict[str, str]
    replica_synced_at: dict[str, float]
    delivery_lags: dict[str, int]


def read_snapshot(store: PosStore) -> StoreSnapshot:
    replicas = {name: info["synced_at_unix"] for name, info in store.replica_versions().items()}
    return StoreSnapshot(
        outbox=store.outbox_stats(),
        sync_state=store.sync_state(),
        replica_synced_at=replicas,
        delivery_lags=store.cursor_lags(),
    )


class OutboxCollector(Collector):
    """Collect outbox and replica gauges from a snapshot function; it must be called from the database thread."""

    def __init__(self, snapshot: Callable[[], StoreSnapshot], store_id: str) -> None:
        self._snapshot = snapshot
        self._store_id = store_id

    def _store_gauge(self, name: str, documentation: str, value: float) -> GaugeMetricFamily:
        gauge = GaugeMetricFamily(name, documentation, labels=["store_id"])
        gauge.add_metric([self._store_id], value)
        return gauge

    def collect(self) -> Iterator[Metric]:
        snapshot = self._snapshot()
        state = snapshot.sync_state

        yield self._store_gauge(
            "pos_outbox_pending_sales",
            "Sales committed locally and not yet acknowledged by HQ.",
            snapshot.outbox.pending,
        )
        yield self._store_gauge(
            "pos_outbox_oldest_pending_age_seconds",
            "Age of the oldest sale not yet acknowledged by HQ; 0 when the outbox is empty.",
            snapshot.outbox.oldest_pending_age_seconds,
        )
        yield self._store_gauge(
            "pos_outbox_rejected_sales",
            "Sales that HQ rejected for good (conflict or invalid); they need an operator.",
            snapshot.outbox.rejected,
        )
        yield self._store_gauge(
            "pos_sync_consecutive_failures",
            "Failed sync attempts since the last successful one.",
            float(state.get(CONSECUTIVE_FAILURES_KEY, "0")),
        )
        if LAST_SUCCESS_KEY in state:
            yield self._store_gauge(
                "pos_sync_last_success_timestamp_seconds",
                "Unix time of the last batch HQ acknowledged.",
                float(state[LAST_SUCCESS_KEY]),
            )

        lags = GaugeMetricFamily(
            "pos_delivery_pending_sales",
            "Sales a local delivery target (the inventory API) has not received yet.",
            labels=["store_id", "target"],
        )
        for target, lag in sorted(snapshot.delivery_lags.items()):
            lags.add_metric([self._store_id, target], lag)
        yield lags

        errors = CounterMetricFamily(
            "pos_sync_errors",
            "Failed sync attempts by operation (push of sales, pull of replicas) and kind, kept across restarts.",
            labels=["store_id", "operation", "kind"],
        )
        for key, value in sorted(state.items()):
            if key.startswith(ERRORS_PREFIX):
                operation, _dot, kind = key.removeprefix(ERRORS_PREFIX).partition(".")
                errors.add_metric([self._store_id, operation, kind], float(value))
        yield errors

        replica_age = GaugeMetricFamily(
            "pos_replica_age_seconds",
            "Seconds since HQ last confirmed a replica (catalog, cashiers) as current.",
            labels=["store_id", "replica"],
        )
        now = time.time()
        for name, synced_at in sorted(snapshot.replica_synced_at.items()):
            replica_age.add_metric([self._store_id, name], max(0.0, now - synced_at))
        yield replica_age

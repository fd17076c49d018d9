"""Price quotes: gather local signals, run the matching rule under the guards, fall back to the base price."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from retail_edge.common import metrics
from retail_edge.rules.catalog import CatalogCache
from retail_edge.rules.engine import RuleEngine, RuleLoadError, RuleSet, Signals, fingerprint_dir, timed_run
from retail_edge.rules.settings import RulesSettings

log = logging.getLogger("retail_edge.rules.pricing")

FAILURE_OUTCOMES = frozenset({"trap", "fuel_exhausted", "timeout", "invalid_result", "error"})
# At most one log line per rule and failure kind in this many seconds; the counter still counts every one.
FAILURE_LOG_INTERVAL_S = 10.0


@dataclass(frozen=True)
class PriceQuote:
    sku: str
    price_cents: int
    base_price_cents: int
    floor_cents: int
    promo_id: str | None
    rule: str | None
    rules_version: str | None
    outcome: str
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RuleMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.calls = Counter("rules_calls", "Rule calls by rule and outcome", ["rule", "outcome"], registry=registry)
        self.fallbacks = Counter(
            "rules_fallbacks",
            "Base prices served because a rule failed, by failure kind",
            ["outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "rules_call_duration_seconds",
            "Time of one guarded rule call",
            ["rule"],
            buckets=metrics.LATENCY_BUCKETS,
            registry=registry,
        )
        self.reloads = Counter("rules_reloads", "Rule set reloads by result", ["result"], registry=registry)
        self.loaded = Gauge("rules_loaded", "Rules in the active rule set", registry=registry)
        self.inventory_errors = Counter(
            "rules_inventory_errors", "Failed reads of stock and velocity from the inventory API", registry=registry
        )


class PricingService:
    """Holds the active rule set, the catalog and the price cache; safe to call from several threads."""

    def __init__(
        self,
        settings: RulesSettings,
        engine: RuleEngine,
        catalog: CatalogCache,
        registry: CollectorRegistry,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.catalog = catalog
        self.clock = clock
        self.metrics = RuleMetrics(registry)
        self.ruleset: RuleSet | None = None
        self.last_reload_error: str | None = None
        self._failed_fingerprint: tuple[tuple[str, int, int], ...] | None = None
        self._cache: dict[str, tuple[float, PriceQuote]] = {}
        self._lock = threading.Lock()
        self._last_failure_log: dict[tuple[str, str], float] = {}
        self.inventory = httpx.Client(base_url=settings.inventory_url.rstrip("/"), timeout=settings.inventory_timeout_s)

    def close(self) -> None:
        self.inventory.close()

    # -- rules reload ----------------------------------------------------------------------------------------

    def reload_if_changed(self) -> bool:
        """Load the rules directory when its files changed; keep the active set if the new one fails to load."""
        rules_dir = self.settings.rules_dir
        fingerprint = fingerprint_dir(rules_dir)
        if self.ruleset is not None and fingerprint == self.ruleset.fingerprint:
            return False
        if self.last_reload_error is not None and fingerprint == self._failed_fingerprint:
            return False

        try:
            ruleset = self.engine.load(rules_dir)
        except RuleLoadError as exc:
            self._failed_fingerprint = fingerprint
            self.last_reload_error = str(exc)
            self.metrics.reloads.labels("failed").inc()
            log.error(
                "rules reload failed; keeping the active rules",
                extra={
                    "rules_dir": str(rules_dir),
                    "error": str(exc),
                    "active_version": self.ruleset.version if self.ruleset else None,
                },
            )
            return False

        with self._lock:
            self.ruleset = ruleset
            self._cache.clear()
        self.last_reload_error = None
        self.metrics.reloads.labels("loaded").inc()
        self.metrics.loaded.set(len(ruleset.rules))
        log.info(
            "rules loaded",
            extra={
                "rules_dir": str(rules_dir),
                "version": ruleset.version,
                "rules": [rule.name for rule in ruleset.rules],
            },
        )
        return True

    def watch(self, stop: threading.Event) -> None:
        while not stop.wait(self.settings.reload_interval_s):
            try:
                self.reload_if_changed()
            except OSError as exc:
                log.error(
                    "cannot scan the rules directory",
                    extra={"rules_dir": str(self.settings.rules_dir), "error": str(exc)},
                )

    def catalog_changed(self) -> None:
        with self._lock:
            self._cache.clear()

    # -- quotes ----------------------------------------------------------------------------------------------

    def stock_signals(self, sku: str) -> tuple[int, int]:
        """Return (available, sold_last_hour) from the inventory API, or (-1, -1) when it cannot tell."""
        try:
            response = self.inventory.get(f"/inventory/{sku}")
            if response.status_code == 200:
                body = response.json()
                return int(body["available"]), int(body["sold_last_hour"])
            if response.status_code == 404:
                return -1, -1
            raise httpx.HTTPStatusError(f"status {response.status_code}", request=response.request, response=response)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            self.metrics.inventory_errors.inc()
            log.warning("inventory read failed; pricing without stock signals", extra={"sku": sku, "error": str(exc)})
            return -1, -1

    def signals(self, sku: str, item: dict[str, Any]) -> Signals:
        stock, sold = self.stock_signals(sku)
        days: int | None = None
        if item.get("perishable") and item.get("expiry_date"):
            # The store's local date: a markdown starts at local midnight, not UTC midnight.
            today = dt.datetime.fromtimestamp(self.clock()).date()
            days = (dt.date.fromisoformat(item["expiry_date"]) - today).days
        return Signals(
            base_cents=int(item["base_price_cents"]),
            cost_cents=int(item["cost_cents"]),
            min_margin=float(item["min_margin"]),
            stock=stock,
            sold_last_hour=sold,
            days_to_expiry=days,
        )

    def quote(self, sku: str) -> PriceQuote | None:
        """Return the price of ``sku``, or None when the catalog does not know it."""
        now = time.monotonic()
        cached = self._cache.get(sku)
        if cached is not None and cached[0] > now:
            return cached[1]
        item = self.catalog.items.get(sku)
        if item is None:
            return None
        quote = self._evaluate(sku, item)
        if self.settings.price_cache_s > 0:
            with self._lock:
                self._cache[sku] = (now + self.settings.price_cache_s, quote)
        return quote

    def _evaluate(self, sku: str, item: dict[str, Any]) -> PriceQuote:
        signals = self.signals(sku, item)
        ruleset = self.ruleset
        rule = ruleset.rule_for(sku, str(item.get("category", ""))) if ruleset else None
        if rule is None:
            return PriceQuote(
                sku,
                signals.base_cents,
                signals.base_cents,
                signals.floor_cents,
                None,
                None,
                ruleset.version if ruleset else None,
                "no_rule",
                "",
            )
        outcome, seconds = timed_run(self.engine, rule, signals)
        self.metrics.calls.labels(rule.name, outcome.outcome).inc()
        self.metrics.duration.labels(rule.name).observe(seconds)
        if outcome.outcome in FAILURE_OUTCOMES:
            self.metrics.fallbacks.labels(outcome.outcome).inc()
            self._log_failure(sku, rule.name, outcome.outcome, outcome.detail, seconds)
        return PriceQuote(
            sku,
            outcome.price_cents,
            signals.base_cents,
            signals.floor_cents,
            outcome.promo_id,
            rule.name,
            ruleset.version if ruleset else None,
            outcome.outcome,
            outcome.detail,
        )

    def _log_failure(self, sku: str, rule: str, outcome: str, detail: str, seconds: float) -> None:
        key = (rule, outcome)
        now = time.monotonic()
        if now - self._last_failure_log.get(key, -FAILURE_LOG_INTERVAL_S) < FAILURE_LOG_INTERVAL_S:
            return
        self._last_failure_log[key] = now
        log.error(
            "rule failed; serving the base price",
            extra={
                "sku": sku,
                "rule": rule,
                "outcome": outcome,
                "detail": detail,
                "duration_ms": round(seconds * 1000, 2),
            },
        )

"""Inventory API: a plain ASGI application over the inventory database.

GET /inventory/{sku} is the hot path: it reads through a per-process cache that is dropped whenever another
connection commits, so a request usually costs one ``PRAGMA data_version`` and a dictionary lookup.
Writes (local sales, promises, reservations) run on one writer thread, so the event loop does not wait for
SQLite's write lock.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from retail_edge.common import metrics
from retail_edge.common.asgi import (
    HttpError,
    Receive,
    Scope,
    Send,
    encode_json,
    query_params,
    read_json_object,
    send_body,
    send_error,
    send_json,
)
from retail_edge.inventory import settings as inventory_settings
from retail_edge.inventory.promise import PickingPolicy
from retail_edge.inventory.settings import InventorySettings
from retail_edge.inventory.store import InventoryStore, SkuRecord, SyncStatus

log = logging.getLogger("retail_edge.inventory.api")

SKU_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,200}")
MAX_LINES = 200
MAX_QTY = 10_000
T = TypeVar("T")
Handler = Callable[[Scope, Receive, Send], Awaitable[int]]


def iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def check_sku(sku: str) -> str:
    if not SKU_PATTERN.fullmatch(sku):
        raise HttpError(
            400,
            "invalid_sku",
            f"SKU {sku[:80]!r} is invalid: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return sku


def parse_lines(lines: Any, where: str) -> dict[str, int]:
    """Validate ``[{"sku", "qty"}]`` and merge repeated SKUs; raise 400 naming the first invalid line."""
    if not isinstance(lines, list) or not lines:
        raise HttpError(400, "invalid_lines", f'{where} must be a non-empty list of {{"sku", "qty"}}')
    if len(lines) > MAX_LINES:
        raise HttpError(400, "invalid_lines", f"{where} has {len(lines)} lines; the limit is {MAX_LINES}")
    merged: dict[str, int] = {}
    for index, line in enumerate(lines):
        if not isinstance(line, dict) or not isinstance(line.get("sku"), str):
            raise HttpError(400, "invalid_lines", f"{where}[{index}] needs a string 'sku'")
        qty = line.get("qty")
        if not isinstance(qty, int) or isinstance(qty, bool) or not 0 < abs(qty) <= MAX_QTY:
            raise HttpError(400, "invalid_lines", f"{where}[{index}].qty must be a non-zero integer up to {MAX_QTY}")
        sku = check_sku(line["sku"])
        merged[sku] = merged.get(sku, 0) + qty
    return merged


def parse_promise_request(body: dict[str, Any]) -> tuple[str | None, dict[str, int]]:
    """Return (order_id, lines) of a promise request; raise 400 naming the invalid field."""
    lines = parse_lines(body.get("lines"), "lines")
    if any(qty < 0 for qty in lines.values()):
        raise HttpError(400, "invalid_lines", "a promise needs positive quantities")
    order_id = body.get("order_id")
    if order_id is not None and (not isinstance(order_id, str) or not KEY_PATTERN.fullmatch(order_id)):
        raise HttpError(400, "invalid_order_id", "order_id must be 1-200 printable ASCII characters")
    return order_id, lines


class LiveGauges(Collector):
    """Gauges read from the database at scrape time, identical in every worker process."""

    def __init__(self, app: InventoryApp) -> None:
        self.app = app

    def collect(self):  # type: ignore[no-untyped-def]
        now = self.app.clock()
        store = self.app.reader
        status = store.sync_status()
        figures = store.gauges(now)
        age = None if status.last_contact_at is None else now - status.last_contact_at
        stale = age is None or age > self.app.settings.stale_after_s
        yield GaugeMetricFamily(
            "inventory_feed_age_seconds",
            "Seconds since the last successful exchange with the HQ stock feed",
            value=float("inf") if age is None else age,
        )
        yield GaugeMetricFamily("inventory_feed_stale", "1 when stock is older than stale_after_s", value=int(stale))
        yield GaugeMetricFamily(
            "inventory_feed_consecutive_failures",
            "Failed HQ feed rounds since the last success",
            value=status.consecutive_failures,
        )
        yield GaugeMetricFamily("inventory_snapshots", "Full stock snapshots applied", value=status.snapshots)
        yield GaugeMetricFamily("inventory_skus", "SKUs known to the store", value=figures["skus"])
        yield GaugeMetricFamily(
            "inventory_stale_skus",
            "SKUs served from stale stock (all of them while the feed is stale)",
            value=figures["skus"] if stale else 0,
        )
        yield GaugeMetricFamily(
            "inventory_reservations_active", "Unexpired reservations", value=figures["reservations"]
        )
        yield GaugeMetricFamily(
            "inventory_reserved_units", "Units held by unexpired reservations", value=figures["reserved_units"]
        )
        yield GaugeMetricFamily(
            "inventory_pending_local_sales",
            "Local sale lines HQ has not reflected yet",
            value=figures["pending_local_sales"],
        )


class InventoryApp:
    """The ASGI application; one instance per worker process."""

    def __init__(self, settings: InventorySettings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.reader = InventoryStore(settings.db_path)
        self._writer: InventoryStore | None = None
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inventory-writer")
        self.cache_control = (
            f"public, max-age={settings.cache_max_age_s}" if settings.cache_max_age_s else "no-store"
        ).encode()

        self.process_registry = CollectorRegistry()
        self.live_registry = CollectorRegistry()
        self.live_registry.register(LiveGauges(self))
        self.latency = Histogram(
            "inventory_request_duration_seconds",
            "Time to respond to a request, by route",
            ["route"],
            buckets=metrics.LATENCY_BUCKETS,
            registry=self.process_registry,
        )
        self.responses = Counter(
            "inventory_responses", "Responses by route and status", ["route", "status"], registry=self.process_registry
        )
        self.promises = Counter(
            "inventory_promises", "Promise requests by outcome", ["outcome"], registry=self.process_registry
        )
        self.local_sales = Counter(
            "inventory_local_sales", "Local sales received, by status", ["status"], registry=self.process_registry
        )
        self._latency_children: dict[str, Any] = {}
        self._response_children: dict[tuple[str, int], Any] = {}
        self.exact_routes = self.routes()

    # -- plumbing -------------------------------------------------------------------------------------------

    async def write(self, operation: Callable[[InventoryStore], T]) -> T:
        def run() -> T:
            if self._writer is None:
                self._writer = InventoryStore(self.settings.db_path)
            return operation(self._writer)

        return await asyncio.get_running_loop().run_in_executor(self.executor, run)

    def observe(self, route: str, status: int, seconds: float) -> None:
        child = self._latency_children.get(route)
        if child is None:
            child = self._latency_children[route] = self.latency.labels(route)
        child.observe(seconds)
        key = (route, status)
        counter = self._response_children.get(key)
        if counter is None:
            counter = self._response_children[key] = self.responses.labels(route, str(status))
        counter.inc()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        route = "other"
        try:
            route, status = await self.dispatch(scope, receive, send)
        except HttpError as exc:
            status = exc.status
            await send_error(send, exc)
        except Exception:
            status = 500
            log.exception("request failed", extra={"path": scope["path"], "method": scope["method"]})
            await send_error(send, HttpError(500, "internal_error", "the request failed; see the service log"))
        self.observe(route, status, time.perf_counter() - started)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                log.info(
                    "inventory api started",
                    extra={"store_id": self.settings.store_id, "db_path": str(self.settings.db_path)},
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.executor.shutdown(wait=True)
                self.reader.close()
                log.info("inventory api stopped", extra={"store_id": self.settings.store_id})
                await send({"type": "lifespan.shutdown.complete"})
                return

    def routes(self) -> dict[tuple[str, str], tuple[str, Handler]]:
        return {
            ("GET", "/inventory"): ("inventory_batch", self.get_batch),
            ("POST", "/inventory/sales"): ("local_sales", self.post_local_sales),
            ("POST", "/promise"): ("promise", self.post_promise),
            ("GET", "/pickers"): ("pickers", self.pickers),
            ("PUT", "/pickers"): ("pickers", self.pickers),
            ("GET", "/healthz"): ("healthz", self.healthz),
            ("GET", "/metrics"): ("metrics", self.metrics),
        }

    async def dispatch(self, scope: Scope, receive: Receive, send: Send) -> tuple[str, int]:
        path: str = scope["path"]
        method: str = scope["method"]
        if method == "GET" and path.startswith("/inventory/"):
            return "inventory_sku", await self.get_sku(path[len("/inventory/") :], send)
        route = self.exact_routes.get((method, path))
        if route is not None:
            name, handler = route
            return name, await handler(scope, receive, send)
        if path.startswith("/reservations/") and method in ("GET", "DELETE"):
            return "reservation", await self.reservation(path[len("/reservations/") :], method, send)
        raise HttpError(404, "not_found", f"no route for {method} {path[:100]}")

    async def metrics(self, scope: Scope, receive: Receive, send: Send) -> int:
        body = metrics.exposition(self.process_registry, self.live_registry)
        await send_body(send, 200, body, metrics.CONTENT_TYPE)
        return 200

    # -- reads --------------------------------------------------------------------------------------------------

    def feed_age(self, now: float, status: SyncStatus | None = None) -> tuple[float | None, bool]:
        last_contact = (status or self.reader.sync_status()).last_contact_at
        if last_contact is None:
            return None, True
        age = now - last_contact
        return age, age > self.settings.stale_after_s

    def item(self, record: SkuRecord, now: float, age: float | None, stale: bool) -> dict[str, Any]:
        reserved = record.reserved(now)
        on_hand = record.on_hand()
        return {
            "sku": record.sku,
            "on_hand": on_hand,
            "reserved": reserved,
            "available": max(0, on_hand - reserved),
            "location": {"aisle": record.aisle, "bay": record.bay},
            "updated_at": record.updated_at,
            "sold_last_hour": record.sold_last_hour(now),
            "stale": stale,
            "age_s": None if age is None else round(age, 3),
        }

    async def get_sku(self, sku: str, send: Send) -> int:
        check_sku(sku)
        now = self.clock()
        record, status = self.reader.lookup(sku, now)
        if record is None:
            raise HttpError(404, "unknown_sku", f"SKU {sku!r} is not stocked in store {self.settings.store_id}")
        age, stale = self.feed_age(now, status)
        body = encode_json(self.item(record, now, age, stale))
        await send_body(send, 200, body, headers=[(b"cache-control", self.cache_control)])
        return 200

    async def get_batch(self, scope: Scope, receive: Receive, send: Send) -> int:
        raw = ",".join(query_params(scope).get("skus", []))
        skus = [sku for sku in raw.split(",") if sku]
        if not skus:
            raise HttpError(400, "missing_skus", "pass ?skus=SKU1,SKU2 (comma-separated)")
        if len(skus) > self.settings.max_batch_skus:
            raise HttpError(
                400, "too_many_skus", f"{len(skus)} SKUs requested; the limit is {self.settings.max_batch_skus}"
            )
        for sku in skus:
            check_sku(sku)
        now = self.clock()
        age, stale = self.feed_age(now)
        items, unknown = [], []
        for sku in dict.fromkeys(skus):
            record = self.reader.record(sku, now)
            if record is None:
                unknown.append(sku)
            else:
                items.append(self.item(record, now, age, stale))
        await send_json(
            send, 200, {"items": items, "unknown": unknown}, headers=[(b"cache-control", self.cache_control)]
        )
        return 200

    async def healthz(self, scope: Scope, receive: Receive, send: Send) -> int:
        now = self.clock()
        age, stale = self.feed_age(now)
        status = self.reader.sync_status()
        await send_json(
            send,
            200,
            {
                "status": "ok",
                "store_id": self.settings.store_id,
                "feed_stale": stale,
                "feed_age_s": None if age is None else round(age, 3),
                "feed_last_error": status.last_error,
            },
        )
        return 200

    # -- writes ----------------------------------------------------------------------------------------------------

    async def post_local_sales(self, scope: Scope, receive: Receive, send: Send) -> int:
        body = await read_json_object(receive)
        entries = body.get("sales")
        if not isinstance(entries, list) or not entries:
            raise HttpError(400, "invalid_sales", "'sales' must be a non-empty list of {idempotency_key, sale}")
        sales: list[tuple[str, dict[str, int]]] = []
        for index, entry in enumerate(entries):
            key = entry.get("idempotency_key") if isinstance(entry, dict) else None
            if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
                raise HttpError(
                    400,
                    "invalid_sales",
                    f"sales[{index}].idempotency_key must be 1-200 printable ASCII characters without spaces",
                )
            sale = entry.get("sale")
            if not isinstance(sale, dict):
                raise HttpError(400, "invalid_sales", f"sales[{index}].sale must be an object with 'lines'")
            sales.append((key, parse_lines(sale.get("lines"), f"sales[{index}].sale.lines")))
        now = self.clock()
        results = await self.write(lambda store: store.record_local_sales(sales, now))
        for result in results:
            self.local_sales.labels(result["status"]).inc()
        log.info(
            "local sales recorded",
            extra={"store_id": self.settings.store_id, "sales": [r["idempotency_key"] for r in results]},
        )
        await send_json(send, 200, {"results": results})
        return 200

    async def post_promise(self, scope: Scope, receive: Receive, send: Send) -> int:
        order_id, lines = parse_promise_request(await read_json_object(receive))
        now = self.clock()
        settings = self.settings
        pickers = self.reader.pickers_on_shift(settings.pickers_on_shift)
        policy = PickingPolicy(
            pickers, settings.pick_seconds_per_line, settings.order_overhead_s, settings.promise_horizon_s
        )

        plan, reservation = await self.write(
            lambda store: store.promise(order_id, lines, policy, settings.reservation_ttl_s, now)
        )

        if reservation is None:
            self.promises.labels("unmet").inc()
            log.info(
                "promise unmet", extra={"store_id": settings.store_id, "order_id": order_id, "reasons": plan.reasons}
            )
            detail = "; ".join(reason["reason"] for reason in plan.reasons)
            await send_json(send, 409, {"error": "promise_unmet", "detail": detail, "reasons": plan.reasons})
            return 409

        self.promises.labels("reserved").inc()
        reservation_id = reservation["reservation_id"]
        log.info(
            "promise reserved",
            extra={"store_id": settings.store_id, "order_id": order_id, "reservation_id": reservation_id},
        )
        _age, stale = self.feed_age(now)
        view = {**self.reservation_view(reservation, now), "orders_ahead": plan.orders_ahead, "stock_stale": stale}
        await send_json(send, 201, view)
        return 201

    @staticmethod
    def reservation_view(reservation: dict[str, Any], now: float) -> dict[str, Any]:
        return {
            "reservation_id": reservation["reservation_id"],
            "order_id": reservation["order_id"],
            "lines": [{"sku": sku, "qty": qty} for sku, qty in reservation["lines"].items()],
            "picker": reservation["picker"],
            "ready_at": iso(reservation["ready_at"]),
            "ready_in_s": round(max(0.0, reservation["ready_at"] - now), 1),
            "expires_at": iso(reservation["expires_at"]),
        }

    async def reservation(self, reservation_id: str, method: str, send: Send) -> int:
        if not KEY_PATTERN.fullmatch(reservation_id):
            raise HttpError(400, "invalid_reservation_id", "the reservation id has invalid characters")
        if method == "DELETE":
            released = await self.write(lambda store: store.release_reservation(reservation_id))
            if not released:
                raise HttpError(404, "unknown_reservation", f"reservation {reservation_id!r} does not exist")
            log.info(
                "reservation released", extra={"store_id": self.settings.store_id, "reservation_id": reservation_id}
            )
            await send_json(send, 200, {"released": reservation_id})
            return 200
        now = self.clock()
        reservation = self.reader.reservation(reservation_id, now)
        if reservation is None:
            raise HttpError(404, "unknown_reservation", f"reservation {reservation_id!r} does not exist or expired")
        await send_json(send, 200, self.reservation_view(reservation, now))
        return 200

    async def pickers(self, scope: Scope, receive: Receive, send: Send) -> int:
        if scope["method"] == "PUT":
            body = await read_json_object(receive)
            count = body.get("on_shift")
            if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= 1000:
                raise HttpError(400, "invalid_pickers", "'on_shift' must be an integer from 0 to 1000")
            await self.write(lambda store: store.set_pickers_on_shift(count))
            log.info("pickers on shift changed", extra={"store_id": self.settings.store_id, "on_shift": count})
        await send_json(send, 200, {"on_shift": self.reader.pickers_on_shift(self.settings.pickers_on_shift)})
        return 200


def create_app() -> InventoryApp:
    """Build the app from the environment (``RETAIL_EDGE_INVENTORY_*``, ``RETAIL_EDGE_INVENTORY_CONFIG``)."""
    return InventoryApp(inventory_settings.load())

"""Rules engine HTTP API: prices for signage and the app, promo fragments for Varnish ESI, health and metrics."""

from __future__ import annotations

import asyncio
import html
import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from prometheus_client import CollectorRegistry, Histogram

from retail_edge.common import metrics
from retail_edge.common.asgi import HttpError, Receive, Scope, Send, query_params, send_body, send_error, send_json
from retail_edge.rules import settings as rules_settings
from retail_edge.rules.catalog import CatalogCache
from retail_edge.rules.engine import Limits, RuleEngine
from retail_edge.rules.pricing import PriceQuote, PricingService
from retail_edge.rules.settings import RulesSettings

log = logging.getLogger("retail_edge.rules.api")

SKU_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
HTML_TYPE = b"text/html; charset=utf-8"


def check_sku(sku: str) -> str:
    if not SKU_PATTERN.fullmatch(sku):
        raise HttpError(400, "invalid_sku", f"SKU {sku[:80]!r} is invalid: use 1-64 letters, digits, '.', '_' or '-'")
    return sku


def money(cents: int, symbol: str) -> str:
    return f"{symbol}{cents // 100}.{cents % 100:02d}"


def promo_fragment(quote: PriceQuote, symbol: str) -> str:
    """Render the promo block of a product page; empty when the SKU has no promo."""
    if quote.promo_id is None:
        return ""
    saving = round(100 * (quote.base_price_cents - quote.price_cents) / quote.base_price_cents)
    parts = [
        f'<div class="re-promo" data-sku="{html.escape(quote.sku)}" data-promo="{html.escape(quote.promo_id)}">',
        f'<span class="re-price">{money(quote.price_cents, symbol)}</span>',
    ]
    if saving > 0:
        parts.append(f'<s class="re-base">{money(quote.base_price_cents, symbol)}</s>')
        parts.append(f'<span class="re-save">Save {saving}%</span>')
    parts.append("</div>")
    return "".join(parts)


class RulesApp:
    """The ASGI application of the rules engine, with its background reload and catalog threads."""

    def __init__(self, settings: RulesSettings) -> None:
        self.settings = settings
        self.registry = CollectorRegistry()
        limits = Limits(settings.fuel_per_call, settings.memory_limit_bytes, settings.time_limit_ms / 1000)
        self.engine = RuleEngine(limits)
        self.catalog = CatalogCache(settings)
        self.pricing = PricingService(settings, self.engine, self.catalog, self.registry)
        self.executor = ThreadPoolExecutor(max_workers=settings.eval_threads, thread_name_prefix="rules-eval")
        self.latency = Histogram(
            "rules_request_duration_seconds",
            "Time to respond to a request, by route",
            ["route"],
            buckets=metrics.LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def start_background(self) -> None:
        self.pricing.reload_if_changed()
        for name, target in (
            ("rules-watch", lambda: self.pricing.watch(self.stop)),
            ("catalog-refresh", lambda: self.catalog.run(self.stop, self.pricing.catalog_changed)),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self.threads.append(thread)

    def shutdown(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=5)
        self.executor.shutdown(wait=True)
        self.engine.close()
        self.pricing.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        route = "other"
        try:
            route = await self.dispatch(scope, send)
        except HttpError as exc:
            await send_error(send, exc)
        except Exception:
            log.exception("request failed", extra={"path": scope["path"]})
            await send_error(send, HttpError(500, "internal_error", "the request failed; see the service log"))
        self.latency.labels(route).observe(time.perf_counter() - started)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.start_background()
                log.info(
                    "rules engine started",
                    extra={"store_id": self.settings.store_id, "rules_dir": str(self.settings.rules_dir)},
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.shutdown()
                log.info("rules engine stopped", extra={"store_id": self.settings.store_id})
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def quote(self, sku: str) -> PriceQuote | None:
        return await asyncio.get_running_loop().run_in_executor(self.executor, self.pricing.quote, sku)

    async def dispatch(self, scope: Scope, send: Send) -> str:
        path: str = scope["path"]
        if scope["method"] != "GET":
            raise HttpError(405, "method_not_allowed", f"{scope['method']} is not supported; use GET")
        if path.startswith("/price/"):
            sku = check_sku(path[len("/price/") :])
            quote = await self.quote(sku)
            if quote is None:
                raise HttpError(404, "unknown_sku", f"SKU {sku!r} is not in the catalog of {self.settings.store_id}")
            await send_json(send, 200, {**quote.as_dict(), "currency_symbol": self.settings.currency_symbol})
            return "price"
        if path == "/promo/fragment":
            await self.fragment(scope, send)
            return "fragment"
        if path == "/healthz":
            await self.healthz(send)
            return "healthz"
        if path == "/metrics":
            await send_body(send, 200, metrics.exposition(self.registry, CollectorRegistry()), metrics.CONTENT_TYPE)
            return "metrics"
        raise HttpError(404, "not_found", f"no route for GET {path[:100]}")

    async def fragment(self, scope: Scope, send: Send) -> None:
        skus = query_params(scope).get("sku", [])
        if len(skus) != 1:
            raise HttpError(400, "invalid_sku", "pass exactly one ?sku=")
        sku = check_sku(skus[0])
        quote = await self.quote(sku)
        cache = f"public, max-age={self.settings.fragment_max_age_s}".encode()
        if quote is None:
            await send_body(send, 404, b"", HTML_TYPE, [(b"cache-control", cache)])
            return
        body = promo_fragment(quote, self.settings.currency_symbol).encode()
        await send_body(send, 200, body, HTML_TYPE, [(b"cache-control", cache)])

    async def healthz(self, send: Send) -> None:
        ruleset = self.pricing.ruleset
        await send_json(
            send,
            200,
            {
                "status": "ok",
                "store_id": self.settings.store_id,
                "rules_version": ruleset.version if ruleset else None,
                "rules": [rule.name for rule in ruleset.rules] if ruleset else [],
                "last_reload_error": self.pricing.last_reload_error,
                "catalog_version": self.catalog.version,
                "catalog_skus": len(self.catalog.items),
            },
        )


def create_app() -> RulesApp:
    """Build the app from the environment (``RETAIL_EDGE_RULES_*``, ``RETAIL_EDGE_RULES_CONFIG``)."""
    return RulesApp(rules_settings.load())

"""HTTP layer of the lab HQ: the stock feed, catalog, cashiers and sales ingest under /v1, lab controls under /_lab."""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lab.hq.storage import CursorExpired, HqStorage, RequestError, UnknownStore

log = logging.getLogger("lab.hq.app")

Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class OutageSwitch:
    """Simulated WAN cut: while down, /v1 requests get 503 (mode "503") or a reset connection (mode "drop")."""

    down_until: float = 0.0
    mode: str = "503"

    def is_down(self) -> bool:
        return time.monotonic() < self.down_until

    def set(self, *, down: bool, seconds: float | None, mode: str) -> None:
        self.mode = mode
        if not down:
            self.down_until = 0.0
        elif seconds is None:
            self.down_until = float("inf")
        else:
            self.down_until = time.monotonic() + seconds


def error(status: int, code: str, detail: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise RequestError(f"query parameter {name!r} must be an integer, got {raw!r}") from exc


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestError(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise RequestError("request body must be a JSON object")
    return body


def _reject(request: Request, tokens: Mapping[str, str], outage: OutageSwitch) -> Response | None:
    """Return the error response for a /v1 request during an outage or with a wrong store or token, else None."""
    if outage.is_down():
        return error(503, "hq_unavailable", "HQ is unreachable (lab outage)", {"Retry-After": "1"})
    store_id = request.path_params["store_id"]
    header_store = request.headers.get("x-store-id")
    if header_store is not None and header_store != store_id:
        return error(400, "store_mismatch", f"X-Store-Id {header_store!r} differs from path {store_id!r}")
    scheme, _space, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented:
        return error(401, "unauthorized", "send 'Authorization: Bearer <store token>'")
    expected = tokens.get(store_id)
    if expected is None or not hmac.compare_digest(presented.encode(), expected.encode()):
        return error(403, "forbidden", f"the token is not valid for store {store_id!r}")
    return None


class HqEndpoints:
    """Endpoints of the lab HQ; ``tokens`` maps each store id to its bearer token."""

    def __init__(self, storage: HqStorage, tokens: Mapping[str, str], outage: OutageSwitch) -> None:
        self.storage = storage
        self.tokens = tokens
        self.outage = outage

    def store_route(self, handler: Callable[[Request, str], Awaitable[Response]]) -> Handler:
        """Wrap a /v1 endpoint with the outage check, bearer-token auth and the error mapping."""

        async def endpoint(request: Request) -> Response:
            rejection = _reject(request, self.tokens, self.outage)
            if rejection is not None:
                return rejection
            store_id = request.path_params["store_id"]
            try:
                self.storage.ensure_store(store_id)
                return await handler(request, store_id)
            except RequestError as exc:
                return error(400, "invalid_request", str(exc))
            except CursorExpired as exc:
                return error(410, "cursor_expired", f"{exc}; GET .../stock/snapshot for a new cursor")

        return endpoint

    @staticmethod
    def lab_route(handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestError as exc:
                return error(400, "invalid_request", str(exc))
            except UnknownStore as exc:
                return error(404, "unknown_store", f"store {exc} has no data yet; configure its token first")

        return endpoint

    @staticmethod
    def with_etag(request: Request, etag: str, body: dict[str, Any]) -> Response:
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag})
        return JSONResponse(body, headers={"ETag": etag})

    async def snapshot(self, request: Request, store_id: str) -> Response:
        limit = _int_param(request, "limit", 1000)
        return JSONResponse(self.storage.snapshot(store_id, request.query_params.get("page_token"), limit))

    async def changes(self, request: Request, store_id: str) -> Response:
        after = request.query_params.get("after")
        if not after:
            raise RequestError("query parameter 'after' (a cursor from a snapshot or an earlier page) is missing")
        return JSONResponse(self.storage.changes(store_id, after, _int_param(request, "limit", 500)))

    async def catalog(self, request: Request, store_id: str) -> Response:
        etag, body = self.storage.catalog()
        return self.with_etag(request, etag, body)

    async def cashiers(self, request: Request, store_id: str) -> Response:
        etag, body = self.storage.cashiers(store_id)
        return self.with_etag(request, etag, body)

    async def sales_batch(self, request: Request, store_id: str) -> Response:
        body = await _json_body(request)
        results = self.storage.apply_sales(store_id, body.get("sales"))
        applied = sum(1 for result in results if result["status"] == "applied")
        log.info("sales batch", extra={"store_id": store_id, "sales": len(results), "applied": applied})
        return JSONResponse({"results": results})

    async def sales_readback(self, request: Request, store_id: str) -> Response:
        after_seq = _int_param(request, "after_seq", 0)
        return JSONResponse(self.storage.sales_after(store_id, after_seq, _int_param(request, "limit", 1000)))

    async def lab_stock(self, request: Request) -> Response:
        body = await _json_body(request)
        store_id = body.get("store_id")
        if not isinstance(store_id, str):
            raise RequestError("'store_id' (string) is missing")
        items = body.get("items")
        if not isinstance(items, list) or not items:
            raise RequestError("'items' must be a non-empty list of {sku, on_hand | delta, location?}")
        if store_id in self.tokens:
            self.storage.ensure_store(store_id)
        result = self.storage.set_stock(store_id, items)
        log.info("lab stock change", extra={"store_id": store_id, "items": len(items)})
        return JSONResponse(result)

    async def lab_offline(self, request: Request) -> Response:
        body = await _json_body(request)
        mode = body.get("mode", "503")
        if mode not in ("503", "drop"):
            raise RequestError(f"'mode' must be '503' or 'drop', got {mode!r}")
        seconds = body.get("seconds")
        if seconds is not None and (not isinstance(seconds, int | float) or seconds < 0):
            raise RequestError(f"'seconds' must be a non-negative number, got {seconds!r}")
        down = body.get("down", seconds is not None)
        if not isinstance(down, bool):
            raise RequestError(f"'down' must be true or false, got {down!r}")
        self.outage.set(down=down, seconds=seconds, mode=mode)
        log.warning("lab outage switched", extra={"down": down, "seconds": seconds, "mode": mode})
        return JSONResponse({"down": self.outage.is_down(), "mode": self.outage.mode})

    async def lab_expire_cursors(self, request: Request) -> Response:
        body = await _json_body(request) if await request.body() else {}
        store_id = body.get("store_id")
        stores = self.storage.expire_cursors(store_id if isinstance(store_id, str) else None)
        log.warning("lab cursors expired", extra={"stores": stores})
        return JSONResponse({"expired": stores})

    async def lab_catalog(self, request: Request) -> Response:
        body = await _json_body(request)
        items = body.get("items")
        if not isinstance(items, list) or not items:
            raise RequestError("'items' must be a non-empty list of {sku, field: value}")
        return JSONResponse({"version": self.storage.update_catalog(items)})

    async def lab_cashiers(self, request: Request) -> Response:
        body = await _json_body(request)
        store_id = body.get("store_id")
        if not isinstance(store_id, str):
            raise RequestError("'store_id' (string) is missing")
        add, revoke = body.get("add", []), body.get("revoke", [])
        if not isinstance(add, list) or not isinstance(revoke, list):
            raise RequestError("'add' and 'revoke' must be lists")
        return JSONResponse({"version": self.storage.update_cashiers(store_id, add, revoke)})

    async def lab_state(self, request: Request) -> Response:
        return JSONResponse({"down": self.outage.is_down(), "mode": self.outage.mode, "stores": sorted(self.tokens)})

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    def routes(self) -> list[Route]:
        prefix = "/v1/stores/{store_id}"
        routes = [
            Route("/healthz", self.healthz),
            Route(f"{prefix}/stock/snapshot", self.store_route(self.snapshot)),
            Route(f"{prefix}/stock/changes", self.store_route(self.changes)),
            Route(f"{prefix}/catalog", self.store_route(self.catalog)),
            Route(f"{prefix}/cashiers", self.store_route(self.cashiers)),
            Route(f"{prefix}/sales/batches", self.store_route(self.sales_batch), methods=["POST"]),
            Route(f"{prefix}/sales", self.store_route(self.sales_readback)),
            Route("/_lab/stock", self.lab_route(self.lab_stock), methods=["POST"]),
            Route("/_lab/offline", self.lab_route(self.lab_offline), methods=["POST"]),
            Route("/_lab/expire-cursors", self.lab_route(self.lab_expire_cursors), methods=["POST"]),
            Route("/_lab/catalog", self.lab_route(self.lab_catalog), methods=["POST"]),
            Route("/_lab/cashiers", self.lab_route(self.lab_cashiers), methods=["POST"]),
            Route("/_lab/state", self.lab_route(self.lab_state)),
        ]
        return routes


def create_app(storage: HqStorage, tokens: Mapping[str, str], outage: OutageSwitch) -> Starlette:
    """Build the lab HQ application; ``tokens`` maps each store id to its bearer token."""
    return Starlette(routes=HqEndpoints(storage, tokens, outage).routes())

"""HTTP API of the POS cache for registers and kiosks (Starlette, served by uvicorn).

Every database call runs on one dedicated thread that owns the SQLite connection, so the event loop never waits
on an fsync and writes are serialized without locks. Sales that arrive together share a transaction (group
commit, see SaleCommitter), and each is acknowledged only after that transaction committed. Argon2
verification runs on the default thread pool, so a login does not delay sales. ``/healthz`` and ``/metrics``
are open; every other route needs a cashier session.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

import anyio.to_thread
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from retail_edge.pos.auth import LoginGuard, new_session_token, token_digest
from retail_edge.pos.dbthread import DatabaseThread
from retail_edge.pos.metrics import OutboxCollector, read_snapshot
from retail_edge.pos.sales import IDENTIFIER_PATTERN, InvalidSale, parse_sale_request, validate_idempotency_key
from retail_edge.pos.settings import PosSettings
from retail_edge.pos.storage import IdempotencyConflict, PosStore, RecordedSale, SaleSubmission, utc_timestamp

log = logging.getLogger("retail_edge.pos.app")

MAX_BODY_BYTES = 256 * 1024
MAX_CATALOG_PAGE = 1000
MAX_PRICE_SKUS = 200

P = ParamSpec("P")
T = TypeVar("T")


class ApiError(Exception):
    """An error response: HTTP status, a stable machine-readable code and a sentence for the operator."""

    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers
        self.extra = extra


def _error_response(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    return JSONResponse({"error": code, "detail": detail, **extra}, status_code=status, headers=headers)


async def _api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _error_response(exc.status, exc.code, exc.detail, exc.headers, **exc.extra)


async def _http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return _error_response(exc.status_code, code, f"{request.method} {request.url.path}: {exc.detail}", exc.headers)


class PosMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.sales = Counter("pos_sales", "POST /sales requests by outcome.", ["outcome"], registry=registry)
        self.group_size = Histogram(
            "pos_sale_commit_group_size",
            "Sales committed together in one transaction.",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=registry,
        )
        self.commit_seconds = Histogram(
            "pos_sale_commit_seconds",
            "Time from queueing a sale to its durable commit, fsync and waiting for the group included.",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
            registry=registry,
        )
        self.logins = Counter("pos_logins", "Cashier logins by outcome.", ["outcome"], registry=registry)
        self.auth_failures = Counter(
            "pos_auth_failures", "Requests rejected with 401 by reason.", ["reason"], registry=registry
        )


class PosService:
    """State shared by the request handlers: settings, the store and its thread, the login guard, metrics."""

    def __init__(self, settings: PosSettings, store: PosStore) -> None:
        self.settings = settings
        self.store = store
        self.guard = LoginGuard(settings.login_max_failures, settings.login_lockout_seconds)
        self.registry = CollectorRegistry()
        self.metrics = PosMetrics(self.registry)
        self.registry.register(OutboxCollector(functools.partial(read_snapshot, store), settings.store_id))
        self._db_thread = DatabaseThread("pos-db")
        self.committer = SaleCommitter(self)

    async def db(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a store call on the database thread; a database failure becomes 503, so nothing is acknowledged."""
        try:
            return await self._db_thread.call(function, *args, **kwargs)
        except sqlite3.OperationalError as exc:
            store_id = self.settings.store_id
            if "locked" in str(exc) or "busy" in str(exc):
                log.warning("database busy", extra={"store_id": store_id, "error": str(exc)})
                raise ApiError(503, "database_busy", "the local database is busy; retry", {"Retry-After": "1"}) from exc
            log.exception("database operation failed", extra={"store_id": store_id, "error": str(exc)})
            raise ApiError(
                503,
                "storage_failed",
                f"the local database failed ({exc}); nothing was recorded, retry with the same Idempotency-Key and"
                " tell the store's support if it persists",
            ) from exc

    def close(self) -> None:
        self._db_thread.close()
        self.store.close()

    async def authenticate(self, request: Request) -> str:
        """Return the cashier id of the request's session or raise ApiError 401."""
        scheme, _space, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            self.metrics.auth_failures.labels("missing").inc()
            raise ApiError(
                401,
                "unauthorized",
                "send 'Authorization: Bearer <session token>'; POST /sessions with cashier_id and password gets one",
                {"WWW-Authenticate": 'Bearer realm="pos"'},
            )
        cashier_id = await self.db(self.store.session_cashier, token_digest(token.strip()))
        if cashier_id is None:
            self.metrics.auth_failures.labels("invalid").inc()
            raise ApiError(
                401,
                "unauthorized",
                "the session token is unknown, expired or its cashier was revoked; log in again",
                {"WWW-Authenticate": 'Bearer realm="pos", error="invalid_token"'},
            )
        return cashier_id


class SaleCommitter:
    """Group commit of concurrent sales: the sales that arrive while one commit runs share the next one.

    A register's sale is acknowledged only after the transaction holding it committed, so durability is the
    same as one transaction per sale, but concurrent registers share one fsync. A sale that arrives while no
    commit runs starts committing at once, so a single register gets no added latency.
    """

    def __init__(self, service: PosService, max_group: int = 64) -> None:
        self._service = service
        self._max_group = max_group
        self._queue: list[tuple[SaleSubmission, asyncio.Future[RecordedSale]]] = []
        self._committing = False
        self._task: asyncio.Task[None] | None = None

    async def record(self, submission: SaleSubmission) -> RecordedSale:
        """Queue a sale for the next group commit and return its result once that commit is durable."""
        future: asyncio.Future[RecordedSale] = asyncio.get_running_loop().create_future()
        self._queue.append((submission, future))
        if not self._committing:
            self._committing = True
            self._task = asyncio.create_task(self._commit_groups())
        return await future

    async def _commit_groups(self) -> None:
        try:
            while self._queue:
                group = self._queue[: self._max_group]
                del self._queue[: self._max_group]
                await self._commit(group)
        finally:
            self._committing = False

    async def _commit(self, group: list[tuple[SaleSubmission, asyncio.Future[RecordedSale]]]) -> None:
        store = self._service.store
        try:
            results = await self._service.db(store.record_sales, [submission for submission, _future in group])
        except Exception as exc:  # every sale of the group failed alike; each request reports it
            for _submission, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        self._service.metrics.group_size.observe(len(group))
        # A future is already done when its client went away; the sale is committed all the same.
        for (_submission, future), result in zip(group, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)


async def _read_json(request: Request) -> Any:
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(415, "unsupported_media_type", f"send Content-Type: application/json, got {content_type!r}")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(413, "body_too_large", f"the body has {declared} bytes, the maximum is {MAX_BODY_BYTES}")
    # Counted while reading, because a chunked body has no Content-Length to check up front.
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(413, "body_too_large", f"the body exceeds the maximum of {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from exc


def _json_text_response(text: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(text, status_code=status, media_type="application/json", headers=headers)


class PosApi:
    """Request handlers of the POS cache; each method is one route."""

    def __init__(self, service: PosService) -> None:
        self.service = service
        self.settings = service.settings
        self.store = service.store
        self.store_id = service.settings.store_id

    async def healthz(self, request: Request) -> Response:
        try:
            snapshot = await self.service.db(read_snapshot, self.store)
        except (sqlite3.Error, ApiError) as exc:
            log.error("health check failed", extra={"store_id": self.store_id, "error": str(exc)})
            return JSONResponse({"status": "failing", "store_id": self.store_id, "error": str(exc)}, status_code=503)
        return JSONResponse(
            {
                "status": "ok",
                "store_id": self.store_id,
                "pid": os.getpid(),
                "outbox": {
                    "pending": snapshot.outbox.pending,
                    "rejected": snapshot.outbox.rejected,
                    "oldest_pending_age_seconds": round(snapshot.outbox.oldest_pending_age_seconds, 3),
                },
                "replicas": {name: utc_timestamp(at) for name, at in snapshot.replica_synced_at.items()},
                "catalog_ready": "catalog" in snapshot.replica_synced_at,
                "cashiers_ready": "cashiers" in snapshot.replica_synced_at,
            }
        )

    async def metrics(self, request: Request) -> Response:
        payload = await self.service.db(generate_latest, self.service.registry)
        return Response(payload, media_type=CONTENT_TYPE_LATEST)

    async def login(self, request: Request) -> Response:
        body = await _read_json(request)
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_request", "the body must be a JSON object with cashier_id and password")
        cashier_id, password, register_id = body.get("cashier_id"), body.get("password"), body.get("register_id")
        if not isinstance(cashier_id, str) or not IDENTIFIER_PATTERN.fullmatch(cashier_id):
            raise ApiError(422, "invalid_request", f"cashier_id must be a cashier id string, got {cashier_id!r}")
        if not isinstance(password, str) or not 0 < len(password) <= 1024:
            raise ApiError(422, "invalid_request", "password must be a non-empty string of at most 1024 characters")
        if register_id is not None and (
            not isinstance(register_id, str) or not IDENTIFIER_PATTERN.fullmatch(register_id)
        ):
            raise ApiError(422, "invalid_request", f"register_id must be a register id string, got {register_id!r}")

        wait = self.service.guard.retry_after(cashier_id)
        if wait > 0:
            self.service.metrics.logins.labels("locked").inc()
            log.warning("login locked out", extra={"store_id": self.store_id, "cashier_id": cashier_id})
            raise ApiError(
                429,
                "login_locked",
                f"too many failed logins for cashier {cashier_id}; retry in {wait:.0f} s",
                {"Retry-After": str(int(wait) + 1)},
            )

        cashier = await self.service.db(self.store.get_cashier, cashier_id)
        verified = await anyio.to_thread.run_sync(self.service.guard.verify, cashier, password)
        if not verified:
            self.service.guard.record_failure(cashier_id)
            self.service.metrics.logins.labels("invalid").inc()
            reason = "unknown or revoked cashier" if cashier is None else "wrong password"
            log.warning("login failed", extra={"store_id": self.store_id, "cashier_id": cashier_id, "reason": reason})
            raise ApiError(401, "invalid_credentials", "cashier id or password is wrong, or the cashier was revoked")

        self.service.guard.record_success(cashier_id)
        token, digest = new_session_token()
        expires_at = time.time() + self.settings.session_ttl_seconds
        await self.service.db(self.store.create_session, digest, cashier_id, register_id, expires_at)
        self.service.metrics.logins.labels("ok").inc()
        log.info(
            "cashier logged in", extra={"store_id": self.store_id, "cashier_id": cashier_id, "register_id": register_id}
        )
        return JSONResponse(
            {
                "token": token,
                "token_type": "Bearer",
                "cashier_id": cashier_id,
                "expires_at": utc_timestamp(expires_at),
            },
            status_code=201,
        )

    async def logout(self, request: Request) -> Response:
        cashier_id = await self.service.authenticate(request)
        token = request.headers["authorization"].partition(" ")[2].strip()
        await self.service.db(self.store.delete_session, token_digest(token))
        log.info("cashier logged out", extra={"store_id": self.store_id, "cashier_id": cashier_id})
        return Response(status_code=204)

    async def create_sale(self, request: Request) -> Response:
        cashier_id = await self.service.authenticate(request)
        try:
            key = validate_idempotency_key(request.headers.get("idempotency-key"))
            sale_request = parse_sale_request(await _read_json(request))
        except InvalidSale as exc:
            self.service.metrics.sales.labels("invalid").inc()
            status = 400 if exc.field == "Idempotency-Key" else 422
            raise ApiError(status, exc.code, exc.message, field=exc.field) from exc

        started = time.perf_counter()
        try:
            recorded = await self.service.committer.record(SaleSubmission(key, sale_request, cashier_id))
        except InvalidSale as exc:
            self.service.metrics.sales.labels("invalid").inc()
            raise ApiError(422, exc.code, exc.message, field=exc.field) from exc
        except IdempotencyConflict as exc:
            self.service.metrics.sales.labels("conflict").inc()
            log.warning(
                "idempotency key reused with other content",
                extra={
                    "store_id": self.store_id,
                    "idempotency_key": key,
                    "sale_id": exc.sale_id,
                    "cashier_id": cashier_id,
                },
            )
            raise ApiError(
                409,
                "idempotency_conflict",
                f"Idempotency-Key {key!r} was already used for sale {exc.sale_id} with other content;"
                " send a new key for a new sale",
                sale_id=exc.sale_id,
            ) from exc
        self.service.metrics.commit_seconds.observe(time.perf_counter() - started)

        outcome = "replayed" if recorded.replayed else "created"
        self.service.metrics.sales.labels(outcome).inc()
        log.info(
            "sale replayed" if recorded.replayed else "sale recorded",
            extra={
                "store_id": self.store_id,
                "sale_id": recorded.sale_id,
                "cashier_id": cashier_id,
                "register_id": sale_request.register_id,
                "idempotency_key": key,
            },
        )
        headers = {"Location": f"/sales/{recorded.sale_id}"}
        if recorded.replayed:
            headers["Idempotent-Replayed"] = "true"
        return _json_text_response(recorded.document_json, 201, headers)

    async def get_sale(self, request: Request) -> Response:
        await self.service.authenticate(request)
        sale_id = request.path_params["sale_id"]
        document = await self.service.db(self.store.get_sale, sale_id)
        if document is None:
            raise ApiError(404, "sale_not_found", f"no sale {sale_id!r} in store {self.store_id}")
        return JSONResponse(document)

    async def list_catalog(self, request: Request) -> Response:
        await self.service.authenticate(request)
        after = request.query_params.get("after", "")
        raw_limit = request.query_params.get("limit", "100")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_CATALOG_PAGE:
            raise ApiError(
                400, "invalid_limit", f"limit must be an integer from 1 to {MAX_CATALOG_PAGE}, got {raw_limit!r}"
            )
        items = await self.service.db(self.store.list_catalog, after, int(raw_limit))
        next_after = items[-1]["sku"] if len(items) == int(raw_limit) else None
        return JSONResponse({"items": items, "next_after": next_after})

    async def get_catalog_item(self, request: Request) -> Response:
        await self.service.authenticate(request)
        sku = request.path_params["sku"]
        item = await self.service.db(self.store.get_catalog_item, sku)
        if item is None:
            raise ApiError(404, "sku_not_found", f"SKU {sku!r} is not in the local catalog replica")
        return JSONResponse(item)

    async def get_prices(self, request: Request) -> Response:
        await self.service.authenticate(request)
        skus = request.query_params.getlist("sku")
        if not skus:
            raise ApiError(400, "missing_sku", "name at least one SKU: /prices?sku=A&sku=B")
        if len(skus) > MAX_PRICE_SKUS:
            raise ApiError(400, "too_many_skus", f"at most {MAX_PRICE_SKUS} SKUs per request, got {len(skus)}")
        prices = await self.service.db(self.store.get_prices, skus)
        unknown = sorted(set(skus) - set(prices))
        return JSONResponse({"prices_cents": prices, "unknown": unknown})


def create_app(settings: PosSettings, store: PosStore) -> Starlette:
    """Build the POS cache application over an open store; the store is closed on application shutdown."""
    service = PosService(settings, store)
    api = PosApi(service)
    routes = [
        Route("/healthz", api.healthz, methods=["GET"]),
        Route("/metrics", api.metrics, methods=["GET"]),
        Route("/sessions", api.login, methods=["POST"]),
        Route("/sessions/current", api.logout, methods=["DELETE"]),
        Route("/sales", api.create_sale, methods=["POST"]),
        Route("/sales/{sale_id}", api.get_sale, methods=["GET"]),
        Route("/catalog", api.list_catalog, methods=["GET"]),
        Route("/catalog/{sku}", api.get_catalog_item, methods=["GET"]),
        Route("/prices", api.get_prices, methods=["GET"]),
    ]
    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
        ApiError: _api_error_handler,
        HTTPException: _http_error_handler,
    }

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        service.close()

    app = Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)
    app.state.service = service
    return app

"""Sync worker: pulls the HQ stock feed (snapshot, then changes after a cursor) into the inventory database."""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any

import httpx

from retail_edge.inventory.settings import InventorySettings
from retail_edge.inventory.store import InventoryStore

log = logging.getLogger("retail_edge.inventory.sync")

PRUNE_INTERVAL_S = 300.0


class HqUnavailable(Exception):
    """HQ is unreachable or failed (connection error, timeout, 5xx); retry with backoff."""


class CursorRejected(Exception):
    """HQ returned 410: the stored cursor is no longer valid and a full snapshot is needed."""


class HqFeedClient:
    """HTTP client of the HQ stock feed for one store."""

    def __init__(self, settings: InventorySettings, transport: httpx.BaseTransport | None = None) -> None:
        self.store_id = settings.store_id
        self.page_limit = settings.page_limit
        self.http = httpx.Client(
            base_url=settings.hq_url.rstrip("/"),
            headers={"Authorization": f"Bearer {settings.hq_token}", "X-Store-Id": settings.store_id},
            timeout=settings.hq_timeout_s,
            transport=transport,
        )

    def close(self) -> None:
        self.http.close()

    def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        url = f"/v1/stores/{self.store_id}{path}"
        try:
            response = self.http.get(url, params=params)
        except httpx.HTTPError as exc:
            raise HqUnavailable(f"GET {url} failed: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 410:
            raise CursorRejected(response.text[:300])
        if response.status_code >= 500 or response.status_code == 429:
            raise HqUnavailable(f"GET {url} returned {response.status_code}: {response.text[:300]}")
        if response.status_code != 200:
            # A 4xx other than 410 means a configuration problem (token, store id). Retrying with backoff keeps
            # the API serving the last known stock while an operator fixes it.
            raise HqUnavailable(
                f"GET {url} returned {response.status_code}: {response.text[:300]}; check the store id and token"
            )
        try:
            return response.json()
        except ValueError as exc:
            raise HqUnavailable(f"GET {url} returned invalid JSON: {exc}") from exc

    def snapshot(self) -> tuple[list[dict[str, Any]], str, list[str]]:
        """Fetch every snapshot page; return the items, the snapshot cursor and the applied sale keys."""
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": self.page_limit}
        first = self._get("/stock/snapshot", params)
        cursor, applied_sales = first["cursor"], list(first.get("applied_sales", []))
        page = first
        while True:
            items.extend(page["items"])
            token = page.get("next_page_token")
            if not token:
                return items, cursor, applied_sales
            page = self._get("/stock/snapshot", {"limit": self.page_limit, "page_token": token})

    def changes(self, cursor: str) -> dict[str, Any]:
        return self._get("/stock/changes", {"after": cursor, "limit": self.page_limit})


class StockSync:
    """The sync loop: snapshot when there is no valid cursor, then changes; backoff while HQ is unreachable."""

    def __init__(self, settings: InventorySettings, store: InventoryStore, client: HqFeedClient) -> None:
        self.settings = settings
        self.store = store
        self.client = client
        self.backoff_s = settings.backoff_initial_s
        self._last_prune = 0.0

    def full_snapshot(self) -> None:
        started = time.monotonic()
        items, cursor, applied_sales = self.client.snapshot()
        self.store.replace_stock(items, cursor, applied_sales, time.time())
        log.info(
            "applied stock snapshot",
            extra={"store_id": self.settings.store_id, "skus": len(items), "duration_s": time.monotonic() - started},
        )

    def sync_once(self) -> int:
        """Bring the database up to date with HQ; return the number of changes applied."""
        cursor = self.store.sync_status().cursor
        if cursor is None:
            self.full_snapshot()
            return 0
        applied = 0
        while True:
            try:
                page = self.client.changes(cursor)
            except CursorRejected as exc:
                log.warning(
                    "HQ rejected the stock cursor; taking a full snapshot",
                    extra={"store_id": self.settings.store_id, "cursor": cursor, "hq_detail": str(exc)},
                )
                self.full_snapshot()
                return applied
            cursor = page["cursor"]
            if page["changes"]:
                self.store.apply_changes(page["changes"], cursor, time.time())
                applied += len(page["changes"])
            else:
                self.store.record_contact(time.time())
            if not page.get("more"):
                return applied

    def step(self) -> float:
        """Run one sync round and return the seconds to wait before the next one."""
        try:
            applied = self.sync_once()
        except (HqUnavailable, KeyError, TypeError, ValueError) as exc:
            # KeyError, TypeError and ValueError come from a feed page without the documented fields.
            failures = self.store.record_failure(str(exc))
            delay = self.backoff_s * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not a secret
            self.backoff_s = min(self.backoff_s * 2, self.settings.backoff_max_s)
            log.warning(
                "HQ stock feed unreachable; retrying",
                extra={
                    "store_id": self.settings.store_id,
                    "error": str(exc),
                    "failures": failures,
                    "retry_in_s": round(delay, 2),
                },
            )
            return delay
        self.backoff_s = self.settings.backoff_initial_s
        if applied:
            log.info("applied stock changes", extra={"store_id": self.settings.store_id, "changes": applied})
        now = time.time()
        if now - self._last_prune > PRUNE_INTERVAL_S:
            self.store.prune(now)
            self._last_prune = now
        return self.settings.poll_interval_s

    def run(self, stop: threading.Event) -> None:
        log.info("stock sync started", extra={"store_id": self.settings.store_id, "hq_url": self.settings.hq_url})
        while not stop.is_set():
            stop.wait(self.step())
        log.info("stock sync stopped", extra={"store_id": self.settings.store_id})

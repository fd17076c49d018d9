"""Local copy of the HQ catalog (prices, cost, minimum margin, expiry), kept on disk for HQ outages."""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any

import httpx

from retail_edge.rules.settings import RulesSettings

log = logging.getLogger("retail_edge.rules.catalog")


class CatalogCache:
    """The catalog as a dict by SKU, refreshed from HQ with ETags and persisted atomically."""

    def __init__(self, settings: RulesSettings) -> None:
        self.settings = settings
        self.items: dict[str, dict[str, Any]] = {}
        self.etag: str | None = None
        self.version = 0
        self.last_refresh_ok: float | None = None
        self._load_file()

    def _load_file(self) -> None:
        path = self.settings.catalog_cache_path
        try:
            cached = json.loads(path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.error("ignoring unreadable catalog cache", extra={"path": str(path), "error": str(exc)})
            return
        self._install(cached["body"], cached.get("etag"))
        log.info("loaded catalog cache", extra={"path": str(path), "skus": len(self.items)})

    def _install(self, body: dict[str, Any], etag: str | None) -> None:
        self.items = {item["sku"]: item for item in body["items"]}
        self.etag = etag
        self.version = int(body.get("version", 0))

    def refresh(self, client: httpx.Client) -> bool:
        """Fetch the catalog if it changed; return True when a new version was installed."""
        headers = {"If-None-Match": self.etag} if self.etag else {}
        response = client.get(f"/v1/stores/{self.settings.store_id}/catalog", headers=headers)
        if response.status_code == 304:
            return False
        response.raise_for_status()
        body = response.json()
        etag = response.headers.get("etag")
        self._install(body, etag)
        path = self.settings.catalog_cache_path
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".tmp")
        partial.write_text(json.dumps({"etag": etag, "body": body}))
        os.replace(partial, path)
        log.info(
            "installed catalog",
            extra={"store_id": self.settings.store_id, "version": self.version, "skus": len(self.items)},
        )
        return True

    def run(self, stop: threading.Event, on_change: Any) -> None:
        """Refresh every catalog_refresh_s; retry sooner (5 s) after a failure; call on_change() after updates."""
        settings = self.settings
        client = httpx.Client(
            base_url=settings.hq_url.rstrip("/"),
            headers={"Authorization": f"Bearer {settings.hq_token}", "X-Store-Id": settings.store_id},
            timeout=settings.hq_timeout_s,
        )
        with client:
            while not stop.is_set():
                delay = settings.catalog_refresh_s
                try:
                    if self.refresh(client):
                        on_change()
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    delay = min(5.0, settings.catalog_refresh_s)
                    log.warning(
                        "catalog refresh failed; serving the cached catalog",
                        extra={"store_id": settings.store_id, "error": str(exc), "retry_in_s": delay},
                    )
                stop.wait(delay)

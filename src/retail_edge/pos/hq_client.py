"""HTTP client of the HQ interfaces that the POS cache uses: sales ingest, catalog and cashiers.

Errors are sorted by what the sync agent must do next: HqUnavailable means "back off and retry the same request",
HqRejected means "HQ will never accept this request as sent" (the agent splits the batch to find the sale at fault).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from retail_edge.pos.storage import OutboxEntry

# Statuses that condemn the request body rather than the connection or HQ's state.
REJECTING_STATUSES = frozenset({400, 413, 422})


class HqUnavailable(Exception):
    """HQ could not take the request now (network, timeout, 5xx, 429, auth); retry the same request later."""

    def __init__(self, kind: str, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.retry_after = retry_after


class HqRejected(Exception):
    """HQ rejected the request body as invalid; resending it unchanged cannot succeed."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class Replica:
    """A full replica document from HQ and its ETag; ``document`` is None when HQ responded 304 Not Modified."""

    etag: str | None
    document: dict[str, Any] | None


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("error") or body)[:300]
    return str(body)[:300]


def encode_batch(entries: Sequence[OutboxEntry]) -> bytes:
    """Encode outbox entries as a sales batch, splicing in each stored document without re-serializing it.

    The sale id is the idempotency key at HQ: it is unique per sale and never changes between attempts.
    """
    parts = [f'{{"idempotency_key":{json.dumps(entry.sale_id)},"sale":{entry.document_json}}}' for entry in entries]
    return ('{"sales":[' + ",".join(parts) + "]}").encode()


class HqClient:
    """One store's view of HQ over a keep-alive connection pool."""

    def __init__(self, base_url: str, store_id: str, token: str, timeout_seconds: float) -> None:
        self.store_id = store_id
        self._http = httpx.AsyncClient(
            base_url=f"{base_url}/v1/stores/{store_id}",
            headers={"Authorization": f"Bearer {token}", "X-Store-Id": store_id},
            timeout=httpx.Timeout(timeout_seconds),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise HqUnavailable("timeout", f"{method} {path} timed out: {exc!r}") from exc
        except httpx.TransportError as exc:
            raise HqUnavailable("unreachable", f"{method} {path} failed: {exc!r}") from exc

        status = response.status_code
        if status in (401, 403):
            raise HqUnavailable(
                "auth", f"HQ rejected the store token with HTTP {status} ({_detail(response)}); check hq_token"
            )
        if status == 404:
            raise HqUnavailable("not_found", f"HQ has no {path} for store {self.store_id}; check hq_url and store_id")
        if status == 429:
            raise HqUnavailable("throttled", f"HQ throttled {path}: {_detail(response)}", _retry_after(response))
        if status >= 500:
            raise HqUnavailable(f"http_{status}", f"HQ failed on {path}: {_detail(response)}", _retry_after(response))
        if status in REJECTING_STATUSES:
            raise HqRejected(status, _detail(response))
        if status not in (200, 304):
            detail = _detail(response)
            raise HqUnavailable("protocol", f"HQ responded to {path} with unexpected HTTP {status}: {detail}")
        return response

    async def post_sales_batch(self, entries: Sequence[OutboxEntry]) -> dict[str, str]:
        """Send a batch of sales and return HQ's status per idempotency key (applied, duplicate or conflict)."""
        response = await self._request(
            "POST", "/sales/batches", content=encode_batch(entries), headers={"Content-Type": "application/json"}
        )
        try:
            results = response.json()["results"]
            statuses = {str(result["idempotency_key"]): str(result["status"]) for result in results}
        except (ValueError, KeyError, TypeError) as exc:
            raise HqUnavailable("protocol", f"HQ's sales batch response is not {{'results': [...]}}: {exc!r}") from exc
        return statuses

    async def get_replica(self, name: str, etag: str | None) -> Replica:
        """GET the catalog or cashiers document, conditional on the ETag of the copy already held."""
        headers = {"If-None-Match": etag} if etag else {}
        response = await self._request("GET", f"/{name}", headers=headers)
        if response.status_code == 304:
            return Replica(etag=etag, document=None)
        try:
            document = response.json()
        except ValueError as exc:
            raise HqUnavailable("protocol", f"HQ's {name} response is not JSON: {exc}") from exc
        if not isinstance(document, dict):
            raise HqUnavailable("protocol", f"HQ's {name} response is not a JSON object")
        return Replica(etag=response.headers.get("etag"), document=document)

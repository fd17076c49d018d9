"""HTTP clients of the services the sync agent talks to: HQ (sales ingest, catalog, cashiers) and the store's
inventory API (local sales).

Errors are sorted by what the sync agent must do next: ServiceUnavailable means "back off and retry the same
request", RequestRejected means "the service will never accept this request as sent" (the agent splits the batch
to find the sale at fault).
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


class ServiceUnavailable(Exception):
    """The service could not take the request now (network, timeout, 5xx, 429, auth); retry it later."""

    def __init__(self, kind: str, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.retry_after = retry_after


class RequestRejected(Exception):
    """The service rejected the request body as invalid; resending it unchanged cannot succeed."""

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

    The sale id is the idempotency key, at HQ and at the inventory API: it is unique per sale and never changes
    between attempts, and the inventory API matches HQ's stock changes to local sales by it.
    """
    parts = [f'{{"idempotency_key":{json.dumps(entry.sale_id)},"sale":{entry.document_json}}}' for entry in entries]
    return ('{"sales":[' + ",".join(parts) + "]}").encode()


class _SalesBatchClient:
    """A keep-alive connection pool to a service that takes sales batches, with its errors sorted."""

    def __init__(
        self, service: str, base_url: str, headers: dict[str, str], timeout_seconds: float, auth_hint: str
    ) -> None:
        self.service = service
        self._auth_hint = auth_hint
        self._http = httpx.AsyncClient(base_url=base_url, headers=headers, timeout=httpx.Timeout(timeout_seconds))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        service = self.service
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise ServiceUnavailable("timeout", f"{method} {service} {path} timed out: {exc!r}") from exc
        except httpx.TransportError as exc:
            raise ServiceUnavailable("unreachable", f"{method} {service} {path} failed: {exc!r}") from exc

        status = response.status_code
        if status in (401, 403):
            detail = _detail(response)
            raise ServiceUnavailable(
                "auth", f"{service} rejected the credentials with HTTP {status} ({detail}); {self._auth_hint}"
            )
        if status == 404:
            raise ServiceUnavailable("not_found", f"{service} has no {path}; check its URL and the store id")
        if status == 429:
            raise ServiceUnavailable(
                "throttled", f"{service} throttled {path}: {_detail(response)}", _retry_after(response)
            )
        if status >= 500:
            raise ServiceUnavailable(
                f"http_{status}", f"{service} failed on {path}: {_detail(response)}", _retry_after(response)
            )
        if status in REJECTING_STATUSES:
            raise RequestRejected(status, _detail(response))
        if status not in (200, 304):
            detail = _detail(response)
            raise ServiceUnavailable(
                "protocol", f"{service} responded to {path} with unexpected HTTP {status}: {detail}"
            )
        return response

    async def _post_sales(self, path: str, entries: Sequence[OutboxEntry]) -> dict[str, str]:
        """POST a sales batch and return the status the service reports per idempotency key."""
        response = await self._request(
            "POST", path, content=encode_batch(entries), headers={"Content-Type": "application/json"}
        )
        try:
            results = response.json()["results"]
            statuses = {str(result["idempotency_key"]): str(result["status"]) for result in results}
        except (ValueError, KeyError, TypeError) as exc:
            raise ServiceUnavailable(
                "protocol", f"{self.service}'s sales batch response is not {{'results': [...]}}: {exc!r}"
            ) from exc
        return statuses


class HqClient(_SalesBatchClient):
    """One store's view of HQ: its sales ingest and the catalog and cashier documents."""

    def __init__(self, base_url: str, store_id: str, token: str, timeout_seconds: float) -> None:
        super().__init__(
            "HQ",
            f"{base_url}/v1/stores/{store_id}",
            {"Authorization": f"Bearer {token}", "X-Store-Id": store_id},
            timeout_seconds,
            "check hq_token",
        )

    async def post_sales_batch(self, entries: Sequence[OutboxEntry]) -> dict[str, str]:
        """Send a batch of sales and return HQ's status per idempotency key (applied, duplicate or conflict)."""
        return await self._post_sales("/sales/batches", entries)

    async def get_replica(self, name: str, etag: str | None) -> Replica:
        """GET the catalog or cashiers document, conditional on the ETag of the copy already held."""
        headers = {"If-None-Match": etag} if etag else {}
        response = await self._request("GET", f"/{name}", headers=headers)
        if response.status_code == 304:
            return Replica(etag=etag, document=None)
        try:
            document = response.json()
        except ValueError as exc:
            raise ServiceUnavailable("protocol", f"HQ's {name} response is not JSON: {exc}") from exc
        if not isinstance(document, dict):
            raise ServiceUnavailable("protocol", f"HQ's {name} response is not a JSON object")
        return Replica(etag=response.headers.get("etag"), document=document)


class InventoryClient(_SalesBatchClient):
    """The store's inventory API, which counts each sale against local stock before HQ has it."""

    def __init__(self, base_url: str, timeout_seconds: float) -> None:
        super().__init__("inventory", base_url, {}, timeout_seconds, "check inventory_url")

    async def post_local_sales(self, entries: Sequence[OutboxEntry]) -> dict[str, str]:
        """Send a batch of sales; statuses are applied, duplicate or already_reflected (HQ's feed had it)."""
        return await self._post_sales("/inventory/sales", entries)

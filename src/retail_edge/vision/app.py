"""HTTP endpoints of the vision service: /healthz and /metrics, nothing else.

There is deliberately no endpoint that returns a frame, a snapshot or a crop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

HealthCheck = Callable[[], tuple[bool, dict[str, Any]]]


def create_app(health: HealthCheck, registry: CollectorRegistry) -> Starlette:
    """Build the ASGI app; health returns (healthy, report) and registry contains the metrics."""

    async def healthz(request: Request) -> JSONResponse:
        healthy, report = health()
        return JSONResponse(report, status_code=200 if healthy else 503)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/healthz", healthz, methods=["GET"]), Route("/metrics", metrics, methods=["GET"])])

"""The application core of the PVE double: routing, errors, request statistics and extension points.

An extension (for example Ceph pool routes) is a module with a `register(app: PveApp) -> None`
function. It may add routes with `app.route(...)`, storages with `app.register_storage(...)`, task
types with `app.register_task_type(...)`, and keep its own state under `state["extra"][NAME]`.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import re
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from lab.pve import formats  # noqa: F401 - registers the named formats
from lab.pve.auth import Authenticator, Caller
from lab.pve.backends import load_backend
from lab.pve.backends.base import Backend
from lab.pve.config import LabConfig, Storage
from lab.pve.schema import ParamSchema, validate
from lab.pve.state import StateStore
from lab.pve.tasks import TaskManager

LOG = logging.getLogger("lab.pve")

# Extensions loaded whenever their module exists, so that adding the file is enough to enable them.
DEFAULT_EXTENSIONS = ("lab.pve.ceph",)


class ApiError(Exception):
    """An error answer: HTTP status, PVE's message (also the HTTP reason phrase) and per-parameter errors."""

    def __init__(self, status: int, message: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors or {}


def fail(message: str) -> ApiError:
    """PVE answers a failed API call (a `die` in its handler) with HTTP 500 and the message."""
    return ApiError(500, message)


def param_error(errors: dict[str, str]) -> ApiError:
    return ApiError(400, "Parameter verification failed.", errors)


def permission_denied(detail: str) -> ApiError:
    return ApiError(403, f"Permission check failed ({detail})")


@dataclass
class Envelope:
    """A result with fields beside `data`, such as `total` on a task log."""

    data: Any
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Request:
    """One validated API call: its parameters (path parameters included) and the authenticated caller."""

    app: PveApp
    method: str
    path: str
    route: Route
    params: dict[str, Any]
    caller: Caller


Handler = Callable[[Request], Any]


@dataclass
class Route:
    method: str
    template: str
    handler: Handler
    schema: ParamSchema
    auth: bool = True
    regex: re.Pattern[str] = field(init=False)
    names: tuple[str, ...] = field(init=False)
    literal_segments: int = field(init=False)

    def __post_init__(self) -> None:
        names: list[str] = []
        parts: list[str] = []
        literal = 0
        for segment in self.template.strip("/").split("/"):
            placeholder = re.fullmatch(r"\{(\w+)\}", segment)
            if placeholder:
                names.append(placeholder.group(1))
                parts.append("([^/]+)")
            else:
                literal += 1
                parts.append(re.escape(segment))
        self.regex = re.compile("/" + "/".join(parts))
        self.names = tuple(names)
        self.literal_segments = literal

    @property
    def key(self) -> str:
        return f"{self.method} {self.template}"


class Router:
    def __init__(self) -> None:
        self._routes: list[Route] = []

    def add(self, route: Route) -> None:
        if any(existing.key == route.key for existing in self._routes):
            raise ValueError(f"route {route.key} is already registered")
        self._routes.append(route)
        self._routes.sort(key=lambda item: (-item.literal_segments, item.template))

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        for route in self._routes:
            if route.method != method:
                continue
            found = route.regex.fullmatch(path)
            if found is not None:
                return route, {name: unquote(value) for name, value in zip(route.names, found.groups(), strict=True)}
        raise ApiError(501, f"Method '{method} {path}' not implemented")

    def routes(self) -> list[Route]:
        return list(self._routes)


class Stats:
    """Counts API requests per route template, which the benchmark compares between modules."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_route: Counter[str] = Counter()
        self._total = 0

    def count(self, key: str) -> None:
        with self._lock:
            self._by_route[key] += 1
            self._total += 1

    def reset(self) -> None:
        with self._lock:
            self._by_route.clear()
            self._total = 0

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": self._total, "by_route": dict(sorted(self._by_route.items()))}


class PveApp:
    """Wires configuration, state, tasks, authentication, the backend and the routes together."""

    def __init__(self, config: LabConfig, store: StateStore) -> None:
        self.config = config
        self.store = store
        self.router = Router()
        self.stats = Stats()
        self.storages: dict[str, Storage] = dict(config.storages)
        self.task_types: dict[str, str] = {}
        with store.mutate() as state:
            secret = state.setdefault("auth_secret", secrets.token_hex(32))
        self.auth = Authenticator(config, bytes.fromhex(secret))
        self.tasks = TaskManager(config, store)
        self.backend: Backend = load_backend(config.backend, self)
        self.extensions: list[str] = []

        from lab.pve.api import register_all  # noqa: PLC0415 - the API modules import this module

        register_all(self)
        self._load_extensions(config.extensions)

    # Extension points

    def route(
        self, method: str, template: str, schema: ParamSchema, *, auth: bool = True
    ) -> Callable[[Handler], Handler]:
        """Register a handler for `METHOD /path/{param}` under /api2/json, validated against schema."""

        def decorator(handler: Handler) -> Handler:
            self.router.add(Route(method, template, handler, schema, auth))
            return handler

        return decorator

    def register_storage(self, storage: Storage) -> None:
        self.storages[storage.storage] = storage

    def register_task_type(self, task_type: str, description: str = "") -> None:
        self.task_types[task_type] = description

    def _load_extensions(self, names: Iterable[str]) -> None:
        wanted = list(names)
        for name in DEFAULT_EXTENSIONS:
            if name not in wanted and importlib.util.find_spec(name) is not None:
                wanted.append(name)
        for name in wanted:
            module = importlib.import_module(name)
            register = getattr(module, "register", None)
            if register is None:
                raise ValueError(f"extension {name} has no register(app) function")
            register(self)
            self.extensions.append(name)
            LOG.info("loaded extension %s", name)

    # Requests

    def call(
        self,
        route: Route,
        path_params: dict[str, str],
        raw_params: dict[str, Any],
        caller: Caller,
        *,
        method: str,
        path: str,
    ) -> Any:
        """Count, validate and run one API call; path parameters win over body parameters of the same name."""
        self.stats.count(route.key)
        params = validate(route.schema, {**raw_params, **path_params})
        return route.handler(Request(self, method, path, route, params, caller))

    def require_node(self, node: str) -> None:
        if node not in self.config.nodes:
            raise fail(
                f"hostname lookup '{node}' failed - failed to get address info for: {node}: Name or service not known"
            )

    def shutdown(self) -> None:
        self.tasks.shutdown()
        self.backend.close()
        self.store.close()

"""An in-memory stand-in for AWX's REST API (/api/v2), enough for the awx.awx modules of awx_configure.yml.

It stores what the modules create, filters lists by exact field values as AWX does for `?name=...`,
keeps credential associations of job templates, and serves `unified_job_templates` for schedules.
It does not run jobs, sync projects or check that a job template's playbook exists in the project.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

API = "/api/v2/"
# Endpoints whose objects a schedule may run; AWX lists them together under unified_job_templates.
UNIFIED = ("job_templates", "workflow_job_templates", "projects", "inventory_sources")
IGNORED_QUERY = {"page", "page_size", "order_by"}


class AwxStub:
    """Objects by endpoint and id, associations by (endpoint, id, related endpoint)."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[int, dict[str, Any]]] = {}
        self.associations: dict[tuple[str, int, str], list[int]] = {}
        self.requests: list[tuple[str, str]] = []
        self._next_id = 1
        self._lock = threading.Lock()
        for name, kind in (("Machine", "ssh"), ("Source Control", "scm"), ("Vault", "vault")):
            self.add("credential_types", {"name": name, "kind": kind, "managed": True})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> AwxStub:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- the object store ----------------------------------------------------------------

    def add(self, endpoint: str, fields: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            item_id = self._next_id
            self._next_id += 1
        url = f"{API}{endpoint}/{item_id}/"
        item = {
            **fields,
            "id": item_id,
            "type": endpoint.rstrip("s"),
            "url": url,
            "related": {"credentials": f"{url}credentials/", "update": f"{url}update/"},
            "summary_fields": {},
            "scm_revision": "",
        }
        self.objects.setdefault(endpoint, {})[item_id] = item
        return item

    def named(self, endpoint: str) -> dict[str, dict[str, Any]]:
        """Objects of an endpoint by name."""
        return {item["name"]: item for item in self.objects.get(endpoint, {}).values()}

    def associated(self, endpoint: str, item_id: int, related: str) -> list[int]:
        return self.associations.get((endpoint, item_id, related), [])

    def _list(self, endpoint: str, query: dict[str, str]) -> list[dict[str, Any]]:
        if endpoint == "unified_job_templates":
            items = [item for name in UNIFIED for item in self.objects.get(name, {}).values()]
        else:
            items = list(self.objects.get(endpoint, {}).values())
        either = {key[4:]: value for key, value in query.items() if key.startswith("or__")}
        exact = {
            key: value
            for key, value in query.items()
            if key not in IGNORED_QUERY and not key.startswith("or__") and "__" not in key
        }
        found = [item for item in items if all(str(item.get(key)) == value for key, value in exact.items())]
        if either:
            found = [item for item in found if any(str(item.get(key)) == value for key, value in either.items())]
        return found

    # --- HTTP ------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                del format, args

            def do_GET(self) -> None:
                self._dispatch("GET")

            def do_POST(self) -> None:
                self._dispatch("POST")

            def do_PATCH(self) -> None:
                self._dispatch("PATCH")

            def _dispatch(self, method: str) -> None:
                url = urlsplit(self.path)
                stub.requests.append((method, url.path))
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}") if length else {}
                parts = [part for part in url.path[len(API) :].split("/") if part]
                if not url.path.startswith(API) or not parts:
                    self._send(404, {"detail": f"no route {url.path}"})
                elif len(parts) == 1:
                    self._collection(method, parts[0], dict(parse_qsl(url.query)), body)
                elif len(parts) == 2:
                    self._item(method, parts[0], int(parts[1]), body)
                else:
                    self._association(method, parts[0], int(parts[1]), parts[2], body)

            def _collection(self, method: str, endpoint: str, query: dict[str, str], body: dict) -> None:
                if method == "GET":
                    results = stub._list(endpoint, query)
                    self._send(200, {"count": len(results), "next": None, "previous": None, "results": results})
                elif method == "POST":
                    self._send(201, stub.add(endpoint, body))
                else:
                    self._send(405, {"detail": f"{method} not allowed on {endpoint}"})

            def _item(self, method: str, endpoint: str, item_id: int, body: dict) -> None:
                item = stub.objects.get(endpoint, {}).get(item_id)
                if item is None:
                    self._send(404, {"detail": "Not found."})
                elif method == "PATCH":
                    item.update(body)
                    self._send(200, item)
                else:
                    self._send(200, item)

            def _association(self, method: str, endpoint: str, item_id: int, related: str, body: dict) -> None:
                ids = stub.associations.setdefault((endpoint, item_id, related), [])
                if method == "GET":
                    results = [stub.objects[related][other] for other in ids]
                    self._send(200, {"count": len(results), "next": None, "previous": None, "results": results})
                    return
                if body.get("disassociate"):
                    ids.remove(int(body["id"]))
                else:
                    ids.append(int(body["id"]))
                self._send(204, None)

            def _send(self, status: int, payload: Any) -> None:
                data = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("X-API-Product-Name", "AWX")
                self.send_header("X-API-Product-Version", "24.6.1")
                self.end_headers()
                self.wfile.write(data)

        return Handler

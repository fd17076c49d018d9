"""The demo's closing summary: each workload's URL and health, sample answers, vision events, compliance."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from lab.demo.ansible import render_host_vars
from lab.demo.settings import INVENTORY, STORE_ID

SUMMARY_VARS = Path(__file__).with_name("summary_vars.yml")
TIMEOUT_S = 10
# The lab HQ numbers its SKUs SKU-00001, SKU-00002, ...; each store stocks a part of the catalog.
CANDIDATE_SKUS = ",".join(f"SKU-{number:05d}" for number in range(1, 101))


@dataclass
class WorkloadHealth:
    workload: str
    host: str
    url: str
    healthy: bool
    detail: str


@dataclass
class Summary:
    workloads: list[WorkloadHealth] = field(default_factory=list)
    samples: dict[str, Any] = field(default_factory=dict)
    vision_events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def all_healthy(self) -> bool:
        return bool(self.workloads) and all(item.healthy for item in self.workloads)


def declared_workloads(env: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Return host -> {workload, address, health check, ports, addresses} of store s001's containers."""
    return render_host_vars(INVENTORY, f"store_{STORE_ID}:&containers", "__demo_summary", SUMMARY_VARS, env)


def check_health(host: str, entry: dict[str, Any]) -> WorkloadHealth:
    check = entry["health"]
    if "url" in check:
        try:
            answer = requests.get(check["url"], timeout=TIMEOUT_S)
        except requests.RequestException as exc:
            return WorkloadHealth(entry["workload"], host, check["url"], False, f"unreachable: {exc}")
        return WorkloadHealth(
            entry["workload"], host, check["url"], answer.status_code == 200, f"HTTP {answer.status_code}"
        )
    target = f"mqtt://{entry['address']}:{check['port']}"
    import socket  # noqa: PLC0415

    try:
        with socket.create_connection((entry["address"], int(check["port"])), timeout=TIMEOUT_S):
            return WorkloadHealth(entry["workload"], host, target, True, "accepts connections")
    except OSError as exc:
        return WorkloadHealth(entry["workload"], host, target, False, f"unreachable: {exc}")


def service_url(declared: dict[str, dict[str, Any]], workload: str, port_key: str | None = None) -> str:
    entry = next(iter(declared.values()))
    return f"http://{entry['addresses'][workload]}:{entry['ports'][port_key or workload]}"


def sample_answers(declared: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Ask the store what a shopper's app would: stock and location through Varnish, a pickup promise, a price."""
    samples: dict[str, Any] = {}
    inventory = service_url(declared, "inventory_api")
    batch = requests.get(f"{inventory}/inventory", params={"skus": CANDIDATE_SKUS}, timeout=TIMEOUT_S).json()
    stocked = [item for item in batch.get("items", []) if item["available"] > 0]
    if not stocked:
        samples["error"] = f"the inventory API stocks none of SKU-00001..SKU-00100 yet: {json.dumps(batch)[:300]}"
        return samples
    sku = stocked[0]["sku"]

    through_varnish = requests.get(f"{service_url(declared, 'varnish_edge')}/inventory/{sku}", timeout=TIMEOUT_S)
    samples["stock"] = {"sku": sku, "status": through_varnish.status_code, "answer": _json(through_varnish)}
    samples["stock"]["cache"] = "hit" if len(through_varnish.headers.get("X-Varnish", "").split()) == 2 else "miss"

    promise = requests.post(
        f"{inventory}/promise",
        json={"order_id": f"demo-{uuid.uuid4().hex[:8]}", "lines": [{"sku": sku, "qty": 1}]},
        timeout=TIMEOUT_S,
    )
    samples["promise"] = {"status": promise.status_code, "answer": _json(promise)}
    if "rules_engine" in next(iter(declared.values()))["addresses"]:
        price = requests.get(f"{service_url(declared, 'rules_engine')}/price/{sku}", timeout=TIMEOUT_S)
        samples["price"] = {"status": price.status_code, "answer": _json(price)}
    return samples


def _json(answer: requests.Response) -> Any:
    try:
        return answer.json()
    except ValueError:
        return answer.text[:300]


def vision_events(broker: str, port: int, password: str, seconds: float) -> list[dict[str, Any]]:
    """Subscribe to the store's vision topics as the dashboard user and return the events of `seconds`."""
    import paho.mqtt.client as mqtt  # noqa: PLC0415

    events: list[dict[str, Any]] = []
    lock = threading.Lock()

    def on_connect(client: Any, _userdata: Any, _flags: Any, reason: Any, _properties: Any) -> None:
        if not reason.is_failure:
            client.subscribe(f"store/{STORE_ID}/vision/#", qos=1)

    def on_message(_client: Any, _userdata: Any, message: Any) -> None:
        try:
            payload = json.loads(message.payload)
        except ValueError:
            payload = {"raw": message.payload[:200].decode(errors="replace")}
        with lock:
            events.append({"topic": message.topic, **(payload if isinstance(payload, dict) else {"value": payload})})

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"demo-summary-{uuid.uuid4().hex[:6]}")
    client.username_pw_set("dashboard", password)
    client.on_connect = on_connect
    client.on_message = on_message
    client.connect(broker, port, keepalive=30)
    client.loop_start()
    try:
        time.sleep(seconds)
    finally:
        client.loop_stop()
        client.disconnect()
    return events

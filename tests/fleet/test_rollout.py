"""playbooks/rollout.yml: canary gate, wave thresholds, resuming, and the summary it writes."""

from __future__ import annotations

import datetime
import json
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.fleet.fleetlab import PLAYBOOKS, FleetLab
from tests.support import ROOT

ROLLOUT = ROOT / "playbooks" / "rollout.yml"
# s001 is the canary; wave1 has four stores, so one failure is 25 % of its batch.
WAVES = ["canary", "wave1", "wave1", "wave1", "wave1", "wave2", "wave2"]
P95_LIMIT_S = 0.25


class StoreHealth:
    """Health endpoints and a Prometheus query API for every store, returning the values the test sets."""

    def __init__(self) -> None:
        self.healthz: dict[str, int] = {}
        self.p95: dict[str, float] = {}
        self.requests: Counter[str] = Counter()
        handler = self._handler()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        health = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                del format, args

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                store, _, rest = url.path.strip("/").partition("/")
                health.requests[store] += 1
                if rest == "healthz":
                    status = health.healthz.get(store, 200)
                    self._send(status, {"status": "ok" if status == 200 else "degraded"})
                elif rest == "api/v1/query":
                    query = parse_qs(url.query).get("query", [""])[0]
                    sample = {"metric": {"store": store}, "value": [0, str(health.p95.get(store, 0.05))]}
                    self._send(200, {"status": "success", "data": {"resultType": "vector", "result": [sample]}})
                    del query
                else:
                    self._send(404, {"error": f"no route {url.path}"})

            def _send(self, status: int, body: dict[str, Any]) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler

    def gate_vars(self, store_id: str) -> dict[str, Any]:
        """Registry vars that point a store's health gate at this stub."""
        return {
            "rollout_store_prometheus_url": f"{self.url}/{store_id}",
            "rollout_store_healthz": [{"name": "inventory API", "url": f"{self.url}/{store_id}/healthz"}],
            "rollout_store_queries": [
                {
                    "name": "inventory API p95",
                    "expr": "max(store:inventory_request_duration_seconds:p95_10m)",
                    "max": P95_LIMIT_S,
                }
            ],
        }


@pytest.fixture
def store_health() -> Iterator[StoreHealth]:
    health = StoreHealth()
    health.thread.start()
    yield health
    health.server.shutdown()
    health.server.server_close()


@pytest.fixture
def fleet(make_fleet, store_health: StoreHealth) -> FleetLab:
    return make_fleet(WAVES, workloads=["inventory_api"], nodes=1, store_vars=store_health.gate_vars)


def rollout(fleet: FleetLab, tmp_path: Path, *, expect_rc: int | None, **overrides: Any):
    settings = {
        "rollout_change": {
            "id": "inventory-api-2.4.0",
            "description": "inventory API 2.4.0",
            "vars": {"fleet_version": "2.4.0", "fleet_marker_dir": str(tmp_path / "applied")},
        },
        "rollout_playbook": str(PLAYBOOKS / "apply_change.yml"),
        "rollout_state_dir": str(tmp_path / "state"),
        "rollout_batch": "100%",
        "rollout_max_fail_percentage": 30,
        "rollout_canary_settle_s": 0,
        "rollout_settle_s": 0,
        "rollout_gate_retries": 1,
        "rollout_gate_delay_s": 0,
    }
    settings.update(overrides)
    (tmp_path / "applied").mkdir(exist_ok=True)
    return fleet.playbook(ROLLOUT, "--forks", "25", extra_vars=settings, expect_rc=expect_rc)


def applied(tmp_path: Path) -> Counter[str]:
    """Number of apply runs that reached each store."""
    return Counter(path.name.split("-", 1)[0] for path in (tmp_path / "applied").glob("*.json"))


def summary(tmp_path: Path, change: str = "inventory-api-2.4.0") -> dict[str, Any]:
    return json.loads((tmp_path / "state" / change / "summary.json").read_text())


def results(tmp_path: Path) -> dict[str, str]:
    return {store["id"]: store["result"] for store in summary(tmp_path)["stores"]}


def test_failed_canary_gate_stops_rollout(fleet, store_health, tmp_path):
    store_health.healthz["s001"] = 503

    proc = rollout(fleet, tmp_path, expect_rc=2)

    assert applied(tmp_path) == {"s001": 1}, "no wave may start after the canary failed"
    report = summary(tmp_path)
    assert report["status"] == "stopped"
    assert "canary store s001 failed" in report["reason"]
    assert results(tmp_path) == {"s001": "failed", **{f"s00{n}": "not_started" for n in range(2, 8)}}
    canary = report["stores"][0]
    assert canary["stage"] == "gate"
    assert "HTTP 503" in canary["message"]
    readable = (tmp_path / "state" / "inventory-api-2.4.0" / "summary.md").read_text()
    assert "| s001 | canary | failed | gate |" in readable
    assert "Roll the change out wave by wave" not in proc.stdout


def test_wave_continues_within_threshold(fleet, store_health, tmp_path):
    store_health.p95["s003"] = 1.5  # the key metric of one wave1 store breaks its bound

    rollout(fleet, tmp_path, expect_rc=2)

    assert set(applied(tmp_path)) == {f"s00{n}" for n in range(1, 8)}
    assert results(tmp_path) == {
        "s001": "succeeded",
        "s002": "succeeded",
        "s003": "failed",
        "s004": "succeeded",
        "s005": "succeeded",
        "s006": "succeeded",
        "s007": "succeeded",
    }
    report = summary(tmp_path)
    assert report["status"] == "completed_with_failures"
    failed = next(store for store in report["stores"] if store["id"] == "s003")
    assert failed["stage"] == "gate"
    assert "inventory API p95" in failed["message"]
    assert "above 0.25" in failed["message"]


def test_wave_over_threshold_stops_then_resumes(fleet, store_health, tmp_path):
    for store in ("s003", "s004"):
        store_health.healthz[store] = 500  # 2 of 4 stores in wave1: 50 % > 30 %

    rollout(fleet, tmp_path, expect_rc=2)

    first = results(tmp_path)
    assert first["s003"] == first["s004"] == "failed"
    assert first["s006"] == first["s007"] == "not_started"
    assert summary(tmp_path)["status"] == "stopped"
    assert "2 of 4 stores of a wave1 batch failed" in summary(tmp_path)["reason"]
    assert set(applied(tmp_path)) == {"s001", "s002", "s003", "s004", "s005"}

    store_health.healthz.clear()
    rollout(fleet, tmp_path, expect_rc=0)

    report = summary(tmp_path)
    assert report["status"] == "completed"
    assert set(results(tmp_path).values()) == {"succeeded"}
    runs = applied(tmp_path)
    # Done stores are skipped on the rerun; the failed and the waiting ones run once more.
    assert runs == {"s001": 1, "s002": 1, "s005": 1, "s003": 2, "s004": 2, "s006": 1, "s007": 1}
    earlier = {store["id"] for store in report["stores"] if store["earlier"]}
    assert earlier == {"s001", "s002", "s005"}
    attempts = {store["id"]: store["attempt"] for store in report["stores"]}
    assert attempts["s003"] == attempts["s004"] == 2


def test_apply_failure_names_failed_hosts(make_fleet, store_health, tmp_path):
    def gate_and_break(store_id: str) -> dict[str, Any]:
        return {**store_health.gate_vars(store_id), "fleet_apply_breaks": store_id == "s004"}

    fleet = make_fleet(WAVES, workloads=["inventory_api"], nodes=1, store_vars=gate_and_break)

    rollout(fleet, tmp_path, expect_rc=2, rollout_target="store_s004")

    report = summary(tmp_path)
    assert [store["id"] for store in report["stores"]] == ["s004"]
    failed = report["stores"][0]
    assert failed == {**failed, "result": "failed", "stage": "apply"}
    assert failed["message"] == "the apply playbook failed on s004-inventory-api"
    assert store_health.requests["s004"] == 0, "the health gate must not run after a failed apply"
    log = (tmp_path / "state" / "inventory-api-2.4.0" / "logs" / "s004.log").read_text()
    assert "the change does not apply on s004-inventory-api" in log


def test_apply_timeout_is_reported(fleet, store_health, tmp_path):
    slow = {
        "id": "inventory-api-2.4.0",
        "vars": {"fleet_version": "2.4.0", "fleet_marker_dir": str(tmp_path / "applied"), "fleet_apply_seconds": 60},
    }
    rollout(fleet, tmp_path, expect_rc=2, rollout_target="store_s005", rollout_change=slow, rollout_apply_timeout_s=1)

    failed = summary(tmp_path)["stores"][0]
    assert (failed["id"], failed["result"], failed["stage"]) == ("s005", "failed", "apply")
    assert failed["message"] == "the apply playbook timed out after 1 s"
    assert store_health.requests["s005"] == 0


def test_rerun_with_other_change_rejected(fleet, tmp_path):
    rollout(fleet, tmp_path, expect_rc=0, rollout_target="store_s001")
    other = {"id": "inventory-api-2.4.0", "vars": {"fleet_version": "2.5.0", "fleet_marker_dir": str(tmp_path)}}

    proc = rollout(fleet, tmp_path, expect_rc=2, rollout_target="store_s001", rollout_change=other)

    assert "give a different change a new id" in proc.stdout
    assert applied(tmp_path) == {"s001": 1}


def test_weekly_change_id_has_iso_week(fleet, tmp_path):
    weekly = {
        "id": "os-patch",
        "recurring": "weekly",
        "vars": {"fleet_version": "patch", "fleet_marker_dir": str(tmp_path / "applied")},
    }

    rollout(fleet, tmp_path, expect_rc=0, rollout_target="store_s002", rollout_change=weekly)

    year, week, _day = datetime.datetime.now(datetime.UTC).isocalendar()
    change = f"os-patch-{year}-W{week:02d}"
    assert summary(tmp_path, change)["status"] == "completed"
    assert json.loads((tmp_path / "state" / change / "change-vars.json").read_text())["rollout_change_id"] == change

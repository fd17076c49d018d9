"""The vision service as deployed: CLI process, /healthz, /metrics, events on the broker, clean shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from retail_edge.vision.app import create_app
from retail_edge.vision.events import check_payload
from retail_edge.vision.service import VisionService
from retail_edge.vision.settings import MQTT_PASSWORD_ENV, settings_from_mapping
from retail_edge.vision.zones import ASSIST_NEEDED, QUEUE_EXCEEDED
from tests.fixtures_vision import MQTT_PASSWORD, build_red_detector_model
from tests.support import ROOT, free_port, wait_for_port

LEFT_BOTTOM = [[0.0, 0.5], [0.5, 0.5], [0.5, 1.0], [0.0, 1.0]]
# The test model reports two people whose feet stand at x = 8/64 and 24/64, y = 40/48 of the frame.
TWO_PEOPLE = ((4.0, 4.0, 12.0, 40.0, 0.0), (20.0, 4.0, 28.0, 40.0, 0.0))


def service_config(model: Path, video: Path, mqtt_port: int, http_port: int, **camera_overrides) -> dict:
    camera = {
        "id": "lab-1",
        "source": {"kind": "file", "uri": str(video), "loop": True, "realtime": True},
        "tracker": {"min_hits": 1},
        "queue_zones": [
            {"id": "lane-1", "polygon": LEFT_BOTTOM, "threshold": 1, "hold_s": 1.0, "smoothing": {"window": 3}}
        ],
        "help_zones": [{"id": "help-1", "polygon": [[0.0, 0.5], [0.25, 0.5], [0.25, 1.0], [0.0, 1.0]], "dwell_s": 1.5}],
    }
    camera.update(camera_overrides)
    return {
        "store_id": "0042",
        "mqtt": {
            "host": "127.0.0.1",
            "port": mqtt_port,
            "username": "vision-test",
            "client_id": "vision-test-service",
            "reconnect_min_delay_s": 0.2,
            "reconnect_max_delay_s": 1.0,
        },
        "detector": {"kind": "onnx", "onnx": {"model": str(model), "score_threshold": 0.05}},
        "http": {"host": "127.0.0.1", "port": http_port, "stale_after_s": 5},
        "cameras": [camera],
    }


def metric_values(text: str) -> dict[tuple[str, tuple], float]:
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def run_cli(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "retail_edge.vision.cli", *args],
        cwd=ROOT,
        env=env or cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        **kwargs,
    )


def cli_env(password: str = MQTT_PASSWORD) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env[MQTT_PASSWORD_ENV] = password
    return env


@pytest.fixture
def model(tmp_path) -> Path:
    return build_red_detector_model(tmp_path / "two-people.onnx", boxes=TWO_PEOPLE)


def test_cli_runs_service_end_to_end(tmp_path, model, vtest_avi, mosquitto, mqtt_sink):
    http_port = free_port()
    config = tmp_path / "vision.yml"
    config.write_text(yaml.safe_dump(service_config(model, vtest_avi, mosquitto.port, http_port)))
    stderr_path = tmp_path / "vision.log"
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "retail_edge.vision.cli", "--config", str(config)],
            cwd=ROOT,
            env=cli_env(),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        wait_for_port(http_port, timeout=30)
        messages = mqtt_sink.wait_for(2, timeout=30)
        with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=5) as http:
            health = http.get("/healthz")
            metrics = http.get("/metrics")
            missing = [http.get(path).status_code for path in ("/", "/snapshot", "/frame.jpg", "/stream")]
            post = http.post("/healthz")
    finally:
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=30)
    log_lines = [json.loads(line) for line in stderr_path.read_text().splitlines() if line.startswith("{")]

    assert returncode == 0, stderr_path.read_text()[-3000:]
    events = {(m.topic, check_payload(m.payload)["event"]) for m in messages}
    assert events == {
        ("store/0042/vision/lab-1/queue.threshold_exceeded", QUEUE_EXCEEDED),
        ("store/0042/vision/lab-1/assist.needed", ASSIST_NEEDED),
    }

    assert health.status_code == 200
    report = health.json()
    assert report["status"] == "ok"
    assert report["cameras"]["lab-1"]["ok"] is True
    assert report["mqtt"] == {"connected": True, "buffer_depth": 0}

    assert metrics.status_code == 200
    values = metric_values(metrics.text)
    camera = (("camera", "lab-1"),)
    assert values[("retail_edge_vision_frames_total", camera)] > 0
    assert values[("retail_edge_vision_fps", camera)] > 0
    inference = (("camera", "lab-1"), ("detector", "onnx"))
    assert values[("retail_edge_vision_inference_seconds_count", inference)] > 0
    assert values[("retail_edge_vision_events_sent_total", ())] >= 2
    assert values[("retail_edge_vision_buffer_depth", ())] == 0
    assert values[("retail_edge_vision_mqtt_connected", ())] == 1

    # No route serves pixels, and the two that exist are read-only.
    assert missing == [404, 404, 404, 404]
    assert post.status_code == 405

    logged = [line for line in log_lines if line.get("msg") == "vision event"]
    assert {(line["camera"], line["event"]) for line in logged} >= {("lab-1", QUEUE_EXCEEDED), ("lab-1", ASSIST_NEEDED)}
    assert any(line.get("msg") == "onnx detector loaded" and line["provider"] for line in log_lines)
    assert log_lines[-1]["msg"] == "vision service stopped"
    assert not any(MQTT_PASSWORD in json.dumps(line) for line in log_lines)


def test_cli_check_valid_config(tmp_path, model, vtest_avi):
    config = tmp_path / "vision.yml"
    config.write_text(yaml.safe_dump(service_config(model, vtest_avi, free_port(), free_port())))
    result = run_cli("--config", str(config), "--check")
    assert result.returncode == 0, result.stderr
    assert "valid, 1 camera(s), detector onnx" in result.stdout


def test_cli_check_invalid_config(tmp_path, model, vtest_avi):
    raw = service_config(model, vtest_avi, free_port(), free_port())
    raw["cameras"][0]["queue_zones"][0]["threshold"] = 0
    config = tmp_path / "vision.yml"
    config.write_text(yaml.safe_dump(raw))
    result = run_cli("--config", str(config), "--check")
    assert result.returncode == 2
    assert "cameras[0].queue_zones[0].threshold must be >= 1 person, got 0" in result.stderr


def test_cli_check_missing_model(tmp_path, vtest_avi):
    config = tmp_path / "vision.yml"
    config.write_text(yaml.safe_dump(service_config(tmp_path / "absent.onnx", vtest_avi, free_port(), free_port())))
    result = run_cli("--config", str(config), "--check")
    assert result.returncode == 2
    assert "absent.onnx not found" in result.stderr


def get_healthz(app) -> httpx.Response:
    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://vision") as client:
            return await client.get("/healthz")

    return asyncio.run(call())


def wait_for_status(app, status: int, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = get_healthz(app)
        if response.status_code == status:
            return response.json()
        time.sleep(0.1)
    raise AssertionError(f"/healthz did not return {status} within {timeout} s: {response.json()}")


def test_healthz_unhealthy_when_camera_stalls(tmp_path, model, vtest_avi):
    raw = service_config(model, vtest_avi, free_port(), free_port(), source={"kind": "file", "uri": str(vtest_avi)})
    raw["http"]["stale_after_s"] = 0.5
    # Without loop and realtime, the file ends after a few seconds: a camera that stopped delivering.
    service = VisionService(settings_from_mapping(raw, {MQTT_PASSWORD_ENV: "unused"}))
    app = create_app(service.health, service.metrics.registry)
    service.start()
    try:
        wait_for_status(app, 200)
        report = wait_for_status(app, 503, timeout=120)
    finally:
        service.stop(drain_timeout=0)
    assert report["status"] == "unhealthy"
    assert report["cameras"]["lab-1"]["ok"] is False
    assert report["cameras"]["lab-1"]["last_frame_age_s"] > 0.5
    # The broker port has no listener: events wait, and that alone is not unhealthy.
    assert report["mqtt"]["connected"] is False


def test_healthz_reports_pipeline_error(tmp_path, vtest_avi):
    raw = service_config(tmp_path / "later.onnx", vtest_avi, free_port(), free_port())
    build_red_detector_model(tmp_path / "later.onnx")
    settings = settings_from_mapping(raw, {MQTT_PASSWORD_ENV: "unused"})
    service = VisionService(settings)
    # A detector that breaks on the first frame, as a model with a wrong output contract would.
    service.pipelines[0].detector = BrokenDetector()
    app = create_app(service.health, service.metrics.registry)
    service.start()
    try:
        report = wait_for_status(app, 503)
    finally:
        service.stop(drain_timeout=0)
    assert report["cameras"]["lab-1"]["error"] == "RuntimeError: model output has shape [1, 5]"


class BrokenDetector:
    name = "broken"

    def detect(self, frame):
        raise RuntimeError("model output has shape [1, 5]")

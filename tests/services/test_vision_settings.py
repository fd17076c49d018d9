"""Loading and validating the vision settings file, with secrets from the environment."""

from __future__ import annotations

import textwrap

import pytest

from retail_edge.vision.settings import (
    MQTT_PASSWORD_ENV,
    SettingsError,
    SourceSettings,
    load_settings,
    settings_from_mapping,
)

EXAMPLE = """
store_id: "0042"
mqtt:
  host: 127.0.0.1
  port: 8883
  username: vision-0042
  tls:
    enabled: true
    ca_file: /etc/retail-edge/ca.pem
  buffer:
    max_events: 500
    path: /var/lib/retail-edge/vision/buffer.sqlite3
detector:
  kind: hog
  hog:
    resize_width: 640
cameras:
  - id: checkout-cam
    source:
      kind: rtsp
      uri: rtsp://198.51.100.20:554/stream1
      username: viewer
      password_env: CAMERA_CHECKOUT_PASSWORD
    detect_every: 2
    motion_gate:
      enabled: true
    queue_zones:
      - id: lane-1
        polygon: [[0.1, 0.5], [0.5, 0.5], [0.5, 1.0], [0.1, 1.0]]
        threshold: 4
        smoothing: {method: ema, tau_s: 3}
    help_zones:
      - id: tv-aisle
        polygon: [[0.6, 0.2], [1.0, 0.2], [1.0, 1.0], [0.6, 1.0]]
        dwell_s: 45
"""


def minimal(**overrides) -> dict:
    raw = {
        "store_id": "0042",
        "cameras": [{"id": "cam-1", "source": {"kind": "file", "uri": "/srv/lab/vtest.avi", "loop": True}}],
    }
    raw.update(overrides)
    return raw


def test_example_file_loads(tmp_path):
    path = tmp_path / "vision.yml"
    path.write_text(EXAMPLE)
    settings = load_settings(path, {MQTT_PASSWORD_ENV: "broker-secret"})
    assert settings.store_id == "0042"
    assert settings.mqtt.password == "broker-secret"
    assert settings.mqtt.tls.enabled
    assert settings.mqtt.buffer.max_events == 500
    assert settings.detector.hog.resize_width == 640
    (camera,) = settings.cameras
    assert camera.detect_every == 2
    assert camera.motion_gate.enabled
    assert camera.queue_zones[0].smoothing.method == "ema"
    assert camera.queue_zones[0].smoothing.tau_s == 3.0
    assert camera.queue_zones[0].polygon[0] == (0.1, 0.5)
    assert camera.help_zones[0].dwell_s == 45.0


def test_password_never_in_repr(tmp_path):
    path = tmp_path / "vision.yml"
    path.write_text(EXAMPLE)
    settings = load_settings(path, {MQTT_PASSWORD_ENV: "broker-secret"})
    assert "broker-secret" not in repr(settings)


def test_password_in_file_rejected():
    raw = minimal(mqtt={"username": "u", "password": "inline"})
    with pytest.raises(SettingsError, match=MQTT_PASSWORD_ENV):
        settings_from_mapping(raw, {})


def test_username_without_password_rejected():
    with pytest.raises(SettingsError, match="no password"):
        settings_from_mapping(minimal(mqtt={"username": "u"}), {})


def test_password_file(tmp_path):
    secret = tmp_path / "mqtt-password"
    secret.write_text("from-file\n")
    settings = settings_from_mapping(minimal(mqtt={"username": "u", "password_file": str(secret)}), {})
    assert settings.mqtt.password == "from-file"


def test_defaults_for_minimal_file():
    settings = settings_from_mapping(minimal(), {})
    assert settings.detector.kind == "hog"
    assert settings.mqtt.port == 1883
    assert settings.mqtt.protocol == "MQTTv5"
    assert settings.mqtt.buffer.path is None
    assert settings.cameras[0].source.loop


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (minimal(store_id=42), r"store_id must be a string, got 42: quote it"),
        (minimal(store_id="store/42"), r"store_id must be 1-64 letters"),
        (minimal(cameras=[]), r"cameras is empty"),
        (minimal(colour="red"), r"unknown key\(s\) colour"),
        (
            minimal(cameras=[{"id": "c", "source": {"kind": "usb", "uri": "x"}}]),
            r"cameras\[0\]\.source\.kind must be one of file, rtsp, v4l2",
        ),
        (minimal(cameras=[{"id": "c"}]), r"cameras\[0\]: missing required key\(s\) source"),
        (
            minimal(
                cameras=[
                    {
                        "id": "c",
                        "source": {"kind": "file", "uri": "x"},
                        "queue_zones": [{"id": "q", "polygon": [[0, 0], [1, 0], [1, 2]]}],
                    }
                ]
            ),
            r"cameras\[0\]\.queue_zones\[0\]\.polygon\[2\] = \(1\.0, 2\.0\) is outside 0\.\.1",
        ),
        (
            minimal(
                cameras=[
                    {
                        "id": "c",
                        "source": {"kind": "file", "uri": "x"},
                        "queue_zones": [{"id": "q", "polygon": [[0, 0], [1, 0], [1, 1]], "threshold": "many"}],
                    }
                ]
            ),
            r"cameras\[0\]\.queue_zones\[0\]\.threshold must be an integer, got 'many'",
        ),
        (
            minimal(
                cameras=[
                    {
                        "id": "c",
                        "source": {"kind": "file", "uri": "x"},
                        "queue_zones": [{"id": "z", "polygon": [[0, 0], [1, 0], [1, 1]]}],
                        "help_zones": [{"id": "z", "polygon": [[0, 0], [1, 0], [1, 1]]}],
                    }
                ]
            ),
            r"zone ids must be unique per camera, duplicated: z",
        ),
        (
            minimal(
                cameras=[
                    {
                        "id": "c",
                        "source": {"kind": "file", "uri": "x"},
                        "queue_zones": [
                            {"id": "q", "polygon": [[0, 0], [1, 0], [1, 1]], "threshold": 3, "hysteresis": 4}
                        ],
                    }
                ]
            ),
            r"hysteresis must be between 0 and threshold \(3\)",
        ),
        (minimal(detector={"kind": "onnx"}), r"detector\.onnx is missing"),
        (minimal(detector={"hog": {"scale": 1.0}}), r"detector\.hog\.scale must be > 1\.0"),
        (minimal(mqtt={"port": 70000}), r"mqtt\.port must be 1\.\.65535"),
        (minimal(mqtt={"tls": {"enabled": True, "cert_file": "/c.pem"}}), r"set cert_file and key_file together"),
    ],
)
def test_invalid_settings_name_the_key(raw, message):
    with pytest.raises(SettingsError, match=message):
        settings_from_mapping(raw, {})


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(SettingsError, match="cannot read settings file"):
        load_settings(tmp_path / "missing.yml", {})
    bad = tmp_path / "bad.yml"
    bad.write_text("store_id: [unclosed\n")
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_settings(bad, {})
    scalar = tmp_path / "scalar.yml"
    scalar.write_text("just a string\n")
    with pytest.raises(SettingsError, match="mapping at the top level"):
        load_settings(scalar, {})


def test_rtsp_credentials_come_from_environment():
    source = SourceSettings(
        kind="rtsp", uri="rtsp://198.51.100.20:554/stream1?channel=1", username="viewer", password_env="CAM_PW"
    )
    source.validate("source")
    assert (
        source.resolved_uri({"CAM_PW": "p@ss:w/rd"})
        == "rtsp://viewer:p%40ss%3Aw%2Frd@198.51.100.20:554/stream1?channel=1"
    )
    with pytest.raises(SettingsError, match="CAM_PW"):
        source.resolved_uri({})


def test_rtsp_password_in_uri_rejected():
    source = SourceSettings(kind="rtsp", uri="rtsp://viewer:secret@198.51.100.20/stream1")
    with pytest.raises(SettingsError, match="contains a password"):
        source.validate("cameras[0].source")


def test_v4l2_camera_from_yaml(tmp_path):
    path = tmp_path / "vision.yml"
    path.write_text(
        textwrap.dedent(
            """
            store_id: s1
            cameras:
              - id: c1
                source: {kind: v4l2, uri: /dev/video0, width: 1280, height: 720, fps: 15}
                help_zones:
                  - {id: h1, polygon: [[0, 0], [1, 0], [1, 1]], dwell_s: 1}
            """
        )
    )
    settings = load_settings(path, {})
    assert settings.cameras[0].source.width == 1280
    assert settings.cameras[0].source.fps == 15.0
    assert settings.cameras[0].help_zones[0].polygon == [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0)]

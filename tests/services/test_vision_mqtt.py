"""Events to a real mosquitto broker: auth, buffering while it is down, delivery after restarts, privacy."""

from __future__ import annotations

import json
import logging
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from retail_edge.vision.buffer import MemoryBuffer, SqliteBuffer
from retail_edge.vision.detectors import HogDetector
from retail_edge.vision.events import (
    MAX_PAYLOAD_BYTES,
    EventRejected,
    VisionEvent,
    check_payload,
    encode_event,
    event_topic,
)
from retail_edge.vision.metrics import VisionMetrics
from retail_edge.vision.pipeline import CameraPipeline
from retail_edge.vision.publisher import MqttPublisher
from retail_edge.vision.settings import (
    BufferSettings,
    CameraSettings,
    HelpZoneSettings,
    HogSettings,
    MqttSettings,
    QueueZoneSettings,
    SettingsError,
    SmoothingSettings,
    SourceSettings,
    TlsSettings,
    TrackerSettings,
)
from retail_edge.vision.sources import FrameSource
from retail_edge.vision.zones import ASSIST_NEEDED, QUEUE_EXCEEDED, QUEUE_LENGTH
from tests.fixtures_vision import MqttSink, make_test_ca

WHOLE_FRAME = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]
# Byte sequences that start common image formats, and the prefix of an inline image.
IMAGE_MARKERS = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"RIFF", b"data:image")


def mqtt_settings(broker, **overrides) -> MqttSettings:
    values = {
        "host": "127.0.0.1",
        "port": broker.port,
        "username": broker.username,
        "password": broker.password,
        "client_id": "vision-test-publisher",
        "reconnect_min_delay_s": 0.1,
        "reconnect_max_delay_s": 0.5,
    }
    values.update(overrides)
    return MqttSettings(**values)


def make_event(number: int, camera: str = "cam-1") -> VisionEvent:
    return VisionEvent(QUEUE_LENGTH, "0042", camera, "lane-1", {"length": number, "raw_length": number, "threshold": 4})


def received_numbers(messages) -> list[int]:
    """Event lengths in arrival order, each event once (delivery is at least once)."""
    seen, numbers = set(), []
    for message in messages:
        document = check_payload(message.payload)
        if document["id"] not in seen:
            seen.add(document["id"])
            numbers.append(document["data"]["length"])
    return numbers


def sample(metrics: VisionMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# -- encoding -----------------------------------------------------------------------------------------


def test_payload_is_small_json():
    event = VisionEvent(QUEUE_EXCEEDED, "0042", "cam-1", "lane-1", {"length": 5.5, "raw_length": 6, "threshold": 4})
    payload = encode_event(event)
    document = json.loads(payload)
    assert list(document) == ["v", "id", "event", "store_id", "camera", "zone", "time", "data"]
    assert document["event"] == QUEUE_EXCEEDED
    assert document["time"].endswith("Z")
    assert document["data"] == {"length": 5.5, "raw_length": 6, "threshold": 4}
    assert len(payload) < 300
    assert check_payload(payload) == document


def test_topic_layout():
    assert event_topic("store", "0042", "cam-1", ASSIST_NEEDED) == "store/0042/vision/cam-1/assist.needed"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"frame": "iVBORw0KGgoAAAANSUhEUgAA"}, "must be a finite number"),
        ({"crop": [0, 1, 2]}, "must be a finite number"),
        ({"pixels": b"\x89PNG"}, "must be a finite number"),
        ({"flag": True}, "must be a finite number"),
        ({"length": float("nan")}, "must be a finite number"),
        ({f"k{i}": i for i in range(17)}, "at most 16"),
        ({"bad key/with slash": 1}, "not a short identifier"),
    ],
)
def test_encoder_rejects_non_numeric_data(data, message):
    with pytest.raises(EventRejected, match=message):
        encode_event(VisionEvent(QUEUE_LENGTH, "0042", "cam-1", "lane-1", data))


def test_encoder_rejects_unknown_event_and_bad_ids():
    with pytest.raises(EventRejected, match="unknown event name"):
        encode_event(VisionEvent("frame.snapshot", "0042", "cam-1", "lane-1", {}))
    with pytest.raises(EventRejected, match="camera"):
        encode_event(VisionEvent(QUEUE_LENGTH, "0042", "cam/#", "lane-1", {}))


def test_check_payload_rejects_image_bytes():
    with pytest.raises(EventRejected, match="not UTF-8 JSON"):
        check_payload(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(EventRejected, match="bytes, the limit"):
        check_payload(b"{" + b" " * MAX_PAYLOAD_BYTES + b"}")


# -- buffers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_buffer_drops_oldest_when_full(tmp_path, kind):
    buffer = MemoryBuffer(3) if kind == "memory" else SqliteBuffer(tmp_path / "b.sqlite3", 3)
    seqs = [buffer.append("t", f"{n}".encode()) for n in range(5)]
    assert seqs == sorted(seqs)
    assert len(buffer) == 3
    assert buffer.dropped == 2
    assert [e.payload for e in buffer.after(0, 10)] == [b"2", b"3", b"4"]
    assert [e.payload for e in buffer.after(seqs[2], 1)] == [b"3"]
    buffer.remove(seqs[3])
    assert [e.payload for e in buffer.after(0, 10)] == [b"2", b"4"]
    buffer.close()


def test_sqlite_buffer_survives_reopen(tmp_path):
    path = tmp_path / "buffer.sqlite3"
    first = SqliteBuffer(path, 10)
    first.append("store/0042/vision/cam-1/queue.length", b"{}")
    first.close()
    second = SqliteBuffer(path, 10)
    (event,) = second.after(0, 10)
    assert (event.topic, event.payload) == ("store/0042/vision/cam-1/queue.length", b"{}")
    assert second.append("t", b"x") > event.seq
    second.close()


# -- against mosquitto --------------------------------------------------------------------------------


def test_events_reach_broker_with_auth(mosquitto, mqtt_sink):
    metrics = VisionMetrics()
    publisher = MqttPublisher(mqtt_settings(mosquitto), metrics)
    publisher.start()
    try:
        for number in range(5):
            assert publisher.publish(make_event(number))
        messages = mqtt_sink.wait_for(5)
        assert publisher.wait_drained(10)
    finally:
        publisher.stop()
    assert {m.topic for m in messages} == {"store/0042/vision/cam-1/queue.length"}
    assert received_numbers(messages) == [0, 1, 2, 3, 4]
    assert sample(metrics, "retail_edge_vision_events_sent_total") == 5
    assert sample(metrics, "retail_edge_vision_buffer_depth") == 0


def test_wrong_password_refused_and_buffered(mosquitto, caplog):
    publisher = MqttPublisher(mqtt_settings(mosquitto, password="wrong", client_id="vision-test-wrong"))
    with caplog.at_level(logging.ERROR, logger="retail_edge.vision.publisher"):
        publisher.start()
        try:
            publisher.publish(make_event(1))
            wait_until(
                lambda: any(r.getMessage() == "mqtt connection refused" for r in caplog.records), 10, "a refusal"
            )
            assert not publisher.connected
            assert publisher.buffer_depth == 1
        finally:
            publisher.stop(drain_timeout=0)


def test_events_reach_broker_over_tls(mosquitto_tls):
    sink = MqttSink(mosquitto_tls)
    tls_port, ca_file, _cert, _key = mosquitto_tls.tls
    settings = mqtt_settings(mosquitto_tls, port=tls_port, tls=TlsSettings(enabled=True, ca_file=str(ca_file)))
    publisher = MqttPublisher(settings)
    publisher.start()
    try:
        for number in range(3):
            publisher.publish(make_event(number))
        assert publisher.wait_drained(20)
        messages = sink.wait_for(3)
    finally:
        publisher.stop()
        sink.close()
    assert received_numbers(messages) == [0, 1, 2]


def test_tls_with_unknown_ca_never_connects(mosquitto_tls, tmp_path, caplog):
    other_ca, _other_key = make_test_ca(tmp_path, "other-ca")
    tls_port = mosquitto_tls.tls[0]
    settings = mqtt_settings(mosquitto_tls, port=tls_port, tls=TlsSettings(enabled=True, ca_file=str(other_ca)))
    publisher = MqttPublisher(settings)
    with caplog.at_level(logging.WARNING, logger="retail_edge.vision.publisher"):
        publisher.start()
        try:
            publisher.publish(make_event(1))
            wait_until(
                lambda: sum(r.getMessage().startswith("mqtt connection failed") for r in caplog.records) >= 2,
                15,
                "two failed TLS handshakes",
            )
            assert not publisher.connected
            assert publisher.buffer_depth == 1
        finally:
            publisher.stop(drain_timeout=0)


def test_missing_tls_files_rejected(tmp_path):
    tls = TlsSettings(enabled=True, ca_file=str(tmp_path / "absent-ca.pem"))
    with pytest.raises(SettingsError, match=r"mqtt\.tls: cannot load the CA file"):
        MqttPublisher(MqttSettings(port=8883, tls=tls))


def test_anonymous_client_refused(mosquitto):
    refused = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="vision-test-anonymous")
    client.on_connect = lambda c, u, f, reason, p: refused.append(reason.is_failure)
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    try:
        wait_until(lambda: refused, 10, "CONNACK")
    finally:
        client.loop_stop()
        client.disconnect()
    assert refused == [True]


def test_events_buffered_while_broker_down(mosquitto, mqtt_sink):
    metrics = VisionMetrics()
    publisher = MqttPublisher(mqtt_settings(mosquitto), metrics)
    publisher.start()
    try:
        for number in range(3):
            publisher.publish(make_event(number))
        mqtt_sink.wait_for(3)

        mosquitto.stop()
        wait_until(lambda: not publisher.connected, 10, "the publisher to notice the broker is gone")
        for number in range(3, 23):
            publisher.publish(make_event(number))
        time.sleep(0.5)
        assert publisher.buffer_depth == 20
        assert sample(metrics, "retail_edge_vision_buffer_depth") == 20
        assert sample(metrics, "retail_edge_vision_mqtt_connected") == 0

        mosquitto.start()
        assert publisher.wait_drained(20), f"{publisher.buffer_depth} events still buffered"
        messages = mqtt_sink.wait_for(23)
    finally:
        publisher.stop()
    assert received_numbers(messages) == list(range(23))
    assert sample(metrics, "retail_edge_vision_events_sent_total") >= 23


def test_persisted_buffer_delivered_after_service_restart(mosquitto, mqtt_sink, tmp_path):
    buffer_path = tmp_path / "vision-buffer.sqlite3"
    settings = mqtt_settings(mosquitto, buffer=BufferSettings(max_events=100, path=str(buffer_path)))
    mosquitto.stop()

    first = MqttPublisher(settings)
    first.start()
    for number in range(10):
        first.publish(make_event(number))
    first.stop(drain_timeout=0)

    mosquitto.start()
    second = MqttPublisher(settings)
    assert second.buffer_depth == 10
    second.start()
    try:
        assert second.wait_drained(20)
        messages = mqtt_sink.wait_for(10)
    finally:
        second.stop()
    assert received_numbers(messages) == list(range(10))


def test_buffer_overflow_drops_oldest_and_counts(mosquitto, mqtt_sink):
    metrics = VisionMetrics()
    settings = mqtt_settings(mosquitto, buffer=BufferSettings(max_events=5))
    mosquitto.stop()
    publisher = MqttPublisher(settings, metrics)
    publisher.start()
    try:
        for number in range(8):
            publisher.publish(make_event(number))
        assert publisher.buffer_depth == 5
        assert sample(metrics, "retail_edge_vision_events_dropped_total", reason="buffer_full") == 3
        mosquitto.start()
        assert publisher.wait_drained(20)
        messages = mqtt_sink.wait_for(5)
    finally:
        publisher.stop()
    assert received_numbers(messages) == [3, 4, 5, 6, 7]


def test_no_image_data_leaves_the_process(mosquitto, mqtt_sink, vtest_avi):
    """Real footage through HOG, tracker and zones to the broker: every message is a small event document."""
    camera = CameraSettings(
        id="lab-1",
        source=SourceSettings(kind="file", uri=str(vtest_avi)),
        tracker=TrackerSettings(min_hits=1),
        queue_zones=[
            QueueZoneSettings(
                id="square",
                polygon=WHOLE_FRAME,
                threshold=1,
                hold_s=0.5,
                clear_hold_s=0.5,
                smoothing=SmoothingSettings(window=1),
                report_interval_s=0.5,
            )
        ],
        help_zones=[HelpZoneSettings(id="square-help", polygon=WHOLE_FRAME, dwell_s=0.5, cooldown_s=0.5)],
    )
    publisher = MqttPublisher(mqtt_settings(mosquitto))
    publisher.start()
    pipeline = CameraPipeline("0042", camera, HogDetector(HogSettings()), publisher.publish)
    produced = []
    try:
        for frame in FrameSource(camera.source, camera.id).frames():
            produced += pipeline.process(frame).events
            if frame.index == 15:
                break
        assert publisher.wait_drained(20)
        messages = mqtt_sink.wait_for(len(produced))
    finally:
        publisher.stop()

    assert {event.event for event in produced} >= {QUEUE_LENGTH, ASSIST_NEEDED}
    assert len(messages) == len(produced)
    for message in messages:
        assert message.topic.startswith("store/0042/vision/lab-1/")
        assert len(message.payload) <= MAX_PAYLOAD_BYTES
        assert not any(marker in message.payload for marker in IMAGE_MARKERS)
        document = check_payload(message.payload)
        assert message.topic.endswith("/" + document["event"])

"""Fixtures of the vision tests: a real mosquitto broker with password auth, footage paths, an MQTT sink."""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.support import free_port, wait_for_port

OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
VTEST_AVI = OPENCV_DATA / "vtest.avi"
BASKETBALL = (OPENCV_DATA / "basketball1.png", OPENCV_DATA / "basketball2.png")
MQTT_USER = "vision-test"
MQTT_PASSWORD = "s3cret-for-tests"


@dataclass
class MosquittoBroker:
    """A mosquitto process on a free loopback port, with its own config, password file and data dir."""

    directory: Path
    port: int
    username: str = MQTT_USER
    password: str = MQTT_PASSWORD
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.directory / "mosquitto.log"
        password_file = self.directory / "passwd"
        subprocess.run(
            ["mosquitto_passwd", "-b", "-c", str(password_file), self.username, self.password],
            check=True,
            capture_output=True,
        )
        password_file.chmod(0o600)
        # Persistence keeps the test subscriber's session and its queued messages across a broker restart.
        config = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous false",
            f"password_file {password_file}",
            "persistence true",
            f"persistence_location {self.directory}/",
            f"log_dest file {self.log_path}",
            "log_type all",
            # Started as root, mosquitto would switch to the 'mosquitto' user and lose access to these files.
            f"user {getpass.getuser()}",
        ]
        (self.directory / "mosquitto.conf").write_text("\n".join(config) + "\n")

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["mosquitto", "-c", str(self.directory / "mosquitto.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(self.port, timeout=15)
        except TimeoutError as exc:
            raise AssertionError(f"mosquitto did not listen on {self.port}:\n{self.log_text()[-3000:]}") from exc

    def stop(self) -> None:
        """Stop with SIGTERM so that mosquitto writes its persistence file; SIGKILL after 10 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    if shutil.which("mosquitto") is None or shutil.which("mosquitto_passwd") is None:
        pytest.fail("mosquitto and mosquitto_passwd are required (Debian packages mosquitto, mosquitto-clients)")
    directory = tmp_path / "mosquitto"
    directory.mkdir()
    broker = MosquittoBroker(directory, free_port())
    broker.start()
    yield broker
    broker.stop()


@dataclass
class ReceivedMessage:
    topic: str
    payload: bytes


class MqttSink:
    """A subscriber that records every message; its persistent session survives broker restarts."""

    def __init__(self, broker: MosquittoBroker, topic: str = "#") -> None:
        self.messages: list[ReceivedMessage] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._topic = topic
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"vision-test-sink-{os.getpid()}", clean_session=False
        )
        self._client.username_pw_set(broker.username, broker.password)
        self._client.reconnect_delay_set(min_delay=0.1, max_delay=0.5)  # type: ignore[arg-type]
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect_async("127.0.0.1", broker.port)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            raise AssertionError("test subscriber did not get a SUBACK within 10 s")

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        if not reason.is_failure:
            client.subscribe(self._topic, qos=1)

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            self.messages.append(ReceivedMessage(message.topic, bytes(message.payload)))

    def wait_for(self, count: int, timeout: float = 20.0) -> list[ReceivedMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.05)
        with self._lock:
            raise AssertionError(f"expected {count} messages within {timeout} s, got {len(self.messages)}")

    def snapshot(self) -> list[ReceivedMessage]:
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def mqtt_sink(mosquitto: MosquittoBroker) -> Iterator[MqttSink]:
    sink = MqttSink(mosquitto)
    yield sink
    sink.close()


@pytest.fixture(scope="session")
def vtest_avi() -> Path:
    if not VTEST_AVI.is_file():
        pytest.fail(f"{VTEST_AVI} is missing: install the Debian package opencv-doc")
    return VTEST_AVI

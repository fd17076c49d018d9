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
    # A second listener with TLS, when set: (port, CA file, server certificate, server key).
    tls: tuple[int, Path, Path, Path] | None = None
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
        if self.tls is not None:
            tls_port, ca_file, cert_file, key_file = self.tls
            config += [
                f"listener {tls_port} 127.0.0.1",
                f"cafile {ca_file}",
                f"certfile {cert_file}",
                f"keyfile {key_file}",
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


def make_test_ca(directory: Path, name: str) -> tuple[Path, Path]:
    """Create a self-signed CA with openssl; return (certificate, key)."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            f"/CN={name}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def make_server_certificate(directory: Path, ca_cert: Path, ca_key: Path) -> tuple[Path, Path]:
    """Issue a certificate for 127.0.0.1 (IP subjectAltName) signed by the CA; return (certificate, key)."""
    cert, key, request = directory / "server.pem", directory / "server.key", directory / "server.csr"
    extensions = directory / "server.ext"
    extensions.write_text("subjectAltName = IP:127.0.0.1\n")
    subprocess.run(
        [
            "openssl",
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(request),
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            str(request),
            "-CA",
            str(ca_cert),
            "-CAkey",
            str(ca_key),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            str(extensions),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def mosquitto_tls(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A broker with a plain listener (port) and a TLS listener (tls[0]) that shares its password file."""
    directory = tmp_path / "mosquitto-tls"
    directory.mkdir()
    ca_cert, ca_key = make_test_ca(directory, "store-ca")
    server_cert, server_key = make_server_certificate(directory, ca_cert, ca_key)
    broker = MosquittoBroker(directory, free_port(), tls=(free_port(), ca_cert, server_cert, server_key))
    broker.start()
    wait_for_port(broker.tls[0], timeout=15)
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


def build_red_detector_model(
    path: Path,
    *,
    input_size: tuple[int, int] | None = (64, 48),
    boxes: tuple[tuple[float, float, float, float, float], ...] = ((8.0, 8.0, 40.0, 44.0, 0.0),),
    opset: int = 17,
) -> Path:
    """Write an ONNX model that follows the detector contract and whose score reads the input.

    Each row of `boxes` is x1, y1, x2, y2 (input pixels) and a class id. Every row's score is the
    mean of the red input channel, so a red frame scores 1.0, a blue one 0.0 and mid-grey about 0.5:
    the tests see whether the frame was converted to RGB and scaled to 0..1. input_size None
    declares a dynamic height and width.
    """
    import onnx  # noqa: PLC0415 - only the ONNX tests need it
    from onnx import TensorProto, helper  # noqa: PLC0415

    width, height = input_size if input_size is not None else ("W", "H")
    rows = len(boxes)
    coordinates = [value for box in boxes for value in box[:4]]
    classes = [float(box[4]) for box in boxes]
    nodes = [
        helper.make_node("Constant", [], ["starts"], value=helper.make_tensor("s", TensorProto.INT64, [1], [0])),
        helper.make_node("Constant", [], ["ends"], value=helper.make_tensor("e", TensorProto.INT64, [1], [1])),
        helper.make_node("Constant", [], ["axes"], value=helper.make_tensor("a", TensorProto.INT64, [1], [1])),
        helper.make_node("Slice", ["images", "starts", "ends", "axes"], ["red"]),
        helper.make_node("ReduceMean", ["red"], ["red_mean"], axes=[1, 2, 3], keepdims=1),
        helper.make_node(
            "Constant", [], ["score_shape"], value=helper.make_tensor("ss", TensorProto.INT64, [3], [1, 1, 1])
        ),
        helper.make_node("Reshape", ["red_mean", "score_shape"], ["score_one"]),
        helper.make_node(
            "Constant", [], ["repeats"], value=helper.make_tensor("r", TensorProto.INT64, [3], [1, rows, 1])
        ),
        helper.make_node("Tile", ["score_one", "repeats"], ["scores"]),
        helper.make_node(
            "Constant", [], ["coords"], value=helper.make_tensor("c", TensorProto.FLOAT, [1, rows, 4], coordinates)
        ),
        helper.make_node(
            "Constant", [], ["classes"], value=helper.make_tensor("k", TensorProto.FLOAT, [1, rows, 1], classes)
        ),
        helper.make_node("Concat", ["coords", "scores", "classes"], ["detections"], axis=2),
    ]
    graph = helper.make_graph(
        nodes,
        "red_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, height, width])],
        [helper.make_tensor_value_info("detections", TensorProto.FLOAT, [1, rows, 6])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path

"""MQTT publisher with a local buffer: events survive broker outages and are delivered on reconnect.

Delivery is at least once. Each event enters the buffer, a sender thread hands it to paho-mqtt at
QoS 1, and it leaves the buffer on the broker's PUBACK. paho keeps unacknowledged QoS 1 messages
across reconnects and sends them again with the DUP flag. After a restart of the service the SQLite
buffer re-publishes what was never acknowledged, so a consumer may see an event twice and should
deduplicate on the event's `id`.
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from retail_edge.vision.buffer import EventBuffer, open_buffer
from retail_edge.vision.events import EventRejected, VisionEvent, encode_event, event_topic
from retail_edge.vision.metrics import VisionMetrics
from retail_edge.vision.settings import MqttSettings, SettingsError

log = logging.getLogger(__name__)

QOS_AT_LEAST_ONCE = 1
# Seconds the sender thread sleeps when there is nothing to do; acks and new events wake it earlier.
IDLE_WAIT_S = 0.5


class MqttPublisher:
    """Publishes VisionEvents to `<prefix>/<store_id>/vision/<camera>/<event>` through a bounded buffer."""

    def __init__(
        self, settings: MqttSettings, metrics: VisionMetrics | None = None, buffer: EventBuffer | None = None
    ) -> None:
        self._settings = settings
        self._metrics = metrics or VisionMetrics()
        self._buffer = buffer or open_buffer(settings.buffer.path, settings.buffer.max_events)
        self._client = self._make_client()
        self._acks: queue.SimpleQueue[tuple[int, bool]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._connected = threading.Event()
        # mid -> buffer seq for messages handed to paho and not yet acknowledged; sender thread only.
        self._inflight: dict[int, int] = {}
        self._early_acks: dict[int, bool] = {}
        self._last_handed_seq = 0
        self._dropped_reported = 0
        self._refusals = 0
        self._connect_failures = 0
        self._sender = threading.Thread(target=self._run_sender, name="mqtt-sender", daemon=True)
        self._metrics.buffer_depth.set(len(self._buffer))

    # -- public API -------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def buffer_depth(self) -> int:
        return len(self._buffer)

    def start(self) -> None:
        """Connect in the background; events published before the broker accepts the connection wait in the buffer."""
        settings = self._settings
        log.info(
            "mqtt connecting",
            extra={
                "broker": f"{settings.host}:{settings.port}",
                "tls": settings.tls.enabled,
                "user": settings.username,
            },
        )
        self._client.connect_async(settings.host, settings.port, keepalive=settings.keepalive_s)
        self._client.loop_start()
        self._sender.start()

    def publish(self, event: VisionEvent) -> bool:
        """Buffer an event for delivery; return False when the payload rules reject it (logged)."""
        try:
            payload = encode_event(event)
        except EventRejected as exc:
            log.error("event rejected", extra={"event": event.event, "camera": event.camera, "error": str(exc)})
            self._metrics.events_dropped.labels(reason="rejected").inc()
            return False
        topic = event_topic(self._settings.topic_prefix, event.store_id, event.camera, event.event)
        self._buffer.append(topic, payload)
        self._account_overflow()
        self._metrics.buffer_depth.set(len(self._buffer))
        self._wake.set()
        return True

    def wait_drained(self, timeout: float) -> bool:
        """Wait until the broker acknowledged every buffered event; return whether it did in time."""
        deadline = time.monotonic() + timeout
        while len(self._buffer) > 0:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def stop(self, drain_timeout: float = 5.0) -> None:
        """Give the broker drain_timeout seconds to acknowledge what is buffered, then disconnect."""
        if self.connected and not self.wait_drained(drain_timeout):
            log.warning("mqtt stopping with events left in the buffer", extra={"buffer_depth": len(self._buffer)})
        self._stopping.set()
        self._wake.set()
        if self._sender.is_alive():
            self._sender.join(timeout=5)
        self._client.disconnect()
        self._client.loop_stop()
        self._buffer.close()

    # -- paho callbacks (network thread) ----------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            # paho retries with backoff (at most reconnect_max_delay_s apart), and a wrong password keeps
            # failing until the settings change, so each refusal is logged with its running count.
            self._refusals += 1
            log.error(
                "mqtt connection refused",
                extra={
                    "broker": f"{self._settings.host}:{self._settings.port}",
                    "reason": str(reason),
                    "refusals": self._refusals,
                },
            )
            return
        self._refusals = 0
        self._connect_failures = 0
        log.info("mqtt connected", extra={"broker": f"{self._settings.host}:{self._settings.port}"})
        self._connected.set()
        self._metrics.mqtt_connected.set(1)
        self._wake.set()

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        # paho does not pass the OSError on; a closed port, a DNS failure and a rejected TLS certificate all end here.
        self._connect_failures += 1
        log.warning(
            "mqtt connection failed: broker unreachable or TLS handshake rejected; retrying",
            extra={
                "broker": f"{self._settings.host}:{self._settings.port}",
                "tls": self._settings.tls.enabled,
                "failures": self._connect_failures,
                "buffer_depth": len(self._buffer),
            },
        )

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        self._metrics.mqtt_connected.set(0)
        if was_connected and not self._stopping.is_set():
            log.warning(
                "mqtt disconnected; buffering events",
                extra={"reason": str(reason), "buffer_depth": len(self._buffer)},
            )

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        # paho calls this while it has its outgoing-message lock, and publish() takes the same lock, so blocking
        # here on anything the sender thread has could deadlock. The ack only goes into a queue.
        self._acks.put((mid, bool(reason.is_failure)))
        self._wake.set()

    # -- sender thread ----------------------------------------------------------------------------

    def _run_sender(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(IDLE_WAIT_S)
            self._wake.clear()
            self._process_acks()
            if self._connected.is_set():
                self._hand_over()
            self._metrics.buffer_depth.set(len(self._buffer))

    def _hand_over(self) -> None:
        room = self._settings.max_inflight - len(self._inflight)
        if room <= 0:
            return
        for buffered in self._buffer.after(self._last_handed_seq, room):
            info = self._client.publish(buffered.topic, buffered.payload, qos=QOS_AT_LEAST_ONCE)
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                # NO_CONN still queues the message inside paho; anything else means it was not taken.
                log.warning("mqtt publish not queued", extra={"topic": buffered.topic, "rc": int(info.rc)})
                return
            self._last_handed_seq = buffered.seq
            early = self._early_acks.pop(info.mid, None)
            if early is None:
                self._inflight[info.mid] = buffered.seq
            else:
                self._settle(buffered.seq, buffered.topic, failed=early)

    def _process_acks(self) -> None:
        while True:
            try:
                mid, failed = self._acks.get_nowait()
            except queue.Empty:
                return
            seq = self._inflight.pop(mid, None)
            if seq is None:
                # The PUBACK overtook publish() returning its mid; _hand_over settles it.
                self._early_acks[mid] = failed
                continue
            self._settle(seq, None, failed=failed)

    def _settle(self, seq: int, topic: str | None, *, failed: bool) -> None:
        self._buffer.remove(seq)
        if failed:
            # An MQTT 5 broker refused the message (for example its ACL denies the topic): retrying will not help.
            log.error("mqtt broker rejected an event", extra={"seq": seq, "topic": topic})
            self._metrics.events_dropped.labels(reason="rejected").inc()
        else:
            self._metrics.events_sent.inc()

    def _account_overflow(self) -> None:
        dropped = self._buffer.dropped - self._dropped_reported
        if dropped > 0:
            self._dropped_reported = self._buffer.dropped
            self._metrics.events_dropped.labels(reason="buffer_full").inc(dropped)
            log.warning(
                "event buffer full; dropped the oldest events",
                extra={"dropped": dropped, "max_events": self._settings.buffer.max_events},
            )

    # -- set-up -----------------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        settings = self._settings
        protocol = mqtt.MQTTv5 if settings.protocol == "MQTTv5" else mqtt.MQTTv311
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id or "",
            protocol=protocol,
            reconnect_on_failure=True,
        )
        client.max_inflight_messages_set(settings.max_inflight)

        # paho annotates the delays as int but sleeps on them as given, so sub-second delays work.
        client.reconnect_delay_set(
            min_delay=settings.reconnect_min_delay_s,  # type: ignore[arg-type]
            max_delay=settings.reconnect_max_delay_s,  # type: ignore[arg-type]
        )

        if settings.username is not None:
            client.username_pw_set(settings.username, settings.password)
        if settings.tls.enabled:
            try:
                client.tls_set(
                    ca_certs=settings.tls.ca_file,
                    certfile=settings.tls.cert_file,
                    keyfile=settings.tls.key_file,
                    cert_reqs=ssl.CERT_NONE if settings.tls.insecure_skip_verify else ssl.CERT_REQUIRED,
                    tls_version=ssl.PROTOCOL_TLS_CLIENT,
                )
            except (OSError, ssl.SSLError) as exc:
                raise SettingsError(
                    f"mqtt.tls: cannot load the CA file or client certificate ({exc}); "
                    "check ca_file, cert_file and key_file"
                ) from exc
            if settings.tls.insecure_skip_verify:
                client.tls_insecure_set(True)

        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

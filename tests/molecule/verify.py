"""Helpers for the testinfra verify steps of the molecule scenarios (imported through PYTHONPATH)."""

from __future__ import annotations

import os
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode


def instance_address(host) -> str:
    """Return the bridge address of a testinfra host of a lab scenario."""
    return str(host.ansible.get_variables()["ansible_host"])


@dataclass
class MqttSession:
    """An MQTT v5 client with its CONNACK reason and the messages it received."""

    client: mqtt.Client
    connack: ReasonCode | None = None
    connected: threading.Event = field(default_factory=threading.Event)
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    suback: list[ReasonCode] = field(default_factory=list)
    subscribed: threading.Event = field(default_factory=threading.Event)

    def subscribe(self, topic: str, timeout: float = 5) -> list[ReasonCode]:
        self.subscribed.clear()
        self.client.subscribe(topic, qos=1)
        assert self.subscribed.wait(timeout), f"no SUBACK for {topic} within {timeout} s"
        return self.suback

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(timeout=5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def mqtt_connect(
    address: str,
    port: int,
    username: str | None = None,
    *,
    password: str | None = None,
    ca_pem: str | None = None,
    timeout: float = 10,
) -> MqttSession:
    """Connect and wait for CONNACK; the caller checks session.connack (0 means accepted)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    session = MqttSession(client=client)
    if username is not None:
        client.username_pw_set(username, password)
    if ca_pem is not None:
        client.tls_set_context(ssl.create_default_context(cadata=ca_pem))

    def on_connect(_client, _userdata, _flags, reason_code, _properties):
        session.connack = reason_code
        session.connected.set()

    def on_message(_client, _userdata, message):
        session.messages.append((message.topic, message.payload))

    def on_subscribe(_client, _userdata, _mid, reason_codes, _properties):
        session.suback = list(reason_codes)
        session.subscribed.set()

    client.on_connect = on_connect
    client.on_message = on_message
    client.on_subscribe = on_subscribe
    client.connect(address, port, keepalive=10)
    client.loop_start()
    if not session.connected.wait(timeout):
        session.close()
        raise AssertionError(f"no CONNACK from {address}:{port} within {timeout} s")
    return session


def wait_for_messages(session: MqttSession, count: int, timeout: float = 5) -> list[tuple[str, bytes]]:
    deadline = time.monotonic() + timeout
    while len(session.messages) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return list(session.messages)


def http_get(url: str, **kwargs) -> httpx.Response:
    """GET without proxies from the environment: lab addresses are reached directly over the bridge."""
    with httpx.Client(trust_env=False, timeout=10) as client:
        return client.get(url, **kwargs)


def http_request(method: str, url: str, **kwargs) -> httpx.Response:
    """Send one request without proxies from the environment (see http_get)."""
    with httpx.Client(trust_env=False, timeout=10) as client:
        return client.request(method, url, **kwargs)


def poll(probe, timeout: float = 20, interval: float = 0.5):
    """Call probe() until it returns a truthy value or timeout seconds pass; return the last value."""
    deadline = time.monotonic() + timeout
    value = probe()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = probe()
    return value


def unit_property(host, unit: str, name: str) -> str:
    """Return one property of a systemd unit on a testinfra host (systemctl show --value)."""
    return host.check_output(f"systemctl show --property {name} --value {unit}")


def installed_wheels(host, service: str) -> list[str]:
    """Return the wheel files the python_service role copied for a service."""
    listing = host.check_output(f"ls /var/cache/retail-edge/wheels/{service}")
    return sorted(listing.split())


def run_scenario_playbook(playbook: str, extra_vars: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a playbook of the current scenario against its instances (molecule's inventory, config and vars)."""
    argv = ["ansible-playbook", "--inventory", os.environ["MOLECULE_INVENTORY_FILE"]]
    for name, value in (extra_vars or {}).items():
        argv += ["--extra-vars", f"{name}={value}"]
    argv.append(str(Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"]) / playbook))
    return subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)

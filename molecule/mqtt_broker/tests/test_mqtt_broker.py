"""Behaviour of the mqtt_broker role: logins, ACLs and the TLS listener, checked with a real MQTT client."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.molecule.verify import instance_address, mqtt_connect, wait_for_messages

PLAIN_PORT = 1883
TLS_PORT = 8883
PASSWORDS = {
    "vision": "vision-test-password",
    "inventory": "inventory-test-password",
    "monitor": "monitor-test-password",
    "pos": "pos-test-password",
}
# CONNACK reason codes of MQTT v5 (OASIS MQTT 5.0, section 3.2.2.2).
BAD_CREDENTIALS = 134
NOT_AUTHORIZED = 135


@pytest.fixture
def address(host):
    return instance_address(host)


@pytest.fixture
def login(address):
    sessions = []

    def connect(user: str, port: int = PLAIN_PORT, **kwargs):
        session = mqtt_connect(address, port, user, password=PASSWORDS[user], **kwargs)
        assert session.connack == 0, f"{user} was refused: {session.connack}"
        sessions.append(session)
        return session

    yield connect
    for session in sessions:
        session.close()


def test_mosquitto_running(host):
    service = host.service("mosquitto")
    assert service.is_running
    assert service.is_enabled


def test_password_file_hashed_and_private(host):
    passwd = host.file("/etc/mosquitto/passwd")
    assert passwd.user == "mosquitto"
    assert passwd.mode == 0o600
    content = host.check_output("sudo cat /etc/mosquitto/passwd")
    users = dict(line.split(":", 1) for line in content.splitlines())
    assert sorted(users) == sorted(PASSWORDS)
    for user, hashed in users.items():
        assert hashed.startswith("$7$"), f"{user} is not a PBKDF2-SHA512 hash of mosquitto 2"
        assert PASSWORDS[user] not in hashed


def test_no_plain_staging_file_left(host):
    assert not host.file("/etc/mosquitto/passwd.staging").exists


def test_anonymous_client_refused(address):
    session = mqtt_connect(address, PLAIN_PORT)
    session.close()
    assert session.connack.value == NOT_AUTHORIZED


def test_wrong_password_refused(address):
    wrong = "not-" + PASSWORDS["vision"]
    session = mqtt_connect(address, PLAIN_PORT, "vision", password=wrong)
    session.close()
    assert session.connack.value in {BAD_CREDENTIALS, NOT_AUTHORIZED}


def test_vision_events_reach_consumer(login):
    consumer = login("inventory")
    assert consumer.subscribe("store/0042/vision/#")[0].value == 1
    login("vision").publish("store/0042/vision/queue", b'{"lane": 3, "length": 5}')
    assert wait_for_messages(consumer, 1) == [("store/0042/vision/queue", b'{"lane": 3, "length": 5}')]


def test_publish_outside_acl_dropped(login):
    monitor = login("monitor")
    monitor.subscribe("store/0042/#")
    vision = login("vision")
    vision.publish("store/0042/pos/sales", b"forged")
    vision.publish("store/0042/vision/marker", b"allowed")
    messages = wait_for_messages(monitor, 1)
    assert ("store/0042/vision/marker", b"allowed") in messages
    assert all(topic != "store/0042/pos/sales" for topic, _ in wait_for_messages(monitor, 2, timeout=1))


def test_consumer_cannot_publish_events(login):
    monitor = login("monitor")
    monitor.subscribe("store/0042/#")
    login("inventory").publish("store/0042/vision/queue", b"forged")
    assert wait_for_messages(monitor, 1, timeout=1.5) == []


def test_read_outside_acl_not_delivered(login):
    # mosquitto 2.0 grants every SUBACK and checks read access per message at delivery.
    monitor = login("monitor")
    monitor.subscribe("store/0042/pos/#")
    consumer = login("inventory")
    consumer.subscribe("store/0042/pos/#")
    login("pos").publish("store/0042/pos/sales", b'{"sale": "S-1"}')
    assert wait_for_messages(monitor, 1) == [("store/0042/pos/sales", b'{"sale": "S-1"}')]
    assert consumer.messages == []


def test_tls_listener_with_test_ca(login):
    ca_pem = (Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "tls" / "ca.crt").read_text()
    session = login("monitor", port=TLS_PORT, ca_pem=ca_pem)
    assert session.connack == 0

"""Vision events as they leave the process: small JSON documents on per-camera MQTT topics.

`encode_event` is the only way to a payload, and it enforces the privacy rule in code. The payload
is a flat JSON object of known keys, `data` contains only numbers, every string is short, and the
whole document stays under MAX_PAYLOAD_BYTES. A frame, a crop or any other image cannot pass
through it, not even base64-encoded.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from retail_edge.vision.settings import ID_PATTERN
from retail_edge.vision.zones import EVENT_NAMES, ZoneEvent

SCHEMA_VERSION = 1
MAX_PAYLOAD_BYTES = 1024
MAX_STRING_CHARS = 64
MAX_DATA_KEYS = 16
ENVELOPE_KEYS = ("v", "id", "event", "store_id", "camera", "zone", "time", "data")


class EventRejected(ValueError):
    """An event that would break the payload rules; nothing was published."""


@dataclass(frozen=True)
class VisionEvent:
    """One event of one camera, ready to publish."""

    event: str
    store_id: str
    camera: str
    zone: str
    data: dict[str, float | int]
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @classmethod
    def from_zone_event(cls, zone_event: ZoneEvent, store_id: str, camera: str) -> VisionEvent:
        return cls(zone_event.event, store_id, camera, zone_event.zone, dict(zone_event.data))


def event_topic(prefix: str, store_id: str, camera: str, event: str) -> str:
    """Return the topic `<prefix>/<store_id>/vision/<camera>/<event>`, e.g. store/0042/vision/cam-1/assist.needed."""
    return f"{prefix}/{store_id}/vision/{camera}/{event}"


def encode_event(event: VisionEvent) -> bytes:
    """Serialize an event to its JSON payload; raise EventRejected if it breaks the payload rules."""
    if event.event not in EVENT_NAMES:
        raise EventRejected(f"unknown event name {event.event!r}; known: {', '.join(EVENT_NAMES)}")
    for name, value in (("store_id", event.store_id), ("camera", event.camera), ("zone", event.zone)):
        if not ID_PATTERN.match(value):
            raise EventRejected(f"event {name} {value!r} is not a valid id")
    if len(event.data) > MAX_DATA_KEYS:
        raise EventRejected(f"event data has {len(event.data)} keys, at most {MAX_DATA_KEYS} are allowed")
    for key, value in event.data.items():
        if not ID_PATTERN.match(key) or len(key) > MAX_STRING_CHARS:
            raise EventRejected(f"event data key {key!r} is not a short identifier")
        # bool is an int subclass but not a measurement; NaN and infinity are not valid JSON.
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise EventRejected(f"event data {key} must be a finite number, got {type(value).__name__}")

    document = {
        "v": SCHEMA_VERSION,
        "id": event.event_id,
        "event": event.event,
        "store_id": event.store_id,
        "camera": event.camera,
        "zone": event.zone,
        "time": event.time.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "data": event.data,
    }
    payload = json.dumps(document, separators=(",", ":"), allow_nan=False).encode("utf-8")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise EventRejected(f"event payload is {len(payload)} bytes, the limit is {MAX_PAYLOAD_BYTES}")
    return payload


def check_payload(payload: bytes) -> dict[str, object]:
    """Parse a received payload; raise EventRejected unless it is a small event document without image data."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise EventRejected(f"payload is {len(payload)} bytes, the limit is {MAX_PAYLOAD_BYTES}")
    try:
        document = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EventRejected(f"payload is not UTF-8 JSON: {exc}") from exc
    if not isinstance(document, dict) or tuple(document) != ENVELOPE_KEYS:
        keys = list(document) if isinstance(document, dict) else type(document).__name__
        raise EventRejected(f"payload keys are {keys}, expected {list(ENVELOPE_KEYS)}")
    for key in ENVELOPE_KEYS[1:-1]:
        value = document[key]
        if not isinstance(value, str) or len(value) > MAX_STRING_CHARS:
            raise EventRejected(f"payload field {key} must be a string of at most {MAX_STRING_CHARS} characters")
    data = document["data"]
    if not isinstance(data, dict) or not all(
        isinstance(value, int | float) and not isinstance(value, bool) for value in data.values()
    ):
        raise EventRejected("payload data must map keys to numbers only")
    return document

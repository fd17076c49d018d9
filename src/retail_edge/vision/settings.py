"""Typed settings of the vision service: one YAML file for what a role templates, environment for secrets.

The YAML file maps onto `VisionSettings`. Unknown keys, wrong types and out-of-range values raise
`SettingsError` with the dotted path of the offending key, so a templating mistake fails at start-up
and not at the first event. Secrets never live in the YAML file: the MQTT password comes from
`RETAIL_EDGE_VISION_MQTT_PASSWORD` (or a file named by `mqtt.password_file`) and RTSP passwords from
the variable that each camera's `source.password_env` names.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints
from urllib.parse import quote, urlsplit, urlunsplit

import yaml

MQTT_PASSWORD_ENV = "RETAIL_EDGE_VISION_MQTT_PASSWORD"  # noqa: S105 - a variable name, not a secret

# Store and camera ids become MQTT topic levels and metric labels: no '/', '+', '#' or spaces.
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class SettingsError(ValueError):
    """Invalid vision settings; the message names the key path and the fix."""


Point = tuple[float, float]


@dataclass(frozen=True)
class SmoothingSettings:
    """Smoothing of the raw per-frame people count before thresholds apply.

    `median` takes the median of the last `window` samples (one sample per processed frame).
    `ema` is an exponential moving average with time constant `tau_s`, so its response does not
    depend on the frame rate.
    """

    method: Literal["median", "ema"] = "median"
    window: int = 9
    tau_s: float = 2.0

    def validate(self, path: str) -> None:
        _require(self.window >= 1, f"{path}.window must be >= 1, got {self.window}")
        _require(self.tau_s > 0, f"{path}.tau_s must be > 0 seconds, got {self.tau_s}")


@dataclass(frozen=True)
class QueueZoneSettings:
    """A queue polygon with its alert rule.

    The polygon is in normalized frame coordinates (0..1, origin top left), so it survives a change
    of stream resolution. A person counts when the foot point (bottom centre of the box) is inside.
    `queue.threshold_exceeded` fires once the smoothed length stays above `threshold` for `hold_s`;
    `queue.cleared` fires once it stays at or below `threshold - hysteresis` for `clear_hold_s`.
    """

    id: str
    polygon: list[Point]
    threshold: int = 4
    hold_s: float = 30.0
    hysteresis: int = 1
    clear_hold_s: float = 15.0
    smoothing: SmoothingSettings = field(default_factory=SmoothingSettings)
    # Period of `queue.length` reports in seconds; 0 turns them off.
    report_interval_s: float = 0.0

    def validate(self, path: str) -> None:
        _validate_id(self.id, f"{path}.id")
        _validate_polygon(self.polygon, f"{path}.polygon")
        _require(self.threshold >= 1, f"{path}.threshold must be >= 1 person, got {self.threshold}")
        _require(
            0 <= self.hysteresis <= self.threshold,
            f"{path}.hysteresis must be between 0 and threshold ({self.threshold}), got {self.hysteresis}",
        )
        _require(self.hold_s >= 0, f"{path}.hold_s must be >= 0 seconds, got {self.hold_s}")
        _require(self.clear_hold_s >= 0, f"{path}.clear_hold_s must be >= 0 seconds, got {self.clear_hold_s}")
        _require(self.report_interval_s >= 0, f"{path}.report_interval_s must be >= 0, got {self.report_interval_s}")
        self.smoothing.validate(f"{path}.smoothing")


@dataclass(frozen=True)
class HelpZoneSettings:
    """A zone where a shopper who stays longer than `dwell_s` triggers `assist.needed`.

    After an alert the zone stays quiet for `cooldown_s`, so one waiting group calls one associate.
    A person who steps out for less than `exit_grace_s` keeps their dwell time (foot points jitter
    at the polygon edge).
    """

    id: str
    polygon: list[Point]
    dwell_s: float = 60.0
    cooldown_s: float = 120.0
    exit_grace_s: float = 2.0

    def validate(self, path: str) -> None:
        _validate_id(self.id, f"{path}.id")
        _validate_polygon(self.polygon, f"{path}.polygon")
        _require(self.dwell_s > 0, f"{path}.dwell_s must be > 0 seconds, got {self.dwell_s}")
        _require(self.cooldown_s >= 0, f"{path}.cooldown_s must be >= 0 seconds, got {self.cooldown_s}")
        _require(self.exit_grace_s >= 0, f"{path}.exit_grace_s must be >= 0 seconds, got {self.exit_grace_s}")


@dataclass(frozen=True)
class SourceSettings:
    """Source of a camera's frames.

    `file`: `uri` is a video file path; `loop` restarts it at the end (lab footage) and `realtime`
    paces reading to the file's frame rate. `rtsp`: `uri` is an rtsp:// URL without credentials;
    `username` and the password from the variable named by `password_env` are added at open time.
    `v4l2`: `uri` is a device path such as /dev/video0 or a device index.
    """

    kind: Literal["file", "rtsp", "v4l2"]
    uri: str
    loop: bool = False
    realtime: bool = False
    username: str | None = None
    password_env: str | None = None
    rtsp_transport: Literal["tcp", "udp"] = "tcp"
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    # Seconds between reconnect attempts of a live source (doubles up to 30 s).
    reconnect_delay_s: float = 1.0

    def validate(self, path: str) -> None:
        _require(bool(self.uri), f"{path}.uri is empty: set a file path, rtsp:// URL or /dev/videoN")
        if self.kind == "rtsp":
            parts = urlsplit(self.uri)
            _require(
                parts.scheme in {"rtsp", "rtsps"},
                f"{path}.uri must start with rtsp:// or rtsps:// for kind rtsp, got {parts.scheme or 'no scheme'}",
            )
            _require(
                parts.password is None,
                f"{path}.uri contains a password: remove it and set source.password_env to the variable holding it",
            )
        _require(self.reconnect_delay_s > 0, f"{path}.reconnect_delay_s must be > 0, got {self.reconnect_delay_s}")

    def resolved_uri(self, environ: Mapping[str, str]) -> str:
        """Return the URI to open, with RTSP credentials inserted; raise SettingsError if the secret is missing."""
        if self.kind != "rtsp" or self.username is None:
            return self.uri
        password = ""
        if self.password_env:
            if self.password_env not in environ:
                raise SettingsError(f"environment variable {self.password_env} (RTSP password) is not set")
            password = environ[self.password_env]
        parts = urlsplit(self.uri)
        userinfo = quote(self.username, safe="")
        if password:
            userinfo += ":" + quote(password, safe="")
        netloc = f"{userinfo}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class MotionGateSettings:
    """Frame skipping driven by motion.

    Detection runs only when at least `min_changed_fraction` of the (downscaled) pixels changed since
    the last detection, or after `max_skipped` frames in a row without one, so still queues are
    still refreshed.
    """

    enabled: bool = False
    min_changed_fraction: float = 0.002
    pixel_threshold: int = 25
    max_skipped: int = 10

    def validate(self, path: str) -> None:
        _require(
            0 < self.min_changed_fraction < 1,
            f"{path}.min_changed_fraction must be in (0, 1), got {self.min_changed_fraction}",
        )
        _require(1 <= self.pixel_threshold <= 255, f"{path}.pixel_threshold must be 1..255, got {self.pixel_threshold}")
        _require(self.max_skipped >= 0, f"{path}.max_skipped must be >= 0, got {self.max_skipped}")


@dataclass(frozen=True)
class TrackerSettings:
    """IoU and centroid association of detections across frames."""

    iou_threshold: float = 0.3
    # A detection whose centre lies within this many box heights of a track's centre may still match it.
    max_centroid_distance: float = 0.5
    min_hits: int = 2
    max_missed: int = 5

    def validate(self, path: str) -> None:
        _require(0 < self.iou_threshold <= 1, f"{path}.iou_threshold must be in (0, 1], got {self.iou_threshold}")
        _require(self.max_centroid_distance >= 0, f"{path}.max_centroid_distance must be >= 0")
        _require(self.min_hits >= 1, f"{path}.min_hits must be >= 1, got {self.min_hits}")
        _require(self.max_missed >= 0, f"{path}.max_missed must be >= 0, got {self.max_missed}")


@dataclass(frozen=True)
class HogSettings:
    """OpenCV's default HOG people detector (a 64x128 full-body pedestrian model)."""

    win_stride: int = 8
    padding: int = 8
    scale: float = 1.05
    hit_threshold: float = 0.0
    # Detections with an SVM score below this are dropped.
    min_score: float = 0.3
    # Resize frames to this width before detection (boxes are mapped back); None keeps the source size.
    resize_width: int | None = None

    def validate(self, path: str) -> None:
        _require(self.win_stride in {4, 8, 16}, f"{path}.win_stride must be 4, 8 or 16 pixels, got {self.win_stride}")
        _require(self.padding >= 0, f"{path}.padding must be >= 0, got {self.padding}")
        _require(self.scale > 1.0, f"{path}.scale must be > 1.0 (pyramid step), got {self.scale}")
        _require(
            self.resize_width is None or self.resize_width >= 64,
            f"{path}.resize_width must be >= 64 pixels (the HOG window width) or null, got {self.resize_width}",
        )


@dataclass(frozen=True)
class OnnxSettings:
    """An ONNX person detector; docs/vision.md describes the input and output contract."""

    model: str = ""
    # auto: CUDA when ONNX Runtime offers it, else CPU. cuda: fail at start-up unless CUDA is offered.
    provider: Literal["auto", "cuda", "cpu"] = "auto"
    score_threshold: float = 0.5
    person_class: int = 0
    # Input size for models with a dynamic spatial shape; ignored when the model fixes it.
    input_width: int | None = None
    input_height: int | None = None
    intra_op_threads: int = 1

    def validate(self, path: str) -> None:
        _require(bool(self.model), f"{path}.model is empty: set the path of the .onnx file")
        _require(0 <= self.score_threshold <= 1, f"{path}.score_threshold must be in [0, 1]")
        _require(self.intra_op_threads >= 1, f"{path}.intra_op_threads must be >= 1")


@dataclass(frozen=True)
class DetectorSettings:
    """Detector choice and its parameters."""

    kind: Literal["hog", "onnx"] = "hog"
    hog: HogSettings = field(default_factory=HogSettings)
    onnx: OnnxSettings | None = None
    # Overlapping boxes above this IoU are merged by non-maximum suppression; 0 turns NMS off.
    nms_iou: float = 0.6
    # OpenCV worker threads per process (cv2.setNumThreads); 1 keeps each camera on one core.
    opencv_threads: int = 1

    def validate(self, path: str) -> None:
        self.hog.validate(f"{path}.hog")
        if self.kind == "onnx":
            _require(self.onnx is not None, f"{path}.onnx is missing: kind onnx needs onnx.model")
        if self.onnx is not None:
            self.onnx.validate(f"{path}.onnx")
        _require(0 <= self.nms_iou <= 1, f"{path}.nms_iou must be in [0, 1], got {self.nms_iou}")
        _require(self.opencv_threads >= 0, f"{path}.opencv_threads must be >= 0")


@dataclass(frozen=True)
class CameraSettings:
    """One camera: its source, how often it is analysed and its zones."""

    id: str
    source: SourceSettings
    # Run the detector on every n-th frame; the tracker carries people across the others.
    detect_every: int = 1
    motion_gate: MotionGateSettings = field(default_factory=MotionGateSettings)
    tracker: TrackerSettings = field(default_factory=TrackerSettings)
    queue_zones: list[QueueZoneSettings] = field(default_factory=list)
    help_zones: list[HelpZoneSettings] = field(default_factory=list)

    def validate(self, path: str) -> None:
        _validate_id(self.id, f"{path}.id")
        self.source.validate(f"{path}.source")
        _require(self.detect_every >= 1, f"{path}.detect_every must be >= 1, got {self.detect_every}")
        self.motion_gate.validate(f"{path}.motion_gate")
        self.tracker.validate(f"{path}.tracker")
        zone_ids = [zone.id for zone in (*self.queue_zones, *self.help_zones)]
        duplicates = sorted({zone_id for zone_id in zone_ids if zone_ids.count(zone_id) > 1})
        _require(not duplicates, f"{path}: zone ids must be unique per camera, duplicated: {', '.join(duplicates)}")
        for index, queue_zone in enumerate(self.queue_zones):
            queue_zone.validate(f"{path}.queue_zones[{index}]")
        for index, help_zone in enumerate(self.help_zones):
            help_zone.validate(f"{path}.help_zones[{index}]")


@dataclass(frozen=True)
class TlsSettings:
    """TLS towards the broker; `ca_file` None uses the system trust store."""

    enabled: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure_skip_verify: bool = False


@dataclass(frozen=True)
class BufferSettings:
    """Events held while the broker is away.

    With `path` set, events go to an SQLite file before they are published and leave it only when the
    broker acknowledges them (PUBACK), so a restart of the service loses none. When `max_events`
    is reached the oldest event is dropped, because a recent queue alert matters more than an old one.
    """

    max_events: int = 10_000
    path: str | None = None

    def validate(self, path: str) -> None:
        _require(self.max_events >= 1, f"{path}.max_events must be >= 1, got {self.max_events}")


@dataclass(frozen=True)
class MqttSettings:
    """The MQTT broker that receives events (QoS 1)."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    password_file: str | None = None
    client_id: str | None = None
    # MQTT 5 reports a PUBACK reason code, so a publish the broker's ACL rejects is logged as such.
    protocol: Literal["MQTTv5", "MQTTv311"] = "MQTTv5"
    keepalive_s: int = 30
    topic_prefix: str = "store"
    # Messages handed to the MQTT client and not yet acknowledged.
    max_inflight: int = 20
    reconnect_min_delay_s: float = 1.0
    reconnect_max_delay_s: float = 30.0
    tls: TlsSettings = field(default_factory=TlsSettings)
    buffer: BufferSettings = field(default_factory=BufferSettings)

    def validate(self, path: str) -> None:
        _require(1 <= self.port <= 65535, f"{path}.port must be 1..65535, got {self.port}")
        _require(self.keepalive_s >= 5, f"{path}.keepalive_s must be >= 5 seconds, got {self.keepalive_s}")
        _require(self.max_inflight >= 1, f"{path}.max_inflight must be >= 1, got {self.max_inflight}")
        _require(
            0 < self.reconnect_min_delay_s <= self.reconnect_max_delay_s,
            f"{path}: need 0 < reconnect_min_delay_s <= reconnect_max_delay_s",
        )
        _require(
            ID_PATTERN.match(self.topic_prefix) is not None,
            f"{path}.topic_prefix must be one topic level of letters, digits, '_', '.', '-', got {self.topic_prefix!r}",
        )
        _require(
            (self.tls.cert_file is None) == (self.tls.key_file is None),
            f"{path}.tls: set cert_file and key_file together (client certificate) or neither",
        )
        self.buffer.validate(f"{path}.buffer")


@dataclass(frozen=True)
class HttpSettings:
    """The /healthz and /metrics listener."""

    host: str = "127.0.0.1"
    port: int = 9108
    # /healthz reports 503 when a camera delivered no frame for this many seconds.
    stale_after_s: float = 10.0


@dataclass(frozen=True)
class VisionSettings:
    """Everything the vision service needs; `load_settings` builds it."""

    store_id: str
    cameras: list[CameraSettings]
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    detector: DetectorSettings = field(default_factory=DetectorSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    def validate(self) -> None:
        _validate_id(self.store_id, "store_id")
        _require(bool(self.cameras), "cameras is empty: configure at least one camera")
        camera_ids = [camera.id for camera in self.cameras]
        _require(len(set(camera_ids)) == len(camera_ids), f"cameras: ids must be unique, got {camera_ids}")
        for index, camera in enumerate(self.cameras):
            camera.validate(f"cameras[{index}]")
        self.mqtt.validate("mqtt")
        self.detector.validate("detector")


def load_settings(path: str | Path, environ: Mapping[str, str] | None = None) -> VisionSettings:
    """Read the YAML file at path, add secrets from the environment and validate the result."""
    environ = os.environ if environ is None else environ
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"cannot read settings file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise SettingsError(f"settings file {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise SettingsError(f"settings file {path} must contain a mapping at the top level")
    return settings_from_mapping(raw, environ)


def settings_from_mapping(raw: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> VisionSettings:
    """Build and validate VisionSettings from already parsed YAML data plus secrets from environ."""
    environ = os.environ if environ is None else environ
    if "password" in (raw.get("mqtt") or {}):
        raise SettingsError(f"mqtt.password must not be in the settings file: set {MQTT_PASSWORD_ENV} or password_file")
    settings = _build(VisionSettings, raw, "")
    settings = dataclasses.replace(settings, mqtt=_with_mqtt_password(settings.mqtt, environ))
    settings.validate()
    return settings


def _with_mqtt_password(mqtt: MqttSettings, environ: Mapping[str, str]) -> MqttSettings:
    if MQTT_PASSWORD_ENV in environ:
        return dataclasses.replace(mqtt, password=environ[MQTT_PASSWORD_ENV])
    if mqtt.password_file:
        try:
            secret = Path(mqtt.password_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SettingsError(f"cannot read mqtt.password_file {mqtt.password_file}: {exc.strerror}") from exc
        return dataclasses.replace(mqtt, password=secret)
    if mqtt.username is not None:
        raise SettingsError(f"mqtt.username is set but no password: set {MQTT_PASSWORD_ENV} or mqtt.password_file")
    return mqtt


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise SettingsError(message)


def _validate_id(value: str, path: str) -> None:
    _require(
        ID_PATTERN.match(value) is not None,
        f"{path} must be 1-64 letters, digits, '_', '.' or '-' starting with a letter or digit, got {value!r}",
    )


def _validate_polygon(polygon: list[Point], path: str) -> None:
    _require(len(polygon) >= 3, f"{path} needs at least 3 points, got {len(polygon)}")
    for index, (x, y) in enumerate(polygon):
        _require(
            0.0 <= x <= 1.0 and 0.0 <= y <= 1.0,
            f"{path}[{index}] = ({x}, {y}) is outside 0..1: polygons use normalized frame coordinates",
        )


def _build(cls: type, data: Any, path: str) -> Any:
    """Convert parsed YAML into the dataclass cls, checking keys and types field by field."""
    where = path or "settings"
    if not isinstance(data, Mapping):
        raise SettingsError(f"{where} must be a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise SettingsError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; known: {', '.join(fields)}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _convert(hints[name], value, f"{path}.{name}" if path else name)
    missing = [
        name
        for name, f in fields.items()
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise SettingsError(f"{where}: missing required key(s) {', '.join(missing)}")
    return cls(**kwargs)


def _convert(hint: Any, value: Any, path: str) -> Any:  # noqa: PLR0911 - one branch per supported type
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [arg for arg in get_args(hint) if arg is not type(None)]
        if value is None:
            return None
        return _convert(options[0], value, path)
    if origin is Literal:
        allowed = get_args(hint)
        if value not in allowed:
            raise SettingsError(f"{path} must be one of {', '.join(map(str, allowed))}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise SettingsError(f"{path} must be a list, got {type(value).__name__}")
        (item_hint,) = get_args(hint)
        return [_convert(item_hint, item, f"{path}[{index}]") for index, item in enumerate(value)]
    if origin is tuple:
        item_hints = get_args(hint)
        if not isinstance(value, list | tuple) or len(value) != len(item_hints):
            raise SettingsError(f"{path} must be a list of {len(item_hints)} values, got {value!r}")
        return tuple(_convert(h, v, f"{path}[{i}]") for i, (h, v) in enumerate(zip(item_hints, value, strict=True)))
    if dataclasses.is_dataclass(hint):
        return _build(typing.cast(type, hint), value, path)
    return _convert_scalar(hint, value, path)


def _convert_scalar(hint: Any, value: Any, path: str) -> Any:
    if hint is bool:
        if not isinstance(value, bool):
            raise SettingsError(f"{path} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingsError(f"{path} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SettingsError(f"{path} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            # YAML reads an unquoted 0042 as the octal number 34, so converting back would be wrong.
            raise SettingsError(f"{path} must be a string, got {value!r}: quote it in the YAML file")
        return value
    raise SettingsError(f"{path}: unsupported settings type {hint!r}")

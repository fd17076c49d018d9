"""Prometheus metrics of the vision service, on a registry of their own so tests can build many."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Inference takes 5-50 ms for small ONNX models and 100-300 ms for HOG on one core at 768x576.
INFERENCE_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0)


class VisionMetrics:
    """Every metric that /metrics exposes; label values are camera, zone, detector and event ids."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()

        prefix = "retail_edge_vision"
        self.frames = Counter(
            f"{prefix}_frames",
            "Frames analysed (read from the source and passed to the pipeline)",
            ["camera"],
            registry=self.registry,
        )

        self.frames_dropped = Counter(
            f"{prefix}_frames_dropped",
            "Live frames replaced by a newer one before analysis could take them",
            ["camera"],
            registry=self.registry,
        )

        self.frames_skipped = Counter(
            f"{prefix}_frames_skipped",
            "Frames on which detection did not run (reason: stride or motion)",
            ["camera", "reason"],
            registry=self.registry,
        )

        self.fps = Gauge(
            f"{prefix}_fps", "Frames processed per second over the last 5 s", ["camera"], registry=self.registry
        )

        self.inference_seconds = Histogram(
            f"{prefix}_inference_seconds",
            "Time of one detector call",
            ["camera", "detector"],
            buckets=INFERENCE_BUCKETS,
            registry=self.registry,
        )

        self.people = Gauge(
            f"{prefix}_people", "Confirmed tracked people in the frame", ["camera"], registry=self.registry
        )

        self.queue_length = Gauge(
            f"{prefix}_queue_length", "Smoothed queue length", ["camera", "zone"], registry=self.registry
        )

        self.source_errors = Counter(
            f"{prefix}_source_errors", "Failed opens or reads of a frame source", ["camera"], registry=self.registry
        )

        self.events = Counter(
            f"{prefix}_events", "Events produced by the zone analytics", ["camera", "event"], registry=self.registry
        )

        self.events_sent = Counter(
            f"{prefix}_events_sent", "Events acknowledged by the MQTT broker (PUBACK)", registry=self.registry
        )

        self.events_dropped = Counter(
            f"{prefix}_events_dropped",
            "Events lost (reason: buffer_full or rejected by the broker)",
            ["reason"],
            registry=self.registry,
        )

        self.buffer_depth = Gauge(
            f"{prefix}_buffer_depth", "Events waiting for a broker acknowledgement", registry=self.registry
        )

        self.mqtt_connected = Gauge(
            f"{prefix}_mqtt_connected", "1 while connected to the broker", registry=self.registry
        )

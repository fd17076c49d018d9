"""The running vision service: one pipeline thread per camera, one MQTT publisher, health state."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import cv2

from retail_edge.vision.detectors import build_detector
from retail_edge.vision.metrics import VisionMetrics
from retail_edge.vision.pipeline import CameraPipeline
from retail_edge.vision.publisher import MqttPublisher
from retail_edge.vision.settings import VisionSettings
from retail_edge.vision.sources import FrameSource

log = logging.getLogger(__name__)


class VisionService:
    """Builds detectors, sources and pipelines from settings and runs them in threads."""

    def __init__(self, settings: VisionSettings, environ: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.metrics = VisionMetrics()
        cv2.setNumThreads(settings.detector.opencv_threads)
        self.publisher = MqttPublisher(settings.mqtt, self.metrics)
        self.pipelines: list[CameraPipeline] = []
        self._sources: list[FrameSource] = []
        for camera in settings.cameras:
            detector = build_detector(settings.detector)
            self.pipelines.append(
                CameraPipeline(settings.store_id, camera, detector, self.publisher.publish, self.metrics)
            )
            source = FrameSource(
                camera.source,
                camera.id,
                environ,
                on_error=self.metrics.source_errors.labels(camera=camera.id).inc,
                on_drop=self.metrics.frames_dropped.labels(camera=camera.id).inc,
            )
            self._sources.append(source)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started_monotonic = time.monotonic()

    def start(self) -> None:
        self._started_monotonic = time.monotonic()
        self.publisher.start()
        for pipeline, source in zip(self.pipelines, self._sources, strict=True):
            thread = threading.Thread(
                target=pipeline.run, args=(source, self._stop), name=f"camera-{pipeline.camera.id}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        log.info("vision service started", extra={"store_id": self.settings.store_id, "cameras": len(self.pipelines)})

    def stop(self, drain_timeout: float = 5.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self.publisher.stop(drain_timeout)
        log.info("vision service stopped", extra={"store_id": self.settings.store_id})

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Return (healthy, report): unhealthy when a camera failed or sent no frame for stale_after_s."""
        now = time.monotonic()
        stale_after = self.settings.http.stale_after_s
        cameras: dict[str, Any] = {}
        healthy = True
        for pipeline in self.pipelines:
            last = pipeline.last_frame_monotonic
            age = now - (last if last is not None else self._started_monotonic)
            camera_ok = pipeline.error is None and age <= stale_after
            healthy = healthy and camera_ok
            cameras[pipeline.camera.id] = {
                "ok": camera_ok,
                "last_frame_age_s": round(age, 3),
                "fps": round(pipeline.fps, 2),
                "error": pipeline.error,
            }
        report = {
            "status": "ok" if healthy else "unhealthy",
            "store_id": self.settings.store_id,
            "cameras": cameras,
            # A broker outage is not unhealthy: events wait in the buffer.
            "mqtt": {"connected": self.publisher.connected, "buffer_depth": self.publisher.buffer_depth},
        }
        return healthy, report

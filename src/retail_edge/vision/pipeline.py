"""Per-camera pipeline: frame -> (gated) detection -> tracking -> zone analytics -> events.

Frames and crops live only inside `process`. The only things that leave it are VisionEvents (numbers
and ids) handed to the publish callback, and metric values.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from retail_edge.vision.detectors import Detector
from retail_edge.vision.events import VisionEvent
from retail_edge.vision.geometry import Detection
from retail_edge.vision.metrics import VisionMetrics
from retail_edge.vision.motion import MotionGate
from retail_edge.vision.settings import CameraSettings
from retail_edge.vision.sources import Frame, FrameSource
from retail_edge.vision.tracking import IouTracker, Track
from retail_edge.vision.zones import ZoneAnalyzer

log = logging.getLogger(__name__)

FPS_WINDOW_S = 5.0


@dataclass(frozen=True)
class FrameResult:
    """Output of one processed frame; `detections` is empty on frames where detection was skipped."""

    index: int
    timestamp: float
    detected: bool
    detections: list[Detection]
    tracks: list[Track]
    events: list[VisionEvent] = field(default_factory=list)


class CameraPipeline:
    """Runs one camera's analytics; `process` is callable frame by frame (tests, benchmark)."""

    def __init__(
        self,
        store_id: str,
        camera: CameraSettings,
        detector: Detector,
        publish: Callable[[VisionEvent], object],
        metrics: VisionMetrics | None = None,
    ) -> None:
        self.store_id = store_id
        self.camera = camera
        self.detector = detector
        self._publish = publish
        self._metrics = metrics or VisionMetrics()
        self._tracker = IouTracker(camera.tracker)
        self._analyzer = ZoneAnalyzer(camera.queue_zones, camera.help_zones)
        self._gate = MotionGate(camera.motion_gate) if camera.motion_gate.enabled else None
        self._processed_at: deque[float] = deque()
        self.last_frame_monotonic: float | None = None
        self.fps = 0.0
        self.error: str | None = None
        self.finished = False

    @property
    def analyzer(self) -> ZoneAnalyzer:
        return self._analyzer

    def process(self, frame: Frame) -> FrameResult:
        camera_id = self.camera.id
        self._metrics.frames.labels(camera=camera_id).inc()

        skip_reason = None
        if frame.index % self.camera.detect_every != 0:
            skip_reason = "stride"
        elif self._gate is not None and not self._gate.should_detect(frame.image):
            skip_reason = "motion"

        detections: list[Detection] = []
        if skip_reason is None:
            started = time.perf_counter()
            detections = self.detector.detect(frame.image)
            elapsed = time.perf_counter() - started
            self._metrics.inference_seconds.labels(camera=camera_id, detector=self.detector.name).observe(elapsed)
            tracks = self._tracker.update(detections)
        else:
            self._metrics.frames_skipped.labels(camera=camera_id, reason=skip_reason).inc()
            tracks = self._tracker.tracks

        events = []
        for zone_event in self._analyzer.update(frame.timestamp, tracks, frame.width, frame.height):
            event = VisionEvent.from_zone_event(zone_event, self.store_id, camera_id)
            events.append(event)
            self._metrics.events.labels(camera=camera_id, event=event.event).inc()
            log.info(
                "vision event",
                extra={"camera": camera_id, "zone": event.zone, "event": event.event, "event_id": event.event_id},
            )
            self._publish(event)

        self._update_gauges(tracks)
        return FrameResult(frame.index, frame.timestamp, skip_reason is None, detections, tracks, events)

    def _update_gauges(self, tracks: list[Track]) -> None:
        now = time.monotonic()
        self.last_frame_monotonic = now
        self._processed_at.append(now)
        while self._processed_at and now - self._processed_at[0] > FPS_WINDOW_S:
            self._processed_at.popleft()
        if len(self._processed_at) >= 2:
            self.fps = (len(self._processed_at) - 1) / max(now - self._processed_at[0], 1e-9)
        self._metrics.fps.labels(camera=self.camera.id).set(self.fps)
        self._metrics.people.labels(camera=self.camera.id).set(len(tracks))
        for queue in self._analyzer.queues:
            self._metrics.queue_length.labels(camera=self.camera.id, zone=queue.settings.id).set(queue.length)

    def run(self, source: FrameSource, stop: threading.Event) -> None:
        """Process frames until the source ends or stop is set; record a fatal error in `error`."""
        log.info("camera pipeline started", extra={"camera": self.camera.id, "detector": self.detector.name})
        try:
            for frame in source.frames(stop):
                self.process(frame)
        except Exception as exc:  # a broken source or model must not kill the other cameras
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("camera pipeline failed", extra={"camera": self.camera.id})
        finally:
            self.finished = True
            log.info("camera pipeline stopped", extra={"camera": self.camera.id})

"""Queue and help-zone analytics: pure functions of timestamps and tracked boxes.

Nothing here reads a clock, a frame or the network, so tests drive it with scripted detections and
exact timestamps. Times are seconds on any monotonic scale (media time for files, monotonic clock
for live cameras).
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from retail_edge.vision.geometry import point_in_polygon
from retail_edge.vision.settings import HelpZoneSettings, QueueZoneSettings, SmoothingSettings
from retail_edge.vision.tracking import Track

QUEUE_EXCEEDED = "queue.threshold_exceeded"
QUEUE_CLEARED = "queue.cleared"
QUEUE_LENGTH = "queue.length"
ASSIST_NEEDED = "assist.needed"
EVENT_NAMES = (QUEUE_EXCEEDED, QUEUE_CLEARED, QUEUE_LENGTH, ASSIST_NEEDED)


@dataclass(frozen=True)
class ZoneEvent:
    """Something a zone noticed; `data` contains only numbers (see events.VisionEvent)."""

    event: str
    zone: str
    data: dict[str, float | int] = field(default_factory=dict)


class MedianSmoother:
    """Median of the last `window` samples; robust to single-frame misses and false positives."""

    def __init__(self, window: int) -> None:
        self._samples: deque[float] = deque(maxlen=window)

    def add(self, timestamp: float, value: float) -> float:
        self._samples.append(value)
        return float(statistics.median(self._samples))


class EmaSmoother:
    """Exponential moving average with time constant tau_s, independent of the frame rate."""

    def __init__(self, tau_s: float) -> None:
        self._tau_s = tau_s
        self._value: float | None = None
        self._last_timestamp = 0.0

    def add(self, timestamp: float, value: float) -> float:
        if self._value is None:
            self._value = value
        else:
            alpha = 1.0 - math.exp(-max(timestamp - self._last_timestamp, 0.0) / self._tau_s)
            self._value += alpha * (value - self._value)
        self._last_timestamp = timestamp
        return self._value


def make_smoother(settings: SmoothingSettings) -> MedianSmoother | EmaSmoother:
    if settings.method == "ema":
        return EmaSmoother(settings.tau_s)
    return MedianSmoother(settings.window)


def normalized_foot_point(track: Track, frame_width: int, frame_height: int) -> tuple[float, float]:
    x, y = track.box.foot_point
    return (x / frame_width, y / frame_height)


class QueueMonitor:
    """Counts people in one queue polygon and raises and clears the long-queue alert.

    The alert fires when the smoothed length stays strictly above `threshold` for `hold_s`. It clears
    when the length stays at or below `threshold - hysteresis` for `clear_hold_s`. Lengths between
    the two leave the state unchanged, so a queue hovering around the threshold does not flap.
    """

    def __init__(self, settings: QueueZoneSettings) -> None:
        self.settings = settings
        self._smoother = make_smoother(settings.smoothing)
        self.exceeded = False
        self.length = 0.0
        self._above_since: float | None = None
        self._below_since: float | None = None
        self._exceeded_at = 0.0
        self._last_report: float | None = None

    def count(self, tracks: Sequence[Track], frame_width: int, frame_height: int) -> int:
        polygon = self.settings.polygon
        return sum(
            1 for track in tracks if point_in_polygon(normalized_foot_point(track, frame_width, frame_height), polygon)
        )

    def update(self, timestamp: float, raw_count: int) -> list[ZoneEvent]:
        self.length = self._smoother.add(timestamp, float(raw_count))
        events = self._update_alert(timestamp, raw_count)

        interval = self.settings.report_interval_s
        if interval > 0 and (self._last_report is None or timestamp - self._last_report >= interval):
            self._last_report = timestamp
            events.append(self._event(QUEUE_LENGTH, raw_count))
        return events

    def _update_alert(self, timestamp: float, raw_count: int) -> list[ZoneEvent]:
        settings = self.settings
        if not self.exceeded:
            if self.length <= settings.threshold:
                self._above_since = None
                return []
            if self._above_since is None:
                self._above_since = timestamp
            if timestamp - self._above_since < settings.hold_s:
                return []
            self.exceeded = True
            self._exceeded_at = timestamp
            self._below_since = None
            return [self._event(QUEUE_EXCEEDED, raw_count, above_for_s=timestamp - self._above_since)]

        if self.length > settings.threshold - settings.hysteresis:
            self._below_since = None
            return []
        if self._below_since is None:
            self._below_since = timestamp
        if timestamp - self._below_since < settings.clear_hold_s:
            return []
        self.exceeded = False
        self._above_since = None
        return [self._event(QUEUE_CLEARED, raw_count, exceeded_for_s=timestamp - self._exceeded_at)]

    def _event(self, name: str, raw_count: int, **extra: float) -> ZoneEvent:
        data: dict[str, float | int] = {
            "length": round(self.length, 2),
            "raw_length": raw_count,
            "threshold": self.settings.threshold,
        }
        data.update({key: round(value, 3) for key, value in extra.items()})
        return ZoneEvent(name, self.settings.id, data)


@dataclass
class _Visit:
    entered_at: float
    last_inside: float
    alerted: bool = False


class HelpZoneMonitor:
    """Measures how long each tracked person stays in one help zone and requests an associate.

    `assist.needed` fires once per visit when a person has been inside for `dwell_s`. Stepping out
    for up to `exit_grace_s` does not end a visit, and a track that disappears ends it. After an
    alert, the zone stays quiet for `cooldown_s`, and visits that reach the dwell time meanwhile are
    counted as served by that alert.
    """

    def __init__(self, settings: HelpZoneSettings) -> None:
        self.settings = settings
        self._visits: dict[int, _Visit] = {}
        self._last_alert: float | None = None

    @property
    def people_inside(self) -> int:
        return len(self._visits)

    def update(self, timestamp: float, tracks: Sequence[Track], frame_width: int, frame_height: int) -> list[ZoneEvent]:
        settings = self.settings
        present_ids = set()
        for track in tracks:
            present_ids.add(track.track_id)
            if point_in_polygon(normalized_foot_point(track, frame_width, frame_height), settings.polygon):
                visit = self._visits.setdefault(track.track_id, _Visit(timestamp, timestamp))
                visit.last_inside = timestamp

        for track_id, visit in list(self._visits.items()):
            gone = track_id not in present_ids
            if gone or timestamp - visit.last_inside > settings.exit_grace_s:
                del self._visits[track_id]

        events = []
        for track_id, visit in sorted(self._visits.items()):
            dwell = timestamp - visit.entered_at
            if visit.alerted or dwell < settings.dwell_s:
                continue
            visit.alerted = True
            if self._last_alert is not None and timestamp - self._last_alert < settings.cooldown_s:
                continue
            self._last_alert = timestamp
            data: dict[str, float | int] = {
                "track_id": track_id,
                "dwell_s": round(dwell, 3),
                "people_in_zone": len(self._visits),
            }
            events.append(ZoneEvent(ASSIST_NEEDED, settings.id, data))
        return events


class ZoneAnalyzer:
    """All queue and help zones of one camera."""

    def __init__(self, queue_zones: Sequence[QueueZoneSettings], help_zones: Sequence[HelpZoneSettings]) -> None:
        self.queues = [QueueMonitor(zone) for zone in queue_zones]
        self.help_zones = [HelpZoneMonitor(zone) for zone in help_zones]

    def update(self, timestamp: float, tracks: Sequence[Track], frame_width: int, frame_height: int) -> list[ZoneEvent]:
        """Feed one processed frame's tracks; return the events it caused, queues first."""
        events: list[ZoneEvent] = []
        for queue in self.queues:
            events += queue.update(timestamp, queue.count(tracks, frame_width, frame_height))
        for help_zone in self.help_zones:
            events += help_zone.update(timestamp, tracks, frame_width, frame_height)
        return events

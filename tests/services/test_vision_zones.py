"""Queue length, long-queue alerts with hysteresis and help-zone dwell, driven by scripted detections."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from retail_edge.vision.geometry import Detection, iou, non_max_suppression, point_in_polygon
from retail_edge.vision.pipeline import CameraPipeline
from retail_edge.vision.settings import (
    CameraSettings,
    HelpZoneSettings,
    QueueZoneSettings,
    SmoothingSettings,
    SourceSettings,
    TrackerSettings,
)
from retail_edge.vision.sources import Frame
from retail_edge.vision.tracking import IouTracker, Track
from retail_edge.vision.zones import (
    ASSIST_NEEDED,
    QUEUE_CLEARED,
    QUEUE_EXCEEDED,
    QUEUE_LENGTH,
    EmaSmoother,
    HelpZoneMonitor,
    MedianSmoother,
    QueueMonitor,
)

# Scripted frames are 100 x 100 pixels, so pixel 50 is normalized 0.5.
FRAME = 100
LEFT_BOTTOM = [(0.0, 0.5), (0.5, 0.5), (0.5, 1.0), (0.0, 1.0)]
RIGHT_HALF = [(0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0)]


def person(foot_x: float, foot_y: float, height: float = 20.0) -> Detection:
    """A 10-pixel-wide person box standing at (foot_x, foot_y)."""
    return Detection(foot_x - 5, foot_y - height, foot_x + 5, foot_y, 0.9)


def tracks_at(*feet: tuple[float, float]) -> list[Track]:
    return [Track(track_id=index + 1, box=person(x, y)) for index, (x, y) in enumerate(feet)]


def queue_zone(**overrides) -> QueueZoneSettings:
    values = {
        "id": "checkout-1",
        "polygon": LEFT_BOTTOM,
        "threshold": 2,
        "hold_s": 3.0,
        "hysteresis": 1,
        "clear_hold_s": 2.0,
        "smoothing": SmoothingSettings(method="median", window=1),
    }
    values.update(overrides)
    return QueueZoneSettings(**values)


def run_counts(monitor: QueueMonitor, counts: Sequence[int], step_s: float = 1.0) -> list[tuple[float, str]]:
    fired = []
    for index, count in enumerate(counts):
        timestamp = index * step_s
        fired += [(timestamp, event.event) for event in monitor.update(timestamp, count)]
    return fired


# -- geometry -----------------------------------------------------------------------------------------


def test_point_in_polygon_square():
    assert point_in_polygon((0.25, 0.75), LEFT_BOTTOM)
    assert not point_in_polygon((0.75, 0.75), LEFT_BOTTOM)
    assert not point_in_polygon((0.25, 0.25), LEFT_BOTTOM)


def test_point_in_polygon_concave():
    # An L shape: the notch at the top right is outside.
    l_shape = [(0.0, 0.0), (0.4, 0.0), (0.4, 0.6), (1.0, 0.6), (1.0, 1.0), (0.0, 1.0)]
    assert point_in_polygon((0.2, 0.2), l_shape)
    assert point_in_polygon((0.8, 0.8), l_shape)
    assert not point_in_polygon((0.8, 0.2), l_shape)


def test_iou_values():
    box = Detection(0, 0, 10, 10)
    assert iou(box, box) == pytest.approx(1.0)
    assert iou(box, Detection(5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou(box, Detection(20, 20, 30, 30)) == 0.0


def test_nms_keeps_best_of_overlapping():
    strong = Detection(0, 0, 10, 20, 0.9)
    weak_duplicate = Detection(1, 1, 11, 21, 0.4)
    separate = Detection(50, 0, 60, 20, 0.5)
    kept = non_max_suppression([weak_duplicate, separate, strong], 0.5)
    assert kept == [strong, separate]
    assert non_max_suppression([weak_duplicate, strong], 0.0) == [weak_duplicate, strong]


# -- queue length -------------------------------------------------------------------------------------


def test_queue_count_uses_foot_point():
    monitor = QueueMonitor(queue_zone())
    inside = (20, 90)
    outside_right = (80, 90)
    # Head inside the zone, feet above it: a person walking past behind the queue.
    feet_above_zone = (20, 40)
    tracks = tracks_at(inside, inside, outside_right, feet_above_zone)
    assert monitor.count(tracks, FRAME, FRAME) == 2


def test_queue_count_scales_with_frame_size():
    monitor = QueueMonitor(queue_zone())
    # The same normalized positions in a 1920 x 1080 frame.
    tracks = [Track(1, person(0.2 * 1920, 0.9 * 1080)), Track(2, person(0.8 * 1920, 0.9 * 1080))]
    assert monitor.count(tracks, 1920, 1080) == 1


def test_queue_alert_fires_after_hold_time():
    monitor = QueueMonitor(queue_zone())
    # Above the threshold (2) from t=1; the 3 s hold ends at t=4.
    fired = run_counts(monitor, [0, 3, 3, 3, 3, 3])
    assert fired == [(4.0, QUEUE_EXCEEDED)]
    assert monitor.exceeded


def test_queue_alert_needs_uninterrupted_hold():
    monitor = QueueMonitor(queue_zone())
    # A dip to the threshold at t=3 restarts the hold: above again from t=4, fires at t=7.
    fired = run_counts(monitor, [3, 3, 3, 2, 3, 3, 3, 3])
    assert fired == [(7.0, QUEUE_EXCEEDED)]


def test_queue_at_threshold_is_not_exceeded():
    monitor = QueueMonitor(queue_zone())
    assert run_counts(monitor, [2] * 20) == []


def test_queue_clears_with_hysteresis():
    monitor = QueueMonitor(queue_zone())
    # Exceeded at t=3. Length 2 (t=4..7) is above threshold - hysteresis = 1, so it stays exceeded.
    # Length 1 from t=8 holds for the 2 s clear hold: cleared at t=10.
    counts = [3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1]
    fired = run_counts(monitor, counts)
    assert fired == [(3.0, QUEUE_EXCEEDED), (10.0, QUEUE_CLEARED)]
    assert not monitor.exceeded


def test_queue_hovering_at_threshold_does_not_flap():
    monitor = QueueMonitor(queue_zone(hold_s=0.0, clear_hold_s=0.0))
    # Alternating 3 and 2 with zero hold times: without hysteresis this would alternate alerts.
    fired = run_counts(monitor, [3, 2, 3, 2, 3, 2, 3, 2])
    assert fired == [(0.0, QUEUE_EXCEEDED)]


def test_queue_cleared_event_reports_duration():
    monitor = QueueMonitor(queue_zone(hold_s=0.0, clear_hold_s=0.0))
    events = []
    for timestamp, count in [(0.0, 3), (5.0, 3), (12.5, 0)]:
        events += monitor.update(timestamp, count)
    assert [event.event for event in events] == [QUEUE_EXCEEDED, QUEUE_CLEARED]
    cleared = events[1]
    assert cleared.zone == "checkout-1"
    assert cleared.data == {"length": 0.0, "raw_length": 0, "threshold": 2, "exceeded_for_s": 12.5}


def test_queue_alert_can_fire_again_after_clear():
    monitor = QueueMonitor(queue_zone(hold_s=1.0, clear_hold_s=1.0))
    fired = run_counts(monitor, [3, 3, 0, 0, 3, 3])
    assert fired == [(1.0, QUEUE_EXCEEDED), (3.0, QUEUE_CLEARED), (5.0, QUEUE_EXCEEDED)]


def test_median_smoothing_ignores_one_frame_spike():
    monitor = QueueMonitor(queue_zone(hold_s=0.0, smoothing=SmoothingSettings(method="median", window=3)))
    fired = run_counts(monitor, [1, 1, 5, 1, 1])
    assert fired == []
    assert monitor.length == 1.0


def test_median_smoother_window():
    smoother = MedianSmoother(window=3)
    assert [smoother.add(0, value) for value in (4, 0, 0, 4, 4)] == [4.0, 2.0, 0.0, 0.0, 4.0]


def test_ema_smoother_follows_time_constant():
    smoother = EmaSmoother(tau_s=2.0)
    assert smoother.add(0.0, 0.0) == 0.0
    # After one time constant the average has moved 1 - 1/e of the way to the new value.
    assert smoother.add(2.0, 10.0) == pytest.approx(10 * (1 - np.exp(-1)))


def test_ema_smoother_independent_of_frame_rate():
    slow, fast = EmaSmoother(tau_s=1.0), EmaSmoother(tau_s=1.0)
    slow.add(0.0, 0.0)
    fast.add(0.0, 0.0)
    slow_value = slow.add(1.0, 6.0)
    fast_value = 0.0
    for step in range(1, 11):
        fast_value = fast.add(step / 10, 6.0)
    assert fast_value == pytest.approx(slow_value)


def test_queue_length_reports_on_interval():
    monitor = QueueMonitor(queue_zone(threshold=10, report_interval_s=2.0))
    fired = run_counts(monitor, [1, 1, 2, 2, 3], step_s=1.0)
    assert fired == [(0.0, QUEUE_LENGTH), (2.0, QUEUE_LENGTH), (4.0, QUEUE_LENGTH)]


# -- help zones and dwell -----------------------------------------------------------------------------


def help_zone(**overrides) -> HelpZoneSettings:
    values = {"id": "tv-aisle", "polygon": RIGHT_HALF, "dwell_s": 5.0, "cooldown_s": 10.0, "exit_grace_s": 1.0}
    values.update(overrides)
    return HelpZoneSettings(**values)


def run_dwell(monitor: HelpZoneMonitor, script: dict[float, list[Track]]) -> list[tuple[float, int]]:
    """Feed {timestamp: tracks}; return (timestamp, track_id) of every assist.needed."""
    fired = []
    for timestamp in sorted(script):
        for event in monitor.update(timestamp, script[timestamp], FRAME, FRAME):
            assert event.event == ASSIST_NEEDED
            fired.append((timestamp, int(event.data["track_id"])))
    return fired


def test_dwell_fires_once_per_visit():
    monitor = HelpZoneMonitor(help_zone())
    shopper = Track(7, person(80, 80))
    fired = run_dwell(monitor, {float(t): [shopper] for t in range(12)})
    assert fired == [(5.0, 7)]


def test_dwell_event_data():
    monitor = HelpZoneMonitor(help_zone())
    shopper, other = Track(7, person(80, 80)), Track(8, person(70, 60))
    events = []
    for t in range(6):
        events += monitor.update(float(t), [shopper, other], FRAME, FRAME)
    assert [event.zone for event in events] == ["tv-aisle"]
    assert events[0].data == {"track_id": 7, "dwell_s": 5.0, "people_in_zone": 2}


def test_dwell_ignores_people_outside_zone():
    monitor = HelpZoneMonitor(help_zone())
    passer_by = Track(3, person(20, 80))
    assert run_dwell(monitor, {float(t): [passer_by] for t in range(20)}) == []


def test_dwell_survives_short_step_out():
    monitor = HelpZoneMonitor(help_zone(exit_grace_s=1.5))
    inside, outside = person(80, 80), person(20, 80)
    script = {float(t): [Track(4, inside)] for t in range(7)}
    # Out of the zone for one frame at t=3 (less than the grace): the visit that began at t=0 goes on.
    script[3.0] = [Track(4, outside)]
    assert run_dwell(monitor, script) == [(5.0, 4)]


def test_dwell_resets_after_long_step_out():
    monitor = HelpZoneMonitor(help_zone(exit_grace_s=1.0))
    inside, outside = person(80, 80), person(20, 80)
    script = {}
    for t in range(15):
        box = outside if t in (3, 4, 5) else inside
        script[float(t)] = [Track(4, box)]
    # Outside from t=3 to t=5 (longer than 1 s): the visit ends and a new one starts at t=6.
    assert run_dwell(monitor, script) == [(11.0, 4)]


def test_dwell_resets_when_track_disappears():
    monitor = HelpZoneMonitor(help_zone())
    script: dict[float, list[Track]] = {float(t): [Track(5, person(80, 80))] for t in range(4)}
    script[4.0] = []
    script.update({float(t): [Track(5, person(80, 80))] for t in range(5, 12)})
    assert run_dwell(monitor, script) == [(10.0, 5)]


def test_dwell_cooldown_suppresses_second_alert():
    monitor = HelpZoneMonitor(help_zone(dwell_s=5.0, cooldown_s=10.0))
    first = Track(1, person(80, 80))
    second = Track(2, person(90, 90))
    third = Track(3, person(70, 70))
    script = {}
    for t in range(25):
        tracks = [first]
        if t >= 2:
            tracks.append(second)
        if t >= 10:
            tracks.append(third)
        script[float(t)] = tracks
    # first alerts at t=5. second reaches 5 s at t=7, inside the cooldown, so it is served by that alert.
    # third reaches 5 s at t=15, when the 10 s cooldown has just run out.
    assert run_dwell(monitor, script) == [(5.0, 1), (15.0, 3)]


# -- tracker ------------------------------------------------------------------------------------------


def test_tracker_keeps_identity_while_walking():
    tracker = IouTracker(TrackerSettings(min_hits=1))
    ids = set()
    for step in range(10):
        (track,) = tracker.update([person(20 + step * 2, 80)])
        ids.add(track.track_id)
    assert ids == {1}


def test_tracker_separates_two_people():
    tracker = IouTracker(TrackerSettings(min_hits=1))
    for step in range(5):
        tracks = tracker.update([person(20 + step, 80), person(80 - step, 80)])
    assert sorted((t.track_id, round(t.box.foot_point[0])) for t in tracks) == [(1, 24), (2, 76)]


def test_tracker_needs_min_hits():
    tracker = IouTracker(TrackerSettings(min_hits=3))
    assert tracker.update([person(50, 50)]) == []
    assert tracker.update([person(50, 50)]) == []
    assert [t.track_id for t in tracker.update([person(50, 50)])] == [1]


def test_tracker_coasts_then_drops():
    tracker = IouTracker(TrackerSettings(min_hits=1, max_missed=2))
    tracker.update([person(50, 50)])
    assert [t.track_id for t in tracker.update([])] == [1]
    assert [t.track_id for t in tracker.update([])] == [1]
    assert tracker.update([]) == []
    assert [t.track_id for t in tracker.update([person(50, 50)])] == [2]


def test_tracker_centroid_fallback_after_jump():
    tracker = IouTracker(TrackerSettings(min_hits=1, iou_threshold=0.3, max_centroid_distance=0.5))
    tracker.update([person(50, 80, height=40)])
    # 9 px sideways on a 10 px wide box: no useful overlap, but within half a box height.
    (track,) = tracker.update([person(59, 80, height=40)])
    assert track.track_id == 1
    # 31 px away is more than half a box height: a new person, while track 1 coasts on its last box.
    tracks = tracker.update([person(90, 80, height=40)])
    assert sorted((t.track_id, t.missed, t.box.foot_point[0]) for t in tracks) == [(1, 1, 59.0), (2, 0, 90.0)]


# -- the whole chain: scripted detector -> tracker -> zones -> events ---------------------------------


class ScriptedDetector:
    """Returns prepared boxes for each frame index."""

    name = "scripted"

    def __init__(self, script: dict[int, list[Detection]]) -> None:
        self._script = script
        self.calls: list[int] = []
        self._index = 0

    def detect(self, frame: np.ndarray) -> list[Detection]:
        detections = self._script.get(self._index, [])
        self.calls.append(self._index)
        self._index += 1
        return detections


def scripted_camera(**overrides) -> CameraSettings:
    values = {
        "id": "cam-1",
        "source": SourceSettings(kind="file", uri="unused.avi"),
        "tracker": TrackerSettings(min_hits=2, max_missed=2),
        "queue_zones": [queue_zone(threshold=2, hold_s=2.0, clear_hold_s=1.0)],
        "help_zones": [help_zone(dwell_s=3.0)],
    }
    values.update(overrides)
    return CameraSettings(**values)


def run_pipeline(camera: CameraSettings, script: dict[int, list[Detection]], frames: int):
    published = []
    detector = ScriptedDetector(script)
    pipeline = CameraPipeline("0042", camera, detector, published.append)
    blank = np.zeros((FRAME, FRAME, 3), dtype=np.uint8)
    results = [pipeline.process(Frame(blank, index, float(index))) for index in range(frames)]
    return pipeline, detector, results, published


def test_pipeline_queue_events_from_scripted_detections():
    queue_people = [person(10, 90), person(25, 90), person(40, 90)]
    script = dict.fromkeys(range(8), queue_people)
    script.update(dict.fromkeys(range(8, 14), queue_people[:1]))
    pipeline, _detector, results, published = run_pipeline(scripted_camera(help_zones=[]), script, 14)

    # Tracks confirm at frame 1 (min_hits=2), so three people are counted from t=1 and the alert fires at t=3.
    assert [r.events[0].event for r in results if r.events] == [QUEUE_EXCEEDED, QUEUE_CLEARED]
    assert [r.index for r in results if r.events] == [3, 11]
    assert [event.event for event in published] == [QUEUE_EXCEEDED, QUEUE_CLEARED]
    exceeded = published[0]
    assert (exceeded.store_id, exceeded.camera, exceeded.zone) == ("0042", "cam-1", "checkout-1")
    assert exceeded.data["raw_length"] == 3
    # Two people left at frame 8 and coast for max_missed=2 frames, so the count drops at frame 10.
    assert [len(r.tracks) for r in results] == [0, 3, 3, 3, 3, 3, 3, 3, 3, 3, 1, 1, 1, 1]
    assert pipeline.analyzer.queues[0].length == 1.0


def test_pipeline_assist_needed_from_scripted_detections():
    shopper = person(80, 80)
    script = {i: [shopper] for i in range(10)}
    _pipeline, _detector, results, published = run_pipeline(scripted_camera(queue_zones=[]), script, 10)
    # Confirmed at frame 1, dwell 3 s: the alert comes at t=4.
    assert [(r.index, e.event) for r in results for e in r.events] == [(4, ASSIST_NEEDED)]
    assert published[0].data == {"track_id": 1, "dwell_s": 3.0, "people_in_zone": 1}


def test_pipeline_detect_every_carries_tracks():
    shopper = person(80, 80)
    camera = scripted_camera(queue_zones=[], detect_every=3, tracker=TrackerSettings(min_hits=1))
    _pipeline, detector, results, published = run_pipeline(camera, {i: [shopper] for i in range(12)}, 12)
    assert [r.index for r in results if r.detected] == [0, 3, 6, 9]
    assert len(detector.calls) == 4
    # Frames without detection still see the tracked shopper, so dwell time keeps counting.
    assert all(len(r.tracks) == 1 for r in results)
    assert [(r.index, e.event) for r in results for e in r.events] == [(3, ASSIST_NEEDED)]
    assert len(published) == 1

"""A small multi-person tracker: greedy IoU association with a centroid fallback.

Dwell times need the same person across frames. People in a store move little between frames at
5-10 fps, so overlap is the main cue. The centroid fallback catches boxes that jump when the detector
skipped frames or re-sized the box. Identities are process-local integers and never leave the node
tied to an image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from retail_edge.vision.geometry import Detection, iou
from retail_edge.vision.settings import TrackerSettings


@dataclass
class Track:
    """A person followed across frames."""

    track_id: int
    box: Detection
    hits: int = 1
    missed: int = 0

    def confirmed(self, min_hits: int) -> bool:
        return self.hits >= min_hits


class IouTracker:
    """Associates each frame's detections with existing tracks.

    A track is reported once it was matched `min_hits` times, so a one-frame false positive never
    counts as a person. It survives `max_missed` detection rounds without a match and keeps its last
    box meanwhile, which bridges short detector misses.
    """

    def __init__(self, settings: TrackerSettings) -> None:
        self._settings = settings
        self._tracks: list[Track] = []
        self._next_id = 1

    @property
    def tracks(self) -> list[Track]:
        """Confirmed tracks, including those coasting through a few missed detections."""
        return [track for track in self._tracks if track.confirmed(self._settings.min_hits)]

    def update(self, detections: Sequence[Detection]) -> list[Track]:
        """Match detections to tracks, start new tracks, retire lost ones; return the confirmed tracks."""
        unmatched_tracks = list(range(len(self._tracks)))
        unmatched_detections = list(range(len(detections)))

        pairs = self._match_by_iou(detections, unmatched_tracks, unmatched_detections)
        pairs += self._match_by_centroid(detections, unmatched_tracks, unmatched_detections)

        for track_index, detection_index in pairs:
            track = self._tracks[track_index]
            track.box = detections[detection_index]
            track.hits += 1
            track.missed = 0
        for track_index in unmatched_tracks:
            self._tracks[track_index].missed += 1
        self._tracks = [track for track in self._tracks if track.missed <= self._settings.max_missed]

        for detection_index in unmatched_detections:
            self._tracks.append(Track(self._next_id, detections[detection_index]))
            self._next_id += 1
        return self.tracks

    def _match_by_iou(
        self, detections: Sequence[Detection], tracks_left: list[int], detections_left: list[int]
    ) -> list[tuple[int, int]]:
        candidates = [(iou(self._tracks[t].box, detections[d]), t, d) for t in tracks_left for d in detections_left]
        threshold = self._settings.iou_threshold
        return _greedy(sorted((c for c in candidates if c[0] >= threshold), reverse=True), tracks_left, detections_left)

    def _match_by_centroid(
        self, detections: Sequence[Detection], tracks_left: list[int], detections_left: list[int]
    ) -> list[tuple[int, int]]:
        candidates = []
        for t in tracks_left:
            box = self._tracks[t].box
            limit = self._settings.max_centroid_distance * max(box.height, 1.0)
            for d in detections_left:
                distance = math.dist(box.center, detections[d].center)
                if distance <= limit:
                    # Negated so that the nearest pair sorts first, like the highest IoU above.
                    candidates.append((-distance, t, d))
        return _greedy(sorted(candidates, reverse=True), tracks_left, detections_left)


def _greedy(
    ranked: list[tuple[float, int, int]], tracks_left: list[int], detections_left: list[int]
) -> list[tuple[int, int]]:
    """Take pairs best first while neither side is used; remove the taken ones from the *_left lists."""
    pairs = []
    for _rank, track_index, detection_index in ranked:
        if track_index in tracks_left and detection_index in detections_left:
            pairs.append((track_index, detection_index))
            tracks_left.remove(track_index)
            detections_left.remove(detection_index)
    return pairs

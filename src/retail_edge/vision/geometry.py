"""Boxes, polygons and the overlap measures that the detectors, the tracker and the zones share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Detection:
    """A person box in source-frame pixels (x1, y1 top left; x2, y2 bottom right) with its score."""

    x1: float
    y1: float
    x2: float
    y2: float
    score: float = 1.0

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0)

    @property
    def foot_point(self) -> tuple[float, float]:
        """Bottom centre of the box, the person's position on the floor."""
        return ((self.x1 + self.x2) / 2.0, self.y2)

    def scaled(self, sx: float, sy: float) -> Detection:
        return Detection(self.x1 * sx, self.y1 * sy, self.x2 * sx, self.y2 * sy, self.score)


def iou(a: Detection, b: Detection) -> float:
    """Intersection over union of two boxes (0 when they do not overlap)."""
    inter_w = min(a.x2, b.x2) - max(a.x1, b.x1)
    inter_h = min(a.y2, b.y2) - max(a.y1, b.y1)
    if inter_w <= 0 or inter_h <= 0:
        return 0.0
    intersection = inter_w * inter_h
    union = a.width * a.height + b.width * b.height - intersection
    return intersection / union if union > 0 else 0.0


def point_in_polygon(point: tuple[float, float], polygon: Sequence[tuple[float, float]]) -> bool:
    """Return whether point lies inside polygon (even-odd rule; points on an edge may go either way)."""
    x, y = point
    inside = False
    count = len(polygon)
    for index in range(count):
        x1, y1 = polygon[index]
        x2, y2 = polygon[(index + 1) % count]
        if (y1 > y) != (y2 > y):
            x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if x < x_cross:
                inside = not inside
    return inside


def non_max_suppression(detections: Sequence[Detection], iou_threshold: float) -> list[Detection]:
    """Keep the best-scoring box of every group that overlaps above iou_threshold; 0 keeps all."""
    if iou_threshold <= 0:
        return list(detections)
    kept: list[Detection] = []
    for candidate in sorted(detections, key=lambda d: d.score, reverse=True):
        if all(iou(candidate, other) <= iou_threshold for other in kept):
            kept.append(candidate)
    return kept

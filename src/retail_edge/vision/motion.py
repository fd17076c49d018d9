"""Motion gate: skip the detector on frames where nothing moved since it last ran."""

from __future__ import annotations

import cv2
import numpy as np

from retail_edge.vision.settings import MotionGateSettings

# Width of the grey thumbnail the gate compares; enough to see a person, cheap to difference.
GATE_WIDTH = 160


class MotionGate:
    """Compares each frame with the frame of the last detection on a blurred grey thumbnail.

    Comparing with the last detected frame, not the previous one, means slow movement still adds up
    and eventually triggers a detection.
    """

    def __init__(self, settings: MotionGateSettings) -> None:
        self._settings = settings
        self._reference: np.ndarray | None = None
        self._skipped = 0
        self.changed_fraction = 1.0

    def should_detect(self, frame: np.ndarray) -> bool:
        thumbnail = self._thumbnail(frame)
        if self._reference is None or self._reference.shape != thumbnail.shape:
            return self._accept(thumbnail)
        difference = cv2.absdiff(thumbnail, self._reference)
        self.changed_fraction = float(np.count_nonzero(difference > self._settings.pixel_threshold)) / difference.size
        if self.changed_fraction >= self._settings.min_changed_fraction or self._skipped >= self._settings.max_skipped:
            return self._accept(thumbnail)
        self._skipped += 1
        return False

    def _accept(self, thumbnail: np.ndarray) -> bool:
        self._reference = thumbnail
        self._skipped = 0
        return True

    @staticmethod
    def _thumbnail(frame: np.ndarray) -> np.ndarray:
        height, width = frame.shape[:2]
        size = (GATE_WIDTH, max(1, round(height * GATE_WIDTH / width)))
        grey = cv2.cvtColor(cv2.resize(frame, size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
        return cv2.GaussianBlur(grey, (5, 5), 0)

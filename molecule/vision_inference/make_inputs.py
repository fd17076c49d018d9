"""Write the vision scenario's inputs on the controller: a short clip cut from OpenCV's vtest.avi and an ONNX model.

Usage: python make_inputs.py OUTPUT_DIR. The model follows the detector contract of docs/vision.md and scores by
the mean of the red channel, so it runs in microseconds on a CPU; the scenario checks where it runs, not what it
finds.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2

from tests.fixtures_vision import VTEST_AVI, build_red_detector_model

CLIP_FRAMES = 50
CLIP_SIZE = (384, 288)


def cut_clip(source: Path, target: Path) -> None:
    """Copy the first CLIP_FRAMES frames of source at half size into an MJPG AVI (OpenCV's built-in encoder)."""
    capture = cv2.VideoCapture(str(source))
    fps = capture.get(cv2.CAP_PROP_FPS) or 10.0
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"MJPG"), fps, CLIP_SIZE)
    written = 0
    try:
        while written < CLIP_FRAMES:
            ok, frame = capture.read()
            if not ok:
                raise SystemExit(f"{source} ended after {written} frames, expected at least {CLIP_FRAMES}")
            writer.write(cv2.resize(frame, CLIP_SIZE, interpolation=cv2.INTER_AREA))
            written += 1
    finally:
        writer.release()
        capture.release()


def main() -> None:
    output = Path(sys.argv[1])
    output.mkdir(parents=True, exist_ok=True)
    if not VTEST_AVI.is_file():
        raise SystemExit(f"{VTEST_AVI} is missing: install the Debian package opencv-doc")
    cut_clip(VTEST_AVI, output / "vtest-short.avi")
    build_red_detector_model(output / "person.onnx", input_size=(96, 72))


if __name__ == "__main__":
    main()

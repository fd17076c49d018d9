"""People detectors behind one interface: OpenCV's HOG pedestrian detector and ONNX Runtime models.

Every detector takes a BGR uint8 frame (what OpenCV's VideoCapture delivers) and returns person boxes
in that frame's pixel coordinates, so the tracker and the zones never see the detector's input size.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from retail_edge.vision.geometry import Detection, non_max_suppression
from retail_edge.vision.settings import DetectorSettings, HogSettings, OnnxSettings

log = logging.getLogger(__name__)

CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"
# Columns of the ONNX output rows: x1, y1, x2, y2, score, class.
ONNX_OUTPUT_COLUMNS = 6


class DetectorError(RuntimeError):
    """A detector could not be built or its model breaks the documented contract."""


class Detector(Protocol):
    """Finds people in one frame."""

    name: str

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """Return the people in a BGR uint8 frame, in that frame's pixel coordinates."""


def _check_frame(frame: np.ndarray) -> tuple[int, int]:
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected a BGR uint8 frame of shape (height, width, 3), got {frame.dtype} {frame.shape}")
    height, width = frame.shape[:2]
    return width, height


class HogDetector:
    """OpenCV's default people detector: HOG features with a linear SVM over a 64x128 window.

    The model was trained on upright, full-body pedestrians, so people seen only from the waist up are
    missed. Its 64x128 window frames a person about 96 pixels tall, so people shorter than that after
    `resize_width` are mostly missed too.
    """

    name = "hog"

    def __init__(self, settings: HogSettings, nms_iou: float = 0.0) -> None:
        self._settings = settings
        self._nms_iou = nms_iou
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor.getDefaultPeopleDetector())

    def detect(self, frame: np.ndarray) -> list[Detection]:
        width, height = _check_frame(frame)
        image, scale = frame, 1.0
        target_width = self._settings.resize_width
        if target_width is not None and target_width != width:
            scale = target_width / width
            interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            image = cv2.resize(frame, (target_width, max(1, round(height * scale))), interpolation=interpolation)

        stride = self._settings.win_stride
        padding = self._settings.padding
        rects, weights = self._hog.detectMultiScale(
            image,
            hitThreshold=self._settings.hit_threshold,
            winStride=(stride, stride),
            padding=(padding, padding),
            scale=self._settings.scale,
        )

        detections = []
        for (x, y, w, h), weight in zip(rects, np.asarray(weights).reshape(-1), strict=True):
            if weight < self._settings.min_score:
                continue
            box = Detection(float(x), float(y), float(x + w), float(y + h), float(weight))
            detections.append(_clip(box.scaled(1 / scale, 1 / scale), width, height))
        return non_max_suppression(detections, self._nms_iou)


def select_providers(requested: str, available: Sequence[str]) -> list[str]:
    """Return ONNX Runtime execution providers in priority order for `auto`, `cuda` or `cpu`."""
    if requested == "cpu":
        return [CPU_PROVIDER]
    if CUDA_PROVIDER in available:
        return [CUDA_PROVIDER, CPU_PROVIDER]
    if requested == "cuda":
        raise DetectorError(
            f"detector.onnx.provider is cuda but ONNX Runtime offers only {', '.join(available)}: "
            "install onnxruntime-gpu with a matching CUDA runtime, or set provider to auto or cpu"
        )
    return [CPU_PROVIDER]


class OnnxDetector:
    """A person detector exported to ONNX (contract in docs/vision.md).

    Input: one float32 tensor of shape [1, 3, H, W], RGB, values scaled to 0..1, the frame resized to
    W x H without letterboxing. Output: the first output, shape [N, 6] or [1, N, 6], rows of
    x1, y1, x2, y2 in input pixels, score in 0..1 and class id.
    """

    name = "onnx"

    def __init__(self, settings: OnnxSettings, nms_iou: float = 0.0) -> None:
        try:
            import onnxruntime as ort  # noqa: PLC0415 - only the ONNX detector needs it
        except ImportError as exc:
            raise DetectorError("onnxruntime is not installed: pip install 'retail-edge-services[onnx]'") from exc

        model_path = Path(settings.model)
        if not model_path.is_file():
            raise DetectorError(f"ONNX model {model_path} not found: check detector.onnx.model")

        self._settings = settings
        self._nms_iou = nms_iou
        available = ort.get_available_providers()
        providers = select_providers(settings.provider, available)
        options = ort.SessionOptions()
        options.intra_op_num_threads = settings.intra_op_threads
        options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(str(model_path), sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types for broken files
            raise DetectorError(f"ONNX Runtime cannot load {model_path}: {exc}") from exc
        self.providers: list[str] = list(self._session.get_providers())
        log.info(
            "onnx detector loaded",
            extra={"model": str(model_path), "provider": self.providers[0], "available_providers": available},
        )

        self._input_name, self._input_width, self._input_height = self._inspect_input(model_path)
        self._output_name = self._session.get_outputs()[0].name

    def _inspect_input(self, model_path: Path) -> tuple[str, int, int]:
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise DetectorError(f"ONNX model {model_path} has {len(inputs)} inputs; the contract allows exactly one")
        model_input = inputs[0]
        shape: list[Any] = list(model_input.shape)
        if model_input.type != "tensor(float)" or len(shape) != 4 or shape[1] not in (3, "C", None):
            raise DetectorError(
                f"ONNX model {model_path} input {model_input.name} is {model_input.type} {shape}; "
                "expected float32 [1, 3, H, W]"
            )
        height = shape[2] if isinstance(shape[2], int) else self._settings.input_height
        width = shape[3] if isinstance(shape[3], int) else self._settings.input_width
        if height is None or width is None:
            raise DetectorError(
                f"ONNX model {model_path} has a dynamic input size {shape}: "
                "set detector.onnx.input_width and input_height"
            )
        return model_input.name, int(width), int(height)

    @property
    def input_size(self) -> tuple[int, int]:
        return self._input_width, self._input_height

    def preprocess(self, frame: np.ndarray) -> np.ndarray:
        """Turn a BGR frame into the model's NCHW float32 RGB input scaled to 0..1."""
        _check_frame(frame)
        size = (self._input_width, self._input_height)
        return cv2.dnn.blobFromImage(frame, scalefactor=1.0 / 255.0, size=size, swapRB=True, crop=False)

    def detect(self, frame: np.ndarray) -> list[Detection]:
        width, height = _check_frame(frame)
        (raw,) = self._session.run([self._output_name], {self._input_name: self.preprocess(frame)})
        rows = np.asarray(raw, dtype=np.float32)
        if rows.ndim == 3 and rows.shape[0] == 1:
            rows = rows[0]
        if rows.ndim != 2 or rows.shape[1] != ONNX_OUTPUT_COLUMNS:
            raise DetectorError(
                f"ONNX output {self._output_name} has shape {list(rows.shape)}; "
                "expected [N, 6] or [1, N, 6] (x1, y1, x2, y2, score, class)"
            )

        scale_x = width / self._input_width
        scale_y = height / self._input_height
        detections = []
        for x1, y1, x2, y2, score, label in rows.tolist():
            if round(label) != self._settings.person_class or score < self._settings.score_threshold:
                continue
            box = Detection(x1 * scale_x, y1 * scale_y, x2 * scale_x, y2 * scale_y, score)
            clipped = _clip(box, width, height)
            if clipped.width > 0 and clipped.height > 0:
                detections.append(clipped)
        return non_max_suppression(detections, self._nms_iou)


def _clip(box: Detection, width: int, height: int) -> Detection:
    return Detection(
        min(max(box.x1, 0.0), float(width)),
        min(max(box.y1, 0.0), float(height)),
        min(max(box.x2, 0.0), float(width)),
        min(max(box.y2, 0.0), float(height)),
        box.score,
    )


def build_detector(settings: DetectorSettings) -> Detector:
    """Create the configured detector; each camera thread gets its own instance, so none is shared."""
    if settings.kind == "onnx":
        if settings.onnx is None:
            raise DetectorError("detector.kind is onnx but detector.onnx is missing")
        return OnnxDetector(settings.onnx, settings.nms_iou)
    return HogDetector(settings.hog, settings.nms_iou)

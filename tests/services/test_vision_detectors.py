"""Detectors on real footage (HOG) and on ONNX models built here with onnx.helper."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from retail_edge.vision.detectors import (
    CPU_PROVIDER,
    CUDA_PROVIDER,
    DetectorError,
    HogDetector,
    OnnxDetector,
    build_detector,
    select_providers,
)
from retail_edge.vision.geometry import Detection
from retail_edge.vision.pipeline import CameraPipeline
from retail_edge.vision.settings import (
    CameraSettings,
    DetectorSettings,
    HelpZoneSettings,
    HogSettings,
    OnnxSettings,
    QueueZoneSettings,
    SmoothingSettings,
    SourceSettings,
    TrackerSettings,
)
from retail_edge.vision.sources import FrameSource
from retail_edge.vision.zones import ASSIST_NEEDED, QUEUE_EXCEEDED
from tests.fixtures_vision import BASKETBALL, build_red_detector_model

# Frames of vtest.avi with several people walking across the square.
VTEST_FRAMES = (0, 50, 100, 150, 200)
# A pixel differs from the empty background when any channel moved by more than this.
FOREGROUND_DELTA = 30


def contains(box: Detection, x: float, y: float) -> bool:
    return box.x1 <= x <= box.x2 and box.y1 <= y <= box.y2


@pytest.fixture(scope="module")
def hog() -> HogDetector:
    return HogDetector(HogSettings())


@pytest.fixture(scope="module")
def vtest_frames(vtest_avi: Path) -> dict[int, np.ndarray]:
    """Selected frames plus the empty square: the per-pixel median of every 16th frame.

    People keep walking, so no pixel shows a person in most sampled frames and the median is the
    scene without anybody in it.
    """
    wanted = set(VTEST_FRAMES)
    frames: dict[int, np.ndarray] = {}
    samples = []
    capture = cv2.VideoCapture(str(vtest_avi))
    index = 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        if index in wanted:
            frames[index] = image
        if index % 16 == 0:
            samples.append(image)
        index += 1
    capture.release()
    assert index == 795, f"vtest.avi has {index} frames, expected 795"
    frames[-1] = np.median(np.stack(samples), axis=0).astype(np.uint8)
    return frames


# -- HOG ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("image_path", BASKETBALL, ids=lambda p: p.name)
def test_hog_finds_player_in_basketball_photo(hog, image_path):
    image = cv2.imread(str(image_path))
    assert image is not None, f"cannot read {image_path}"
    detections = hog.detect(image)
    # The player on the left is seen full-body in both photos, torso around (95, 280).
    assert any(contains(box, 95, 280) for box in detections), detections
    assert all(0 <= box.x1 < box.x2 <= 640 and 0 <= box.y1 < box.y2 <= 480 for box in detections)


def test_hog_resize_maps_boxes_back():
    image = cv2.imread(str(BASKETBALL[0]))
    upscaled = HogDetector(HogSettings(resize_width=800))
    detections = upscaled.detect(image)
    assert any(contains(box, 95, 280) for box in detections), detections
    assert all(box.x2 <= 640 and box.y2 <= 480 for box in detections)


@pytest.mark.parametrize("frame_index", VTEST_FRAMES)
def test_hog_finds_walkers_in_vtest(hog, vtest_frames, frame_index):
    frame = vtest_frames[frame_index]
    background = vtest_frames[-1]
    detections = hog.detect(frame)
    assert len(detections) >= 1, f"no person found in vtest.avi frame {frame_index}"

    # Every box must sit on something that moved: a person, not a lamp post or a traffic cone.
    moving = (cv2.absdiff(frame, background).max(axis=2) > FOREGROUND_DELTA).astype(np.float32)
    for box in detections:
        region = moving[int(box.y1) : int(box.y2), int(box.x1) : int(box.x2)]
        assert region.mean() > 0.05, f"frame {frame_index}: box {box} lies on static background"


def test_hog_finds_nobody_in_empty_scene(hog, vtest_frames):
    assert hog.detect(vtest_frames[-1]) == []


def test_hog_finds_nobody_in_flat_image(hog):
    assert hog.detect(np.full((480, 640, 3), 128, dtype=np.uint8)) == []


def test_hog_rejects_non_bgr_frame(hog):
    with pytest.raises(ValueError, match="BGR uint8"):
        hog.detect(np.zeros((480, 640), dtype=np.uint8))


# -- ONNX Runtime -------------------------------------------------------------------------------------


def onnx_settings(model: Path, **overrides) -> OnnxSettings:
    values = {"model": str(model), "provider": "auto", "score_threshold": 0.5}
    values.update(overrides)
    return OnnxSettings(**values)


def solid(bgr: tuple[int, int, int], width: int = 128, height: int = 96) -> np.ndarray:
    return np.full((height, width, 3), bgr, dtype=np.uint8)


def test_onnx_red_frame_detected_in_frame_coordinates(tmp_path):
    model = build_red_detector_model(tmp_path / "red.onnx")
    detector = OnnxDetector(onnx_settings(model))
    assert detector.input_size == (64, 48)

    (box,) = detector.detect(solid((0, 0, 255)))
    # Input 64 x 48 -> frame 128 x 96: both axes scale by 2.
    assert (box.x1, box.y1, box.x2, box.y2) == pytest.approx((16, 16, 80, 88))
    assert box.score == pytest.approx(1.0)


def test_onnx_input_is_rgb_scaled_to_unit(tmp_path):
    detector = OnnxDetector(onnx_settings(build_red_detector_model(tmp_path / "red.onnx"), score_threshold=0.0))
    # Blue in BGR order: a model fed BGR would see red here.
    (blue,) = detector.detect(solid((255, 0, 0)))
    assert blue.score == pytest.approx(0.0)
    (grey,) = detector.detect(solid((128, 128, 128)))
    assert grey.score == pytest.approx(128 / 255, abs=1e-4)

    blob = detector.preprocess(solid((10, 20, 30)))
    assert blob.shape == (1, 3, 48, 64)
    assert blob.dtype == np.float32
    assert blob[0, :, 0, 0] == pytest.approx([30 / 255, 20 / 255, 10 / 255])


def test_onnx_score_threshold_and_class_filter(tmp_path):
    boxes = ((2.0, 2.0, 20.0, 40.0, 0.0), (30.0, 2.0, 60.0, 40.0, 3.0))
    model = build_red_detector_model(tmp_path / "two.onnx", boxes=boxes)
    assert len(OnnxDetector(onnx_settings(model)).detect(solid((0, 0, 255)))) == 1
    assert OnnxDetector(onnx_settings(model)).detect(solid((255, 0, 0))) == []
    (other_class,) = OnnxDetector(onnx_settings(model, person_class=3)).detect(solid((0, 0, 255)))
    assert other_class.x1 == pytest.approx(60.0)


def test_onnx_dynamic_input_needs_size(tmp_path):
    model = build_red_detector_model(tmp_path / "dynamic.onnx", input_size=None)
    with pytest.raises(DetectorError, match="input_width and input_height"):
        OnnxDetector(onnx_settings(model))
    detector = OnnxDetector(onnx_settings(model, input_width=32, input_height=32))
    assert detector.input_size == (32, 32)
    (box,) = detector.detect(solid((0, 0, 255), width=64, height=64))
    assert (box.x1, box.y2) == pytest.approx((16.0, 64.0))


def test_onnx_wrong_output_shape_rejected(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["images"], ["out"], axes=[2, 3], keepdims=0)],
        "bad_output",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "bad.onnx"
    onnx.save(model, str(path))
    detector = OnnxDetector(onnx_settings(path))
    with pytest.raises(DetectorError, match=r"expected \[N, 6\]"):
        detector.detect(solid((0, 0, 255)))


def test_onnx_missing_or_broken_model(tmp_path):
    with pytest.raises(DetectorError, match="not found"):
        OnnxDetector(onnx_settings(tmp_path / "missing.onnx"))
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a protobuf")
    with pytest.raises(DetectorError, match="cannot load"):
        OnnxDetector(onnx_settings(broken))


def test_provider_selection():
    assert select_providers("auto", [CPU_PROVIDER]) == [CPU_PROVIDER]
    assert select_providers("auto", [CUDA_PROVIDER, CPU_PROVIDER]) == [CUDA_PROVIDER, CPU_PROVIDER]
    assert select_providers("cpu", [CUDA_PROVIDER, CPU_PROVIDER]) == [CPU_PROVIDER]
    assert select_providers("cuda", [CUDA_PROVIDER, CPU_PROVIDER]) == [CUDA_PROVIDER, CPU_PROVIDER]
    with pytest.raises(DetectorError, match="onnxruntime-gpu"):
        select_providers("cuda", ["AzureExecutionProvider", CPU_PROVIDER])


def test_onnx_logs_provider_in_use(tmp_path, caplog):
    import onnxruntime  # noqa: PLC0415

    model = build_red_detector_model(tmp_path / "red.onnx")
    with caplog.at_level(logging.INFO, logger="retail_edge.vision.detectors"):
        detector = OnnxDetector(onnx_settings(model))
    expected = CUDA_PROVIDER if CUDA_PROVIDER in onnxruntime.get_available_providers() else CPU_PROVIDER
    assert detector.providers[0] == expected
    (record,) = [r for r in caplog.records if r.getMessage() == "onnx detector loaded"]
    assert record.provider == expected


def test_onnx_pipeline_end_to_end_on_footage(tmp_path, vtest_avi):
    """Real frames through source, ONNX detector, tracker and zones to events."""
    boxes = ((4.0, 4.0, 12.0, 40.0, 0.0), (20.0, 4.0, 28.0, 40.0, 0.0))
    model = build_red_detector_model(tmp_path / "two.onnx", boxes=boxes)
    detector = build_detector(DetectorSettings(kind="onnx", onnx=onnx_settings(model, score_threshold=0.05)))
    assert isinstance(detector, OnnxDetector)

    # Box feet land at x = 8/64 and 24/64, y = 40/48 of the frame: inside the left-bottom zone.
    camera = CameraSettings(
        id="lab-1",
        source=SourceSettings(kind="file", uri=str(vtest_avi)),
        tracker=TrackerSettings(min_hits=1),
        queue_zones=[
            QueueZoneSettings(
                id="checkout-1",
                polygon=[(0.0, 0.5), (0.5, 0.5), (0.5, 1.0), (0.0, 1.0)],
                threshold=1,
                hold_s=1.0,
                smoothing=SmoothingSettings(window=3),
            )
        ],
        help_zones=[
            HelpZoneSettings(id="help-1", polygon=[(0.0, 0.5), (0.25, 0.5), (0.25, 1.0), (0.0, 1.0)], dwell_s=2.0)
        ],
    )
    published = []
    pipeline = CameraPipeline("0042", camera, detector, published.append)
    source = FrameSource(camera.source, camera.id)
    results = []
    for frame in source.frames():
        results.append(pipeline.process(frame))
        if frame.index == 30:
            break

    assert all(len(r.detections) == 2 for r in results)
    assert (results[0].detections[0].x1, results[0].detections[0].y2) == pytest.approx((4 * 12, 40 * 12))
    # Media time at 10 fps: two people in the queue from t=0 against a threshold of 1 and a 1 s hold.
    events = [(round(r.timestamp, 1), e.event) for r in results for e in r.events]
    assert events == [(1.0, QUEUE_EXCEEDED), (2.0, ASSIST_NEEDED)]
    assert [event.camera for event in published] == ["lab-1", "lab-1"]

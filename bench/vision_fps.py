"""Frames per second of the vision pipeline on vtest.avi on one core, per detector configuration.

Each configuration runs the real path (FrameSource decode, detector, tracker, zones) over the first
--frames frames of Debian opencv-doc's vtest.avi (768x576, 10 fps, people walking), pinned to one
CPU with OpenCV and ONNX Runtime limited to one thread. Configurations run interleaved for
--rounds rounds because shared machines drift; the table gives min/median/max fps.

Two rates are reported. Frames per CPU second (frames / process CPU time) is what one dedicated
core sustains, and it stays meaningful while other processes compete for the core. Wall-clock fps
is what this run saw. A configuration keeps up with the 10 fps camera when its median frames per
CPU second reach 10.

Detection cost is measured against full-size HOG on every frame. On each frame, the boxes a
configuration hands to the zones (fresh detections, or the last ones on a skipped frame) are
matched to full HOG's boxes at IoU >= 0.5. `recall` is the share of full-HOG boxes matched and
`extra` the share of reported boxes without a match.

The ONNX rows use models built here with onnx.helper, because no trained person detector ships
with the project. `onnx-contract` measures the bare path (resize, RGB, NCHW, session, decode).
`onnx-convnet` adds a 10-layer convolutional backbone with random weights and a stated FLOP count,
as a stand-in for the compute of a small detector. Neither finds real people, so their detection
columns are empty.

Usage: python bench/vision_fps.py [--frames 100] [--rounds 3] [--cpu 0] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from retail_edge.vision.detectors import Detector, HogDetector, OnnxDetector  # noqa: E402
from retail_edge.vision.geometry import Detection, iou  # noqa: E402
from retail_edge.vision.pipeline import CameraPipeline  # noqa: E402
from retail_edge.vision.settings import (  # noqa: E402
    CameraSettings,
    HogSettings,
    MotionGateSettings,
    OnnxSettings,
    QueueZoneSettings,
    SourceSettings,
    TrackerSettings,
)
from retail_edge.vision.sources import Frame, FrameSource  # noqa: E402

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
CAMERA_FPS = 10.0
MATCH_IOU = 0.5
ONNX_INPUT = 320


@dataclass
class Config:
    name: str
    description: str
    make_detector: Callable[[], Detector]
    detect_every: int = 1
    motion_gate: MotionGateSettings = field(default_factory=MotionGateSettings)
    compare: bool = True
    # Feed the empty square (no motion at all) instead of the footage.
    still: bool = False


@dataclass
class Run:
    fps: float
    cpu_fps: float
    detected_frames: int
    boxes: list[list[Detection]]


# -- ONNX stand-in models ---------------------------------------------------------------------------


def build_contract_model(path: Path) -> Path:
    """Write the smallest model that follows the contract: one constant row scored by the mean red value."""
    from onnx import TensorProto, helper, save  # noqa: PLC0415

    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Constant", [], ["shape"], value=helper.make_tensor("s", TensorProto.INT64, [3], [1, 1, 1])),
        helper.make_node("Reshape", ["mean", "shape"], ["score"]),
        helper.make_node(
            "Constant", [], ["box"], value=helper.make_tensor("b", TensorProto.FLOAT, [1, 1, 4], [10, 10, 60, 200])
        ),
        helper.make_node("Constant", [], ["cls"], value=helper.make_tensor("c", TensorProto.FLOAT, [1, 1, 1], [0])),
        helper.make_node("Concat", ["box", "score", "cls"], ["detections"], axis=2),
    ]
    graph = helper.make_graph(
        nodes,
        "contract",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, ONNX_INPUT, ONNX_INPUT])],
        [helper.make_tensor_value_info("detections", TensorProto.FLOAT, [1, 1, 6])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save(model, str(path))
    return path


def build_convnet_model(path: Path, boxes: int = 100) -> tuple[Path, float]:
    """Write a 10-layer conv backbone (random weights) whose head emits `boxes` rows; return (path, GFLOPs)."""
    from onnx import TensorProto, helper, numpy_helper, save  # noqa: PLC0415

    rng = np.random.default_rng(7)
    # (output channels, stride) per 3x3 convolution: five stride-2 stages, each followed by a stride-1 conv.
    layers = [(16, 2), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (256, 1)]
    nodes, initializers = [], []
    channels, size, current, flops = 3, ONNX_INPUT, "images", 0.0
    for index, (out_channels, stride) in enumerate(layers):
        weight = rng.normal(0, (2 / (9 * channels)) ** 0.5, (out_channels, channels, 3, 3)).astype(np.float32)
        bias = np.zeros(out_channels, dtype=np.float32)
        initializers += [numpy_helper.from_array(weight, f"w{index}"), numpy_helper.from_array(bias, f"b{index}")]
        size //= stride
        flops += 2 * size * size * out_channels * channels * 9
        nodes.append(
            helper.make_node(
                "Conv", [current, f"w{index}", f"b{index}"], [f"c{index}"], pads=[1, 1, 1, 1], strides=[stride, stride]
            )
        )
        nodes.append(helper.make_node("Relu", [f"c{index}"], [f"r{index}"]))
        current, channels = f"r{index}", out_channels

    head = rng.normal(0, 0.01, (channels, boxes * 6)).astype(np.float32)
    initializers += [
        numpy_helper.from_array(head, "head"),
        numpy_helper.from_array(np.array([1, boxes, 6], dtype=np.int64), "out_shape"),
    ]
    flops += 2 * channels * boxes * 6
    nodes += [
        helper.make_node("GlobalAveragePool", [current], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("MatMul", ["flat", "head"], ["raw"]),
        helper.make_node("Sigmoid", ["raw"], ["unit"]),
        helper.make_node("Reshape", ["unit", "out_shape"], ["detections"]),
    ]
    graph = helper.make_graph(
        nodes,
        "convnet",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, ONNX_INPUT, ONNX_INPUT])],
        [helper.make_tensor_value_info("detections", TensorProto.FLOAT, [1, boxes, 6])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save(model, str(path))
    return path, flops / 1e9


# -- measuring --------------------------------------------------------------------------------------


def still_frames(count: int) -> Iterator[Frame]:
    """Yield the empty square count times: the per-pixel median of every 16th frame of vtest.avi."""
    capture = cv2.VideoCapture(str(VTEST))
    samples = []
    index = 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        if index % 16 == 0:
            samples.append(image)
        index += 1
    capture.release()
    background = np.median(np.stack(samples), axis=0).astype(np.uint8)
    for frame_index in range(count):
        yield Frame(background.copy(), frame_index, frame_index / CAMERA_FPS)


def run_config(config: Config, frames: int) -> Run:
    camera = CameraSettings(
        id="bench",
        source=SourceSettings(kind="file", uri=str(VTEST)),
        detect_every=config.detect_every,
        motion_gate=config.motion_gate,
        tracker=TrackerSettings(min_hits=1),
        queue_zones=[QueueZoneSettings(id="square", polygon=[(0, 0.3), (1, 0.3), (1, 1), (0, 1)])],
    )
    pipeline = CameraPipeline("bench", camera, config.make_detector(), lambda event: None)
    boxes: list[list[Detection]] = []
    last: list[Detection] = []
    detected = 0
    # The still scene is built before the clock starts, and its frames come from memory, not the decoder.
    source = list(still_frames(frames)) if config.still else FrameSource(camera.source, camera.id).frames()
    started = time.perf_counter()
    cpu_started = time.process_time()
    for frame in source:
        result = pipeline.process(frame)
        if result.detected:
            last = result.detections
            detected += 1
        boxes.append(last)
        if frame.index + 1 >= frames:
            break
    elapsed = time.perf_counter() - started
    cpu_elapsed = time.process_time() - cpu_started
    return Run(len(boxes) / elapsed, len(boxes) / cpu_elapsed, detected, boxes)


def compare(reference: list[list[Detection]], reported: list[list[Detection]]) -> tuple[float, float, int]:
    """Return (recall vs reference, share of reported boxes without a match, reported box count)."""
    matched = reference_total = reported_total = 0
    for ref_boxes, boxes in zip(reference, reported, strict=True):
        reference_total += len(ref_boxes)
        reported_total += len(boxes)
        unused = list(boxes)
        for ref in ref_boxes:
            best = max(unused, key=lambda box, ref=ref: iou(ref, box), default=None)
            if best is not None and iou(ref, best) >= MATCH_IOU:
                matched += 1
                unused.remove(best)
    recall = matched / reference_total if reference_total else 1.0
    extra = (reported_total - matched) / reported_total if reported_total else 0.0
    return recall, extra, reported_total


def configs(model_dir: Path) -> tuple[list[Config], float]:
    contract = build_contract_model(model_dir / "contract.onnx")
    convnet, gflops = build_convnet_model(model_dir / "convnet.onnx")
    gate = MotionGateSettings(enabled=True, min_changed_fraction=0.002, max_skipped=10)
    hog = HogDetector
    return [
        Config("hog-768", "HOG, native 768x576, every frame (reference)", lambda: hog(HogSettings())),
        Config("hog-640", "HOG, resized to 640x480", lambda: hog(HogSettings(resize_width=640))),
        Config("hog-512", "HOG, resized to 512x384", lambda: hog(HogSettings(resize_width=512))),
        Config("hog-768-step1.2", "HOG, native, pyramid scale step 1.2", lambda: hog(HogSettings(scale=1.2))),
        Config("hog-768-motion", "HOG, native, motion-gated (max 10 skipped)", lambda: hog(HogSettings()), 1, gate),
        Config("hog-768-every2", "HOG, native, every 2nd frame", lambda: hog(HogSettings()), 2),
        Config(
            "hog-768-still",
            "HOG, native, every frame, empty square (no motion)",
            lambda: hog(HogSettings()),
            compare=False,
            still=True,
        ),
        Config(
            "hog-768-motion-still",
            "HOG, native, motion-gated, empty square (no motion)",
            lambda: hog(HogSettings()),
            1,
            gate,
            compare=False,
            still=True,
        ),
        Config(
            "hog-768-step1.2-every2",
            "HOG, native, scale step 1.2, every 2nd frame",
            lambda: hog(HogSettings(scale=1.2)),
            2,
        ),
        Config(
            "onnx-contract",
            f"ONNX path, contract-only model, {ONNX_INPUT}x{ONNX_INPUT}",
            lambda: OnnxDetector(OnnxSettings(model=str(contract), provider="cpu")),
            compare=False,
        ),
        Config(
            "onnx-convnet",
            f"ONNX path, {gflops:.2f} GFLOP conv backbone (random weights), {ONNX_INPUT}x{ONNX_INPUT}",
            lambda: OnnxDetector(OnnxSettings(model=str(convnet), provider="cpu", score_threshold=1.0)),
            compare=False,
        ),
    ], gflops


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100, help="frames of vtest.avi per run (default 100 = 10 s)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions per configuration")
    parser.add_argument("--cpu", type=int, default=0, help="CPU to pin the process to")
    parser.add_argument("--only", nargs="*", help="configuration names to run (default: all)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    args = parser.parse_args()

    if not VTEST.is_file():
        print(f"{VTEST} not found: install the Debian package opencv-doc", file=sys.stderr)
        return 1
    os.sched_setaffinity(0, {args.cpu})
    cv2.setNumThreads(1)

    with tempfile.TemporaryDirectory(prefix="vision-bench-") as tmp:
        all_configs, _ = configs(Path(tmp))
        selected = [c for c in all_configs if not args.only or c.name in args.only or c.name == "hog-768"]
        fps: dict[str, list[float]] = {c.name: [] for c in selected}
        cpu_fps: dict[str, list[float]] = {c.name: [] for c in selected}
        runs: dict[str, Run] = {}
        for round_index in range(args.rounds):
            for config in selected:
                run = run_config(config, args.frames)
                fps[config.name].append(run.fps)
                cpu_fps[config.name].append(run.cpu_fps)
                runs.setdefault(config.name, run)
                print(
                    f"round {round_index + 1} {config.name}: {run.fps:.2f} fps wall, {run.cpu_fps:.2f} fps CPU time",
                    file=sys.stderr,
                )

    reference = runs["hog-768"].boxes
    rows = []
    for config in selected:
        run = runs[config.name]
        cpu_median = statistics.median(cpu_fps[config.name])
        row = {
            "name": config.name,
            "description": config.description,
            "fps_min": min(fps[config.name]),
            "fps_median": statistics.median(fps[config.name]),
            "fps_max": max(fps[config.name]),
            "cpu_fps_min": min(cpu_fps[config.name]),
            "cpu_fps_median": cpu_median,
            "cpu_fps_max": max(cpu_fps[config.name]),
            "detector_runs": run.detected_frames,
            "realtime": cpu_median >= CAMERA_FPS,
        }
        if config.compare:
            recall, extra, reported = compare(reference, run.boxes)
            row.update({"boxes": reported, "recall": recall, "extra": extra})
        rows.append(row)

    print_table(rows, args)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "frames": args.frames, "rows": rows}, indent=2))
    return 0


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, OpenCV {cv2.__version__}"


def print_table(rows: list[dict], args: argparse.Namespace) -> None:
    import onnxruntime  # noqa: PLC0415

    print(f"date: {datetime.now(UTC):%Y-%m-%d}; machine: {machine()}; onnxruntime {onnxruntime.__version__}")
    print(f"frames: first {args.frames} of vtest.avi, {args.rounds} interleaved rounds, pinned to CPU {args.cpu}\n")
    print(
        "| configuration | fps per CPU second min / median / max | wall-clock fps min / median / max "
        "| keeps up with 10 fps | detector runs | boxes | recall | extra |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        cpu_speed = f"{row['cpu_fps_min']:.1f} / {row['cpu_fps_median']:.1f} / {row['cpu_fps_max']:.1f}"
        speed = f"{cpu_speed} | {row['fps_min']:.1f} / {row['fps_median']:.1f} / {row['fps_max']:.1f}"
        quality = f"{row['boxes']} | {row['recall']:.0%} | {row['extra']:.0%}" if "recall" in row else "n/a | n/a | n/a"
        realtime = "yes" if row["realtime"] else "no"
        print(f"| {row['description']} | {speed} | {realtime} | {row['detector_runs']}/{args.frames} | {quality} |")


if __name__ == "__main__":
    sys.exit(main())

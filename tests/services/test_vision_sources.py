"""Frame sources: files with and without looping, and live sources that fail and retry."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from retail_edge.vision.settings import SourceSettings
from retail_edge.vision.sources import FrameSource, SourceError
from tests.support import free_port

CLIP_FRAMES = 5


@pytest.fixture
def clip(tmp_path):
    """A 5-frame MJPEG clip at 10 fps whose frame k is uniformly grey at level 40 * k + 20."""
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    assert writer.isOpened()
    for k in range(CLIP_FRAMES):
        writer.write(np.full((48, 64, 3), 40 * k + 20, dtype=np.uint8))
    writer.release()
    return path


def grey_level(image: np.ndarray) -> int:
    return round((float(image.mean()) - 20) / 40)


def test_file_source_reads_vtest(vtest_avi):
    source = FrameSource(SourceSettings(kind="file", uri=str(vtest_avi)), "lab-1")
    frames = []
    for frame in source.frames():
        frames.append(frame)
        if len(frames) == 3:
            break
    assert source.fps == 10.0
    assert [(f.index, f.timestamp, f.width, f.height) for f in frames] == [
        (0, 0.0, 768, 576),
        (1, 0.1, 768, 576),
        (2, 0.2, 768, 576),
    ]


def test_file_source_ends_without_loop(clip):
    frames = list(FrameSource(SourceSettings(kind="file", uri=str(clip)), "c").frames())
    assert [grey_level(f.image) for f in frames] == [0, 1, 2, 3, 4]


def test_file_source_loops_with_continuous_time(clip):
    source = FrameSource(SourceSettings(kind="file", uri=str(clip), loop=True), "c")
    frames = []
    for frame in source.frames():
        frames.append(frame)
        if len(frames) == 12:
            break
    assert [grey_level(f.image) for f in frames] == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]
    assert [f.index for f in frames] == list(range(12))
    assert frames[-1].timestamp == pytest.approx(1.1)


def test_file_source_realtime_paces_reading(clip):
    source = FrameSource(SourceSettings(kind="file", uri=str(clip), realtime=True), "c")
    started = time.monotonic()
    frames = list(source.frames())
    # Five frames at 10 fps: the last one is due 0.4 s after the first.
    assert len(frames) == CLIP_FRAMES
    assert time.monotonic() - started >= 0.39


def test_file_source_stops_on_event(clip):
    stop = threading.Event()
    source = FrameSource(SourceSettings(kind="file", uri=str(clip), loop=True), "c")
    count = 0
    for _frame in source.frames(stop):
        count += 1
        if count == 3:
            stop.set()
    assert count == 3


def test_missing_file_raises(tmp_path):
    source = FrameSource(SourceSettings(kind="file", uri=str(tmp_path / "none.avi")), "c")
    with pytest.raises(SourceError, match="not found"):
        next(source.frames())


def test_undecodable_file_raises(tmp_path):
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"\x00" * 1024)
    source = FrameSource(SourceSettings(kind="file", uri=str(junk)), "c")
    with pytest.raises(SourceError, match="cannot decode"):
        next(source.frames())


@pytest.mark.parametrize(
    "settings",
    [
        SourceSettings(kind="rtsp", uri="rtsp://127.0.0.1:{port}/stream1", reconnect_delay_s=0.05),
        SourceSettings(kind="v4l2", uri="/dev/video-retail-edge-test-missing", reconnect_delay_s=0.05),
    ],
    ids=["rtsp", "v4l2"],
)
def test_live_source_retries_until_stopped(settings):
    uri = settings.uri.format(port=free_port())
    settings = SourceSettings(kind=settings.kind, uri=uri, reconnect_delay_s=settings.reconnect_delay_s)
    errors = []
    stop = threading.Event()
    source = FrameSource(settings, "c", on_error=lambda: errors.append(time.monotonic()))
    frames = []
    thread = threading.Thread(target=lambda: frames.extend(source.frames(stop)), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while len(errors) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(timeout=15)
    assert not thread.is_alive()
    assert len(errors) >= 3
    assert frames == []
    # Backoff doubles: the gap between the second and third attempt exceeds the first delay.
    assert errors[2] - errors[1] >= 0.1


class FileBackedLiveSource(FrameSource):
    """A live source whose 'stream' is a real OpenCV capture of a local clip, decoded as fast as possible."""

    def __init__(self, clip_path, **kwargs) -> None:
        super().__init__(
            SourceSettings(kind="rtsp", uri="rtsp://127.0.0.1/unused", reconnect_delay_s=0.05), "c", **kwargs
        )
        self._clip_path = clip_path

    def _open_live(self):
        return cv2.VideoCapture(str(self._clip_path))


def test_live_source_keeps_only_newest_frame(tmp_path):
    path = tmp_path / "burst.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for k in range(60):
        writer.write(np.full((48, 64, 3), 4 * k, dtype=np.uint8))
    writer.release()

    stop = threading.Event()
    dropped = []
    source = FileBackedLiveSource(path, on_error=stop.set, on_drop=lambda: dropped.append(1))
    levels = []
    for frame in source.frames(stop):
        levels.append(round(float(frame.image.mean()) / 4))
        # Analysis slower than the stream: the reader must skip ahead instead of queueing.
        time.sleep(0.02)

    assert stop.is_set(), "the end of the stream should count as a failed read"
    assert len(dropped) > 0
    assert levels == sorted(set(levels)), "frames must come newest-first without repeats or reordering"
    assert len(levels) + len(dropped) == 60

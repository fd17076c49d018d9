"""Frame sources through OpenCV: video files (optionally looped for the lab), RTSP cameras, V4L2 devices.

A file source ends at the end of the file unless `loop` is set and stamps frames with media time
(frame index / fps), so analytics on recorded footage are reproducible. Live sources stamp frames
with the monotonic clock and reopen the stream with backoff when it fails, without ever ending.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from retail_edge.vision.settings import SourceSettings

log = logging.getLogger(__name__)

# Frame rate assumed when a file does not declare one.
DEFAULT_FPS = 10.0
MAX_RECONNECT_DELAY_S = 30.0
OPEN_TIMEOUT_MS = 10_000
READ_TIMEOUT_MS = 10_000
# OpenCV's FFmpeg backend reads its options from this variable when a capture opens.
_FFMPEG_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_ffmpeg_env_lock = threading.Lock()


class SourceError(RuntimeError):
    """A frame source cannot be opened."""


@dataclass(frozen=True)
class Frame:
    """One decoded BGR frame with its sequence number and timestamp in seconds."""

    image: np.ndarray
    index: int
    timestamp: float

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


class LatestFrameReader:
    """Reads a live capture in its own thread and keeps only the newest frame.

    A camera keeps sending at its own rate. When analysis is slower, the frames in between are
    dropped here (and counted through on_drop) instead of queueing in the decoder, so events always
    describe the present and latency never grows.
    """

    def __init__(self, capture: cv2.VideoCapture, on_drop: Callable[[], None] | None = None) -> None:
        self._capture = capture
        self._on_drop = on_drop
        self._condition = threading.Condition()
        self._latest: tuple[np.ndarray, float] | None = None
        self._failed = False
        self._closing = threading.Event()
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="frame-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._closing.is_set():
            ok, image = self._capture.read()
            grabbed_at = time.monotonic()
            with self._condition:
                if not ok:
                    self._failed = True
                    self._condition.notify_all()
                    return
                if self._latest is not None:
                    self.dropped += 1
                    if self._on_drop is not None:
                        self._on_drop()
                self._latest = (image, grabbed_at)
                self._condition.notify_all()

    def next(self, timeout: float) -> tuple[np.ndarray, float] | None:
        """Return the newest unread frame and its grab time; None when the stream failed or timed out."""
        with self._condition:
            self._condition.wait_for(lambda: self._latest is not None or self._failed, timeout)
            latest, self._latest = self._latest, None
            return latest

    def close(self) -> None:
        self._closing.set()
        self._thread.join(timeout=READ_TIMEOUT_MS / 1000 + 1)
        if self._thread.is_alive():
            # Releasing a capture while another thread is inside read() can crash the decoder, so it leaks instead.
            log.warning("frame reader did not stop; leaving the capture open")
            return
        self._capture.release()


class FrameSource:
    """Iterates over a camera's frames until the source ends or `stop` is set."""

    def __init__(
        self,
        settings: SourceSettings,
        camera_id: str,
        environ: Mapping[str, str] | None = None,
        on_error: Callable[[], None] | None = None,
        on_drop: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.camera_id = camera_id
        self._uri = settings.resolved_uri(os.environ if environ is None else environ)
        self._on_error = on_error
        self._on_drop = on_drop
        self.fps = settings.fps or DEFAULT_FPS

    def frames(self, stop: threading.Event | None = None) -> Iterator[Frame]:
        stop = stop or threading.Event()
        if self.settings.kind == "file":
            yield from self._file_frames(stop)
        else:
            yield from self._live_frames(stop)

    # -- files --------------------------------------------------------------------------------------

    def _file_frames(self, stop: threading.Event) -> Iterator[Frame]:
        path = Path(self._uri)
        if not path.is_file():
            raise SourceError(f"camera {self.camera_id}: video file {path} not found")
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            raise SourceError(f"camera {self.camera_id}: OpenCV cannot decode {path} (unsupported container or codec)")
        declared_fps = capture.get(cv2.CAP_PROP_FPS)
        self.fps = self.settings.fps or (declared_fps if declared_fps > 0 else DEFAULT_FPS)
        log.info("source opened", extra={"camera": self.camera_id, "kind": "file", "uri": str(path), "fps": self.fps})

        index = 0
        frames_this_pass = 0
        started = time.monotonic()
        try:
            while not stop.is_set():
                ok, image = capture.read()
                if not ok:
                    if not self.settings.loop or frames_this_pass == 0:
                        log.info("source ended", extra={"camera": self.camera_id, "frames": index})
                        return
                    capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    frames_this_pass = 0
                    continue
                timestamp = index / self.fps
                if self.settings.realtime:
                    delay = started + timestamp - time.monotonic()
                    if delay > 0:
                        stop.wait(delay)
                yield Frame(image, index, timestamp)
                index += 1
                frames_this_pass += 1
        finally:
            capture.release()

    # -- RTSP and V4L2 ------------------------------------------------------------------------------

    def _live_frames(self, stop: threading.Event) -> Iterator[Frame]:
        delay = self.settings.reconnect_delay_s
        index = 0
        while not stop.is_set():
            capture = self._open_live()
            if capture is None:
                self._report_error("open", delay)
                stop.wait(delay)
                delay = min(delay * 2, MAX_RECONNECT_DELAY_S)
                continue
            log.info(
                "source opened", extra={"camera": self.camera_id, "kind": self.settings.kind, "uri": self.settings.uri}
            )
            reader = LatestFrameReader(capture, self._on_drop)
            try:
                while not stop.is_set():
                    latest = reader.next(timeout=READ_TIMEOUT_MS / 1000 + 1)
                    if latest is None:
                        break
                    delay = self.settings.reconnect_delay_s
                    image, grabbed_at = latest
                    yield Frame(image, index, grabbed_at)
                    index += 1
            finally:
                reader.close()
            if not stop.is_set():
                self._report_error("read", delay)
                stop.wait(delay)
                delay = min(delay * 2, MAX_RECONNECT_DELAY_S)

    def _open_live(self) -> cv2.VideoCapture | None:
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS]
        if self.settings.kind == "rtsp":
            with _ffmpeg_env_lock:
                os.environ[_FFMPEG_OPTIONS_ENV] = f"rtsp_transport;{self.settings.rtsp_transport}"
                capture = cv2.VideoCapture(self._uri, cv2.CAP_FFMPEG, params)
        else:
            device: int | str = int(self._uri) if self._uri.isdigit() else self._uri
            for prop, value in (
                (cv2.CAP_PROP_FRAME_WIDTH, self.settings.width),
                (cv2.CAP_PROP_FRAME_HEIGHT, self.settings.height),
                (cv2.CAP_PROP_FPS, self.settings.fps),
            ):
                if value is not None:
                    params += [prop, int(value)]
            capture = cv2.VideoCapture(device, cv2.CAP_V4L2, params)
        if not capture.isOpened():
            capture.release()
            return None
        # Ask the backend to queue as few frames as it can; LatestFrameReader drops the rest.
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return capture

    def _report_error(self, stage: str, retry_in: float) -> None:
        log.warning(
            "source failed; retrying",
            extra={
                "camera": self.camera_id,
                "kind": self.settings.kind,
                "uri": self.settings.uri,
                "stage": stage,
                "retry_in_s": retry_in,
            },
        )
        if self._on_error is not None:
            self._on_error()

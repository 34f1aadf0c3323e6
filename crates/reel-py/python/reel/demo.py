"""Demo videos from Python: ``reel demo``'s recorder (cameras composited with audio into one MP4
whose video and audio time both follow the wall clock), started and stopped around any code.

    rec = reel.DemoRecorder.start("rollout.mp4", cameras={"main": "/dev/video0@640x480@30"},
                                  audio="pulse:default")
    ...                       # the inference loop, unchanged
    stats = rec.stop()

Cameras are FFmpeg inputs reel reads on its own threads (the control code does not know), or
frames the caller hands over: ``push(name, image)``, or a ``frame_callback`` that a background
thread of this class calls ``fps`` times a second (it returns ``{camera: image}``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from . import _reel

log = logging.getLogger("reel")


class DemoRecorder:
    """A demo video being recorded; use :meth:`start`."""

    def __init__(self, native: _reel.DemoRecorder, callback_thread: threading.Thread | None,
                 stop_event: threading.Event):
        self._native = native
        self._thread = callback_thread
        self._stop = stop_event
        self.callback_error: BaseException | None = None

    @classmethod
    def start(
        cls,
        output: str | Path,
        cameras: Mapping[str, str | None] | Sequence[str] | None = None,
        *,
        frame_callback: Callable[[], Mapping[str, object]] | None = None,
        audio: str | None = None,
        layout: str = "pip",
        size: tuple[int, int] = (960, 540),
        fps: int = 30,
        main_camera: int = 0,
        inset_camera: int | None = None,
        preset: str = "ultrafast",
        crf: int = 23,
    ) -> "DemoRecorder":
        """Starts recording ``output``.

        ``cameras``: ``{name: input}`` where ``input`` is an FFmpeg camera reel reads
        (``"lavfi:testsrc2@640x480@30"``, ``"/dev/video2@640x480@30"``, a video file) or None for a
        camera fed with :meth:`push`; or a list of names (all pushed). With ``frame_callback`` and
        no ``cameras``, the cameras are the keys of the callback's first result.
        ``audio``: ``"pulse:default"``, ``"alsa:hw:0"``, ``"lavfi:sine=frequency=440"``, a file, or None.
        ``layout``: ``"pip"``, ``"side-by-side"`` or ``"grid"``.
        """
        if cameras is None and frame_callback is None:
            raise ValueError("DemoRecorder.start needs cameras, a frame_callback, or both")
        first: Mapping[str, object] | None = None
        if cameras is None:
            first = frame_callback()  # type: ignore[misc]
            if not isinstance(first, Mapping) or not first:
                raise ValueError("frame_callback must return a non-empty dict {camera: image}")
            cams = [(str(k), None) for k in first]
        elif isinstance(cameras, Mapping):
            cams = [(str(k), v) for k, v in cameras.items()]
        else:
            cams = [(str(k), None) for k in cameras]
        native = _reel.DemoRecorder.start(
            str(output), cams, audio=audio, layout=layout, size=tuple(size), fps=fps,
            main_camera=main_camera, inset_camera=inset_camera, preset=preset, crf=crf)
        stop = threading.Event()
        rec = cls(native, None, stop)
        if first is not None:
            rec._push_all(first)
        if frame_callback is not None:
            t = threading.Thread(target=rec._run_callback, args=(frame_callback, fps),
                                 name="reel-demo-callback", daemon=True)
            rec._thread = t
            t.start()
        return rec

    def _push_all(self, frames: Mapping[str, object]) -> None:
        now = _reel.now_ns()
        for name, image in frames.items():
            if image is not None:
                self._native.push(str(name), image, now)

    def _run_callback(self, callback: Callable[[], Mapping[str, object]], fps: int) -> None:
        period = 1.0 / fps
        next_t = time.monotonic()
        while not self._stop.is_set():
            try:
                frames = callback()
                if frames:
                    self._push_all(frames)
            except BaseException as e:  # reported by stop(); the recording goes on without it
                self.callback_error = e
                log.error("reel.DemoRecorder: frame_callback failed, no more frames from it: %s", e)
                return
            next_t += period
            delay = next_t - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_t = time.monotonic()

    def push(self, name: str, image, captured_ns: int | None = None) -> None:
        """Makes ``image`` (HWC or CHW, uint8 or float in [0, 1]) the latest frame of camera
        ``name`` (one given as None or by name only). Copies; never waits."""
        self._native.push(name, image, captured_ns)

    def stats(self) -> dict:
        """Frames written, video/audio/wall seconds, per camera (new, repeated) frames."""
        return self._native.stats()

    def stop(self) -> dict:
        """Stops, finalizes the MP4 (renamed into place once complete) and returns its figures."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        stats = self._native.stop()
        if self.callback_error is not None:
            stats["callback_error"] = repr(self.callback_error)
        return stats

    @property
    def output(self) -> Path:
        return Path(self._native.output)

    def __enter__(self) -> "DemoRecorder":
        return self

    def __exit__(self, *exc) -> bool:
        try:
            self.stop()
        except _reel.ReelError as e:
            if "already stopped" not in str(e):
                raise
        return False

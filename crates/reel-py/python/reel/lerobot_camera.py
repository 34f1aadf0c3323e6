"""reel's cameras inside LeRobot robots: capture on native threads, frames recorded without a copy.

A LeRobot camera (``lerobot.cameras.Camera``) whose capture runs on reel-capture's reader
thread (FFmpeg: V4L2 with MJPG first, video files, ``lavfi:`` graphs, RTSP), decoding and colour
conversion included: no Python thread and no GIL per frame. Use it in any robot's ``cameras``
dict::

    --robot.cameras="{front: {type: reel, input: /dev/video0, width: 640, height: 480, fps: 30}}"

(the ``reel`` camera type is registered when :mod:`reel.lerobot_plugin` is imported), or let the
plugin put reel cameras in place of a robot's ``opencv`` cameras without changing the robot:
``--dataset.discover_packages_path=reel.lerobot_plugin_native`` (or ``REEL_CAMERAS=native``
with the plain plugin). Camera types reel cannot capture (RealSense depth, ZMQ, Reachy 2) stay
LeRobot's, said in one log line each.

Reads never make the loop wait for a camera's next frame unless the tick can afford it:

* ``read_latest()`` (what LeRobot 0.6.1's robots call) returns the newest frame at once;
* ``async_read()`` returns a frame captured since the previous read at once, else waits for
  the next one within the tick's observation budget (``max_wait_ms``, default 2 ms, shared by
  every reel camera of the loop: three cameras cost at most one budget per tick, never
  LeRobot's 200 ms per camera), else returns the previous frame again;
* ``read()`` waits for a new frame (LeRobot's blocking read).

A frame given twice is a repeat: counted (``counts()``) and, when the frame reaches
``ReelDataset.add_frame``, stored in the episode's figures (``reel/camera/<name>/repeated_frames``,
with the frames' ages) because the writer sees its real capture time. A camera that stops
delivering (file ended, device error, no new frame for ``lost_after_ms``) is handled as
``reel record --on-camera-loss`` does: ``on_loss="end"`` raises :class:`CameraLostError` naming the
camera and why, and the episode in progress is saved up to that frame when LeRobot finalizes the
dataset; ``on_loss="continue"`` goes on with the last frame, flagged.

The arrays are read-only views of reel's frame buffers; ``ReelDataset.add_frame`` recognises them
and hands the same buffer to the encoder (``Writer.frame_copies()`` counts it).
"""

from __future__ import annotations

import glob
import logging
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lerobot.cameras.camera import Camera
from lerobot.cameras.configs import CameraConfig, ColorMode, Cv2Rotation
from lerobot.utils.errors import DeviceAlreadyConnectedError, DeviceNotConnectedError

from . import _reel

log = logging.getLogger("reel")

_FOURCC = {"MJPG": "mjpeg", "YUYV": "yuyv422"}
_ROTATE = {Cv2Rotation.ROTATE_90: "transpose=clock", Cv2Rotation.ROTATE_180: "hflip,vflip",
           Cv2Rotation.ROTATE_270: "transpose=cclock"}


class CameraLostError(RuntimeError):
    """A reel camera stopped delivering and its ``on_loss`` policy is ``end``."""


@CameraConfig.register_subclass("reel")
@dataclass(kw_only=True)
class ReelCameraConfig(CameraConfig):
    """A reel camera (see the module doc). ``width``/``height``/``fps`` are what the robot gets
    (after ``rotation``); the input is scaled to them."""

    #: ``/dev/videoN``, a media file, ``lavfi:GRAPH`` or an ``rtsp://`` URL.
    input: str
    #: The name in reel's log lines; the robot's camera key when the plugin makes the camera.
    name: str | None = None
    #: V4L2: ``mjpeg`` or ``yuyv422``; None tries MJPG first.
    input_format: str | None = None
    #: An FFmpeg filter chain on the decoded frames (before scaling), e.g. ``noise=alls=4:allf=t``.
    filter: str | None = None
    #: A file input starts again at its end.
    loop: bool = True
    color_mode: ColorMode = ColorMode.RGB
    rotation: Cv2Rotation = Cv2Rotation.NO_ROTATION
    #: The observation budget per tick that ``async_read`` may wait, shared by all reel cameras.
    max_wait_ms: float = 2.0
    #: No new frame for this long: the camera is lost (``reel record --camera-timeout-ms``).
    lost_after_ms: float = 500.0
    #: ``end`` (raise :class:`CameraLostError`) or ``continue`` (flagged repeats).
    on_loss: str = "end"
    #: Testing aid: ``end-file``, ``error-after=S``, ``stall=AT:LEN``, ``fps=F``.
    fault: str | None = None
    open_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        self.color_mode = ColorMode(self.color_mode)
        self.rotation = Cv2Rotation(self.rotation)
        if self.on_loss not in ("end", "continue"):
            raise ValueError(f"reel camera: on_loss must be 'end' or 'continue', got {self.on_loss!r}")
        if self.max_wait_ms < 0:
            raise ValueError(f"reel camera: max_wait_ms must be >= 0, got {self.max_wait_ms}")


_clocks: dict[tuple[int, float], Any] = {}
_clock_lock = threading.Lock()
#: Camera losses raised in this process (``ReelDataset.finalize`` saves the episode up to one).
_losses: list[str] = []


def _clock(fps: int, budget_ms: float):
    """The observation clock shared by the reel cameras of a loop (same rate and budget)."""
    with _clock_lock:
        key = (fps, budget_ms)
        if key not in _clocks:
            _clocks[key] = _reel.ObserveClock(fps, budget_ms)
        return _clocks[key]


def take_losses() -> list[str]:
    """The camera losses raised since the last call (messages); a dataset finalized after them
    saves its episode in progress, and a later dataset of the same process starts clean."""
    out = list(_losses)
    _losses.clear()
    return out


def _input_of(index_or_path: int | str | Path) -> str:
    if isinstance(index_or_path, int) or (isinstance(index_or_path, str) and index_or_path.isdigit()):
        return f"/dev/video{int(index_or_path)}"
    return str(index_or_path)


def from_opencv(cfg) -> ReelCameraConfig:
    """An ``opencv`` camera's config as a reel camera's: the same device or file, size, rate,
    FOURCC, colour mode and rotation. Refuses (ValueError) what reel cannot do the same way."""
    if cfg.width is None or cfg.height is None or cfg.fps is None:
        raise ValueError(
            f"opencv camera {cfg.index_or_path}: reel needs width, height and fps to replace it "
            f"(got {cfg.width}x{cfg.height} @ {cfg.fps}); set them in the robot's camera config")
    fmt = None
    if cfg.fourcc is not None:
        fmt = _FOURCC.get(cfg.fourcc.upper())
        if fmt is None:
            raise ValueError(f"opencv camera {cfg.index_or_path}: FOURCC {cfg.fourcc!r} has no reel "
                             f"equivalent (reel asks V4L2 for {sorted(_FOURCC)})")
    w, h = cfg.width, cfg.height
    if Cv2Rotation(cfg.rotation) in (Cv2Rotation.ROTATE_90, Cv2Rotation.ROTATE_270):
        w, h = h, w  # LeRobot's width/height are the capture's; the robot gets them swapped.
    return ReelCameraConfig(input=_input_of(cfg.index_or_path), width=w, height=h, fps=cfg.fps,
                            input_format=fmt, color_mode=cfg.color_mode, rotation=cfg.rotation)


class ReelCamera(Camera):
    """LeRobot's ``Camera`` surface on a reel camera (see the module doc)."""

    def __init__(self, config: ReelCameraConfig):
        super().__init__(config)
        self.config = config
        if config.width is None or config.height is None:
            raise ValueError(f"reel camera {config.input}: width and height are required")
        self.fps = config.fps or 30
        self.color_mode = config.color_mode
        self._cam = None
        self._clock = None
        self._zero_budget = None
        #: What the last read returned: seq, captured_ns, repeated, stale, waited_ms.
        self.last_read: dict | None = None

    def __str__(self) -> str:
        return f"ReelCamera({self.config.input})"

    @property
    def is_connected(self) -> bool:
        return self._cam is not None and self._cam.is_open

    @staticmethod
    def find_cameras() -> list[dict[str, Any]]:
        """The V4L2 devices of this machine, as reel would open them."""
        return [{"name": Path(p).name, "type": "reel", "id": p, "input": p,
                 "default_stream_profile": {"format": "mjpeg (tried first)"}}
                for p in sorted(glob.glob("/dev/video*"))]

    def connect(self, warmup: bool = True) -> None:
        """Opens the input and waits for its first frame (``open_timeout_s``); ``warmup`` has
        nothing to wait for (reel's reader is already delivering)."""
        if self.is_connected:
            raise DeviceAlreadyConnectedError(f"{self} is already connected")
        c = self.config
        filt = ",".join(f for f in (_ROTATE.get(Cv2Rotation(c.rotation)), c.filter) if f) or None
        name = c.name or (Path(c.input).stem if not c.input.startswith("lavfi:") else "lavfi")
        name = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name) or "camera"
        try:
            self._cam = _reel.Camera(name, c.input, c.width, c.height, self.fps, loop=c.loop,
                                     input_format=c.input_format, filter=filt, fault=c.fault,
                                     open_timeout_s=c.open_timeout_s, lost_after_ms=c.lost_after_ms,
                                     on_loss=c.on_loss)
        except _reel.ReelError as e:
            raise ConnectionError(f"{self}: {e}") from e
        self._clock = _clock(self.fps, float(c.max_wait_ms))
        self._zero_budget = _clock(self.fps, 0.0)
        log.info("reel camera %s: %s (capture on reel's native thread)", c.input, self._cam.format())

    def _check(self) -> Any:
        if not self.is_connected:
            raise DeviceNotConnectedError(f"{self} is not connected")
        return self._cam

    def _out(self, arr):
        return arr[..., ::-1] if self.color_mode == ColorMode.BGR else arr

    def _tick_read(self, clock) -> Any:
        cam = self._check()
        try:
            arr, seq, cap, repeated, stale, waited = cam.read_for_tick(clock)
        except _reel.ReelError as e:
            msg = (f"reel {e}: the episode in progress is saved up to here and recording stops "
                   f"(on_loss='end', as reel record --on-camera-loss end-episode)")
            _losses.append(msg)
            raise CameraLostError(msg) from e
        self.last_read = {"seq": seq, "captured_ns": cap, "repeated": repeated, "stale": stale,
                          "waited_ms": waited / 1e6}
        return self._out(arr)

    def read(self, color_mode: ColorMode | None = None) -> Any:
        """A frame newer than the last one read (waits up to 1 s for it)."""
        cam = self._check()
        try:
            arr = cam.read_new(1000.0)
        except _reel.ReelError as e:
            raise TimeoutError(f"{self}: {e}") from e
        if color_mode is not None and ColorMode(color_mode) != self.color_mode:
            return arr[..., ::-1]
        return self._out(arr)

    def async_read(self, timeout_ms: float = 200) -> Any:
        """The newest frame: at once when one arrived since the last read, else waiting within
        the tick's shared budget (``max_wait_ms``; ``timeout_ms`` only shortens it), else the
        last frame again (a counted repeat)."""
        clock = self._clock
        if timeout_ms < self.config.max_wait_ms:
            clock = _clock(self.fps, float(max(0.0, timeout_ms)))
        return self._tick_read(clock)

    def read_latest(self, max_age_ms: int = 500) -> Any:
        """The newest frame at once (never waits). ``TimeoutError`` when it is older than
        ``max_age_ms``, as LeRobot's cameras do; a lost camera raises :class:`CameraLostError`
        (``on_loss="end"``) first."""
        arr = self._tick_read(self._zero_budget)
        age_ms = (_reel.now_ns() - self.last_read["captured_ns"]) / 1e6
        if age_ms > max_age_ms and not self.last_read["stale"]:
            raise TimeoutError(f"{self} latest frame is too old: {age_ms:.1f} ms (max allowed: {max_age_ms} ms).")
        return arr

    def counts(self) -> dict:
        """Reads, repeats, waits (and ms waited), losses, and the reader's capture figures."""
        return self._check().counts()

    def disconnect(self) -> None:
        if self._cam is None:
            raise DeviceNotConnectedError(f"{self} not connected.")
        cam, self._cam = self._cam, None
        c = cam.counts()
        log.info("reel camera %s: %d reads, %d repeats, %d waits (%.1f ms), %d losses; %d frames captured",
                 self.config.input, c["reads"], c["repeats"], c["waits"], c["waited_ms"], c["losses"],
                 c.get("captured", 0))
        neg = cam.negotiated()
        if neg:
            log.info("reel %s", neg)
        cam.close()


# --- putting reel cameras in place of a robot's opencv cameras --------------------------------
_original_make = None
_replace_opencv = False


def _make_cameras(camera_configs: dict) -> dict:
    """``make_cameras_from_configs`` with reel cameras for ``reel`` and ``opencv`` configs."""
    from lerobot.cameras.opencv.configuration_opencv import OpenCVCameraConfig

    out: dict = {}
    for key, cfg in camera_configs.items():
        if isinstance(cfg, ReelCameraConfig):
            if cfg.name is None:
                cfg.name = key
            out[key] = ReelCamera(cfg)
        elif _replace_opencv and isinstance(cfg, OpenCVCameraConfig):
            rc = from_opencv(cfg)
            rc.name = key
            log.info("reel: camera '%s' (%s %s) replaced by a reel camera (%s %dx%d @ %d fps)", key,
                     cfg.type, cfg.index_or_path, rc.input, rc.width, rc.height, rc.fps)
            out[key] = ReelCamera(rc)
        else:
            why = ("reel does not capture RealSense cameras (no librealsense in Debian 12; colour "
                   "and depth stay on LeRobot's RealSense driver)" if cfg.type == "intelrealsense"
                   else f"reel has no {cfg.type} input")
            if _replace_opencv:
                log.info("reel: camera '%s' (%s) stays LeRobot's: %s", key, cfg.type, why)
            out.update(_original_make({key: cfg}))
    return out


def install_cameras(replace_opencv: bool = True) -> list[str]:
    """Makes LeRobot build ``reel`` camera configs as reel cameras named after the robot's
    camera keys and, with ``replace_opencv``, its ``opencv`` camera configs too: rebinds
    ``make_cameras_from_configs`` in ``lerobot.cameras.utils`` and in every module that
    imported it. Returns the modules rebound; logs one line when replacing opencv cameras."""
    global _original_make, _replace_opencv
    import lerobot.cameras.utils as cu

    if _original_make is None:
        _original_make = cu.make_cameras_from_configs
    _replace_opencv = _replace_opencv or replace_opencv
    rebound = []
    for name, mod in list(sys.modules.items()):
        if mod is not None and getattr(mod, "make_cameras_from_configs", None) is _original_make:
            mod.make_cameras_from_configs = _make_cameras
            rebound.append(name)
    if replace_opencv:
        print(f"reel {_reel.__version__}: opencv cameras become reel cameras (native capture, frames "
              f"recorded without a copy)", file=sys.stderr, flush=True)
    return rebound


def uninstall_cameras() -> None:
    """Undoes :func:`install_cameras`."""
    global _original_make
    if _original_make is None:
        return
    for mod in list(sys.modules.values()):
        if mod is not None and getattr(mod, "make_cameras_from_configs", None) is _make_cameras:
            mod.make_cameras_from_configs = _original_make
    _original_make = None


def wanted() -> bool:
    """``REEL_CAMERAS=native`` asks the plugin for reel cameras in place of opencv ones."""
    v = os.environ.get("REEL_CAMERAS", "").strip().lower()
    if v not in ("", "native", "lerobot"):
        raise ValueError(f"REEL_CAMERAS must be 'native' or 'lerobot', got {v!r}")
    return v == "native"

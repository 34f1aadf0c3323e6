"""A fake robot with real LeRobot cameras, and a LeRobot camera that reads a video file as a
device delivers frames (see :mod:`reel.testing`).

* ``reel_camera_robot``: a 6-joint arm like ``reel_fake_robot`` whose ``cameras`` dict is a
  real LeRobot ``cameras`` config, built with LeRobot's ``make_cameras_from_configs`` and read
  as LeRobot 0.6.1's SO-101 follower reads them (``read_latest()`` camera after camera).
  ``log_path``: one JSON line per observation with the frame code of each camera's image
  (:func:`read_code`), a fingerprint of it, and the time ``get_observation`` took.
* ``reel_paced_file`` cameras: LeRobot's own ``OpenCVCamera`` (its read thread, event, colour
  conversion, ``async_read``/``read_latest``), only the hardware read replaced by a read of a
  video file paced to the camera's rate (looping at the end), as a webcam delivers.
* :func:`write_code_video`: a lossless video whose frames carry their index as a code.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from lerobot.cameras.configs import CameraConfig
from lerobot.cameras.opencv import OpenCVCamera
from lerobot.cameras.opencv.configuration_opencv import OpenCVCameraConfig
from lerobot.cameras.utils import make_cameras_from_configs
from lerobot.robots.config import RobotConfig
from lerobot.robots.robot import Robot

from .fake_arm import FakeArm, joint_features

#: Bits of a frame code, drawn as a row of cells at the top of the image.
CODE_BITS = 12
CODE_ROWS = 16
#: The blue level of :func:`write_code_video`'s frames below the code band.
BLUE = 90


def draw_code(img: np.ndarray, k: int) -> None:
    """Writes ``k`` (0 <= k < 4096) into the top band of ``img``: one black/white cell per bit."""
    h, w, _ = img.shape
    cw = w // CODE_BITS
    img[:CODE_ROWS] = 0
    for b in range(CODE_BITS):
        if (k >> b) & 1:
            img[:CODE_ROWS, b * cw:(b + 1) * cw] = 255


def read_code(img: np.ndarray) -> int:
    """The code :func:`draw_code` wrote (robust to lossy compression: each cell's centre mean)."""
    h, w, _ = img.shape
    cw = w // CODE_BITS
    k = 0
    for b in range(CODE_BITS):
        cell = img[3:CODE_ROWS - 3, b * cw + 2:(b + 1) * cw - 2]
        if float(cell.mean()) > 127:
            k |= 1 << b
    return k


def write_code_video(path: str, frames: int, width: int, height: int, fps: int = 30) -> None:
    """A lossless (FFV1) video of ``frames`` textured frames, frame k carrying code k."""
    import av

    ys, xs = np.mgrid[0:height, 0:width]
    with av.open(path, "w") as out:
        s = out.add_stream("ffv1", rate=fps)
        s.width, s.height, s.pix_fmt = width, height, "bgr0"
        for k in range(frames):
            # Ramps over the whole 0..255 range shifted by k, and a steady blue: every frame has
            # about the same mean, so statistics checks on a few sampled frames hold.
            img = np.empty((height, width, 3), np.uint8)
            img[..., 0] = (xs * 256 // width + 8 * k) % 256
            img[..., 1] = (ys * 256 // height + 5 * k) % 256
            img[..., 2] = BLUE
            draw_code(img, k)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)


@CameraConfig.register_subclass("reel_paced_file")
@dataclass(kw_only=True)
class PacedFileCameraConfig(OpenCVCameraConfig):
    """An ``opencv`` camera config whose ``index_or_path`` is a video file read at ``fps``."""


class PacedFileCamera(OpenCVCamera):
    """LeRobot's ``OpenCVCamera`` reading a file as a device: frame k at k/fps, looping."""

    def __init__(self, config: PacedFileCameraConfig):
        super().__init__(config)
        self._next_t: float | None = None

    def _configure_capture_settings(self) -> None:
        import cv2

        cap = self.videocapture
        w = int(round(cap.get(cv2.CAP_PROP_FRAME_WIDTH)))
        h = int(round(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        if self.width is None or self.height is None:
            self.width, self.height = w, h
        if (w, h) != (self.width, self.height):
            raise RuntimeError(f"{self}: the file is {w}x{h}, the camera is configured {self.width}x{self.height}")
        self.capture_width, self.capture_height = w, h
        if self.fps is None:
            self.fps = cap.get(cv2.CAP_PROP_FPS)

    def _read_from_hardware(self):
        import cv2

        period = 1.0 / float(self.fps or 30)
        now = time.perf_counter()
        if self._next_t is None or now - self._next_t > period:
            self._next_t = now  # first frame, or fell behind by a whole frame: resync
        elif self._next_t > now:
            time.sleep(self._next_t - now)
        self._next_t += period
        ok, frame = self.videocapture.read()
        if not ok:
            self.videocapture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self.videocapture.read()
        if not ok:
            raise RuntimeError(f"{self}: cannot read a frame from {self.index_or_path}")
        return frame


@RobotConfig.register_subclass("reel_camera_robot")
@dataclass(kw_only=True)
class ReelCameraRobotConfig(RobotConfig):
    cameras: dict[str, CameraConfig] = field(default_factory=dict)
    #: One JSON line per observation: frame codes per camera and get_observation's time.
    log_path: str | None = None


class ReelCameraRobot(FakeArm, Robot):
    config_class = ReelCameraRobotConfig
    name = "reel_camera_robot"

    def __init__(self, config: ReelCameraRobotConfig):
        super().__init__(config)
        self.cameras = make_cameras_from_configs(config.cameras)
        self._log = None

    @cached_property
    def observation_features(self) -> dict:
        f = joint_features()
        for key, cfg in self.config.cameras.items():
            f[key] = (cfg.height, cfg.width, 3)
        return f

    @property
    def is_connected(self) -> bool:
        return self._connected and all(c.is_connected for c in self.cameras.values())

    def connect(self, calibrate: bool = True) -> None:
        for cam in self.cameras.values():
            cam.connect()
        if self.config.log_path:
            self._log = open(self.config.log_path, "a", buffering=1)
        self._connected = True

    def get_observation(self) -> dict:
        t0 = time.perf_counter()
        obs = self._joint_observation()
        for key, cam in self.cameras.items():
            obs[key] = cam.read_latest()
        dt = time.perf_counter() - t0
        if self._log is not None:
            # codes: the frame codes of write_code_video's files; fp: a cheap fingerprint of any
            # image (a sparse pixel grid), equal for a frame given twice.
            self._log.write(json.dumps({"t": t0, "obs_ms": dt * 1e3,
                                        "codes": {k: read_code(obs[k]) for k in self.cameras},
                                        "fp": {k: hash(obs[k][::24, ::24].tobytes()) for k in self.cameras}})
                            + "\n")
        return obs

    def disconnect(self) -> None:
        for cam in self.cameras.values():
            if cam.is_connected:
                cam.disconnect()
        if self._log is not None:
            self._log.close()
            self._log = None
        self._connected = False

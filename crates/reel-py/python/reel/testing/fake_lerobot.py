"""The fake robot and teleoperator (see :mod:`reel.testing`)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from lerobot.robots.config import RobotConfig
from lerobot.robots.robot import Robot
from lerobot.teleoperators.config import TeleoperatorConfig
from lerobot.teleoperators.teleoperator import Teleoperator

from .fake_arm import JOINTS, FakeArm, FakeDevice, joint_features

CAMERA_NAMES = ("front", "wrist", "side", "top", "left", "right")


@RobotConfig.register_subclass("reel_fake_robot")
@dataclass(kw_only=True)
class ReelFakeRobotConfig(RobotConfig):
    num_cameras: int = 1
    width: int = 320
    height: int = 240
    #: A video file whose frames (decoded once, scaled to width x height) the cameras loop;
    #: several files separated by commas go to the cameras in order (repeating the list).
    video_path: str | None = None
    #: Frames decoded from video_path (or synthesised) and looped.
    loop_frames: int = 90
    #: Raise in get_observation after this many observations.
    fail_after: int | None = None
    #: Camera noise (Gaussian, in pixel levels) baked into the looped frames at connect, like
    #: a webcam's sensor noise: it makes encoders work harder and costs nothing per tick.
    noise_sigma: float = 0.0
    #: The first camera also has a depth stream (`<cam>_depth`, (height, width, 1) uint16
    #: millimetres, as LeRobot's RealSense with `use_depth`): the ramp `depth_frame(k)`.
    depth: bool = False


def depth_frame(k: int, w: int, h: int) -> np.ndarray:
    """Depth frame k (mod 90) of the fake depth camera, in mm: a ramp over 0..12 m (past
    LeRobot's 10 m range) with the frame code 500 + 100 k mm in the top-left 8x8 block."""
    k %= 90
    y, x = np.mgrid[0:h, 0:w]
    f = (x * 150 + y * 50 + k * 37) % 12000
    f[:8, :8] = 500 + 100 * k
    return f.astype(np.uint16)[:, :, None]


def _synthetic(n: int, w: int, h: int, cam: int) -> list[np.ndarray]:
    """``n`` frames of a moving gradient with a bright square: cheap, distinct, encodable, and
    with about the same mean (so that statistics checks on a few sampled frames hold)."""
    ys, xs = np.mgrid[0:h, 0:w]
    out = []
    for k in range(n):
        # Ramps over the whole 0..255 range across the frame, shifted by k: every frame of a
        # camera has the same mean, whatever its size.
        r = ((xs * 256 // w + 8 * k + 40 * cam) % 256).astype(np.uint8)
        g = ((ys * 256 // h + 5 * k) % 256).astype(np.uint8)
        b = np.full((h, w), (60 * cam + 40) % 256, np.uint8)  # steady mean: stats ≈ any frame's
        f = np.stack([r, g, b], axis=-1)
        x0 = (k * 5) % max(1, w - 16)
        f[h // 3: h // 3 + 16, x0: x0 + 16] = 255
        out.append(f)
    return out


def _from_file(path: str, n: int, w: int, h: int) -> list[np.ndarray]:
    import av

    out = []
    with av.open(path) as c:
        for fr in c.decode(video=0):
            out.append(fr.to_ndarray(format="rgb24", width=w, height=h))
            if len(out) >= n:
                break
    if not out:
        raise RuntimeError(f"reel_fake_robot: no frame decoded from {path}")
    return out


class ReelFakeRobot(FakeArm, Robot):
    config_class = ReelFakeRobotConfig
    name = "reel_fake_robot"

    def __init__(self, config: ReelFakeRobotConfig):
        super().__init__(config)
        if config.num_cameras > len(CAMERA_NAMES):
            raise ValueError(f"reel_fake_robot: at most {len(CAMERA_NAMES)} cameras")
        self.cameras = {n: None for n in CAMERA_NAMES[: config.num_cameras]}
        self._frames: dict[str, list[np.ndarray]] = {}
        self._observations = 0

    @cached_property
    def observation_features(self) -> dict:
        f = joint_features()
        for cam in self.cameras:
            f[cam] = (self.config.height, self.config.width, 3)
        if self.config.depth:
            f[f"{next(iter(self.cameras))}_depth"] = (self.config.height, self.config.width, 1)
        return f

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self, calibrate: bool = True) -> None:
        c = self.config
        for i, cam in enumerate(self.cameras):
            if c.video_path:
                paths = [p.strip() for p in c.video_path.split(",") if p.strip()]
                self._frames[cam] = _from_file(paths[i % len(paths)], c.loop_frames, c.width, c.height)
            else:
                self._frames[cam] = _synthetic(min(c.loop_frames, 30), c.width, c.height, i)
            if c.noise_sigma > 0:
                rng = np.random.default_rng(i)
                self._frames[cam] = [
                    np.clip(f + rng.normal(0, c.noise_sigma, f.shape), 0, 255).astype(np.uint8)
                    for f in self._frames[cam]]
        self._t0 = time.monotonic()
        self._connected = True

    def get_observation(self) -> dict:
        if not self._connected:
            raise RuntimeError("reel_fake_robot is not connected")
        self._observations += 1
        if self.config.fail_after is not None and self._observations > self.config.fail_after:
            raise RuntimeError(
                f"reel_fake_robot: failing after {self.config.fail_after} observations (fail_after)")
        obs = self._joint_observation()
        # Cameras deliver at their own pace: the frame of the current 1/30 s slot.
        k = int((time.monotonic() - self._t0) * 30)
        for cam, frames in self._frames.items():
            obs[cam] = frames[k % len(frames)]
        if self.config.depth:
            obs[f"{next(iter(self.cameras))}_depth"] = depth_frame(k, self.config.width, self.config.height)
        return obs

    def disconnect(self) -> None:
        self._connected = False


@TeleoperatorConfig.register_subclass("reel_fake_teleop")
@dataclass(kw_only=True)
class ReelFakeTeleopConfig(TeleoperatorConfig):
    #: Period of the joints' sine (seconds).
    period_s: float = 4.0


class ReelFakeTeleop(FakeDevice, Teleoperator):
    config_class = ReelFakeTeleopConfig
    name = "reel_fake_teleop"

    @cached_property
    def feedback_features(self) -> dict:
        return {}

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self, calibrate: bool = True) -> None:
        self._t0 = time.monotonic()
        self._connected = True

    def get_action(self) -> dict:
        t = time.monotonic() - self._t0
        w = 2 * math.pi / self.config.period_s
        return {f"{j}.pos": 40.0 * math.sin(w * t + i) for i, j in enumerate(JOINTS)}

    def send_feedback(self, feedback: dict) -> None:
        pass

    def disconnect(self) -> None:
        self._connected = False

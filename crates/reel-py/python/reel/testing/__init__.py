"""LeRobot's real loops without hardware: a registered fake robot and teleoperator, and
scripted keys. Load it into any LeRobot command with ``--robot.discover_packages_path=reel.testing``:

    lerobot-record --robot.discover_packages_path=reel.testing \\
        --robot.type=reel_fake_robot --robot.num_cameras=2 --robot.width=320 --robot.height=240 \\
        --teleop.type=reel_fake_teleop ...

* ``reel_fake_robot``: a 6-joint arm (the SO-101's joint names) that follows the actions it is
  sent, with ``num_cameras`` cameras of ``width`` x ``height``: synthetic moving patterns, or
  frames of ``video_path`` (a video file, decoded once into memory at that size and looped).
  ``fail_after=N`` makes ``get_observation`` raise after N observations (a robot that dies
  mid-episode).
* ``reel_camera_robot``: the same arm with a real LeRobot ``cameras`` dict (read as the SO-101
  follower reads them), and ``reel_paced_file`` cameras: LeRobot's own ``OpenCVCamera`` reading a
  video file paced to its rate (:mod:`reel.testing.camera_robot`).
* ``reel_fake_teleop``: a leader arm that moves every joint along a slow sine.
* ``REEL_KEYS="1.0:rerecord,5:stop"``: the keys LeRobot's loops listen to, pressed at those
  seconds after the listener starts (``next``/``right``, ``rerecord``/``left``, ``stop``/``esc``).
"""

from .camera_robot import (
    PacedFileCamera,
    PacedFileCameraConfig,
    ReelCameraRobot,
    ReelCameraRobotConfig,
    read_code,
    write_code_video,
)
from .fake_lerobot import (
    JOINTS,
    ReelFakeRobot,
    ReelFakeRobotConfig,
    ReelFakeTeleop,
    ReelFakeTeleopConfig,
)
from .script_keys import install_scripted_keys, parse_keys

install_scripted_keys()

__all__ = [
    "PacedFileCamera",
    "PacedFileCameraConfig",
    "ReelCameraRobot",
    "ReelCameraRobotConfig",
    "read_code",
    "write_code_video",
    "JOINTS",
    "ReelFakeRobot",
    "ReelFakeRobotConfig",
    "ReelFakeTeleop",
    "ReelFakeTeleopConfig",
    "install_scripted_keys",
    "parse_keys",
]

"""Puts reel's engine into LeRobot's recording scripts when imported.

    lerobot-record ... --dataset.discover_packages_path=reel.lerobot_plugin

LeRobot imports the packages named by ``--<anything>.discover_packages_path`` before it parses
its options; importing this one rebinds ``LeRobotDataset`` to :class:`reel.lerobot.ReelDataset`
in ``lerobot-record``, ``lerobot-rollout`` and ``lerobot-eval`` (one log line says so), after
checking that this LeRobot is the version reel was tested with (else it refuses, with an error
saying why), and registers the ``reel`` camera type (:mod:`reel.lerobot_camera`) for robots'
``cameras`` dicts. ``reel-lerobot-record`` does the same without the flag.

With ``REEL_CAMERAS=native`` (or importing :mod:`reel.lerobot_plugin_native` instead:
``--dataset.discover_packages_path=reel.lerobot_plugin_native``) the robot's ``opencv``
cameras become reel cameras too, without changing the robot (one log line per camera).
"""

from .. import lerobot_camera
from ..lerobot import install

PATCHED = install()
CAMERAS = lerobot_camera.install_cameras(replace_opencv=lerobot_camera.wanted())

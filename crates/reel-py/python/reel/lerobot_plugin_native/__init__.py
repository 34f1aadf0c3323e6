"""``--dataset.discover_packages_path=reel.lerobot_plugin_native``: reel's engine (see
:mod:`reel.lerobot_plugin`) and reel cameras in place of the robot's ``opencv`` cameras
(:func:`reel.lerobot_camera.install_cameras`), without changing the robot.

A package of its own, not a module of :mod:`reel.lerobot_plugin`: LeRobot imports every module
of a plugin package it loads, so a submodule there would switch cameras for every user of the
plain plugin.
"""

from .. import lerobot_camera
from .. import lerobot_plugin  # noqa: F401  (reel's engine)

REBOUND = lerobot_camera.install_cameras(replace_opencv=True)

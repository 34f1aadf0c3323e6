"""Puts reel's engine into LeRobot's recording scripts when imported.

    lerobot-record ... --dataset.discover_packages_path=reel.lerobot_plugin

LeRobot imports the packages named by ``--<anything>.discover_packages_path`` before it parses
its options; importing this one rebinds ``LeRobotDataset`` to :class:`reel.lerobot.ReelDataset`
in ``lerobot-record``, ``lerobot-rollout`` and ``lerobot-eval`` (one log line says so), after
checking that this LeRobot is the version reel was tested with (else it refuses, with an error
saying why). ``reel-lerobot-record`` does the same without the flag.
"""

from ..lerobot import install

PATCHED = install()

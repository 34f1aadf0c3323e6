"""reel: a recorder for LeRobot v3.0 datasets whose encoding never blocks the control loop.

* :class:`Writer` — the dataset writer for one's own loop (create / resume / add_frame /
  save_episode / finalize; thread-safe; ``add_frame`` copies and returns in microseconds).
* :mod:`reel.lerobot` — :class:`~reel.lerobot.ReelDataset`, the drop-in for ``LeRobotDataset``
  in LeRobot's recording loops; :mod:`reel.lerobot_plugin` puts it into ``lerobot-record``,
  ``lerobot-rollout`` and ``lerobot-eval`` (``--dataset.discover_packages_path=reel.lerobot_plugin``).
* :class:`DemoRecorder` — demo videos of rollouts (cameras picture-in-picture with audio,
  locked to the wall clock), fed from Python.
* :func:`episode_figures` — reel's per-episode timing and encoder figures of a dataset
  (``meta/reel/episodes.jsonl``).
* :mod:`reel.testing` — a fake robot and teleoperator for LeRobot, and scripted keys, so that
  LeRobot's real loops run without hardware.

Log lines from the engine go to stderr; ``REEL_LOG=warn`` (or debug, ...) sets their level.
"""

from ._reel import CommitGate, ReelError, Writer, __version__, encoders, now_ns, raise_loop_priority
from .demo import DemoRecorder
from .figures import episode_figures
from . import streams

__all__ = ["Writer", "CommitGate", "ReelError", "DemoRecorder", "episode_figures", "now_ns", "encoders",
           "raise_loop_priority", "__version__"]

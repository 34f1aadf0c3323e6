"""reel: a recorder for LeRobot v3.0 datasets whose encoding never blocks the control loop.

* :class:`Writer` — the dataset writer for one's own loop (create / resume / add_frame /
  save_episode / finalize; thread-safe; ``add_frame`` copies and returns in microseconds).
* :mod:`reel.lerobot` — :class:`~reel.lerobot.ReelDataset`, the drop-in for ``LeRobotDataset``
  in LeRobot's recording loops; :mod:`reel.lerobot_plugin` puts it into ``lerobot-record``,
  ``lerobot-rollout`` and ``lerobot-eval`` (``--dataset.discover_packages_path=reel.lerobot_plugin``).
* :class:`Camera` — one of reel's cameras (native capture thread; frames are read-only numpy
  views that ``Writer.add_frame`` records without a copy); :mod:`reel.lerobot_camera` puts it
  into LeRobot robots (``type: reel`` cameras, or in place of their ``opencv`` cameras).
* :class:`DemoRecorder` — demo videos of rollouts (cameras picture-in-picture with audio,
  locked to the wall clock), fed from Python.
* :func:`episode_figures` — reel's per-episode timing and encoder figures of a dataset
  (``meta/reel/episodes.jsonl``).
* :func:`check`, :func:`reencode` — ``reel check`` and ``reel reencode`` as functions;
  :mod:`reel.datatrove` runs them (and merges, uploads) as datatrove pipeline steps.
* :mod:`reel.testing` — a fake robot and teleoperator for LeRobot, and scripted keys, so that
  LeRobot's real loops run without hardware.

Log lines from the engine go to stderr; ``REEL_LOG=warn`` (or debug, ...) sets their level.
"""

from ._reel import (Camera, CommitGate, ObserveClock, ReelError, Writer, __version__, check, encoders,
                    lock_holder, merge, now_ns, raise_loop_priority, reencode)
from .demo import DemoRecorder
from .figures import episode_figures
from . import streams

__all__ = ["merge", "Writer", "CommitGate", "ReelError", "Camera", "ObserveClock", "DemoRecorder", "episode_figures",
           "now_ns", "encoders", "raise_loop_priority", "check", "reencode", "lock_holder", "__version__"]


def __getattr__(name: str):
    # LeRobot finds a camera config's device class by name in the config's parent package
    # (make_device_from_device_class): ReelCameraConfig -> reel.ReelCamera. Imported lazily so
    # that `import reel` does not import LeRobot.
    if name in ("ReelCamera", "ReelCameraConfig"):
        from . import lerobot_camera

        return getattr(lerobot_camera, name)
    raise AttributeError(f"module 'reel' has no attribute {name!r}")

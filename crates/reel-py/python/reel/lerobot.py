"""``ReelDataset``: LeRobot's recording loops on reel's engine.

A drop-in for ``LeRobotDataset`` where LeRobot 0.6.1 *records* (``lerobot-record``,
``lerobot-rollout``, ``lerobot-eval --eval.recording=true``): the same ``create`` / ``resume``
signatures and the surface those loops touch (``features``, ``meta``, ``num_episodes``,
``add_frame``, ``save_episode``, ``clear_episode_buffer``, ``finalize``, ``push_to_hub``, ...), with
``writer = None`` so that LeRobot's code paths for its own writer stay off. It is not a
``LeRobotDataset`` subclass and does not load datasets for training: LeRobot's loader reads what
it writes.

Everything is translated into :class:`reel.Writer` options; the engine decides (encoder,
deferral, queues). ``add_frame`` copies the frame and returns in microseconds; ``save_episode``
returns at once and the episode commits in the background (``num_episodes`` counts it from
the call). ``push_to_hub`` waits for the queued commits and holds reel's commit gate while
LeRobot's own upload runs, skipping reel's scratch folder ``.reel/``.

:func:`install` rebinds ``LeRobotDataset`` in LeRobot's recording scripts (what
:mod:`reel.lerobot_plugin` does on import); :func:`uninstall` undoes it.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import _reel

log = logging.getLogger("reel")

#: LeRobot versions whose recording loops this module was tested with.
TESTED_LEROBOT_VERSIONS = ("0.6.1",)

#: LeRobot modules that bind ``LeRobotDataset`` at import and create/resume datasets to record.
PATCH_TARGETS = (
    "lerobot.scripts.lerobot_record",
    "lerobot.rollout.context",
    "lerobot.scripts.lerobot_eval",
)

#: The parameters of ``LeRobotDataset.create`` / ``.resume`` in the tested versions.
EXPECTED_SIGNATURES = {
    "create": ("repo_id", "fps", "features", "root", "robot_type", "use_videos", "tolerance_s",
               "image_writer_processes", "image_writer_threads", "video_backend",
               "batch_encoding_size", "rgb_encoder", "depth_encoder", "metadata_buffer_size",
               "streaming_encoding", "encoder_queue_maxsize", "encoder_threads",
               "video_files_size_in_mb", "data_files_size_in_mb"),
    "resume": ("repo_id", "root", "tolerance_s", "revision", "force_cache_sync", "video_backend",
               "batch_encoding_size", "rgb_encoder", "depth_encoder", "encoder_threads",
               "image_writer_processes", "image_writer_threads", "streaming_encoding",
               "encoder_queue_maxsize", "token"),
}

_logged_ignored: set[str] = set()
_log_lock = threading.Lock()


def _log_ignored(what: str, why: str) -> None:
    """Logs once per process that a LeRobot option does not apply to reel."""
    with _log_lock:
        if what in _logged_ignored:
            return
        _logged_ignored.add(what)
    log.info("reel: %s does not apply (%s)", what, why)


def _lerobot_home() -> Path:
    from lerobot.utils.constants import HF_LEROBOT_HOME

    return Path(HF_LEROBOT_HOME)


def _encoder_options(rgb_encoder: Any, depth_encoder: Any, encoder_threads: int | None,
                     encoder_queue_maxsize: int | None) -> dict:
    """LeRobot's encoder options as :class:`reel.Writer` options (the rest logged once)."""
    o: dict[str, Any] = {}
    env_vcodec = os.environ.get("REEL_VCODEC")
    if rgb_encoder is not None:
        o["vcodec"] = str(getattr(rgb_encoder, "vcodec", "auto") or "auto")
        crf = getattr(rgb_encoder, "crf", None)
        if crf is not None:
            o["crf"] = float(crf)
        g = getattr(rgb_encoder, "g", None)
        if g is not None:
            o["gop"] = int(g)
        preset = getattr(rgb_encoder, "preset", None)
        if preset is not None:
            o["preset"] = str(preset)
        pix_fmt = getattr(rgb_encoder, "pix_fmt", "yuv420p")
        if pix_fmt not in (None, "yuv420p"):
            _log_ignored(f"rgb_encoder.pix_fmt={pix_fmt}", "reel records yuv420p")
        if getattr(rgb_encoder, "fast_decode", 0):
            _log_ignored("rgb_encoder.fast_decode", "reel uses each codec's default decoding tune")
        extra = getattr(rgb_encoder, "extra_options", None)
        if extra:
            _log_ignored(f"rgb_encoder.extra_options={dict(extra)}",
                         "reel sets the codec options itself (no B-frames, so episodes append)")
    if env_vcodec:
        o["vcodec"] = env_vcodec
    if os.environ.get("REEL_DEFERRED"):
        o["deferred"] = os.environ["REEL_DEFERRED"]
    if os.environ.get("REEL_INJECT_FAULT"):
        o["inject_fault"] = os.environ["REEL_INJECT_FAULT"]
    if encoder_threads is not None:
        o["encoder_threads"] = int(encoder_threads)
    if encoder_queue_maxsize is not None:
        o["max_frames_in_memory"] = max(1, int(encoder_queue_maxsize))
    if depth_encoder is not None:
        # LeRobot's DepthEncoderConfig, field for field (reel.Writer refuses what it cannot store
        # as LeRobot does: another codec than HEVC, another pixel format than gray12le).
        fields = ("vcodec", "pix_fmt", "g", "crf", "preset", "extra_options",
                  "depth_min", "depth_max", "shift", "use_log")
        d = {k: getattr(depth_encoder, k) for k in fields if hasattr(depth_encoder, k)}
        if "extra_options" in d and d["extra_options"] is not None:
            d["extra_options"] = dict(d["extra_options"])
        if getattr(depth_encoder, "fast_decode", 0):
            _log_ignored("depth_encoder.fast_decode", "reel uses each codec's default decoding tune")
        o["depth_encoder"] = d
    return o


def _log_loop_options(**opts: Any) -> None:
    """LeRobot's writer options that reel's engine has no use for, said once."""
    why = {
        "streaming_encoding": "reel always encodes while recording, on its own threads",
        "image_writer_processes": "reel writes no PNG files",
        "image_writer_threads": "reel writes no PNG files",
        "batch_encoding_size": "reel encodes every episode as it is recorded",
        "metadata_buffer_size": "reel writes each episode's metadata at its commit",
        "tolerance_s": "reel's timestamps are exact (frame k at k/fps)",
        "video_backend": "reel encodes with FFmpeg's libraries directly",
        "force_cache_sync": "reel resumes the local dataset only",
        "revision": "reel resumes the local dataset only",
        "token": "reel resumes the local dataset only",
    }
    given = [k for k, v in opts.items() if v not in (None, False, 0, 1e-4)]
    if given:
        _log_ignored("LeRobot options " + ", ".join(sorted(given)),
                     "; ".join(f"{k}: {why.get(k, 'not used by reel')}" for k in sorted(given)))


def _lerobot_features(user: Mapping[str, dict]) -> dict:
    """The features as LeRobot's ``meta.features`` holds them: user features (shapes as tuples)
    followed by LeRobot's default columns."""
    from lerobot.utils.constants import DEFAULT_FEATURES

    out: dict[str, dict] = {}
    for k, ft in user.items():
        if k in DEFAULT_FEATURES:
            continue
        f = dict(ft)
        f["shape"] = tuple(f["shape"])
        out[k] = f
    for k, ft in DEFAULT_FEATURES.items():
        out[k] = dict(ft)
    return out


def _raise_loop_priority() -> None:
    """LeRobot's loop runs on the thread that creates the dataset: give it the priority reel's
    own loop gets (``REEL_REALTIME=0`` opts out, like ``reel record --no-realtime``)."""
    got = _reel.raise_loop_priority(os.environ.get("REEL_REALTIME", "1") != "0")
    log.info("reel: control loop thread at %s", got)


class ReelMeta:
    """What LeRobot's loops read of ``dataset.meta``: counts, keys, fps, features, stats, info."""

    def __init__(self, ds: "ReelDataset"):
        self._ds = ds

    @property
    def repo_id(self) -> str:
        return self._ds.repo_id

    @property
    def root(self) -> Path:
        return self._ds.root

    @property
    def fps(self) -> int:
        return self._ds.fps

    @property
    def robot_type(self) -> str | None:
        return self._ds._writer.robot_type

    @property
    def features(self) -> dict:
        return self._ds.features

    @property
    def total_episodes(self) -> int:
        return self._ds._totals()[0]

    @property
    def total_frames(self) -> int:
        return self._ds._totals()[1]

    @property
    def video_keys(self) -> list[str]:
        return [k for k, f in self._ds.features.items() if f["dtype"] == "video"]

    @property
    def camera_keys(self) -> list[str]:
        return self.video_keys

    @property
    def image_keys(self) -> list[str]:
        return []

    @property
    def depth_keys(self) -> list[str]:
        return [k for k, f in self.features.items()
                if f.get("dtype") == "video" and (f.get("info") or {}).get("is_depth_map")]

    @property
    def stats(self) -> dict | None:
        """``meta/stats.json`` as LeRobot loads it (numpy arrays), None before the first commit."""
        if not (self.root / "meta" / "stats.json").exists():
            return None
        from lerobot.datasets.io_utils import load_stats

        return load_stats(self.root)

    @property
    def info(self):
        """``meta/info.json`` as LeRobot's ``DatasetInfo``."""
        from lerobot.datasets.io_utils import load_info

        return load_info(self.root)

    @property
    def tasks(self):
        from lerobot.datasets.io_utils import load_tasks

        return load_tasks(self.root) if (self.root / "meta" / "tasks.parquet").exists() else None


class ReelDataset:
    """A LeRobot dataset recorded by reel (see the module doc). Thread-safe."""

    writer = None  # LeRobot's private writer paths test for this and stay off.

    def __init__(self, repo_id: str, root: Path, writer: _reel.Writer, features: dict,
                 revision: str | None = None):
        self.repo_id = repo_id
        self.root = Path(root)
        self.revision = revision
        self._writer = writer
        self._features = features
        self._lock = threading.Lock()
        self._finalized = False
        self._final_totals = (0, 0)
        # Frames at open plus every episode saved since (committed or still committing).
        self._frames_at_open = writer.totals()[1]
        self._frames_saved = 0
        self.meta = ReelMeta(self)

    # --- LeRobot's constructors -------------------------------------------------------------
    @classmethod
    def create(cls, repo_id: str, fps: int, features: dict, root: str | Path | None = None,
               robot_type: str | None = None, use_videos: bool = True, tolerance_s: float = 1e-4,
               image_writer_processes: int = 0, image_writer_threads: int = 0,
               video_backend: str | None = None, batch_encoding_size: int = 1,
               rgb_encoder: Any = None, depth_encoder: Any = None, metadata_buffer_size: int = 10,
               streaming_encoding: bool = False, encoder_queue_maxsize: int = 30,
               encoder_threads: int | None = None, video_files_size_in_mb: int | None = None,
               data_files_size_in_mb: int | None = None) -> "ReelDataset":
        """``LeRobotDataset.create`` on reel's engine. Feature kinds reel does not record
        (``image`` dtype, ``language`` columns) are refused here, naming the feature. Depth cameras
        (``(H, W, 1)``, ``info.is_depth_map``) record uint16 millimetres as LeRobot does
        (``depth_encoder`` maps onto reel's depth encoding)."""
        root = Path(root) if root is not None else _lerobot_home() / repo_id
        if not use_videos:
            cams = [k for k, f in features.items() if f.get("dtype") in ("image", "video")]
            if cams:
                raise ValueError(
                    f"use_videos=False (--dataset.video=false) stores cameras {cams} as PNG images, "
                    "which reel does not record: reel records cameras as video only")
        _log_loop_options(tolerance_s=tolerance_s, image_writer_processes=image_writer_processes,
                          image_writer_threads=image_writer_threads, video_backend=video_backend,
                          batch_encoding_size=batch_encoding_size if batch_encoding_size != 1 else None,
                          metadata_buffer_size=metadata_buffer_size if metadata_buffer_size != 10 else None,
                          streaming_encoding=streaming_encoding)
        opts = _encoder_options(rgb_encoder, depth_encoder, encoder_threads, encoder_queue_maxsize)
        if video_files_size_in_mb is not None:
            opts["video_files_size_in_mb"] = float(video_files_size_in_mb)
        if data_files_size_in_mb is not None:
            opts["data_files_size_in_mb"] = float(data_files_size_in_mb)
        w = _reel.Writer.create(str(root), int(fps), features, robot_type=robot_type, **opts)
        _raise_loop_priority()
        return cls(repo_id, root, w, _lerobot_features(features))

    @classmethod
    def resume(cls, repo_id: str, root: str | Path | None = None, tolerance_s: float = 1e-4,
               revision: str | None = None, force_cache_sync: bool = False,
               video_backend: str | None = None, batch_encoding_size: int = 1,
               rgb_encoder: Any = None, depth_encoder: Any = None, encoder_threads: int | None = None,
               image_writer_processes: int = 0, image_writer_threads: int = 0,
               streaming_encoding: bool = False, encoder_queue_maxsize: int = 30, *,
               token: Any = None) -> "ReelDataset":
        """``LeRobotDataset.resume`` on reel's engine: fps, features and robot type come from the
        dataset's info.json; an unfinished save left by a crash is rolled back first. The codec
        stays the dataset's unless ``rgb_encoder.vcodec`` (or ``REEL_VCODEC``) names another."""
        root = Path(root) if root is not None else _lerobot_home() / repo_id
        _log_loop_options(tolerance_s=tolerance_s, revision=revision, force_cache_sync=force_cache_sync,
                          video_backend=video_backend,
                          batch_encoding_size=batch_encoding_size if batch_encoding_size != 1 else None,
                          image_writer_processes=image_writer_processes,
                          image_writer_threads=image_writer_threads,
                          streaming_encoding=streaming_encoding, token=token)
        opts = _encoder_options(rgb_encoder, depth_encoder, encoder_threads, encoder_queue_maxsize)
        # A resumed dataset's depth cameras keep the depth settings their files were made with.
        opts.pop("depth_encoder", None)
        if rgb_encoder is not None and "REEL_VCODEC" not in os.environ:
            # LeRobot always passes its default encoder config; a resumed dataset keeps its codec
            # unless the user changed the default.
            from lerobot.configs.video import RGBEncoderConfig

            if getattr(rgb_encoder, "vcodec", None) == RGBEncoderConfig().vcodec:
                opts.pop("vcodec", None)
        info_path = root / "meta" / "info.json"
        if info_path.exists():
            info = json.loads(info_path.read_text())
            for k in ("video_files_size_in_mb", "data_files_size_in_mb"):
                if info.get(k) is not None:
                    opts[k] = float(info[k])
        w = _reel.Writer.resume(str(root), **opts)
        _raise_loop_priority()
        from lerobot.datasets.io_utils import load_info

        features = load_info(root).features
        return cls(repo_id, root, w, _lerobot_features(features), revision=revision)

    # --- what the loops read ----------------------------------------------------------------
    @property
    def fps(self) -> int:
        return self._writer.fps

    @property
    def plan(self) -> dict:
        """The encoder plan (:attr:`reel.Writer.plan`): what ``reel record`` prints for it."""
        return self._writer.plan

    @property
    def features(self) -> dict:
        """User features then LeRobot's default columns (cached; read twice per tick)."""
        return self._features

    def _totals(self) -> tuple[int, int]:
        if self._finalized:
            return self._final_totals
        return self._writer.totals()

    @property
    def num_episodes(self) -> int:
        """Committed episodes plus saves still being committed (reel commits in the background)."""
        if self._finalized:
            return self._final_totals[0]
        return self._writer.totals()[0] + self._writer.backlog()["pending_saves"]

    @property
    def num_frames(self) -> int:
        if self._finalized:
            return self._final_totals[1]
        return self._frames_at_open + self._frames_saved

    def __len__(self) -> int:
        return self.num_frames

    def __bool__(self) -> bool:
        # True even when empty, so that LeRobot's `if dataset: dataset.finalize()` runs.
        return True

    # --- recording --------------------------------------------------------------------------
    def add_frame(self, frame: dict) -> None:
        """One row: every feature plus ``task`` (LeRobot's frame dict). Copies; never waits."""
        self._writer.add_frame(frame)

    def save_episode(self, episode_data: dict | None = None, parallel_encoding: bool = True) -> None:
        """Ends the episode and queues its commit; returns at once. ``ValueError`` when the
        episode has no frame (LeRobot's strategies rely on that)."""
        if episode_data is not None:
            raise ValueError("reel records episodes frame by frame: save_episode(episode_data=...) is not supported")
        frames = self._writer.frames_in_episode
        if frames == 1 and self.meta.video_keys:
            # reel refuses a 1-frame episode with cameras (it cannot be committed), and LeRobot's
            # loops have no path for that refusal: drop it, loudly, rather than end the session.
            log.warning("reel: dropping an episode of 1 frame (the loop delivered one frame in the "
                        "whole episode; LeRobot needs at least 2 frames per episode with cameras)")
            self._writer.discard_episode()
            return
        self._writer.save_episode()
        self._frames_saved += frames
        for s in self._writer.poll_saved():
            log.debug("episode %s committed", s["episode_index"])

    def clear_episode_buffer(self, delete_images: bool = True) -> None:
        """Drops the episode in progress (re-record)."""
        self._writer.discard_episode()

    def has_pending_frames(self) -> bool:
        """True when frames were added since the last save or clear."""
        return not self._writer.closed and self._writer.frames_in_episode > 0

    def finalize(self) -> None:
        """Drops an unsaved episode, waits for the queued commits (and a deferred conversion),
        and closes the dataset. Idempotent; raises the error of a failed save."""
        with self._lock:
            if self._finalized:
                return
            self._save_up_to_camera_loss()
            if not self._writer.closed:
                c = self._writer.frame_copies()
                if c["zero_copy"] or c["copied"]:
                    log.info("reel: %d camera images recorded without a copy (reel cameras), %d copied",
                             c["zero_copy"], c["copied"])
            totals = self._writer.totals() if not self._writer.closed else (0, 0)
            try:
                self._writer.finalize()
            finally:
                self._finalized = True
                info = self.root / "meta" / "info.json"
                if info.exists():
                    i = json.loads(info.read_text())
                    totals = (int(i.get("total_episodes", 0)), int(i.get("total_frames", 0)))
                self._final_totals = totals

    def _save_up_to_camera_loss(self) -> None:
        """A reel camera lost with ``on_loss="end"`` ended LeRobot's loop with an exception:
        save the episode in progress up to that frame (as ``reel record`` does) instead of
        dropping it."""
        cams = sys.modules.get("reel.lerobot_camera")
        lost = cams.take_losses() if cams is not None else []
        if not lost or self._writer.closed or self._writer.frames_in_episode < 2:
            return
        n = self._writer.frames_in_episode
        log.warning("reel: saving the episode in progress (%d frames) up to the camera loss: %s", n, lost[-1])
        self.save_episode()

    def push_to_hub(self, branch: str | None = None, tags: list | None = None,
                    license: str | None = "apache-2.0", tag_version: bool = True,
                    push_videos: bool = True, private: bool | None = None,
                    allow_patterns: list[str] | str | None = None,
                    upload_large_folder: bool = False, **card_kwargs) -> None:
        """LeRobot's own ``push_to_hub``, run on a consistent dataset: waits for the queued
        commits, then holds reel's commit gate while it uploads (recording goes on; new saves
        commit once the upload is done). reel's scratch folder ``.reel/`` is not uploaded."""
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        if not self._finalized:
            self._writer.wait_saved()
        if allow_patterns is None:
            allow_patterns = ["data/*", "meta/*", "videos/*", "README.md"]
        gate = None if self._finalized else self._writer.commit_gate()
        try:
            view = _HubView(self.repo_id, self.root, self.revision)
            LeRobotDataset.push_to_hub(view, branch=branch, tags=tags, license=license,
                                       tag_version=tag_version, push_videos=push_videos,
                                       private=private, allow_patterns=allow_patterns,
                                       upload_large_folder=upload_large_folder, **card_kwargs)
        finally:
            if gate is not None:
                gate.release()

    # --- extras -----------------------------------------------------------------------------
    @property
    def reel_writer(self) -> _reel.Writer:
        """The underlying :class:`reel.Writer` (backlog, timing, saved episodes)."""
        return self._writer

    def __repr__(self) -> str:
        return f"ReelDataset(repo_id={self.repo_id!r}, root={str(self.root)!r}, fps={self.fps})"


class _HubView:
    """What ``LeRobotDataset.push_to_hub`` reads of ``self``: repo id, root, revision, meta.info."""

    def __init__(self, repo_id: str, root: Path, revision: str | None):
        self.repo_id = repo_id
        self.root = root
        self.revision = revision

        class _Meta:
            @property
            def info(_self):
                from lerobot.datasets.io_utils import load_info

                return load_info(root)

        self.meta = _Meta()


# --- installation into LeRobot's scripts ---------------------------------------------------
_originals: dict[str, Any] = {}


def check_lerobot() -> None:
    """Refuses (RuntimeError) a LeRobot version or ``create``/``resume`` signature this module was
    not tested with."""
    import lerobot
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    version = getattr(lerobot, "__version__", "unknown")
    if version not in TESTED_LEROBOT_VERSIONS:
        raise RuntimeError(
            f"reel.lerobot_plugin was tested with LeRobot {', '.join(TESTED_LEROBOT_VERSIONS)}; this is "
            f"LeRobot {version}. Its recording loop may use the dataset differently: not patching. "
            f"Use LeRobot {TESTED_LEROBOT_VERSIONS[-1]} or a reel release tested with {version}.")
    for name, want in EXPECTED_SIGNATURES.items():
        got = tuple(p for p in inspect.signature(getattr(LeRobotDataset, name)).parameters if p != "cls")
        if got != want:
            raise RuntimeError(
                f"reel.lerobot_plugin: LeRobotDataset.{name} has parameters {got}, reel was tested with "
                f"{want}: not patching (LeRobot {version} is not the one reel was tested with).")


def install() -> list[str]:
    """Rebinds ``LeRobotDataset`` to :class:`ReelDataset` in LeRobot's recording scripts (and
    ``__main__`` when it is one of them); logs one line saying so. Returns the patched modules."""
    import importlib

    check_lerobot()
    patched = []
    for mod_name in PATCH_TARGETS:
        try:
            mod = importlib.import_module(mod_name)
        except ImportError as e:  # an optional extra of LeRobot that is not installed
            log.debug("reel: %s not importable (%s): not patched", mod_name, e)
            continue
        if mod_name not in _originals:
            _originals[mod_name] = mod.LeRobotDataset
        mod.LeRobotDataset = ReelDataset
        patched.append(mod_name)
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if main is not None and getattr(spec, "name", None) in PATCH_TARGETS:  # python -m lerobot.scripts...
        _originals.setdefault("__main__", getattr(main, "LeRobotDataset", None))
        main.LeRobotDataset = ReelDataset
        patched.append("__main__")
    print(f"reel {_reel.__version__}: recording through reel's engine "
          f"(LeRobotDataset -> reel.lerobot.ReelDataset in {', '.join(patched)})",
          file=sys.stderr, flush=True)
    return patched


def uninstall() -> None:
    """Puts LeRobot's own ``LeRobotDataset`` back where :func:`install` replaced it."""
    for mod_name, orig in list(_originals.items()):
        mod = sys.modules.get(mod_name)
        if mod is not None and orig is not None:
            mod.LeRobotDataset = orig
        del _originals[mod_name]

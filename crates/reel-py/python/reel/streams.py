"""Read the side streams and per-frame capture times reel stores beside a LeRobot dataset.

Side streams (``Writer.add_sample``) live in
``meta/reel/streams/<stream>/chunk-CCC/episode-EEEEEE.parquet`` (columns ``t_ns`` and
``value``); per-frame timing in ``meta/reel/ticks/`` (one row per frame: the tick's start
``start_ns`` and, per camera, ``<key>.captured_ns``). All times are monotonic nanoseconds on
reel's clock (``reel.now_ns()``, Python's ``time.monotonic_ns()`` on Linux).

``read(root, episode, stream)`` returns ``(t_ns, values)``: ``t_ns`` an int64 array of n
sample times, ``values`` an (n, width) array of the stream's dtype. ``stream`` may also name a
camera (``observation.images.front`` or ``front``): its frames' capture times, one per frame
(width 1, the values are the capture times too), or the tick's start where the loop gave none.

``aligned=True`` resamples to the episode's frames: row i is the stream's *previous* sample
(the latest with ``t_ns <= frame i's time``), never a later one (no look-ahead); frames before
the first sample get NaN (float) or the first sample (integers) and ``t_ns`` -1.
The frame's time is its tick's start (``start_ns``), or a camera's capture time with
``frame_clock="observation.images.<cam>"``.
"""

from __future__ import annotations

import glob
import os

import numpy as np

__all__ = ["read", "frame_times", "names"]


def names(root) -> list[str]:
    """The dataset's side streams (sorted)."""
    d = os.path.join(os.fspath(root), "meta", "reel", "streams")
    if not os.path.isdir(d):
        return []
    return sorted(n for n in os.listdir(d) if os.path.isdir(os.path.join(d, n)))


def _ticks_table(root, episode: int):
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    files = sorted(glob.glob(os.path.join(os.fspath(root), "meta", "reel", "ticks", "chunk-*", "file-*.parquet")))
    for f in files:
        t = pq.read_table(f)
        t = t.filter(pc.equal(t["episode_index"], episode))
        if t.num_rows:
            return t.sort_by("frame_index")
    raise ValueError(f"episode {episode}: no per-frame timing under meta/reel/ticks (not recorded by reel?)")


def frame_times(root, episode: int, camera: str | None = None) -> np.ndarray:
    """Per-frame times of `episode` (int64 ns): the tick's start, or `camera`'s capture time
    (falling back to the tick's start for frames whose capture time was not given)."""
    t = _ticks_table(root, episode)
    if "start_ns" not in t.column_names:
        raise ValueError(f"episode {episode}: its timing has no start_ns (written by an older reel)")
    start = t["start_ns"].to_numpy().astype(np.int64)
    if camera is None:
        return start
    key = camera if camera in t.column_names or f"{camera}.captured_ns" in t.column_names else f"observation.images.{camera}"
    col = f"{key}.captured_ns"
    if col not in t.column_names:
        cams = [c[: -len(".captured_ns")] for c in t.column_names if c.endswith(".captured_ns")]
        raise ValueError(f"episode {episode}: no camera '{camera}' in its timing (cameras: {cams})")
    import pyarrow.compute as pc

    return pc.coalesce(t[col], t["start_ns"]).to_numpy(zero_copy_only=False).astype(np.int64)


def _raw(root, episode: int, stream: str):
    import pyarrow.parquet as pq

    path = os.path.join(
        os.fspath(root), "meta", "reel", "streams", stream, f"chunk-{episode // 1000:03d}", f"episode-{episode:06d}.parquet"
    )
    if not os.path.isfile(path):
        return None
    t = pq.read_table(path)
    if "t_ns" not in t.column_names or "value" not in t.column_names:
        raise ValueError(f"{path}: not a reel stream file (columns {t.column_names})")
    t_ns = t["t_ns"].to_numpy().astype(np.int64)
    col = t["value"].combine_chunks()
    width = col.type.list_size
    vals = col.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)
    return t_ns, vals


def read(root, episode: int, stream: str, aligned: bool = False, frame_clock: str | None = None):
    """Samples of `stream` in `episode`: ``(t_ns, values)``, raw or aligned to the frames (see
    the module doc). ``ValueError`` when the episode has no such stream or camera."""
    got = _raw(root, episode, stream)
    if got is None:
        try:
            cap = frame_times(root, episode, stream)
        except ValueError:
            raise ValueError(
                f"episode {episode} has no stream '{stream}' (streams: {names(root)}) and no camera of that name"
            ) from None
        got = (cap, cap.reshape(-1, 1))
    t_ns, vals = got
    if not aligned:
        return t_ns, vals
    frames = frame_times(root, episode, frame_clock)
    idx = np.searchsorted(t_ns, frames, side="right") - 1
    before = idx < 0
    safe = np.clip(idx, 0, max(len(t_ns) - 1, 0))
    if len(t_ns) == 0:
        out = np.full((len(frames), vals.shape[1]), np.nan)
        return np.full(len(frames), -1, dtype=np.int64), out
    out = vals[safe].copy()
    out_t = t_ns[safe].copy()
    out_t[before] = -1
    if np.issubdtype(out.dtype, np.floating):
        out[before] = np.nan
    return out_t, out

"""reel's dataset tools as datatrove pipeline steps (datatrove 0.10: Local, Slurm, Ray executors).

Each step is a ``datatrove.pipeline.base.PipelineStep`` that calls the reel module in-process
(``reel.check``, ``reel.reencode``; no subprocess). Its work is a list of dataset roots; rank
``r`` of ``world_size`` takes the roots at positions ``r, r + world_size, ...`` of the list
sorted by path, so the split depends only on the list and ``world_size``, never on timing. A
rank that raises is not marked complete; datatrove's completion markers
(``LOGGING_DIR/completions/NNNNN``) make a rerun of the same executor run only the ranks that
did not finish. Every step is safe to rerun on a rank that was killed mid-way: ``reel.check``
only reads, ``reel.reencode`` resumes (finished files are kept, the swap is atomic), and the
upload writes ``meta/info.json`` last, so a half-copied dataset never looks complete.

    from datatrove.executor import LocalPipelineExecutor
    from reel.datatrove import CheckStep, ReencodeStep
    roots = sorted(glob.glob("/data/recordings/*"))
    LocalPipelineExecutor([CheckStep(roots), ReencodeStep(roots, vcodec="libsvtav1")],
                          tasks=8, workers=4, logging_dir="/data/logs/reencode").run()

A merge step (each rank merging its slice into a part, then one merge of the parts) needs
``reel.merge``, which this package does not have yet; see README.md.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from datatrove.io import DataFolderLike, get_datafolder
from datatrove.pipeline.base import PipelineStep

from . import _reel

__all__ = ["rank_slice", "CheckStep", "ReencodeStep", "UploadStep"]


def rank_slice(items, rank: int, world_size: int) -> list:
    """The items of ``rank`` (of ``world_size``): positions rank, rank + world_size, ... of the
    items sorted by their string form. Deterministic: the same list and world size give every
    rank the same share on every run and every machine."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} of world_size {world_size}: need 0 <= rank < world_size")
    return sorted(items, key=str)[rank::world_size]


class _ReelStep(PipelineStep):
    type = "🎞 reel"

    def __init__(self, datasets):
        super().__init__()
        roots = [str(d) for d in datasets]
        if not roots:
            raise ValueError(f"{type(self).__name__}: no datasets given")
        if len(set(roots)) != len(roots):
            raise ValueError(f"{type(self).__name__}: a dataset is listed twice")
        self.datasets = roots

    def mine(self, rank: int, world_size: int) -> list[str]:
        return rank_slice(self.datasets, rank, world_size)


class CheckStep(_ReelStep):
    """``reel check`` on each dataset of the rank's slice. A dataset with problems fails the
    rank (raises ``ValueError`` listing the dataset and its problems), so it is not marked
    complete and a rerun checks it again. ``repair=True`` first repairs what a crash left, as
    ``reel check --repair``; ``decode=True`` decodes every frame."""

    name = "check"

    def __init__(self, datasets, repair: bool = False, decode: bool = False):
        super().__init__(datasets)
        self.repair = repair
        self.decode = decode

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        from datatrove.utils.logging import logger

        bad = []
        for root in self.mine(rank, world_size):
            with self.track_time(unit="dataset"):
                r = _reel.check(root, repair=self.repair, decode=self.decode)
            self.stat_update("datasets", unit="rank")
            self.stat_update("frames", value=r["frames"], unit="rank")
            for line in r["repaired"]:
                logger.warning(f"reel check {root}: repaired: {line}")
            if r["ok"]:
                logger.info(f"reel check {root}: ok ({r['episodes']} episodes, {r['frames']} frames)")
            else:
                bad.append(f"{root}: " + "; ".join(r["problems"]))
        if bad:
            raise ValueError(f"reel check found problems in {len(bad)} dataset(s): " + " | ".join(bad))
        return data


class ReencodeStep(_ReelStep):
    """``reel reencode`` on each dataset of the rank's slice, in place (default: LeRobot's AV1,
    libsvtav1 crf 30 g 2 preset 12). Keyword arguments are those of ``reel.reencode``
    (vcodec, crf, preset, gop, fallback, cameras, jobs, timeout_s, force). A killed rank is
    resumed by the rerun: files finished before the kill are kept."""

    name = "reencode"

    def __init__(self, datasets, vcodec: str = "libsvtav1", jobs: int = 1, **options):
        super().__init__(datasets)
        for k in ("shard", "commit", "no_swap", "episodes"):
            if k in options:
                raise ValueError(f"ReencodeStep re-encodes whole datasets; {k}= is reel.reencode's "
                                 "option for sharding one dataset's files")
        self.options = dict(vcodec=vcodec, jobs=jobs, **options)

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        from datatrove.utils.logging import logger

        for root in self.mine(rank, world_size):
            with self.track_time(unit="dataset"):
                r = _reel.reencode(root, **self.options)
            self.stat_update("datasets", unit="rank")
            self.stat_update("files", value=r["files"], unit="rank")
            self.stat_update("frames_encoded", value=r["frames_encoded"], unit="rank")
            logger.info(f"reel reencode {root}: {r['files']} file(s) ({r['resumed']} resumed), "
                        f"{r['skipped']} skipped, {r['frames_encoded']} frames, swapped={r['swapped']}")
            for w in r["warnings"]:
                logger.warning(f"reel reencode {root}: {w}")
        return data


def _writer_holder(root: Path) -> str | None:
    """Who holds the dataset's writer lock (text of ``.reel/lock``), None when nobody does."""
    return _reel.lock_holder(str(root))


class UploadStep(_ReelStep):
    """Copies each dataset of the rank's slice to ``output_folder/<dataset name>`` (a datatrove
    DataFolder: a local path or any fsspec URL, e.g. ``s3://bucket/prefix``, ``hf://datasets/
    org/name``). It first waits (up to ``wait_s``) until no writer holds the dataset's lock and
    ``reel check`` passes, so only committed data is copied; then copies data and videos, the
    other meta files, and ``meta/info.json`` last. reel's scratch folder ``.reel`` is not
    copied. A file already at the destination with the same size is not copied again."""

    name = "upload"

    def __init__(self, datasets, output_folder: DataFolderLike, wait_s: float = 3600.0,
                 poll_s: float = 2.0):
        super().__init__(datasets)
        names = [Path(d).name for d in self.datasets]
        if len(set(names)) != len(names):
            raise ValueError("UploadStep: two datasets have the same folder name")
        self.output_folder = get_datafolder(output_folder)
        self.wait_s = wait_s
        self.poll_s = poll_s

    def _wait_committed(self, root: Path) -> None:
        deadline = time.monotonic() + self.wait_s
        while True:
            holder = _writer_holder(root)
            if holder is None:
                r = _reel.check(str(root))
                if r["ok"]:
                    return
                why = "; ".join(r["problems"])
            else:
                why = f"{holder} is writing it"
            if time.monotonic() >= deadline:
                raise TimeoutError(f"upload {root}: not committed after {self.wait_s:.0f} s ({why})")
            time.sleep(self.poll_s)

    def _files(self, root: Path) -> list[str]:
        out = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d != ".reel")
            for f in sorted(filenames):
                if f.startswith(".") or f.endswith(".reel-tmp"):
                    continue
                out.append(os.path.relpath(os.path.join(dirpath, f), root))
        info = os.path.join("meta", "info.json")
        if info not in out:
            raise FileNotFoundError(f"upload {root}: no meta/info.json (not a LeRobot dataset)")
        out.remove(info)
        meta = [p for p in out if p.startswith("meta" + os.sep)]
        rest = [p for p in out if not p.startswith("meta" + os.sep)]
        return rest + meta + [info]

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        from datatrove.utils.logging import logger

        for d in self.mine(rank, world_size):
            root = Path(d)
            self._wait_committed(root)
            copied = 0
            with self.track_time(unit="dataset"):
                for rel in self._files(root):
                    src = root / rel
                    dst = f"{root.name}/{rel.replace(os.sep, '/')}"
                    size = src.stat().st_size
                    if rel != os.path.join("meta", "info.json") and self.output_folder.exists(dst) \
                            and self.output_folder.size(dst) == size:
                        continue
                    with open(src, "rb") as fi, self.output_folder.open(dst, "wb") as fo:
                        while chunk := fi.read(1 << 22):
                            fo.write(chunk)
                    copied += size
            self.stat_update("datasets", unit="rank")
            self.stat_update("bytes", value=copied, unit="rank")
            logger.info(f"reel upload {root} -> {self.output_folder.path}/{root.name}: {copied} bytes")
        return data

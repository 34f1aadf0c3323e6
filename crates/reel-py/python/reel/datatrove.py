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

A sharded merge runs as two executors, like LeRobot's ``slurm_aggregate_shards.py``: a
``MergeStep`` where each rank merges its slice into a part dataset (``PARTS/part-RRRRR-of-NNNNN``),
then a one-task ``FinalMergeStep`` that ``depends=`` on it and merges the parts, in rank order,
into the output. ``reel.merge`` copies videos whose stream matches and re-encodes the others to
the first source's stream (the summary says which), so a ``ReencodeStep`` before it makes the
whole result one codec without a second re-encode:

    parts = LocalPipelineExecutor([MergeStep(roots, "/data/parts")], tasks=8, workers=4,
                                  logging_dir="/data/logs/merge")
    LocalPipelineExecutor([FinalMergeStep("/data/parts", "/data/merged")], tasks=1,
                          logging_dir="/data/logs/merge-final", depends=parts).run()

Each rank writes ``PARTS/part-RRRRR-of-NNNNN.json`` (its sources and the merge summary) after its
part is complete; ``reel.merge`` builds a new dataset beside its destination and renames it into
place, so a part that exists is whole, and a killed rank's rerun removes what it left. The final
step refuses to run while a rank's marker is missing (naming the ranks), and writes
``PARTS/final.json`` when the output is complete, so a rerun of a finished pipeline changes
nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from datatrove.io import DataFolderLike, get_datafolder
from datatrove.pipeline.base import PipelineStep

from . import _reel

__all__ = ["rank_slice", "CheckStep", "ReencodeStep", "MergeStep", "FinalMergeStep", "UploadStep"]


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


def _part_name(rank: int, world_size: int) -> str:
    return f"part-{rank:05d}-of-{world_size:05d}"


def _write_json(path: Path, value) -> None:
    """Writes ``value`` to ``path`` atomically (a sibling temporary file, fsynced, renamed)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(value, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class MergeStep(_ReelStep):
    """The first stage of a sharded merge: rank ``r`` of ``world_size`` merges its slice of the
    datasets (``rank_slice``) with ``reel.merge`` into ``parts_dir/part-RRRRR-of-NNNNN`` and then
    writes ``part-RRRRR-of-NNNNN.json`` (its sources and reel.merge's summary). A rank whose
    marker exists for the same sources is skipped; one whose marker names other sources (the
    dataset list changed) raises. A rank with no datasets (more ranks than datasets) writes a
    marker with no part. Follow it with ``FinalMergeStep`` in an executor that depends on it."""

    name = "merge (parts)"

    def __init__(self, datasets, parts_dir):
        super().__init__(datasets)
        self.parts_dir = str(parts_dir)

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        from datatrove.utils.logging import logger

        mine = self.mine(rank, world_size)
        parts = Path(self.parts_dir)
        parts.mkdir(parents=True, exist_ok=True)
        name = _part_name(rank, world_size)
        marker, part = parts / f"{name}.json", parts / name
        if marker.exists():
            done = json.loads(marker.read_text())
            if done.get("sources") != mine:
                raise ValueError(f"merge rank {rank}: {marker} was written for other sources "
                                 f"({len(done.get('sources', []))} datasets); remove {parts} to start over")
            logger.info(f"reel merge rank {rank}: {name} already complete")
            return data
        if not mine:
            _write_json(marker, {"rank": rank, "world_size": world_size, "sources": [], "part": None})
            return data
        if part.exists():
            # The merge completed (its rename is the last step) but the marker was not written:
            # a part is only trusted with its marker, so it is built again.
            shutil.rmtree(part)
        with self.track_time(unit="part"):
            summary = _reel.merge(mine, str(part))
        self.stat_update("datasets", value=len(mine), unit="rank")
        self.stat_update("frames", value=summary["frames"], unit="rank")
        for s in summary["sources"]:
            if s["method"] != "stream-copy":
                why = "; ".join(f"{r['camera']}: {r['because']}" for r in s["reencoded"])
                logger.info(f"reel merge rank {rank}: {s['path']} re-encoded ({why})")
        _write_json(marker, {"rank": rank, "world_size": world_size, "sources": mine,
                             "part": str(part), "summary": summary})
        logger.info(f"reel merge rank {rank}: {len(mine)} datasets -> {part} "
                    f"({summary['episodes']} episodes, {summary['frames']} frames)")
        return data


class FinalMergeStep(PipelineStep):
    """The last stage of a sharded merge (run it with ``tasks=1``, depending on the
    ``MergeStep`` executor): checks that every rank's marker in ``parts_dir`` is there, then
    merges the parts in rank order into ``output`` with ``reel.merge`` and writes
    ``parts_dir/final.json``. With ``remove_parts=True`` the parts are deleted afterwards."""

    type = "🎞 reel"
    name = "merge (final)"

    def __init__(self, parts_dir, output, remove_parts: bool = False):
        super().__init__()
        self.parts_dir, self.output, self.remove_parts = str(parts_dir), str(output), remove_parts

    def _parts(self) -> list[str]:
        parts = Path(self.parts_dir)
        markers = sorted(parts.glob("part-*-of-*.json"))
        if not markers:
            raise FileNotFoundError(f"final merge: no part markers in {parts} (did MergeStep run?)")
        sizes = {int(m.stem.rsplit("-", 1)[1]) for m in markers}
        if len(sizes) != 1:
            raise ValueError(f"final merge: {parts} holds parts of runs with {sorted(sizes)} ranks")
        world = sizes.pop()
        have = {int(m.stem.split("-")[1]) for m in markers}
        missing = [r for r in range(world) if r not in have]
        if missing:
            raise ValueError(f"final merge: ranks {missing} of {world} have not finished their part")
        out = []
        for m in markers:
            p = json.loads(m.read_text()).get("part")
            if p is not None:
                out.append(p)
        return out

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        from datatrove.utils.logging import logger

        if rank != 0:
            return data
        marker = Path(self.parts_dir) / "final.json"
        if marker.exists():
            logger.info(f"reel final merge: {self.output} already complete")
            return data
        parts = self._parts()
        if Path(self.output).exists():
            # Finished but unmarked (killed between the rename and the marker): it is whole,
            # as reel.merge publishes it only complete; checked against the parts' totals.
            want = sum(json.loads(Path(p + ".json").read_text())["summary"]["episodes"]
                       for p in parts)
            got = json.loads((Path(self.output) / "meta" / "info.json").read_text())["total_episodes"]
            if got != want:
                raise ValueError(f"final merge: {self.output} exists with {got} episodes, the parts "
                                 f"hold {want}: remove it or choose another output")
            summary = {"episodes": got, "recovered": True}
        else:
            with self.track_time(unit="merge"):
                summary = _reel.merge(parts, self.output)
            self.stat_update("frames", value=summary["frames"], unit="merge")
        _write_json(marker, {"parts": parts, "output": self.output, "summary": summary})
        logger.info(f"reel final merge: {len(parts)} parts -> {self.output} "
                    f"({summary['episodes']} episodes)")
        if self.remove_parts:
            for p in parts:
                shutil.rmtree(p, ignore_errors=True)
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

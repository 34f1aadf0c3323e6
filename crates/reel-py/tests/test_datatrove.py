"""reel.check / reel.reencode as functions, and reel.datatrove's steps on datatrove 0.10's
LocalPipelineExecutor (4 workers): 20 small x264 datasets are checked, re-encoded to AV1 and
uploaded to a DataFolder; LeRobot loads the results; a pipeline killed mid-way reruns only the
ranks without a completion marker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import reel
from conftest import assert_lerobot_check, features, info

datatrove = pytest.importorskip("datatrove") if not os.environ.get("REEL_REQUIRE_ORACLE") else \
    __import__("datatrove")

from reel.datatrove import (CheckStep, FinalMergeStep, MergeStep, ReencodeStep,  # noqa: E402
                            UploadStep, rank_slice)


def image(k: int, size: int = 64) -> np.ndarray:
    """A moving texture whose channel means do not depend on k (LeRobot's checker compares the
    stats with a few decoded frames)."""
    ys, xs = np.mgrid[0:size, 0:size]
    img = np.full((size, size, 3), 128, np.uint8)
    img[..., 0] = (xs * (256 // size) + 7 * k) % 256
    img[..., 1] = (ys * (256 // size) + 3 * k) % 256
    return img


def make_dataset(root: Path, seed: int, frames: int = 8, size: int = 64,
                 vcodec: str = "libx264") -> Path:
    w = reel.Writer.create(root, 30, features((("front", size, size),)), robot_type="sim",
                           vcodec=vcodec, durable=False)
    for k in range(frames):
        w.add_frame({"action": np.full(6, seed, np.float32),
                     "observation.state": np.arange(6, dtype=np.float32) + k,
                     "observation.images.front": image(seed + k, size),
                     "task": f"task {seed % 3}"})
    w.save_episode()
    w.finalize()
    return root


def codecs(root: Path) -> set[str]:
    return {f["info"]["video.codec"] for f in info(root)["features"].values() if f["dtype"] == "video"}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    base = tmp_path_factory.mktemp("sources")
    return [make_dataset(base / f"rec_{i:02d}", i) for i in range(20)]


def test_rank_slice_is_deterministic_and_covers_every_item_once():
    items = [f"/d/{c}" for c in "qwertyuiopasdfg"]
    parts = [rank_slice(items, r, 4) for r in range(4)]
    assert sorted(sum(parts, [])) == sorted(items)
    assert parts == [rank_slice(list(reversed(items)), r, 4) for r in range(4)]
    assert parts[0] == sorted(items)[0::4]
    with pytest.raises(ValueError, match="rank 4 of world_size 4"):
        rank_slice(items, 4, 4)


def test_check_and_reencode_functions_match_the_cli(tmp_path):
    root = make_dataset(tmp_path / "one", 1)
    r = reel.check(root)
    assert r["ok"] and (r["episodes"], r["frames"]) == (1, 8) and r["problems"] == []
    assert reel.lock_holder(root) is None
    e = reel.reencode(root, vcodec="av1", jobs=1)
    assert e["files"] == 1 and e["frames_encoded"] == 8 and e["swapped"] and e["failed"] == 0
    assert codecs(root) == {"av1"}
    # Already AV1 with these settings: nothing to do.
    assert reel.reencode(root, jobs=1)["files"] == 0
    assert reel.check(root, decode=True)["ok"]
    assert_lerobot_check(root)
    # A damaged dataset: check reports it (naming the file), reencode raises.
    (root / "meta" / "info.json").write_text("{not json")
    bad = reel.check(root)
    assert not bad["ok"] and any("info.json" in p for p in bad["problems"])
    with pytest.raises((ValueError, reel.ReelError), match="info.json"):
        reel.reencode(root)
    with pytest.raises(ValueError, match="shard"):
        reel.reencode(root, shard=(3, 2))
    with pytest.raises(ValueError, match="timeout_s"):
        reel.reencode(root, timeout_s=0)


def test_local_executor_checks_reencodes_and_uploads_20_datasets(sources, tmp_path):
    from datatrove.executor import LocalPipelineExecutor

    started = time.monotonic()
    logs = tmp_path / "logs"
    ex = LocalPipelineExecutor([CheckStep(sources), ReencodeStep(sources, vcodec="libsvtav1")],
                               tasks=4, workers=4, logging_dir=str(logs))
    ex.run()
    assert sorted(os.listdir(logs / "completions")) == [f"{r:05d}" for r in range(4)]
    for s in sources:
        assert codecs(s) == {"av1"}, s
        assert reel.check(s, decode=True)["ok"], s
    # Each rank ran exactly its slice (the task logs name the datasets it re-encoded).
    for r in range(4):
        log = (logs / "logs" / f"task_{r:05d}.log").read_text()
        mine = {str(p) for p in rank_slice([str(s) for s in sources], r, 4)}
        named = {str(s) for s in sources if f"reel reencode {s}:" in log}
        assert named == mine, (r, named ^ mine)
    up = tmp_path / "bucket"
    LocalPipelineExecutor([UploadStep(sources, str(up))], tasks=4, workers=4,
                          logging_dir=str(tmp_path / "logs_up")).run()
    assert sorted(p.name for p in up.iterdir()) == [s.name for s in sources]
    for s in (sources[0], sources[-1]):
        dst = up / s.name
        assert not (dst / ".reel").exists()
        assert info(dst) == info(s)
        assert_lerobot_check(dst)
    print(f"\nLocalPipelineExecutor check+reencode+upload of 20 datasets: "
          f"{time.monotonic() - started:.1f} s")


def test_check_step_fails_the_rank_of_a_damaged_dataset(tmp_path):
    from datatrove.executor import LocalPipelineExecutor

    roots = [make_dataset(tmp_path / f"d{i}", i) for i in range(4)]
    (roots[3] / "meta" / "info.json").write_text("[]")
    # One worker runs the ranks in order, so the verdict does not depend on which of two
    # processes finishes first: with a pool, the executor raises at the first failed rank and
    # terminates the pool, and the other rank may or may not have written its completion yet.
    ex = LocalPipelineExecutor([CheckStep(roots)], tasks=2, workers=1,
                               logging_dir=str(tmp_path / "logs"))
    with pytest.raises(ValueError, match=r"problems in 1 dataset\(s\): .*/d3: meta/info.json"):
        ex.run()
    # roots[3] is in rank 1's slice (sorted d0,d1,d2,d3 → rank 1: d1,d3): rank 0 completed only.
    assert os.listdir(tmp_path / "logs" / "completions") == ["00000"]
    assert str(roots[3]) in (tmp_path / "logs" / "logs" / "task_00001.log").read_text()


def test_upload_waits_for_the_writer_to_commit(tmp_path):
    root = tmp_path / "live"
    w = reel.Writer.create(root, 30, features((("front", 64, 64),)), vcodec="libsvtav1",
                           durable=False)
    assert reel.lock_holder(root) is not None
    step = UploadStep([root], str(tmp_path / "out"), wait_s=0.5, poll_s=0.1)
    with pytest.raises(TimeoutError, match="writing it"):
        step.run(None, 0, 1)
    for k in range(4):
        w.add_frame({"action": np.zeros(6, np.float32), "observation.state": np.zeros(6, np.float32),
                     "observation.images.front": image(k), "task": "t"})
    w.save_episode()
    w.finalize()
    assert reel.lock_holder(root) is None
    step.run(None, 0, 1)
    assert_lerobot_check(tmp_path / "out" / "live")


# The pipeline of the kill test, run in its own process (so that it can be killed with -9):
# ranks >= 4 wait at a gate file that the first run never creates, so the first run finishes
# exactly ranks 0-3 (4 workers) and is killed while ranks 4-7 are in progress.
KILL_SCRIPT = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.base import PipelineStep
    from reel.datatrove import CheckStep, ReencodeStep

    class Gate(PipelineStep):
        name = "gate"
        def __init__(self, folder, run_id):
            super().__init__()
            self.folder, self.run_id = folder, run_id
        def run(self, data=None, rank=0, world_size=1):
            Path(self.folder, f"{self.run_id}-rank-{rank}").touch()
            while rank >= 4 and not Path(self.folder, "open").exists():
                time.sleep(0.05)
            return data

    if __name__ == "__main__":
        sources, logs, marks, run_id = json.loads(sys.argv[1])
        LocalPipelineExecutor([Gate(marks, run_id), CheckStep(sources), ReencodeStep(sources)],
                              tasks=8, workers=4, logging_dir=logs).run()
""")


def test_killed_pipeline_reruns_only_the_unfinished_ranks(tmp_path):
    roots = [str(make_dataset(tmp_path / f"k{i:02d}", i)) for i in range(16)]
    logs, marks = tmp_path / "logs", tmp_path / "marks"
    marks.mkdir()
    script = tmp_path / "pipeline.py"
    script.write_text(KILL_SCRIPT)
    env = dict(os.environ)

    def launch(run_id):
        return subprocess.Popen([sys.executable, str(script), json.dumps([roots, str(logs), str(marks), run_id])],
                                env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

    first = launch("first")
    deadline = time.monotonic() + 300
    done = logs / "completions"
    while not (done.is_dir() and len(os.listdir(done)) == 4
               and all((marks / f"first-rank-{r}").exists() for r in range(4, 8))):
        assert first.poll() is None, "the first run ended before it was killed"
        assert time.monotonic() < deadline, "the first run did not reach the gate"
        time.sleep(0.1)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert sorted(os.listdir(done)) == [f"{r:05d}" for r in range(4)]

    (marks / "open").touch()
    second = launch("second")
    assert second.wait(timeout=600) == 0
    ran_again = sorted(int(p.name.rsplit("-", 1)[1]) for p in marks.glob("second-rank-*"))
    assert ran_again == [4, 5, 6, 7]
    assert sorted(os.listdir(done)) == [f"{r:05d}" for r in range(8)]
    for r in roots:
        assert codecs(Path(r)) == {"av1"} and reel.check(r)["ok"], r
    assert_lerobot_check(Path(roots[5]))


def lerobot_written(root: Path, seed: int, frames: int = 8, size: int = 64) -> Path:
    """The same features as ``make_dataset``, written by LeRobot 0.6.1's own writer (AV1)."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset.create("local/lerobot", 30, root=root, robot_type="sim",
                               features=features((("front", size, size),)), use_videos=True)
    for k in range(frames):
        ds.add_frame({"action": np.full(6, seed, np.float32),
                      "observation.state": np.arange(6, dtype=np.float32) + k,
                      "observation.images.front": image(seed + k, size),
                      "task": f"task {seed % 3}"})
    ds.save_episode()
    ds.finalize()
    return root


def episode_actions(root: Path) -> list[float]:
    """Per episode of ``root``, its first frame's action[0] (the seed it was written with), read
    through LeRobot's loader."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("local/x", root=root)
    return [float(ds[int(ds.meta.episodes[e]["dataset_from_index"])]["action"][0])
            for e in range(ds.meta.total_episodes)]


def test_merge_function_with_a_lerobot_written_source(tmp_path):
    lr = lerobot_written(tmp_path / "lerobot", 1)
    x264 = make_dataset(tmp_path / "x264", 2)
    av1 = make_dataset(tmp_path / "av1", 3, vcodec="libsvtav1")
    out = tmp_path / "merged"
    s = reel.merge([lr, x264], out)
    assert [x["method"] for x in s["sources"]] == ["stream-copy", "re-encode"]
    assert "video.codec h264 → av1" in s["sources"][1]["reencoded"][0]["because"]
    assert (s["episodes"], s["frames"]) == (2, 16)
    s = reel.merge([av1], out, append=True)
    assert s["appended"] and s["sources"][0]["method"] == "stream-copy" and s["episodes"] == 3
    assert codecs(out) == {"av1"} and info(out)["total_tasks"] == 3
    assert reel.check(out, decode=True)["ok"]
    assert_lerobot_check(out)
    assert episode_actions(out) == [1.0, 2.0, 3.0]
    # A refusal raises with the reason and writes nothing.
    fps15 = tmp_path / "fps15"
    w = reel.Writer.create(fps15, 15, features((("front", 64, 64),)), robot_type="sim",
                           vcodec="libsvtav1", durable=False)
    for k in range(2):
        w.add_frame({"action": np.zeros(6, np.float32), "observation.state": np.zeros(6, np.float32),
                     "observation.images.front": image(k), "task": "t"})
    w.save_episode()
    w.finalize()
    with pytest.raises(reel.ReelError, match="fps 15 differs"):
        reel.merge([lr, fps15], tmp_path / "never")
    assert not (tmp_path / "never").exists()


def run_merge(roots, parts: Path, out: Path, logs: Path, workers: int = 4):
    from datatrove.executor import LocalPipelineExecutor

    first = LocalPipelineExecutor([MergeStep(roots, parts)], tasks=4, workers=workers,
                                  logging_dir=str(logs / "parts"))
    LocalPipelineExecutor([FinalMergeStep(parts, out)], tasks=1, logging_dir=str(logs / "final"),
                          depends=first).run()


def test_sharded_merge_step_on_local_executor(tmp_path):
    base = tmp_path / "src"
    # 8 datasets: rec_00..03 AV1, rec_04..07 x264; rank r merges rec_0r and rec_0(r+4), so each
    # part re-encodes one x264 dataset to its first source's AV1 and the final merge copies.
    roots = [make_dataset(base / f"rec_{i:02d}", i, vcodec="libsvtav1" if i < 4 else "libx264")
             for i in range(8)]
    parts, out, logs = tmp_path / "parts", tmp_path / "merged", tmp_path / "logs"
    run_merge(roots, parts, out, logs)
    assert sorted(os.listdir(logs / "parts" / "completions")) == [f"{r:05d}" for r in range(4)]
    for r in range(4):
        m = json.loads((parts / f"part-{r:05d}-of-00004.json").read_text())
        assert m["sources"] == [str(roots[r]), str(roots[r + 4])]
        assert [x["method"] for x in m["summary"]["sources"]] == ["stream-copy", "re-encode"]
    assert info(out)["total_episodes"] == 8 and info(out)["total_frames"] == 64
    assert codecs(out) == {"av1"}
    assert reel.check(out, decode=True)["ok"]
    assert_lerobot_check(out)
    assert episode_actions(out) == [0.0, 4.0, 1.0, 5.0, 2.0, 6.0, 3.0, 7.0]
    # A rerun with datatrove's own markers gone: reel's markers skip every finished rank and
    # the final merge, and nothing changes.
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    run_merge(roots, parts, out, tmp_path / "logs2")
    for r in range(4):
        log = (tmp_path / "logs2" / "parts" / "logs" / f"task_{r:05d}.log").read_text()
        assert "already complete" in log, log[-2000:]
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before
    # The final merge refuses while a rank's part is missing, naming it.
    (parts / "part-00002-of-00004.json").unlink()
    (parts / "final.json").unlink()
    with pytest.raises(ValueError, match=r"ranks \[2\] of 4 have not finished"):
        FinalMergeStep(parts, tmp_path / "other").run()

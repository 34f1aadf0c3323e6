"""reel inside LeRobot 0.6.1: the same frames through LeRobotDataset and ReelDataset give the
same dataset; the stock lerobot-record and lerobot-rollout record through reel with the plugin
flag (re-record, resume, a robot that fails, a kill mid-commit); sentry pushes while recording;
the plugin refuses a LeRobot it was not tested with."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import reel
from conftest import (assert_lerobot_check, conformance_script, fake_robot_args, features, frame_image, info,
                      lerobot_cmd, lerobot_env, require, run)


def table(root: Path, sub: str) -> pd.DataFrame:
    files = sorted((root / sub).rglob("*.parquet"))
    return pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)


def test_same_frames_give_the_same_dataset_as_lerobots_writer(tmp_path):
    from lerobot.configs.video import RGBEncoderConfig
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from reel.lerobot import ReelDataset

    f = features((("front", 96, 128),))
    episodes = [(12, ["pick", "place"]), (9, ["pick"])]
    roots = {}
    for name, cls in [("stock", LeRobotDataset), ("reel", ReelDataset)]:
        root = tmp_path / name
        ds = cls.create("local/parity", 30, copy.deepcopy(f), root=root, robot_type="arm",
                        use_videos=True, rgb_encoder=RGBEncoderConfig(vcodec="libsvtav1"))
        for n, tasks in episodes:
            for k in range(n):
                ds.add_frame({"action": np.full(6, k * 0.5, np.float32),
                              "observation.state": np.arange(6, dtype=np.float32) * k,
                              "observation.images.front": frame_image(k, 96, 128),
                              "task": tasks[k % len(tasks)]})
            ds.save_episode()
        ds.finalize()
        roots[name] = root
    a, b = info(roots["stock"]), info(roots["reel"])
    strip = lambda feats: {k: {kk: vv for kk, vv in v.items() if kk != "info"} for k, v in feats.items()}
    assert strip(a["features"]) == strip(b["features"])
    for k in ("codebase_version", "fps", "robot_type", "total_episodes", "total_frames", "total_tasks",
              "chunks_size", "data_path", "video_path", "splits"):
        assert a[k] == b[k], k
    da, db = table(roots["stock"], "data"), table(roots["reel"], "data")
    assert list(da.columns) == list(db.columns)
    ta, tb = (pd.read_parquet(r / "meta" / "tasks.parquet") for r in roots.values())
    # LeRobot numbers the new tasks of an episode in `set` order (string hashes vary per
    # process), so task indices may differ: the task each row names must not.
    assert sorted(ta.index) == sorted(tb.index)
    name_a = {int(i): t for t, i in zip(ta.index, ta["task_index"])}
    name_b = {int(i): t for t, i in zip(tb.index, tb["task_index"])}
    for c in da.columns:
        if c == "task_index":
            assert [name_a[int(i)] for i in da[c]] == [name_b[int(i)] for i in db[c]], c
            continue
        assert np.array_equal(np.stack(da[c].to_numpy()), np.stack(db[c].to_numpy())), c
    ea, eb = table(roots["stock"], "meta/episodes"), table(roots["reel"], "meta/episodes")
    assert sorted(eb.columns) == sorted(ea.columns), "LeRobot's tables hold only LeRobot's columns"
    for c in ea.columns:
        if c.startswith("stats/observation.images"):
            continue  # image stats: reel's are streaming over every frame (ARCHITECTURE.md)
        if c.startswith("stats/task_index/"):
            continue  # LeRobot's task numbering follows `set` order (checked by name above)
        x, y = ea[c].to_list(), eb[c].to_list()
        if c == "tasks":
            # An episode's task list, in LeRobot's `set` order: compare as sets.
            x, y = [sorted(t) for t in x], [sorted(t) for t in y]
        if c.startswith("stats/") and c.split("/")[-1].startswith("q"):
            # Quantiles come from 5000-bin histograms: equal to a bin's width of the range.
            feat = c.split("/")[1]
            span = np.stack(ea[f"stats/{feat}/max"].to_list()).astype(float) - \
                np.stack(ea[f"stats/{feat}/min"].to_list()).astype(float)
            diff = np.abs(np.stack(x).astype(float) - np.stack(y).astype(float))
            assert (diff <= span / 1000 + 1e-6).all(), (c, diff.max())
        elif c.startswith("stats/"):
            assert np.allclose(np.stack(x).astype(float), np.stack(y).astype(float), atol=1e-5), c
        elif c.endswith("timestamp"):
            assert np.allclose(x, y, atol=1e-4), c
        else:
            assert [list(v) if hasattr(v, "__len__") and not isinstance(v, str) else v for v in x] == \
                   [list(v) if hasattr(v, "__len__") and not isinstance(v, str) else v for v in y], c


def test_plugin_refuses_a_lerobot_it_was_not_tested_with(monkeypatch):
    import lerobot
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from reel import lerobot as rl

    rl.check_lerobot()  # the installed 0.6.1 passes
    monkeypatch.setattr(lerobot, "__version__", "0.7.0")
    with pytest.raises(RuntimeError, match="LeRobot 0.7.0"):
        rl.install()
    monkeypatch.undo()

    def create(cls, repo_id, fps, features, root=None, new_option=True):
        raise AssertionError("not called")

    monkeypatch.setattr(LeRobotDataset, "create", classmethod(create))
    with pytest.raises(RuntimeError, match="new_option"):
        rl.install()
    import lerobot.scripts.lerobot_record as rec

    assert rec.LeRobotDataset is LeRobotDataset, "patched after refusing"


def test_reel_dataset_refuses_what_it_does_not_record(tmp_path):
    from reel.lerobot import ReelDataset

    f = features((("front", 64, 64),))
    with pytest.raises(ValueError, match="video only"):
        ReelDataset.create("local/x", 30, f, root=tmp_path / "a", use_videos=False)
    img = {**f, "observation.images.front": {"dtype": "image", "shape": (64, 64, 3), "names": None}}
    with pytest.raises(ValueError, match="dtype 'image'"):
        ReelDataset.create("local/x", 30, img, root=tmp_path / "b")


def record_cmd(root: Path, episodes: int, task: str, *more: str, resume: bool = False, **robot) -> list[str]:
    return [lerobot_cmd("lerobot-record"), *fake_robot_args(**robot),
            "--teleop.type=reel_fake_teleop", "--teleop.id=fake",
            "--dataset.discover_packages_path=reel.lerobot_plugin",
            "--dataset.repo_id=local/reel_e2e", f"--dataset.root={root}", "--dataset.no_stamp=true",
            f"--dataset.single_task={task}", f"--dataset.num_episodes={episodes}",
            "--dataset.episode_time_s=1.5", "--dataset.reset_time_s=0.3", "--dataset.push_to_hub=false",
            "--dataset.rgb_encoder.vcodec=libsvtav1", "--play_sounds=false",
            *(["--resume=true"] if resume else []), *more]


def test_lerobot_record_rerecord_resume_failure_and_kill(tmp_path):
    """One dataset through four sessions of the stock lerobot-record on reel's engine."""
    pytest.importorskip("deepdiff", reason="--resume=true needs deepdiff") if not os.environ.get(
        "REEL_REQUIRE_ORACLE") else __import__("deepdiff")
    root = tmp_path / "ds"
    env = lerobot_env(tmp_path)

    # 1. Two episodes; the first is re-recorded by a scripted ← key.
    r = run(record_cmd(root, 2, "wave"), {**env, "REEL_KEYS": "0.6:rerecord"})
    assert r.returncode == 0, r.stderr[-4000:]
    assert "recording through reel's engine" in r.stderr
    assert "Re-record episode" in r.stderr + r.stdout
    i = info(root)
    assert i["total_episodes"] == 2
    frames_1 = i["total_frames"]
    assert frames_1 >= 2 * 30, "two episodes of ~1.5 s at 30 Hz"

    # 2. Resume; the robot fails in the second episode: the first one stays, rc != 0.
    r = run(record_cmd(root, 3, "wave", resume=True, fail_after=65), env)
    assert r.returncode != 0
    assert "failing after 65 observations" in r.stderr
    i = info(root)
    assert i["total_episodes"] == 3, r.stderr[-3000:]
    assert not (root / ".reel" / "journal").exists()

    # 3. Resume; the process is killed (SIGKILL) in the middle of its second episode's commit.
    r = run(record_cmd(root, 3, "wave", resume=True), {**env, "REEL_FAULT_AT": "commit.videos@2:kill"})
    assert r.returncode == -9, (r.returncode, r.stderr[-3000:])
    assert (root / ".reel" / "journal").exists(), "the kill should leave an unfinished save"

    # 4. Resume with another task: the unfinished save is rolled back, one episode is added.
    r = run(record_cmd(root, 1, "wave again", resume=True), env)
    assert r.returncode == 0, r.stderr[-4000:]
    i = info(root)
    assert i["total_episodes"] == 5, "4 saved before the kill's episode, plus this session's"
    assert i["total_tasks"] == 2
    assert not (root / ".reel").exists()
    out = assert_lerobot_check(root)
    assert "5 episodes" in out or "total_episodes" in out or "PASS" in out
    eps = table(root, "meta/episodes")
    assert list(eps["episode_index"]) == [0, 1, 2, 3, 4]
    figs = reel.episode_figures(root)
    assert sorted(figs) == [0, 1, 2, 3, 4] and all("missed_deadlines" in f for f in figs.values())


def tiny_act(path: Path, h: int, w: int) -> Path:
    """A random-weight ACT policy (dim 64), saved with its processors: runs offline on CPU."""
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.factory import make_pre_post_processors

    cfg = ACTConfig(
        input_features={"observation.state": PolicyFeature(FeatureType.STATE, (6,)),
                        "observation.images.front": PolicyFeature(FeatureType.VISUAL, (3, h, w))},
        output_features={"action": PolicyFeature(FeatureType.ACTION, (6,))},
        dim_model=64, n_heads=2, dim_feedforward=128, n_encoder_layers=1, n_decoder_layers=1,
        chunk_size=10, n_action_steps=10, pretrained_backbone_weights=None, device="cpu",
        push_to_hub=False)
    ACTPolicy(cfg).save_pretrained(path)
    pre, post = make_pre_post_processors(cfg, dataset_stats=None)
    pre.save_pretrained(path)
    post.save_pretrained(path)
    return path


def test_lerobot_rollout_episodic_and_sentry_record_through_reel(tmp_path):
    policy = tiny_act(tmp_path / "tiny_act", 96, 128)
    env = lerobot_env(tmp_path)
    common = [lerobot_cmd("lerobot-rollout"), *fake_robot_args(), f"--policy.path={policy}",
              "--policy.device=cpu", "--dataset.discover_packages_path=reel.lerobot_plugin",
              "--dataset.no_stamp=true", "--dataset.single_task=reach", "--play_sounds=false",
              "--dataset.rgb_encoder.vcodec=libsvtav1", "--fps=30"]

    ep_root = tmp_path / "episodic"
    r = run([*common, "--strategy.type=episodic", "--dataset.repo_id=local/rollout_episodic",
             f"--dataset.root={ep_root}", "--dataset.num_episodes=1", "--dataset.episode_time_s=3",
             "--dataset.reset_time_s=0.3", "--dataset.push_to_hub=false"], env)
    assert r.returncode == 0, r.stderr[-5000:]
    assert "recording through reel's engine" in r.stderr
    assert info(ep_root)["total_episodes"] == 1

    hub = tmp_path / "hub"
    hub.mkdir()
    s_root = tmp_path / "sentry"
    r = run([*common, "--hub.discover_packages_path=reel_test_hub", "--strategy.type=sentry",
             "--strategy.upload_every_n_episodes=1", "--dataset.repo_id=local/rollout_sentry",
             f"--dataset.root={s_root}", "--dataset.push_to_hub=true", "--duration=7"],
            {**env, "REEL_FAKE_HUB": str(hub), "REEL_FAKE_HUB_DELAY_S": "1.0",
             "REEL_TEST_SENTRY_EPISODE_S": "2"})
    assert r.returncode == 0, r.stderr[-5000:]
    assert "Background push failed" not in r.stderr, r.stderr[-5000:]
    assert "Already borrowed" not in r.stderr
    uploads = sorted(hub.glob("upload-*.json"), key=lambda p: int(p.stem.split("-")[1]))
    assert len(uploads) >= 2, f"expected background pushes and the final one: {uploads}\n{r.stderr[-3000:]}"
    total = info(s_root)["total_episodes"]
    first = json.loads(uploads[0].read_text())
    assert not any(f.startswith(".reel") for u in uploads for f in json.loads(u.read_text())["files"])
    first_eps = json.loads((hub / "upload-1" / "meta" / "info.json").read_text())["total_episodes"]
    assert first_eps < total, "recording went on after the first push"
    assert first["ended"] - first["started"] >= 1.0
    # What the first background push uploaded, while the loop recorded, is a whole dataset.
    assert_lerobot_check(hub / "upload-1", "--no-cross-check", "--no-delta")
    last = json.loads((uploads[-1].with_suffix("").joinpath("meta", "info.json")).read_text())
    assert last["total_episodes"] == total, "the final push uploads every episode"


def test_the_entry_point_is_lerobot_record_on_reel(tmp_path):
    """reel-lerobot-record (reel._cli:record): LeRobot's own options, reel's engine, no flag."""
    r = run([sys.executable, "-m", "reel._cli", "--help"], lerobot_env(tmp_path), timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "recording through reel's engine" in r.stderr
    assert "dataset.repo_id" in r.stdout


def test_lerobot_record_with_a_depth_camera(tmp_path):
    """The stock lerobot-record on reel's engine with a fake robot whose camera has a depth
    stream (uint16 (H, W, 1) millimetres, as LeRobot's RealSense with use_depth): LeRobot's
    depth block, and LeRobot's loader returns per frame the millimetres LeRobot's own
    quantiser gives for that input (but at its rounding boundaries, where NumPy's float32 log
    moves a code by one); LeRobot's check passes but for its warning on HEVC (LeRobot's depth
    codec)."""
    import numpy as np
    import torch
    from lerobot.datasets.depth_utils import dequantize_depth, quantize_depth
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from reel.testing.fake_lerobot import depth_frame

    root = tmp_path / "depth"
    r = run(record_cmd(root, 1, "depth", width=64, height=64, depth="true"), lerobot_env(tmp_path))
    assert r.returncode == 0, r.stderr[-4000:]
    key = "observation.images.front_depth"
    di = info(root)["features"][key]["info"]
    assert (di["is_depth_map"], di["depth_unit"], di["video.codec"], di["video.pix_fmt"]) == \
        (True, "mm", "hevc", "gray12le"), di
    ds = LeRobotDataset("local/reel_e2e", root=root)
    assert len(ds) >= 10
    differing_elsewhere = 0
    for i in range(len(ds)):
        got = ds[i][key].numpy().reshape(64, 64)
        k = int(round((got[:8, :8].mean() - 500) / 100))
        want_in = depth_frame(k, 64, 64)[:, :, 0]
        assert np.abs(got[:8, :8] - (500 + 100 * k)).max() < 10, f"frame {i}: no frame code"
        # LeRobot's writer quantises the input; its reader dequantises the decoded codes (a
        # float tensor) in torch: the same two steps on the input give LeRobot's own values.
        codes = np.asarray(quantize_depth(want_in, video_backend=None)).astype(np.float32)
        want = dequantize_depth(torch.from_numpy(codes)[None, None], output_unit="mm").numpy().reshape(64, 64)
        # LeRobot's own quantiser vs reel's correctly rounded one: one code at a boundary.
        exact = np.log(want_in.astype(np.float64) + 3500)
        lo, hi = np.log(3510.0), np.log(13500.0)
        frac = ((exact - lo) / (hi - lo) * 4095) % 1
        differing_elsewhere += int(((got != want) & (np.abs(frac - 0.5) > 1e-3)).sum())
    assert differing_elsewhere == 0
    out = subprocess.run([sys.executable, str(conformance_script()), str(root), "--color", "never"],
                         capture_output=True, text=True, timeout=600)
    assert "RESULT: PASS" in out.stdout, out.stdout[-6000:]
    warns = [ln for ln in out.stdout.splitlines() if ln.startswith("[WARN]")]
    assert all("codec hevc" in w for w in warns), warns

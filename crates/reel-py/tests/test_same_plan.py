"""The CLI and the Python module reach the same encoder plan on the same request (issue 17
item 3): ``reel record --vcodec auto --deferred auto``, ``reel.Writer(vcodec="auto",
deferred="auto")`` and ``ReelDataset`` (``REEL_VCODEC``/``REEL_DEFERRED``/``REEL_INJECT_FAULT``)
all go through the library's ``front`` builder. The encoder's speed is injected (``slow=MS``:
every frame takes MS ms, and the plan takes 1000/MS frames/s per stream instead of a
measurement), so the verdict does not depend on the machine's load: ``slow=1`` keeps the final
codec live, ``slow=200`` (5 frames/s for a camera at 10 Hz) defers it. Each front end shows the
plan in the same words: the CLI prints it, Python gives ``Writer.plan["summary"]``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import reel
from conftest import REPO, assert_lerobot_check, features, frame_image, require, run

W, H, FPS = 128, 96, 10


def reel_cli() -> str:
    """The `reel` binary of this checkout (scripts/test.sh builds it and sets REEL_BIN)."""
    exe = os.environ.get("REEL_BIN") or str(
        Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "debug" / "reel")
    if not os.access(exe, os.X_OK):
        require(f"the reel binary ({exe}; cargo build -p reel)")
    return exe


def cli_plan(stdout: str) -> list[str]:
    """The plan block `reel record` prints: its headline and the indented decisions below it."""
    lines = stdout.splitlines()
    start = next((i for i, l in enumerate(lines) if l.startswith("encoder plan: ")), None)
    assert start is not None, f"no encoder plan in the output:\n{stdout}"
    out = [lines[start]]
    for l in lines[start + 1:]:
        if not l.startswith("  "):
            break
        out.append(l)
    return out


def record_rows(add_frame, save, n: int = 3):
    for k in range(n):
        add_frame({"action": np.full(6, k, np.float32),
                   "observation.state": np.arange(6, dtype=np.float32) + k,
                   "observation.images.front": frame_image(k, H, W), "task": "same plan"})
    save()


@pytest.mark.parametrize("fault, deferred", [("slow=1", False), ("slow=200", True)])
def test_cli_writer_and_reel_dataset_reach_the_same_plan(tmp_path, monkeypatch, fault, deferred):
    # One probe cache for all three, fresh for this test: the probe's choice is the same.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    env = dict(os.environ, REEL_LOG="warn")
    cli = run([reel_cli(), "record", "--sim", "--no-keys", "--no-fsync", "--num-episodes", "1",
               "--episode-time-s", "0.3", "--reset-time-s", "0", "--num-cameras", "1",
               "--width", str(W), "--height", str(H), "--fps", str(FPS), "--vcodec", "auto",
               "--deferred", "auto", "--inject-fault", fault, "--root", str(tmp_path / "cli")],
              env, timeout=300)
    assert cli.returncode == 0, cli.stdout[-3000:] + cli.stderr[-3000:]
    want = cli_plan(cli.stdout)
    head = want[0]
    assert head.endswith("(deferred)") == deferred, want
    assert any("injected" in d for d in want), want

    feats = features(cameras=(("front", H, W),))
    w = reel.Writer.create(tmp_path / "writer", FPS, feats, vcodec="auto", deferred="auto",
                           inject_fault=fault, durable=False)
    plan = w.plan
    assert plan["summary"] == want
    assert plan["deferred"] == deferred
    assert plan["decisions"] == [d.strip() for d in want[1:]]
    assert head.startswith(f"encoder plan: {plan['live']} live")
    if deferred:
        assert plan["live"] == "libx264" and plan["final"] != "libx264", plan
    else:
        assert plan["live"] == plan["final"], plan
    record_rows(w.add_frame, w.save_episode)
    w.finalize()

    from reel.lerobot import ReelDataset

    monkeypatch.setenv("REEL_VCODEC", "auto")
    monkeypatch.setenv("REEL_DEFERRED", "auto")
    monkeypatch.setenv("REEL_INJECT_FAULT", fault)
    ds = ReelDataset.create("local/same_plan", FPS, feats, root=tmp_path / "dataset")
    assert ds.plan["summary"] == want
    record_rows(ds.add_frame, ds.save_episode)
    ds.finalize()

    for root in ("cli", "writer", "dataset"):
        assert_lerobot_check(tmp_path / root)

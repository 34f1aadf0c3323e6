#!/usr/bin/env python3
"""LeRobot's own loop (the stock ``lerobot-record``, LeRobot 0.6.1) at 30 Hz with 3 cameras
640x480 read from ../shared/footage/ by a robot whose cameras are real LeRobot cameras
(reel.testing's ``reel_camera_robot``, read as the SO-101 follower reads them: ``read_latest()``
camera after camera), three runs in one script, same command otherwise:

  (a) ``reel_paced_file`` cameras — LeRobot's own ``OpenCVCamera`` (its read thread, colour
      conversion) with only the hardware read replaced by a file read paced to 30 fps —
      and LeRobot's writer;
  (b) the same cameras, reel's writer (``--dataset.discover_packages_path=reel.lerobot_plugin``);
  (c) the same robot config, reel cameras in place of the opencv ones and reel's writer
      (``reel.lerobot_plugin_native``).

Figures: LeRobot's "running slower" warnings, missed deadlines and add_frame times (the probe of
scripts/bench_lerobot_loop.py), time in get_observation (the robot's own log), frames stored per
camera, repeats (a frame handed to the loop twice in a row, by a fingerprint of its pixels),
peak memory of the whole process.

    scripts/bench_lerobot_cameras.sh [--episodes 2] [--seconds 10] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_lerobot_loop import PROBE, count_video_frames, pct  # noqa: E402

RUNS = (("a", "LeRobot cameras + LeRobot's writer", None),
        ("b", "LeRobot cameras + reel's writer", "reel.lerobot_plugin"),
        ("c", "reel cameras + reel's writer", "reel.lerobot_plugin_native"))


def run_one(tag: str, plugin: str | None, a, work: Path, clips: list[str]) -> dict:
    root, out, log = work / tag, work / f"{tag}.json", work / f"{tag}.obs.jsonl"
    probe_dir = work / "probe"
    (probe_dir / "reel_bench_probe").mkdir(parents=True, exist_ok=True)
    (probe_dir / "reel_bench_probe" / "__init__.py").write_text(PROBE)
    env = dict(os.environ, HF_LEROBOT_HOME=str(work / "hf"), HF_HUB_OFFLINE="1", REEL_BENCH_OUT=str(out),
               PYTHONPATH=os.pathsep.join([str(probe_dir), os.environ.get("PYTHONPATH", "")]),
               REEL_LOG=os.environ.get("REEL_LOG", "warn"), SVT_LOG="1")
    cams = ", ".join(f"{n}: {{type: reel_paced_file, index_or_path: {c}, width: 640, height: 480, fps: 30}}"
                     for n, c in zip(("top", "angle", "front"), clips))
    cmd = [str(Path(sys.executable).parent / "lerobot-record"), "--robot.discover_packages_path=reel.testing",
           "--robot.type=reel_camera_robot", "--robot.id=bench", f"--robot.cameras={{{cams}}}",
           f"--robot.log_path={log}", "--teleop.type=reel_fake_teleop", "--teleop.id=bench",
           "--dataset.repo_id=bench/cams", f"--dataset.root={root}", "--dataset.single_task=hand over",
           f"--dataset.num_episodes={a.episodes}", f"--dataset.episode_time_s={a.seconds}",
           f"--dataset.reset_time_s={a.reset}", "--dataset.push_to_hub=false", "--play_sounds=false",
           "--dataset.streaming_encoding=true"]
    if plugin:  # before the probe, which wraps whichever class the plugin bound
        cmd.append(f"--dataset.discover_packages_path={plugin}")
    cmd.append("--bench.discover_packages_path=reel_bench_probe")
    t0 = time.time()
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    (work / f"{tag}.log").write_text(p.stdout)
    if p.returncode != 0:
        warn = "\n".join(line for line in p.stdout.splitlines() if "WARN" in line or "Error" in line)
        sys.exit(f"run {tag}: lerobot-record failed (rc {p.returncode}):\n{warn[-3000:]}\n{p.stdout[-1500:]}")
    m = json.loads(out.read_text())
    saves = [s for s, _ in m["save"]]
    gaps = [y - x for x, y in zip(m["add"], m["add"][1:]) if not any(x < s < y for s in saves)]
    obs = [json.loads(line) for line in log.read_text().splitlines()]
    repeats = 0
    for prev, cur in zip(obs, obs[1:]):
        if cur["t"] - prev["t"] < 0.5:  # the same episode (a reset between them is longer)
            repeats += sum(1 for k, v in cur["fp"].items() if prev["fp"].get(k) == v)
    return {"tag": tag, "ticks": len(m["add"]), "missed": sum(1 for g in gaps if g > 1.1 / 30),
            "slower_warnings": p.stdout.count("Record loop is running slower"),
            "obs_p50": pct([o["obs_ms"] for o in obs], 50), "obs_p99": pct([o["obs_ms"] for o in obs], 99),
            "add_p50": pct(m["add_ms"], 50), "add_p99": pct(m["add_ms"], 99),
            "rows": json.loads((root / "meta" / "info.json").read_text())["total_frames"],
            "video_frames": count_video_frames(root), "repeats": repeats,
            "zero_copy": "without a copy (reel cameras), 0 copied" in p.stdout,
            "peak_rss_mb": m["peak_rss_mb"], "rss_first_mb": m["rss_first_add_mb"], "wall_s": time.time() - t0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--reset", type=float, default=2.0)
    ap.add_argument("--footage", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "footage"))
    ap.add_argument("--json", metavar="FILE")
    a = ap.parse_args()
    clips = [str(Path(a.footage) / f) for f in ("aloha_top.mkv", "aloha_angle.mkv", "aloha_front_close.mkv")]
    if not all(Path(c).exists() for c in clips):
        sys.exit(f"footage missing in {a.footage}")
    work = Path(tempfile.mkdtemp(prefix="reel-bench-cams-"))
    try:
        res = {tag: run_one(tag, plugin, a, work, clips) for tag, _, plugin in RUNS}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2))
    print(f"LeRobot 0.6.1 lerobot-record, reel_camera_robot, 3 cameras 640x480 @ 30 Hz from shared/footage, "
          f"{a.episodes} x {a.seconds:g} s (reset {a.reset:g} s); load average {os.getloadavg()[0]:.1f}")
    print("| figure | " + " | ".join(f"({t}) {d}" for t, d, _ in RUNS) + " | (c) / (a) |")
    print("|---|---|---|---|---|")
    rows = [("ticks recorded", "ticks"), ("missed deadlines", "missed"),
            ("'running slower' warnings", "slower_warnings"), ("get_observation p50 (ms)", "obs_p50"),
            ("get_observation p99 (ms)", "obs_p99"), ("add_frame p50 (ms)", "add_p50"),
            ("add_frame p99 (ms)", "add_p99"), ("frame repeats (all cameras)", "repeats"),
            ("peak memory, whole process (MB)", "peak_rss_mb")]
    for label, k in rows:
        vals = [res[t][k] for t, _, _ in RUNS]
        cells = [f"{v:.2f}" if isinstance(v, float) else str(v) for v in vals]
        ratio = f"{vals[2] / vals[0]:.3f}" if vals[0] else ""
        print(f"| {label} | " + " | ".join(cells) + f" | {ratio} |")
    print("| video frames stored per camera | " + " | ".join(
        "/".join(map(str, res[t]["video_frames"].values())) for t, _, _ in RUNS) + " | |")
    print(f"(c) recorded every image without a copy: {res['c']['zero_copy']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

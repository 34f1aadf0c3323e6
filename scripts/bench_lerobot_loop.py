#!/usr/bin/env python3
"""LeRobot's own recording loop (the stock ``lerobot-record``, LeRobot 0.6.1) at 30 Hz with 3
cameras 640x480 fed from ../shared/footage/ (each clip decoded once into memory and looped, by
reel.testing's fake robot), recorded twice in one run: by LeRobot's writer, then by reel's
(``--dataset.discover_packages_path=reel.lerobot_plugin``). Same command otherwise, LeRobot's
defaults for the encoder (AV1, libsvtav1) and streaming encoding on for LeRobot.

A probe loaded into both runs times every ``add_frame`` call and the gaps between them (a tick
misses its deadline when it comes more than 1.1 periods after the previous one), the last
``save_episode`` and ``finalize``; this script then counts the video frames stored against the
data rows, and reads each run's peak memory (its whole process).

    scripts/bench_lerobot_loop.sh [--episodes 2] [--seconds 10] [--noise 4] [--json FILE]

Run with the LeRobot venv's python and the reel package importable (the .sh wrapper does both).
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

PROBE = r'''
"""Times the dataset calls of lerobot-record, whichever class it records with."""
import atexit, json, os, resource, time
import lerobot.scripts.lerobot_record as rec

cls = rec.LeRobotDataset
calls = {"add": [], "add_ms": [], "save": [], "finalize": None, "rss_first_add_mb": None}

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0

orig_add, orig_save, orig_fin = cls.add_frame, cls.save_episode, cls.finalize

def add_frame(self, frame):
    t0 = time.perf_counter()
    if calls["rss_first_add_mb"] is None:
        calls["rss_first_add_mb"] = rss_mb()
    orig_add(self, frame)
    calls["add"].append(t0)
    calls["add_ms"].append((time.perf_counter() - t0) * 1e3)

def save_episode(self, *a, **k):
    t0 = time.perf_counter()
    r = orig_save(self, *a, **k)
    calls["save"].append((t0, time.perf_counter()))
    return r

def finalize(self):
    t0 = time.perf_counter()
    r = orig_fin(self)
    if calls["finalize"] is None:
        calls["finalize"] = (t0, time.perf_counter())
    return r

cls.add_frame, cls.save_episode, cls.finalize = add_frame, save_episode, finalize

@atexit.register
def dump():
    calls["writer"] = cls.__module__ + "." + cls.__name__
    calls["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open(os.environ["REEL_BENCH_OUT"], "w") as f:
        json.dump(calls, f)
'''


def pct(v, q):
    import numpy as np

    return float(np.percentile(np.array(v), q)) if v else float("nan")


def count_video_frames(root: Path) -> dict[str, int]:
    import av

    out: dict[str, int] = {}
    for mp4 in sorted((root / "videos").rglob("*.mp4")):
        cam = mp4.relative_to(root / "videos").parts[0]
        with av.open(str(mp4)) as c:
            n = sum(1 for p in c.demux(video=0) if p.size)
        out[cam] = out.get(cam, 0) + n
    return out


def run_one(name: str, plugin: bool, a, work: Path, footage: list[str]) -> dict:
    root = work / name
    out = work / f"{name}.json"
    probe_dir = work / "probe"
    probe_dir.mkdir(exist_ok=True)
    (probe_dir / "reel_bench_probe").mkdir(exist_ok=True)
    (probe_dir / "reel_bench_probe" / "__init__.py").write_text(PROBE)
    env = dict(os.environ, HF_LEROBOT_HOME=str(work / "hf"), HF_HUB_OFFLINE="1", REEL_BENCH_OUT=str(out),
               PYTHONPATH=os.pathsep.join([str(probe_dir), os.environ.get("PYTHONPATH", "")]),
               REEL_LOG=os.environ.get("REEL_LOG", "warn"), SVT_LOG="1")
    exe = str(Path(sys.executable).parent / "lerobot-record")
    cmd = [exe, "--robot.discover_packages_path=reel.testing", "--robot.type=reel_fake_robot",
           "--robot.id=bench", "--robot.num_cameras=3", "--robot.width=640", "--robot.height=480",
           f"--robot.video_path={','.join(footage)}", f"--robot.loop_frames={a.loop_frames}",
           f"--robot.noise_sigma={a.noise}",
           "--teleop.type=reel_fake_teleop", "--teleop.id=bench",
           "--dataset.repo_id=bench/loop", f"--dataset.root={root}", "--dataset.no_stamp=true",
           "--dataset.single_task=hand over the cube", f"--dataset.num_episodes={a.episodes}",
           f"--dataset.episode_time_s={a.seconds}", f"--dataset.reset_time_s={a.reset}",
           "--dataset.push_to_hub=false", "--play_sounds=false",
           f"--dataset.streaming_encoding={'true' if a.streaming else 'false'}"]
    if plugin:
        cmd.append("--dataset.discover_packages_path=reel.lerobot_plugin")
    cmd.append("--bench.discover_packages_path=reel_bench_probe")
    t0 = time.time()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log, _ = p.communicate()
    wall = time.time() - t0
    (work / f"{name}.log").write_text(log)
    if p.returncode != 0:
        sys.exit(f"{name}: lerobot-record failed (rc {p.returncode}):\n{log[-4000:]}")
    m = json.loads(out.read_text())
    period = 1.0 / 30
    saves = [s for s, _ in m["save"]]
    # Gaps between two add_frame calls of the same episode (not across a save and its reset).
    gaps = [b - a_ for a_, b in zip(m["add"], m["add"][1:]) if not any(a_ < s < b for s in saves)]
    missed = sum(1 for g in gaps if g > 1.1 * period)
    late = max((g - period for g in gaps), default=0.0)
    info = json.loads((root / "meta" / "info.json").read_text())
    frames = count_video_frames(root)
    last_save = m["save"][-1][0] if m["save"] else m["add"][-1]
    fin_end = m["finalize"][1] if m["finalize"] else float("nan")
    return {
        "name": name, "writer": m["writer"], "ticks": len(m["add"]), "rows": info["total_frames"],
        "episodes": info["total_episodes"], "missed": missed, "worst_late_ms": late * 1e3,
        "add_p50": pct(m["add_ms"], 50), "add_p99": pct(m["add_ms"], 99), "add_max": max(m["add_ms"]),
        "video_frames": frames,
        "codec": {k: f.get("info", {}).get("video.codec") for k, f in info["features"].items()
                  if f.get("dtype") == "video"},
        "complete_s": fin_end - last_save, "save_call_ms": [(b - a_) * 1e3 for a_, b in m["save"]],
        "peak_rss_mb": m["peak_rss_mb"], "rss_at_first_frame_mb": m["rss_first_add_mb"],
        "wall_s": wall, "slower_warnings": log.count("Record loop is running slower"),
        "dropped_warnings": log.count("dropped"),
    }


def print_table(stock: dict, ours: dict, a) -> None:
    def ratio(x, y):
        return f"{x / y:.3f}" if y else ("0" if x == 0 else "inf")

    print(f"LeRobot 0.6.1 lerobot-record, 3 cameras 640x480 @ 30 Hz from shared/footage"
          f"{f' + noise sigma {a.noise}' if a.noise else ''}, {a.episodes} x {a.seconds:g} s "
          f"(reset {a.reset:g} s), streaming={'on' if a.streaming else 'off'} for LeRobot")
    print(f"codecs: LeRobot {sorted(set(stock['codec'].values()))}, reel {sorted(set(ours['codec'].values()))}")
    print("| figure | LeRobot's writer | reel (ReelDataset) | reel / LeRobot |")
    print("|---|---|---|---|")
    rows = [
        ("ticks recorded (add_frame calls)", stock["ticks"], ours["ticks"], None),
        ("missed deadlines (tick > 1.1 periods after the previous)", stock["missed"], ours["missed"], True),
        ("worst tick late (ms)", stock["worst_late_ms"], ours["worst_late_ms"], True),
        ("add_frame p50 (ms)", stock["add_p50"], ours["add_p50"], True),
        ("add_frame p99 (ms)", stock["add_p99"], ours["add_p99"], True),
        ("add_frame max (ms)", stock["add_max"], ours["add_max"], True),
        ("data rows", stock["rows"], ours["rows"], None),
        ("video frames stored (per camera)", "/".join(map(str, stock["video_frames"].values())),
         "/".join(map(str, ours["video_frames"].values())), None),
        ("last save_episode call (ms)", stock["save_call_ms"][-1], ours["save_call_ms"][-1], True),
        ("dataset complete after the last save (s)", stock["complete_s"], ours["complete_s"], True),
        ("peak memory, whole process (MB)", stock["peak_rss_mb"], ours["peak_rss_mb"], True),
        ("peak memory above the first frame's (MB)", stock["peak_rss_mb"] - stock["rss_at_first_frame_mb"],
         ours["peak_rss_mb"] - ours["rss_at_first_frame_mb"], True),
    ]
    for label, x, y, r in rows:
        fx = f"{x:.2f}" if isinstance(x, float) else str(x)
        fy = f"{y:.2f}" if isinstance(y, float) else str(y)
        print(f"| {label} | {fx} | {fy} | {ratio(y, x) if r else ''} |")
    for w in (stock, ours):
        every = all(v == w["rows"] for v in w["video_frames"].values())
        print(f"{w['name']}: {'every row has its frame' if every else 'ROWS WITHOUT A VIDEO FRAME'}; "
              f"LeRobot 'running slower' warnings: {w['slower_warnings']}; wall {w['wall_s']:.0f} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--reset", type=float, default=2.0)
    ap.add_argument("--noise", type=float, default=0.0, help="camera noise sigma (pixel levels), 0 = clean footage")
    ap.add_argument("--loop-frames", type=int, default=150, help="frames of each clip decoded and looped")
    ap.add_argument("--no-streaming", dest="streaming", action="store_false",
                    help="LeRobot writes PNGs and encodes at save (its non-streaming path)")
    ap.add_argument("--footage", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "footage"))
    ap.add_argument("--keep", action="store_true", help="keep the datasets and logs")
    ap.add_argument("--json", metavar="FILE", help="also write every figure as JSON to FILE")
    a = ap.parse_args()
    clips = [str(Path(a.footage) / f) for f in ("aloha_top.mkv", "aloha_angle.mkv", "aloha_front_close.mkv")]
    missing = [c for c in clips if not Path(c).exists()]
    if missing:
        sys.exit(f"footage missing: {missing}")
    work = Path(tempfile.mkdtemp(prefix="reel-bench-loop-"))
    try:
        stock = run_one("lerobot", False, a, work, clips)
        ours = run_one("reel", True, a, work, clips)
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}", file=sys.stderr)
    if a.json:
        Path(a.json).write_text(json.dumps({"lerobot": stock, "reel": ours, "args": vars(a)}, indent=2))

    print_table(stock, ours, a)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Where the Python path's memory goes (issue 17 item 4): ``reel.Writer`` with 3 cameras
640x480 at 30 Hz, fed paced frames from Python for a few seconds, one child process per
configuration (so each peak is its own), reading /proc/self/status (VmRSS, VmHWM) after each
phase: imports, the writer open (the encoder plan and its encoders), recording, save, finalize.
The configurations vary what reel owns: deferral (a live x264 + final-codec lanes, or the final
codec live), the memory queue per camera (``max_frames_in_memory``) and the encoder threads.
The first row is the baseline the ratios are against (ReelDataset's defaults); the second gives
the background encoders as many threads as cores, what the plan did before it sized them.

    scripts/mem_python_path.sh [--seconds 6] [--vcodec libsvtav1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, os, sys, time
import numpy as np

def status():
    out = {}
    for line in open("/proc/self/status"):
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            out[k] = int(v.split()[0]) / 1024
    return out

cfg = json.loads(sys.argv[1])
marks = {"start": status()}
import reel  # noqa: E402
import torch  # noqa: F401,E402  (LeRobot's loop imports it: the same base in every row)
marks["imports"] = status()
H, W, N, FPS = 480, 640, 3, 30
names = [f"j{i}.pos" for i in range(6)]
feats = {"action": {"dtype": "float32", "shape": (6,), "names": names},
         "observation.state": {"dtype": "float32", "shape": (6,), "names": names}}
for c in range(N):
    feats[f"observation.images.cam{c}"] = {"dtype": "video", "shape": (H, W, 3),
                                          "names": ["height", "width", "channels"]}
w = reel.Writer.create(cfg["root"], FPS, feats, durable=False, **cfg["opts"])
marks["open"] = status()
rng = np.random.default_rng(0)
base = [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(8)]
for im in base:  # camera-like: smooth, noisy, moving
    im[:] = (np.add.outer(np.arange(H), np.arange(W)) % 256)[..., None] // 2 + im // 8
t0 = time.monotonic()
n = int(cfg["seconds"] * FPS)
for k in range(n):
    due = t0 + k / FPS
    now = time.monotonic()
    if due > now:
        time.sleep(due - now)
    fr = {"action": np.full(6, k, np.float32), "observation.state": np.zeros(6, np.float32),
          "task": "mem"}
    for c in range(N):
        fr[f"observation.images.cam{c}"] = np.roll(base[(k + c) % 8], k * 3, axis=1)
    w.add_frame(fr)
marks["recorded"] = status()
w.save_episode()
w.wait_saved(timeout=600)
marks["saved"] = status()
w.finalize()
marks["finalized"] = status()
print(json.dumps({"marks": marks, "plan": w.plan["summary"][0]}))
"""

CONFIGS = [
    ("ReelDataset defaults (queue 30, deferred auto)", {"max_frames_in_memory": 30}),
    (f"encoder threads {os.cpu_count()} (= cores: SVT-AV1's own default, the plan's before)",
     {"max_frames_in_memory": 30, "encoder_threads": os.cpu_count()}),
    ("queue 60 (reel.Writer's default)", {"max_frames_in_memory": 60}),
    ("queue 8", {"max_frames_in_memory": 8}),
    ("deferred never (final codec live), queue 30", {"max_frames_in_memory": 30, "deferred": "never"}),
    ("deferred always, queue 30", {"max_frames_in_memory": 30, "deferred": "always"}),
    ("encoder threads 1, queue 30", {"max_frames_in_memory": 30, "encoder_threads": 1}),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--vcodec", default="libsvtav1")
    ap.add_argument("--only", type=int, nargs="*", help="row numbers to run (0 = baseline, always run)")
    ap.add_argument("--json", metavar="FILE")
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="reel-mem-") as tmp:
        for i, (label, opts) in enumerate(CONFIGS):
            if a.only and i and i not in a.only:
                continue
            cfg = {"root": os.path.join(tmp, f"r{i}"), "seconds": a.seconds,
                   "opts": {"vcodec": a.vcodec, **opts}}
            t = time.monotonic()
            p = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg)], capture_output=True,
                               text=True, env=dict(os.environ, REEL_LOG="warn", SVT_LOG="1"))
            if p.returncode != 0:
                sys.exit(f"{label}: failed\n{p.stderr[-3000:]}")
            r = json.loads(p.stdout.strip().splitlines()[-1])
            r.update(label=label, wall_s=time.monotonic() - t)
            rows.append(r)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=2)
    base = rows[0]["marks"]["finalized"]["VmHWM"]
    print(f"reel.Writer, 3 cameras 640x480 @ 30 Hz, {a.seconds:g} s, vcodec {a.vcodec}; "
          f"load average {os.getloadavg()[0]:.1f}; MB (VmRSS after each phase; peak = VmHWM)")
    print("| configuration | plan | imports | open | recorded | saved | peak | peak above imports | peak / row 1 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        m = r["marks"]
        peak = m["finalized"]["VmHWM"]
        print(f"| {r['label']} | {r['plan'].replace('encoder plan: ', '')} | {m['imports']['VmRSS']:.0f} | "
              f"{m['open']['VmRSS']:.0f} | {m['recorded']['VmRSS']:.0f} | {m['saved']['VmRSS']:.0f} | "
              f"{peak:.0f} | {peak - m['imports']['VmRSS']:.0f} | {peak / base:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

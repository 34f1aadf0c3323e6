"""Benchmark of `reel merge` against LeRobot 0.6.1's `aggregate_datasets` on the same 8 sources
in the same run (scripts/bench_merge.sh sets it up): 4 datasets recorded by `reel record --sim`
(AV1), 2 recorded by reel and then resumed (`--resume`: a second session appends), 2 written by
LeRobot's own writer with the same features (AV1, LeRobot's defaults). Each merge runs in a
child process; wall time, CPU time (user + system of the child, from getrusage) and bytes
written (every file of the output) are measured, and `lerobot_check.py --strict` runs on reel's
output. Prints a Markdown table with the ratio LeRobot / reel.

usage: bench_merge.py WORK REEL_BINARY CHECK_SCRIPT  (env: WIDTH HEIGHT EPISODES EPISODE_S)
"""

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

JOINTS = ["shoulder_pan.pos", "shoulder_lift.pos", "elbow_flex.pos", "wrist_flex.pos",
          "wrist_roll.pos", "gripper.pos"]
W, H = int(os.environ.get("WIDTH", 320)), int(os.environ.get("HEIGHT", 240))
EPISODES, EPISODE_S = int(os.environ.get("EPISODES", 2)), float(os.environ.get("EPISODE_S", 3))


def lerobot_written(root: Path, seed: int) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    features = {
        "action": {"dtype": "float32", "shape": (6,), "names": JOINTS},
        "observation.state": {"dtype": "float32", "shape": (6,), "names": JOINTS},
        "observation.images.front": {"dtype": "video", "shape": (H, W, 3),
                                     "names": ["height", "width", "channels"]},
    }
    ds = LeRobotDataset.create("local/lerobot", 30, root=root, robot_type="sim_so100",
                               features=features, use_videos=True)
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:H, 0:W]
    for _ in range(EPISODES):
        for i in range(int(EPISODE_S * 30)):
            img = np.full((H, W, 3), 128, np.uint8)
            img[..., 0] = (xs + 7 * i) % 256
            img[..., 1] = (ys + 3 * i) % 256
            ds.add_frame({"action": rng.random(6, dtype=np.float32),
                          "observation.state": rng.random(6, dtype=np.float32),
                          "observation.images.front": img, "task": "Move the arm through its range"})
        ds.save_episode()
    ds.finalize()


def record(reel: str, root: Path, episodes: int, resume: bool) -> None:
    cmd = [reel, "record", "--sim", "--no-keys", "--root", str(root), "--num-episodes", str(episodes),
           "--episode-time-s", str(EPISODE_S), "--reset-time-s", "0", "--width", str(W),
           "--height", str(H), "--num-cameras", "1", "--vcodec", "libsvtav1", "--deferred", "never",
           "--single-task", "Move the arm through its range"]
    subprocess.run(cmd + (["--resume"] if resume else []), check=True, capture_output=True)


def timed(cmd: list[str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        sys.exit(f"FAIL: {' '.join(cmd[:3])}...:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and ".reel" not in p.parts)


def main() -> None:
    work, reel, check = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    src = work / "sources"
    src.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    roots = []
    for i in range(4):
        record(reel, src / f"reel_{i}", EPISODES, False)
        roots.append(src / f"reel_{i}")
    for i in range(2):
        r = src / f"resumed_{i}"
        record(reel, r, 1, False)
        record(reel, r, max(EPISODES - 1, 1), True)
        roots.append(r)
    for i in range(2):
        lerobot_written(src / f"lerobot_{i}", i)
        roots.append(src / f"lerobot_{i}")
    frames = sum(json.loads((r / "meta" / "info.json").read_text())["total_frames"] for r in roots)
    print(f"made 8 sources ({frames} frames, {W}x{H}) in {time.monotonic() - t0:.1f} s", flush=True)

    out_reel, out_lr = work / "merged_reel", work / "merged_lerobot"
    for d in (out_reel, out_lr):
        shutil.rmtree(d, ignore_errors=True)
    reel_wall, reel_cpu = timed([reel, "merge", *map(str, roots), "--output", str(out_reel), "--json"])
    code = ("import sys; from lerobot.datasets.aggregate import aggregate_datasets; "
            "roots = sys.argv[2:]; aggregate_datasets([f'local/s{i}' for i in range(len(roots))], "
            "'local/merged', roots=roots, aggr_root=sys.argv[1])")
    lr_wall, lr_cpu = timed([sys.executable, "-c", code, str(out_lr), *map(str, roots)])
    rb, lb = tree_bytes(out_reel), tree_bytes(out_lr)
    chk = subprocess.run([sys.executable, check, "--strict", "--color", "never", str(out_reel)],
                         capture_output=True, text=True)
    verdict = "PASS" if chk.returncode == 0 and "RESULT: PASS" in chk.stdout else "FAIL"
    print()
    print(f"| merge of 8 datasets ({frames} frames, {W}x{H} AV1) | wall s | CPU s | bytes written |")
    print("|---|---:|---:|---:|")
    print(f"| reel merge | {reel_wall:.2f} | {reel_cpu:.2f} | {rb} |")
    print(f"| LeRobot aggregate_datasets | {lr_wall:.2f} | {lr_cpu:.2f} | {lb} |")
    print(f"| ratio LeRobot / reel | {lr_wall / reel_wall:.1f}× | {lr_cpu / max(reel_cpu, 1e-9):.1f}× "
          f"| {lb / rb:.2f}× |")
    print(f"\nlerobot_check.py --strict on reel's output: {verdict}")
    if verdict != "PASS":
        sys.exit(chk.stdout[-4000:])


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Runs LeRobot 0.6.1's own dataset writer on the workload of `reel bench record` and prints the
same figures as JSON: a 30 Hz loop (sleep to the next slot, as lerobot-record does) that builds a
frame (6-joint state/action + N cameras) and calls add_frame; then save_episode and finalize.

Camera frames are decoded once from FFmpeg's testsrc2 (the same synthetic source reel's cameras
use) and cycled, so Python pays no capture cost: the comparison favours LeRobot.

Run with the LeRobot venv's python:  ~/venv-lerobot/bin/python scripts/bench_lerobot.py --cameras 3 --seconds 10
"""
import argparse, json, os, resource, shutil, sys, tempfile, time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import numpy as np  # noqa: E402


def synthetic_frames(n_cams, w, h, count=60):
    import av
    out = []
    graphs = ["testsrc2", "testsrc", "smptehdbars", "rgbtestsrc"]
    for i in range(n_cams):
        c = av.open(f"{graphs[i % 4]}=size={w}x{h}:rate=30", format="lavfi")
        frames = []
        for f in c.decode(video=0):
            frames.append(f.to_ndarray(format="rgb24"))
            if len(frames) >= count:
                break
        c.close()
        out.append(frames)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cameras", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--episodes", type=int, default=1)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--vcodec", default="libsvtav1")
    ap.add_argument("--no-streaming", action="store_true", help="LeRobot's default PNG path")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot.configs.video import RGBEncoderConfig

    joints = ["shoulder_pan.pos", "shoulder_lift.pos", "elbow_flex.pos", "wrist_flex.pos", "wrist_roll.pos", "gripper.pos"]
    cams = ["front", "wrist", "side", "top"][: a.cameras]
    features = {
        "action": {"dtype": "float32", "names": joints, "shape": [6]},
        "observation.state": {"dtype": "float32", "names": joints, "shape": [6]},
    }
    for c in cams:
        features[f"observation.images.{c}"] = {"dtype": "video", "shape": [a.height, a.width, 3], "names": ["height", "width", "channels"]}
    frames = synthetic_frames(len(cams), a.width, a.height)
    tmp = tempfile.mkdtemp(prefix="lerobot-bench-")
    root = os.path.join(tmp, "ds")
    vcodec = {"libx264": "h264", "libx265": "hevc"}.get(a.vcodec, a.vcodec)
    ds = LeRobotDataset.create("bench/lerobot", a.fps, features, root=root, robot_type="sim_so100", use_videos=True,
                               streaming_encoding=not a.no_streaming, rgb_encoder=RGBEncoderConfig(vcodec=vcodec),
                               image_writer_threads=4 * len(cams))
    period = 1.0 / a.fps
    add_ms, missed, ticks, save_ms = [], 0, 0, []
    for ep in range(a.episodes):
        n = int(round(a.seconds * a.fps))
        for k in range(n):
            t0 = time.perf_counter()
            t = k / a.fps
            state = np.array([45 * np.sin(2 * np.pi * (0.15 + 0.07 * i) * t + i) for i in range(6)], dtype=np.float32)
            frame = {"action": state.copy(), "observation.state": state, "task": "benchmark"}
            for i, c in enumerate(cams):
                frame[f"observation.images.{c}"] = frames[i][k % len(frames[i])]
            t1 = time.perf_counter()
            ds.add_frame(frame)
            add_ms.append((time.perf_counter() - t1) * 1e3)
            work = time.perf_counter() - t0
            ticks += 1
            if work > period:
                missed += 1
            left = t0 + period - time.perf_counter()
            if left > 0:
                time.sleep(left)
        s0 = time.perf_counter()
        ds.save_episode()
        save_ms.append((time.perf_counter() - s0) * 1e3)
    f0 = time.perf_counter()
    ds.finalize()
    fin = time.perf_counter() - f0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    a_ms = np.array(add_ms)
    out = {
        "writer": "lerobot-0.6.1", "cameras": a.cameras, "seconds": a.seconds, "episodes": a.episodes, "vcodec": a.vcodec,
        "streaming": not a.no_streaming, "ticks": ticks, "frames_saved": ds.meta.total_frames,
        "add_frame_ms": {"p50": float(np.percentile(a_ms, 50)), "p99": float(np.percentile(a_ms, 99)), "max": float(a_ms.max())},
        "missed_deadlines": missed, "save_latency_ms": save_ms, "finalize_s": fin, "peak_rss_mb": rss,
    }
    shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(out, indent=2) if a.json else out)


if __name__ == "__main__":
    sys.exit(main())

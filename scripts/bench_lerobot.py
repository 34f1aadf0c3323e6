#!/usr/bin/env python3
"""Runs LeRobot 0.6.1's own dataset writer on the workload of `reel bench record` and prints the
same figures as JSON: a 30 Hz loop (sleep to the next slot, as lerobot-record does) that builds a
frame (6-joint state/action + N cameras) and calls add_frame; save_episode after each episode,
then a reset phase (the loop runs, nothing is recorded), and finalize at the end.

Cameras:
* without --camera: frames are decoded once from FFmpeg's testsrc2 (the same synthetic source
  reel's cameras use) and cycled, so Python pays no capture cost: the comparison favours LeRobot;
* with --camera NAME=INPUT[@WxH[@FPS]][@vf=FILTERS] (as `reel bench record --camera`): each
  camera is read on its own thread with PyAV (a file input loops; FILTERS applied), paced to the
  camera rate, into a latest-frame slot the loop takes, as LeRobot's camera threads do. Their CPU
  time is reported as capture.

Other options of `reel bench record` (--deferred, --root, ...) are accepted and ignored.
Run with the LeRobot venv's python:  ~/venv-lerobot/bin/python scripts/bench_lerobot.py --cameras 3 --seconds 10
"""
import argparse, glob, json, os, resource, shutil, subprocess, sys, tempfile, threading, time

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


class CameraThread(threading.Thread):
    """Reads one camera input on its own thread into a latest-frame slot, paced to `fps`."""

    def __init__(self, spec, width, height, fps):
        super().__init__(daemon=True)
        main, _, filt = spec.partition("@vf=")
        name, _, rest = main.partition("=")
        parts = rest.split("@")
        self.name_ = name
        self.input = parts[0]
        self.width, self.height, self.fps = width, height, fps
        if len(parts) > 1:
            self.width, self.height = (int(x) for x in parts[1].lower().split("x"))
        if len(parts) > 2:
            self.fps = int(parts[2])
        graph = self.input[len("lavfi:"):] if self.input.startswith("lavfi:") else f"movie={self.input}:loop=0"
        graph += f",scale={self.width}:{self.height}"
        if filt:
            graph += "," + filt
        self.graph = graph
        self.latest = None
        self.stop = False
        self.cpu_s = 0.0
        self.frames = 0
        self.ready = threading.Event()

    def run(self):
        import av
        c = av.open(self.graph, format="lavfi")
        period = 1.0 / self.fps
        t_next = time.perf_counter()
        try:
            for f in c.decode(video=0):
                self.latest = f.to_ndarray(format="rgb24")
                self.frames += 1
                self.ready.set()
                if self.stop:
                    break
                t_next += period
                left = t_next - time.perf_counter()
                if left > 0:
                    time.sleep(left)
                else:
                    t_next = time.perf_counter()
        finally:
            self.cpu_s = time.thread_time()
            c.close()


def video_codecs(root):
    out = set()
    for f in glob.glob(os.path.join(root, "videos", "**", "*.mp4"), recursive=True):
        r = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=codec_name",
                            "-of", "csv=p=0", f], capture_output=True, text=True)
        out.add(r.stdout.strip() or "unreadable")
    return sorted(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cameras", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--episodes", type=int, default=1)
    ap.add_argument("--reset-s", type=float, default=0.0)
    ap.add_argument("--camera", action="append", default=[])
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--vcodec", default="libsvtav1")
    ap.add_argument("--no-streaming", action="store_true", help="LeRobot's default PNG path")
    ap.add_argument("--json", action="store_true")
    a, _ignored = ap.parse_known_args()

    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot.configs.video import RGBEncoderConfig

    joints = ["shoulder_pan.pos", "shoulder_lift.pos", "elbow_flex.pos", "wrist_flex.pos", "wrist_roll.pos", "gripper.pos"]
    cam_threads = [CameraThread(c, a.width, a.height, a.fps) for c in a.camera]
    cams = [t.name_ for t in cam_threads] or ["front", "wrist", "side", "top"][: a.cameras]
    features = {
        "action": {"dtype": "float32", "names": joints, "shape": [6]},
        "observation.state": {"dtype": "float32", "names": joints, "shape": [6]},
    }
    for c in cams:
        features[f"observation.images.{c}"] = {"dtype": "video", "shape": [a.height, a.width, 3], "names": ["height", "width", "channels"]}
    frames = None if cam_threads else synthetic_frames(len(cams), a.width, a.height)
    for t in cam_threads:
        t.start()
    for t in cam_threads:
        if not t.ready.wait(10):
            raise SystemExit(f"camera {t.name_}: no frame within 10 s ({t.graph})")
    tmp = tempfile.mkdtemp(prefix="lerobot-bench-")
    root = os.path.join(tmp, "ds")
    vcodec = {"libx264": "h264", "libx265": "hevc", "auto": "libsvtav1"}.get(a.vcodec, a.vcodec)
    ds = LeRobotDataset.create("bench/lerobot", a.fps, features, root=root, robot_type="sim_so100", use_videos=True,
                               streaming_encoding=not a.no_streaming, rgb_encoder=RGBEncoderConfig(vcodec=vcodec),
                               image_writer_threads=4 * len(cams))
    period = 1.0 / a.fps
    add_ms, missed, ticks, save_ms = [], 0, 0, []
    last_save_start = None
    # CPU from here on (imports and dataset creation excluded), as reel's sampler sees a session.
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    main0 = time.thread_time()

    def loop(n, record):
        nonlocal missed, ticks
        for k in range(n):
            t0 = time.perf_counter()
            t = k / a.fps
            state = np.array([45 * np.sin(2 * np.pi * (0.15 + 0.07 * i) * t + i) for i in range(6)], dtype=np.float32)
            frame = {"action": state.copy(), "observation.state": state, "task": "benchmark"}
            for i, c in enumerate(cams):
                frame[f"observation.images.{c}"] = cam_threads[i].latest if cam_threads else frames[i][k % len(frames[i])]
            if record:
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

    for ep in range(a.episodes):
        loop(int(round(a.seconds * a.fps)), True)
        s0 = time.perf_counter()
        last_save_start = s0
        ds.save_episode()
        save_ms.append((time.perf_counter() - s0) * 1e3)
        if ep + 1 < a.episodes:
            loop(int(round(a.reset_s * a.fps)), False)
    for t in cam_threads:
        t.stop = True
    f0 = time.perf_counter()
    ds.finalize()
    done = time.perf_counter()
    fin = done - f0
    for t in cam_threads:
        t.join(5)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    rss = ru.ru_maxrss / 1024.0
    total_cpu = (ru.ru_utime + ru.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    capture_cpu = sum(t.cpu_s for t in cam_threads)
    main_cpu = time.thread_time() - main0
    a_ms = np.array(add_ms)
    out = {
        "writer": "lerobot-0.6.1", "cameras": len(cams), "camera_inputs": a.camera, "seconds": a.seconds,
        "episodes": a.episodes, "reset_s": a.reset_s, "vcodec": vcodec,
        "streaming": not a.no_streaming, "ticks": ticks, "frames_saved": ds.meta.total_frames,
        "add_frame_ms": {"p50": float(np.percentile(a_ms, 50)), "p99": float(np.percentile(a_ms, 99)), "max": float(a_ms.max())},
        "missed_deadlines": missed, "save_latency_ms": save_ms, "finalize_s": fin,
        "last_save_to_complete_s": done - last_save_start,
        "video_codecs": video_codecs(root),
        "cpu_s": {"capture": capture_cpu, "loop": main_cpu, "encoding": max(0.0, total_cpu - capture_cpu - main_cpu),
                  "total": total_cpu},
        "peak_rss_mb": rss,
    }
    shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(out, indent=2) if a.json else out)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""SVT-AV1 versions on this machine: Debian 12's (1.4.1, through the ffmpeg CLI, the same
libraries reel links) against the one bundled in the PyAV wheel of the LeRobot venv (SVT-AV1 3.0
in PyAV 15.1), on the footage clips, 3 streams at once (one per clip, as 3 cameras), crf 30, g 2.

Frames are decoded once to raw yuv420p files first, so the figures are encoding only.
Run with the LeRobot venv's python:
  ~/venv-lerobot/bin/python scripts/bench_av1_versions.py [--presets 8,10,12] [--noise]
Prints a markdown table: total frames/s of the 3 streams and the slowest stream, per preset.
"""
import argparse, glob, os, subprocess, tempfile, threading, time

import av


def raw_clips(tmp, noise):
    clips = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "footage", "*.mkv")))
    out = []
    for c in clips:
        dst = os.path.join(tmp, os.path.basename(c) + ".yuv")
        vf = ["-vf", "noise=alls=4:allf=t"] if noise else []
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", c, *vf, "-pix_fmt", "yuv420p", "-f", "rawvideo", dst], check=True)
        out.append(dst)
    return out


def frames_of(path, w=640, h=480):
    size = w * h * 3 // 2
    with open(path, "rb") as f:
        data = f.read()
    return [data[i:i + size] for i in range(0, len(data), size)]


def pyav_stream(frames, preset, res, i):
    out = av.open(os.devnull, "w", format="mp4")
    s = out.add_stream("libsvtav1", rate=30, options={"preset": str(preset), "crf": "30", "g": "2"})
    s.width, s.height, s.pix_fmt = 640, 480, "yuv420p"
    t0 = time.perf_counter()
    for k, buf in enumerate(frames):
        fr = av.VideoFrame(640, 480, "yuv420p")
        # Copy the planes of the raw frame into the PyAV frame.
        y, u, v = buf[:640 * 480], buf[640 * 480:640 * 480 * 5 // 4], buf[640 * 480 * 5 // 4:]
        for plane, src, width in ((fr.planes[0], y, 640), (fr.planes[1], u, 320), (fr.planes[2], v, 320)):
            ls = plane.line_size
            if ls == width:
                plane.update(src)
            else:
                rows = len(src) // width
                padded = b"".join(src[r * width:(r + 1) * width] + b"\0" * (ls - width) for r in range(rows))
                plane.update(padded)
        fr.pts = k
        for p in s.encode(fr):
            out.mux(p)
    for p in s.encode():
        out.mux(p)
    out.close()
    res[i] = (len(frames), time.perf_counter() - t0)


def run_pyav(clips, preset):
    frames = [frames_of(c) for c in clips]
    res = [None] * len(clips)
    ts = [threading.Thread(target=pyav_stream, args=(f, preset, res, i)) for i, f in enumerate(frames)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    return sum(n for n, _ in res) / wall, min(n / s for n, s in res)


def run_debian(clips, preset):
    t0 = time.perf_counter()
    procs = []
    for c in clips:
        cmd = ["/usr/bin/time", "-f", "%e", "ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "yuv420p",
               "-s", "640x480", "-r", "30", "-i", c, "-c:v", "libsvtav1", "-preset", str(preset), "-crf", "30",
               "-g", "2", "-f", "mp4", os.devnull]
        procs.append(subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env={**os.environ, "SVT_LOG": "1"}))
    secs = []
    for p in procs:
        _, err = p.communicate()
        secs.append(float(err.strip().splitlines()[-1]))
    wall = time.perf_counter() - t0
    n = len(frames_of(clips[0]))
    return n * len(clips) / wall, min(n / s for s in secs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", default="8,10,12")
    ap.add_argument("--noise", action="store_true")
    a = ap.parse_args()
    svt_pyav = "3.0 (PyAV %s, FFmpeg %s)" % (av.__version__, ".".join(map(str, av.library_versions["libavcodec"])))
    with tempfile.TemporaryDirectory() as tmp:
        clips = raw_clips(tmp, a.noise)
        print(f"load before: {open('/proc/loadavg').read().split()[:3]}")
        print(f"footage{' + noise=alls=4:allf=t' if a.noise else ''}, 3 streams 640x480 at once, crf 30, g 2")
        print("| preset | Debian SVT-AV1 1.4.1: total fps (slowest stream) | SVT-AV1 %s: total fps (slowest stream) | ratio |" % svt_pyav)
        print("|---|---|---|---|")
        for p in [int(x) for x in a.presets.split(",")]:
            d = run_debian(clips, p)
            y = run_pyav(clips, p)
            print(f"| {p} | {d[0]:.1f} ({d[1]:.1f}) | {y[0]:.1f} ({y[1]:.1f}) | {y[0] / d[0]:.2f} |", flush=True)
        print(f"load after: {open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# Runs `reel bench record` and LeRobot 0.6.1's writer (scripts/bench_lerobot.py) on the same
# workload, one after the other in this script, and prints both with reel/LeRobot ratios.
# Usage: scripts/bench_compare.sh [--cameras 3] [--seconds 10] [--episodes 1] [--reset-s 0]
#        [--vcodec auto] [--camera NAME=INPUT[@WxH[@FPS]][@vf=FILTERS] ...]
# e.g. the footage clips, looped, with sensor-like noise:
#   scripts/bench_compare.sh --seconds 20 --episodes 3 --reset-s 10 \
#     --camera top=../shared/footage/aloha_top.mkv@vf=noise=alls=4:allf=t \
#     --camera angle=../shared/footage/aloha_angle.mkv@vf=noise=alls=4:allf=t \
#     --camera front=../shared/footage/aloha_front_close.mkv@vf=noise=alls=4:allf=t
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${LEROBOT_VENV:-$HOME/venv-lerobot}/bin/python"
[ -x "$PY" ] || { echo "LeRobot venv missing: run scripts/test.sh once (it installs it)" >&2; exit 1; }
cargo build --release -j2 -p reel >/dev/null
out=$(mktemp -d)
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
./target/release/reel bench record --json "$@" > "$out/reel.json"
echo "load between: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$PY" scripts/bench_lerobot.py --json "$@" > "$out/lerobot.json"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$PY" - "$out/reel.json" "$out/lerobot.json" <<'PYEOF'
import json, sys
r, l = (json.load(open(p)) for p in sys.argv[1:3])
def row(name, a, b):
    ratio = (a / b) if b else float("nan")
    print(f"| {name} | {a:.3f} | {b:.3f} | {ratio:.3f} |")
inputs = ", ".join(r.get("camera_inputs") or []) or "synthetic"
print(f"workload: {r['cameras']} cameras {r['width']}x{r['height']} @ {r['fps']} Hz, {r['episodes']} x {r['seconds']} s, "
      f"vcodec {r['vcodec']}; inputs: {inputs}")
print("| figure | reel | LeRobot 0.6.1 | reel / LeRobot |\n|---|---|---|---|")
row("add_frame p50 (ms)", r["add_frame_ms"]["p50"], l["add_frame_ms"]["p50"])
row("add_frame p99 (ms)", r["add_frame_ms"]["p99"], l["add_frame_ms"]["p99"])
row("add_frame max (ms)", r["add_frame_ms"]["max"], l["add_frame_ms"]["max"])
print(f"| missed deadlines (of ticks) | {r['missed_deadlines']} / {r['ticks']} | {l['missed_deadlines']} / {l['ticks']} | |")
print(f"| frames saved (lost) | {r['frames_saved']} ({r['ticks'] - r['frames_saved']}) | {l['frames_saved']} ({l['ticks'] - l['frames_saved']}) | |")
row("save_episode call: loop blocked (ms)", r["save_episode_call_ms"][-1], l["save_latency_ms"][-1])
row("last save_episode → complete final-codec dataset (s)", r["last_save_to_complete_s"], l["last_save_to_complete_s"])
print(f"| video codecs at the end | {', '.join(r['video_codecs'])} | {', '.join(l['video_codecs'])} | |")
rc, lc = r["cpu_s"], l["cpu_s"]
row("CPU s: capture", rc["capture"], lc["capture"])
row("CPU s: live encoding (LeRobot: all encoding)", rc["live_encoding"], lc["encoding"])
print(f"| CPU s: conversion to the final codec | {rc['conversion']:.1f} | (in encoding) | |")
row("CPU s: loop and the rest", rc["other"], lc["loop"])
print(f"| spilled frames (reel) | {r['spilled_frames']} | n/a | |")
routes = "; ".join(f"{x['camera'].split('.')[-1]}: {x['lane']} lane / {x['transcoded']} transcoded" for x in r.get("final_routes", []))
print(f"| final codec route per camera (reel) | {routes or 'live'} | n/a | |")
row("peak RSS (MB)", r["peak_rss_mb"], l["peak_rss_mb"])
PYEOF

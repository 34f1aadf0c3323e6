#!/usr/bin/env bash
# Runs `reel bench record` and LeRobot 0.6.1's writer (scripts/bench_lerobot.py) on the same
# workload, one after the other in this script, and prints both with reel/LeRobot ratios.
# Usage: scripts/bench_compare.sh [--cameras 3] [--seconds 10] [--vcodec libx264]
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${LEROBOT_VENV:-$HOME/venv-lerobot}/bin/python"
[ -x "$PY" ] || { echo "LeRobot venv missing: run scripts/test.sh once (it installs it)" >&2; exit 1; }
cargo build --release -j2 -p reel >/dev/null
out=$(mktemp -d)
./target/release/reel bench record --json "$@" > "$out/reel.json"
"$PY" scripts/bench_lerobot.py --json "$@" > "$out/lerobot.json"
"$PY" - "$out/reel.json" "$out/lerobot.json" <<'PYEOF'
import json, sys
r, l = (json.load(open(p)) for p in sys.argv[1:3])
def row(name, a, b, lower_better=True):
    ratio = (a / b) if b else float("nan")
    print(f"| {name} | {a:.3f} | {b:.3f} | {ratio:.3f} |")
print(f"workload: {r['cameras']} cameras {r['width']}x{r['height']} @ {r['fps']} Hz, {r['episodes']} x {r['seconds']} s, {r['vcodec']}")
print("| figure | reel | LeRobot 0.6.1 | reel / LeRobot |\n|---|---|---|---|")
row("add_frame p50 (ms)", r["add_frame_ms"]["p50"], l["add_frame_ms"]["p50"])
row("add_frame p99 (ms)", r["add_frame_ms"]["p99"], l["add_frame_ms"]["p99"])
row("add_frame max (ms)", r["add_frame_ms"]["max"], l["add_frame_ms"]["max"])
print(f"| missed deadlines | {r['missed_deadlines']} | {l['missed_deadlines']} | |")
row("save_episode call: loop blocked (ms)", r["save_episode_call_ms"][-1], l["save_latency_ms"][-1])
print(f"| episode durable after save (ms) | {r['save_latency_ms'][-1]:.1f} | {l['save_latency_ms'][-1]:.1f} (parquet footer only at finalize) | |")
print(f"| frames saved | {r['frames_saved']} | {l['frames_saved']} | |")
print(f"| spilled frames (reel) / queue drops (LeRobot: see its log) | {r['spilled_frames']} | n/a | |")
row("peak RSS (MB)", r["peak_rss_mb"], l["peak_rss_mb"])
print(f"| finalize (s) | {r['finalize_wait_s']:.2f} | {l['finalize_s']:.2f} | |")
PYEOF

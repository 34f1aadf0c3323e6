#!/usr/bin/env bash
# What the live page (`reel record --display`) costs the control loop: the same `reel bench
# record` workload (default 3 cameras 640x480 @ 30 Hz, libx264, 3 runs each of 10 s) without
# the page, then with the page and a headless Chromium connected to it (polling the page and
# every camera's thumbnail, as a person watching would), alternating, in this script.
# Prints per-run figures and the ratio with/without of the medians.
# Usage: scripts/bench_display.sh [reel bench record options; default --cameras 3 --seconds 10 --vcodec libx264]
# Environment: RUNS (default 3), PORT (default 8797), REEL (default target/release/reel).
set -euo pipefail
cd "$(dirname "$0")/.."
REEL=${REEL:-target/release/reel}
RUNS=${RUNS:-3}
PORT=${PORT:-8797}
CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
[ -x "$REEL" ] || cargo build --release -j2 -p reel >/dev/null
[ -n "$CHROMIUM" ] || { echo "chromium missing: REEL_DEPS_TESTS=1 source scripts/deps.sh installs it" >&2; exit 2; }
args=("$@")
[ $# -gt 0 ] || args=(--cameras 3 --seconds 10 --vcodec libx264)
out=$(mktemp -d)
browser() {
  # Waits for the page, then keeps a headless browser on it until the bench ends.
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.1
  done
  exec "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$out/profile-$1" --remote-debugging-port=0 "http://127.0.0.1:$PORT/" \
    >/dev/null 2>&1
}
for i in $(seq "$RUNS"); do
  "$REEL" bench record --json "${args[@]}" > "$out/off-$i.json"
  browser "$i" & bpid=$!
  "$REEL" bench record --json --display --display-port "$PORT" "${args[@]}" > "$out/on-$i.json"
  kill "$bpid" 2>/dev/null || true
  wait "$bpid" 2>/dev/null || true
done
python3 - "$out" "$RUNS" <<'PYEOF'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
off = [json.load(open(f"{out}/off-{i}.json")) for i in range(1, runs + 1)]
on = [json.load(open(f"{out}/on-{i}.json")) for i in range(1, runs + 1)]
r = off[0]
print(f"workload: {r['cameras']} cameras {r['width']}x{r['height']} @ {r['fps']} Hz, {r['seconds']} s, {r['vcodec']}, {runs} runs each, alternating")
print("| run | display | missed deadlines | add_frame p50 ms | add_frame p99 ms | add_frame max ms | start lateness p99 ms | thumbnails | requests answered | updates dropped |")
print("|---|---|---|---|---|---|---|---|---|---|")
for i, (a, b) in enumerate(zip(off, on), 1):
    for name, x in (("off", a), ("on + browser", b)):
        print(f"| {i} | {name} | {x['missed_deadlines']} | {x['add_frame_ms']['p50']:.3f} | {x['add_frame_ms']['p99']:.3f} | {x['add_frame_ms']['max']:.3f} | {x['tick_start_lateness_p99_ms']:.3f} | {x.get('display_thumbnails', 0)} | {x.get('display_requests', 0)} | {x.get('display_dropped_updates', 0)} |")
med = lambda xs, k: statistics.median(x['add_frame_ms'][k] for x in xs)
for k in ("p50", "p99"):
    a, b = med(off, k), med(on, k)
    print(f"median add_frame {k}: off {a:.3f} ms, on {b:.3f} ms, on/off {b / a:.2f}")
print(f"missed deadlines: off {sum(x['missed_deadlines'] for x in off)}, on {sum(x['missed_deadlines'] for x in on)}")
PYEOF
rm -rf "$out"

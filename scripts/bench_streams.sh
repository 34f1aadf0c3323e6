#!/usr/bin/env bash
# The cost of side streams to the loop: `reel bench record` (simulated arm, synthetic cameras,
# a 30 Hz loop) run twice in this script, alternating, without streams (baseline) and with the
# servo read on the bus thread at 500 Hz (`--servo-stream-hz`) plus a 48 kHz lavfi audio stream
# (`--audio-stream`), and prints missed deadlines, tick time and start lateness with the ratio
# streams/baseline, and the samples stored.
# Usage: scripts/bench_streams.sh [--rounds 2] [reel bench record options, e.g. --cameras 2 --seconds 20]
# Binary: $REEL_BIN, else $CARGO_TARGET_DIR/release/reel (built here; REEL_PROFILE=dev for the dev profile).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=2
if [ "${1:-}" = "--rounds" ]; then rounds=$2; shift 2; fi
target="${CARGO_TARGET_DIR:-$PWD/target}"
profile="${REEL_PROFILE:-release}"
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
if [ -z "${REEL_BIN:-}" ]; then
  cargo build -j2 --profile "$profile" -p reel >/dev/null
  REEL_BIN="$target/$dir/reel"
fi
export REEL_LOG="${REEL_LOG:-warn}"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# Defaults, each replaced by the same option given on the command line.
declare -A opt=([--cameras]=2 [--width]=640 [--height]=480 [--seconds]=20 [--episodes]=1 [--vcodec]=libx264)
extra=()
while [ $# -gt 0 ]; do
  if [ -n "${opt[$1]+x}" ] && [ $# -ge 2 ]; then opt[$1]=$2; shift 2; else extra+=("$1"); shift; fi
done
args=("${extra[@]}")
for k in "${!opt[@]}"; do args+=("$k" "${opt[$k]}"); done
streams=(--servo-stream-hz 500 --audio-stream "lavfi:sine=frequency=440:sample_rate=48000")
for r in $(seq 1 "$rounds"); do
  echo "round $r: load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  "$REEL_BIN" bench record --json "${args[@]}" > "$out/base-$r.json"
  "$REEL_BIN" bench record --json "${args[@]}" "${streams[@]}" > "$out/streams-$r.json"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
python3 - "$out" "$rounds" <<'PYEOF'
import json, sys
d, n = sys.argv[1], int(sys.argv[2])
base = [json.load(open(f"{d}/base-{r}.json")) for r in range(1, n + 1)]
strm = [json.load(open(f"{d}/streams-{r}.json")) for r in range(1, n + 1)]
b0 = base[0]
print(f"workload: {b0['cameras']} cameras {b0['width']}x{b0['height']} @ {b0['fps']} Hz, "
      f"{b0['episodes']} x {b0['seconds']} s, vcodec {b0['vcodec']}, {n} round(s) each, alternating")
print("| figure (worst of the rounds) | baseline | + servo 500 Hz + audio 48 kHz | ratio |")
print("|---|---|---|---|")
def worst(runs, key):
    return max(r[key] for r in runs)
for key, name in [("missed_deadlines", "missed deadlines"), ("ticks", "ticks"),
                  ("tick_p99_ms", "tick time p99 (ms)"), ("tick_max_ms", "tick time max (ms)"),
                  ("tick_start_lateness_p99_ms", "start lateness p99 (ms)")]:
    a, b = worst(base, key), worst(strm, key)
    ratio = f"{b / a:.2f}" if a else ("1.00" if b == a else "n/a (baseline 0)")
    print(f"| {name} | {a:.3f} | {b:.3f} | {ratio} |")
a = min(r["loop_rate_hz_min"] for r in base); b = min(r["loop_rate_hz_min"] for r in strm)
print(f"| loop rate min (Hz) | {a:.2f} | {b:.2f} | {b / a:.3f} |")
for s in strm[0]["streams"]:
    per = [next(x for x in r["streams"] if x["name"] == s["name"]) for r in strm]
    print(f"stream {s['name']}: stored {[p['stored'] for p in per]}, between episodes "
          f"{[p['between_episodes'] for p in per]}, late {[p['late'] for p in per]}")
PYEOF

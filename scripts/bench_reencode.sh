#!/usr/bin/env bash
# Benchmark of `reel reencode` against LeRobot 0.6.1's own re-encode
# (`lerobot-edit-dataset --operation.type reencode_videos`, i.e.
# lerobot.datasets.dataset_tools.reencode_dataset) on the same dataset in the same run:
# records a libx264 dataset with reel (default 20 episodes × 2 s, 2 cameras, 320x240 @ 30 fps),
# copies it, re-encodes one copy with each tool to libsvtav1 (crf 30, preset 12, g 2 — LeRobot's
# defaults), prints wall times, frames/s and the ratio, runs the conformance check on both
# results, and finally kills a third `reel reencode` with SIGKILL half way and checks that a
# rerun finishes correctly.
#
# Environment: REEL (binary used to record, default target/release/reel), REEL_REENCODE (binary
# with the `reencode` subcommand, default $REEL), JOBS (workers for both tools, default nproc),
# EPISODES, EPISODE_S, WIDTH, HEIGHT, CAMERAS, WORK (scratch dir, default a new temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."

REEL=${REEL:-target/release/reel}
REEL_REENCODE=${REEL_REENCODE:-$REEL}
VENV=${VENV:-/root/venv-lerobot}
CHECK=${CHECK:-/work/shared/conformance/lerobot_check.py}
JOBS=${JOBS:-$(nproc)}
EPISODES=${EPISODES:-20}
EPISODE_S=${EPISODE_S:-2}
WIDTH=${WIDTH:-320}
HEIGHT=${HEIGHT:-240}
CAMERAS=${CAMERAS:-2}
WORK=${WORK:-$(mktemp -d /tmp/bench_reencode.XXXXXX)}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1

for f in "$REEL" "$REEL_REENCODE" "$VENV/bin/python" "$VENV/bin/lerobot-edit-dataset" "$CHECK"; do
  [ -e "$f" ] || { echo "missing $f" >&2; exit 2; }
done
"$REEL_REENCODE" reencode --help >/dev/null || { echo "$REEL_REENCODE has no 'reencode' subcommand" >&2; exit 2; }

now() { date +%s.%N; }
src=$WORK/src
echo "== recording $EPISODES episodes × ${EPISODE_S}s, $CAMERAS cameras ${WIDTH}x${HEIGHT}, libx264 into $src"
"$REEL" record --sim --no-keys --root "$src" --num-episodes "$EPISODES" --episode-time-s "$EPISODE_S" \
  --reset-time-s 0 --width "$WIDTH" --height "$HEIGHT" --num-cameras "$CAMERAS" --vcodec libx264 2>/dev/null | tail -1
for c in reel lerobot killed; do rm -rf "${WORK:?}/$c"; cp -r "$src" "$WORK/$c"; done

frames=$("$VENV/bin/python" -c '
import json, sys
i = json.load(open(sys.argv[1] + "/meta/info.json"))
print(i["total_frames"] * sum(1 for f in i["features"].values() if f["dtype"] == "video"))' "$src")
files=$(find "$src/videos" -name '*.mp4' | wc -l)
echo "== $frames video frames in $files files; $JOBS worker(s) each"

echo "== reel reencode"
t0=$(now)
"$REEL_REENCODE" reencode "$WORK/reel" --vcodec libsvtav1 --jobs "$JOBS" 2>&1 | tail -2
t1=$(now)
reel_s=$(echo "$t1 - $t0" | bc -l)

echo "== LeRobot 0.6.1 lerobot-edit-dataset --operation.type reencode_videos"
t0=$(now)
"$VENV/bin/lerobot-edit-dataset" --repo_id local/bench --root "$WORK/lerobot" --new_root "$WORK/lerobot" \
  --operation.type reencode_videos --operation.rgb_encoder.vcodec libsvtav1 \
  --operation.num_workers "$JOBS" --operation.overwrite true >"$WORK/lerobot.log" 2>&1 \
  || { tail -20 "$WORK/lerobot.log"; exit 1; }
t1=$(now)
lerobot_s=$(echo "$t1 - $t0" | bc -l)

echo "== kill -9 half way through a third reel reencode, then rerun"
half=$(echo "$reel_s / 2" | bc -l)
"$REEL_REENCODE" reencode "$WORK/killed" --vcodec libsvtav1 --jobs "$JOBS" >"$WORK/killed.log" 2>&1 &
pid=$!
sleep "$half"
kill -9 "$pid" 2>/dev/null && echo "killed $pid after ${half:0:5} s" || echo "run finished before the kill"
wait "$pid" 2>/dev/null || true
"$REEL_REENCODE" reencode "$WORK/killed" --vcodec libsvtav1 --jobs "$JOBS" 2>&1 | tail -1

check() {
  if "$VENV/bin/python" "$CHECK" --strict "$1" >"$1.check.log" 2>&1; then echo pass; else echo FAIL; fi
}
codecs() {
  "$VENV/bin/python" - "$1" <<'EOF'
import av, pathlib, sys
c = sorted({av.open(str(p)).streams.video[0].codec_context.codec.canonical_name for p in pathlib.Path(sys.argv[1], "videos").rglob("*.mp4")})
print("+".join(c))
EOF
}
reel_check=$(check "$WORK/reel")
lerobot_check=$(check "$WORK/lerobot")
killed_check=$(check "$WORK/killed")
reel_reel_check=$("$REEL" check --decode "$WORK/killed" >/dev/null 2>&1 && echo pass || echo FAIL)

fps() { echo "$frames / $1" | bc -l; }
printf '\n| %-44s | %8s | %9s | %-6s | %-22s |\n' "re-encode x264 → libsvtav1 ($EPISODES ep × ${EPISODE_S}s × $CAMERAS cam ${WIDTH}x${HEIGHT})" "wall s" "frames/s" "codec" "lerobot_check --strict"
printf '|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..46})" "----------" "-----------" "--------" "------------------------"
printf '| %-44s | %8.2f | %9.1f | %-6s | %-22s |\n' "reel reencode --jobs $JOBS" "$reel_s" "$(fps "$reel_s")" "$(codecs "$WORK/reel")" "$reel_check"
printf '| %-44s | %8.2f | %9.1f | %-6s | %-22s |\n' "LeRobot 0.6.1 reencode_videos, num_workers $JOBS" "$lerobot_s" "$(fps "$lerobot_s")" "$(codecs "$WORK/lerobot")" "$lerobot_check"
printf '| %-44s | %8s | %9s | %-6s | %-22s |\n' "reel: kill -9 at half time, then rerun" "-" "-" "$(codecs "$WORK/killed")" "$killed_check (reel check --decode: $reel_reel_check)"
printf '\nspeed-up reel / LeRobot: %.2fx  (%s frames, %s files, %s cores)\n' "$(echo "$lerobot_s / $reel_s" | bc -l)" "$frames" "$files" "$(nproc)"
echo "scratch: $WORK"

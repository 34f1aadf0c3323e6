#!/usr/bin/env bash
# Does saving episode N cost the same with 1 or 200 earlier episodes in the same files?
# Records 201 short episodes (1 camera 96x64, 0.1 s each: everything lands in one data file,
# one episodes file and one MP4) and prints the commit transaction time of episodes 1-10 vs
# 191-200, with and without fsync.  Usage: scripts/bench_save_growth.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -j2 -p reel >/dev/null
REEL=./target/release/reel
for mode in fsync no-fsync; do
  d=$(mktemp -d)
  flag=""; [ "$mode" = no-fsync ] && flag="--no-fsync"
  SVT_LOG=1 REEL_LOG=info $REEL record --sim --no-keys $flag --root "$d/ds" --num-cameras 1 --episode-time-s 0.1 \
      --reset-time-s 0 --width 96 --height 64 --num-episodes 201 --vcodec libsvtav1 2>&1 \
    | grep " saved: " | sed -E 's/.*episode ([0-9]+) saved.*transaction ([0-9.]+) ms.*/\1 \2/' \
    | awk -v mode="$mode" '$1>=1 && $1<=10 {a+=$2; n++} $1>=191 && $1<=200 {b+=$2; m++}
        END {printf "%-9s commit transaction: episodes 1-10 mean %.2f ms, episodes 191-200 mean %.2f ms, ratio %.2f\n", mode, a/n, b/m, (b/m)/(a/n)}'
  rm -rf "$d"
done

#!/usr/bin/env bash
# Benchmark of `reel merge` against LeRobot 0.6.1's `aggregate_datasets` on the same 8 sources
# in the same run (4 reel-recorded, 2 reel-recorded then resumed, 2 written by LeRobot's own
# writer; all AV1): wall time, CPU time, bytes written and the ratio, then
# `lerobot_check.py --strict` on reel's output. The work is in scripts/bench_merge.py.
#
# Environment: REEL (binary, default $CARGO_TARGET_DIR/release/reel, else target/release/reel),
# VENV (LeRobot's venv), CHECK (lerobot_check.py), WIDTH, HEIGHT (320x240), EPISODES per source
# (2), EPISODE_S (3), WORK (scratch dir, default a new temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."
REEL=${REEL:-${CARGO_TARGET_DIR:-target}/release/reel}
VENV=${VENV:-$HOME/venv-lerobot}
CHECK=${CHECK:-/work/shared/conformance/lerobot_check.py}
WORK=${WORK:-$(mktemp -d /tmp/bench_merge.XXXXXX)}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 SVT_LOG=1
for f in "$REEL" "$VENV/bin/python" "$CHECK"; do
  [ -e "$f" ] || { echo "missing $f" >&2; exit 2; }
done
echo "== bench_merge: $(nproc) cores, reel $REEL, work in $WORK"
"$VENV/bin/python" scripts/bench_merge.py "$WORK" "$REEL" "$CHECK"

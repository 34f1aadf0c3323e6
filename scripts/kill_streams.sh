#!/usr/bin/env bash
# The larger kill -9 campaign of side streams: `reel record --servo-stream-hz 500 --audio-stream
# lavfi:...` killed at N seeded moments (default 30; the test suite runs 3), each result repaired
# and checked: every kept episode has both streams, every 48 kHz sample once inside its span, no
# stream file of an uncommitted episode left; LeRobot loads the last one.
# Usage: scripts/kill_streams.sh [N] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
REEL_STREAM_KILLS="${1:-30}" REEL_CRASH_SEED="${2:-20}" \
  cargo nextest run --workspace --build-jobs 2 --no-capture \
  -E 'test(/streams::kill_9_at_seeded_moments/)'

#!/usr/bin/env bash
# One command: install what is missing, build reel, record a demo dataset from the simulated
# robot (2 episodes x 5 s, 2 synthetic 640x480 cameras) into ./datasets/demo.
# Extra arguments go to `reel record` (e.g. --num-episodes 5 --vcodec libx264).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
cargo build --release -j2 -p reel
./target/release/reel record --sim --overwrite --no-keys "$@"
./target/release/reel check datasets/demo

#!/usr/bin/env bash
# LeRobot's recording loop with LeRobot's cameras and writer, reel's writer, and reel's cameras and writer, in one run (scripts/bench_lerobot_cameras.py):
# builds the Python module in release, stages it (nothing is installed into the LeRobot venv),
# and prints the table with ratios. Arguments go to the script (--episodes, --seconds, --json).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
[ -x "${LEROBOT_VENV:-$HOME/venv-lerobot}/bin/python" ] || { echo "LeRobot venv missing: run scripts/test.sh once (it installs it)" >&2; exit 1; }
source scripts/py_env.sh
REEL_PY_PROFILE="${REEL_PY_PROFILE:-release}" reel_py_stage >/dev/null   # REEL_PY_PROFILE=dev: the (optimised) dev build
PYTHONPATH="$REEL_PY_STAGE" "$REEL_PY" scripts/bench_lerobot_cameras.py "$@"

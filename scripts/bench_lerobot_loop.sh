#!/usr/bin/env bash
# LeRobot's recording loop with LeRobot's writer vs reel's, in one run (scripts/bench_lerobot_loop.py):
# builds the Python module in release, stages it (nothing is installed into the LeRobot venv),
# and prints the table with ratios. Arguments go to the script (--episodes, --seconds, --noise, --json).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
[ -x "${LEROBOT_VENV:-$HOME/venv-lerobot}/bin/python" ] || { echo "LeRobot venv missing: run scripts/test.sh once (it installs it)" >&2; exit 1; }
source scripts/py_env.sh
REEL_PY_PROFILE=release reel_py_stage >/dev/null
PYTHONPATH="$REEL_PY_STAGE" "$REEL_PY" scripts/bench_lerobot_loop.py "$@"

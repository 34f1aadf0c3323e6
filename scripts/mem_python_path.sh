#!/usr/bin/env bash
# Where the Python path's memory goes (scripts/mem_python_path.py): reel.Writer with 3 cameras
# 640x480 @ 30 Hz under several queue/deferral/thread settings, one process each, VmRSS per phase
# and the peak. Builds and stages the module (REEL_PY_PROFILE, default release; nothing is
# installed into the LeRobot venv). Arguments go to the script (--seconds, --vcodec, --only, --json).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
[ -x "${LEROBOT_VENV:-$HOME/venv-lerobot}/bin/python" ] || { echo "LeRobot venv missing: run scripts/test.sh once (it installs it)" >&2; exit 1; }
source scripts/py_env.sh
REEL_PY_PROFILE="${REEL_PY_PROFILE:-release}" reel_py_stage >/dev/null
PYTHONPATH="$REEL_PY_STAGE" "$REEL_PY" scripts/mem_python_path.py "$@"

#!/usr/bin/env bash
# One command: install what is missing, build reel, record a demo dataset from the simulated
# robot (2 episodes x 5 s, 2 synthetic 640x480 cameras) into ./datasets/demo.
#   --python PATH   also install the Python module `reel` (crates/reel-py) into the environment
#                   of that interpreter, e.g. the venv that runs LeRobot: --python ~/venv-lerobot/bin/python
# Other arguments go to `reel record` (e.g. --num-episodes 5 --vcodec libx264).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --python) PYTHON="${2:?--python needs the path of a python interpreter}"; shift 2 ;;
    --python=*) PYTHON="${1#--python=}"; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
source scripts/deps.sh
cargo build --release -j2 -p reel
./target/release/reel record --sim --overwrite --no-keys ${args[@]+"${args[@]}"}
./target/release/reel check datasets/demo
if [ -n "$PYTHON" ]; then
  echo "installing the Python module reel into $("$PYTHON" -c 'import sys; print(sys.prefix)')"
  CARGO_BUILD_JOBS=2 "$PYTHON" -m pip install ./crates/reel-py
  "$PYTHON" -c "import reel; print('reel', reel.__version__, 'imports; LeRobot: add --dataset.discover_packages_path=reel.lerobot_plugin')"
fi

#!/usr/bin/env bash
# The Python side of the tests and benchmarks, installed idempotently (sourced by test.sh and
# the benchmark wrapper):
#   * REEL_PY_EXTRAS: pytest and deepdiff (which LeRobot's --resume=true needs and its venv lacks)
#     installed with `pip install --target` beside the LeRobot venv, never into it;
#   * REEL_PY_STAGE: the `reel` package staged from the checkout: python/reel plus the extension
#     built by cargo (profile $REEL_PY_PROFILE, default dev), importable with PYTHONPATH;
#   * REEL_PY310: a Python 3.10 venv with numpy (pyenv's 3.10), to check the abi3 wheel there.
# Each step prints what it did; a failure stops the caller (set -e).
set -euo pipefail
LEROBOT_VENV="${LEROBOT_VENV:-$HOME/venv-lerobot}"
REEL_PY="$LEROBOT_VENV/bin/python"
REEL_PY_EXTRAS="${REEL_PY_EXTRAS:-${LEROBOT_VENV}-reel-extras}"
# Pinned, with their dependencies that the LeRobot venv lacks (--no-deps keeps its own packages).
REEL_PY_EXTRA_PKGS=("pytest==9.2.0" "iniconfig==2.3.1" "pluggy==1.7.0" "pygments==2.21.0"
                    "deepdiff==9.1.0" "orderly-set==5.5.0" "cachebox==5.2.3")

reel_py_extras() {
  if ! PYTHONPATH="$REEL_PY_EXTRAS" "$REEL_PY" -c "import pytest, deepdiff" 2>/dev/null; then
    echo "installing pytest and deepdiff into $REEL_PY_EXTRAS (beside the LeRobot venv)"
    "$REEL_PY" -m pip install -q --no-deps --target "$REEL_PY_EXTRAS" "${REEL_PY_EXTRA_PKGS[@]}"
  fi
}

# Builds the extension module with cargo and stages the package into $REEL_PY_STAGE.
reel_py_stage() {
  local profile="${REEL_PY_PROFILE:-dev}" dir
  dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
  local tdir="${CARGO_TARGET_DIR:-$PWD/target}"
  REEL_PY_STAGE="${REEL_PY_STAGE:-$tdir/$dir/reel-py-stage}"
  PYO3_PYTHON="$REEL_PY" cargo build -j2 --profile "$profile" -p reel-py
  rm -rf "$REEL_PY_STAGE"
  mkdir -p "$REEL_PY_STAGE"
  cp -r crates/reel-py/python/reel "$REEL_PY_STAGE/reel"
  cp "$tdir/$dir/lib_reel.so" "$REEL_PY_STAGE/reel/_reel.abi3.so"
  export REEL_PY_STAGE
}

reel_py310() {
  local py310="${REEL_PY310_BASE:-$HOME/.pyenv/versions/3.10.13/bin/python3.10}"
  local venv="${REEL_PY310_VENV:-$HOME/.cache/reel/py310-venv}"
  if [ ! -x "$py310" ]; then
    echo "no Python 3.10 at $py310: the 3.10 check will not run"
    return 0
  fi
  if ! "$venv/bin/python" -c "import numpy" 2>/dev/null; then
    echo "creating a Python 3.10 venv with numpy in $venv"
    "$py310" -m venv "$venv"
    "$venv/bin/python" -m pip install -q "numpy<2.3"
  fi
  export REEL_PY310="$venv/bin/python"
}

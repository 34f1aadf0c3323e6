#!/usr/bin/env bash
# One command: install what is missing (system packages, Debian's chromium for the page tests;
# the LeRobot 0.6.1 conformance venv when ../shared/conformance is present), then run every
# test. Tests that write datasets run LeRobot's own loader on them (lerobot_check.py --strict)
# when that venv exists, and the report/live-page tests run headless chromium; set
# REEL_REQUIRE_ORACLE=1 to make the absence of either a failure (CI does).
set -euo pipefail
cd "$(dirname "$0")/.."
export REEL_DEPS_TESTS=1
source scripts/deps.sh
CONF="${REEL_CONFORMANCE_DIR:-$(cd .. && pwd)/shared/conformance}"
if [ -f "$CONF/install_lerobot_oracle.sh" ]; then
  export REEL_CONFORMANCE_DIR="$CONF"
  if [ ! -x "${LEROBOT_VENV:-$HOME/venv-lerobot}/bin/python" ]; then
    echo "installing the LeRobot 0.6.1 conformance venv (once, ~3 min)"
    bash "$CONF/install_lerobot_oracle.sh" "${LEROBOT_VENV:-$HOME/venv-lerobot}"
  fi
fi
# LeRobot's own servo bus code (feetech-servo-sdk, dynamixel-sdk) for the reel-robots
# conformance tests: installed beside the venv (PYTHONPATH), never into it, once.
PY="${LEROBOT_VENV:-$HOME/venv-lerobot}/bin/python"
export REEL_LEROBOT_EXTRAS="${REEL_LEROBOT_EXTRAS:-$HOME/lerobot-extras}"
if [ -x "$PY" ] && ! PYTHONPATH="$REEL_LEROBOT_EXTRAS" "$PY" -c "import scservo_sdk, dynamixel_sdk, serial, deepdiff" 2>/dev/null; then
  echo "installing LeRobot's servo SDKs into $REEL_LEROBOT_EXTRAS (once)"
  "$PY" -m pip install --quiet --target "$REEL_LEROBOT_EXTRAS" \
    "feetech-servo-sdk==1.0.0" "dynamixel-sdk==3.8.4" "pyserial==3.5" "deepdiff==8.6.2"
fi
export SVT_LOG=1

# The Rust tests: cargo-nextest where it is installed (each test its own process, two at a
# time, .config/nextest.toml), else cargo test. Neither stops at the first failing test or
# binary: every test runs and the failures are listed at the end. Arguments go to the runner
# (e.g. `-p reel -E 'test(/doctor/)'` for nextest). The Python tests run whatever the Rust
# tests said; the script fails if either did.
started=$(date +%s)
rust_rc=0
if cargo nextest --version >/dev/null 2>&1; then
  profile=default; [ -n "${CI:-}" ] && profile=ci
  cargo nextest run --workspace --build-jobs 2 --profile "$profile" --no-fail-fast "$@" || rust_rc=$?
else
  echo "note: cargo-nextest not installed (cargo install cargo-nextest --locked); running cargo test"
  cargo test --workspace -j2 --no-fail-fast "$@" || rust_rc=$?
fi
echo "== Rust tests: $([ $rust_rc = 0 ] && echo passed || echo "FAILED (exit $rust_rc)") in $(( $(date +%s) - started )) s =="

# The Python module (crates/reel-py) inside LeRobot 0.6.1: its tests run in the LeRobot venv with
# the package staged from this checkout (nothing is installed into the venv). With arguments
# (a subset of the Rust tests) they run only when REEL_PY_TESTS=1.
py_rc=0
if [ $# -eq 0 ] || [ "${REEL_PY_TESTS:-0}" = 1 ]; then
  if [ -x "${LEROBOT_VENV:-$HOME/venv-lerobot}/bin/python" ]; then
    started=$(date +%s)
    source scripts/py_env.sh
    reel_py_extras
    reel_py_stage
    reel_py310
    # The CLI, for the test that compares its encoder plan with the module's: the binary the
    # Rust tests' build made (`cargo build -p reel` would rebuild the workspace with another
    # feature set, ~2 min on 2 cores); built only when it is missing.
    export REEL_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/reel"
    [ -x "$REEL_BIN" ] || cargo build -j2 -p reel
    echo "== Python tests (crates/reel-py/tests) =="
    PYTHONPATH="$REEL_PY_STAGE:$REEL_PY_EXTRAS" "$REEL_PY" -m pytest -q -p no:cacheprovider \
      --durations=20 crates/reel-py/tests || py_rc=$?
    echo "== Python tests: $([ $py_rc = 0 ] && echo passed || echo "FAILED (exit $py_rc)") in $(( $(date +%s) - started )) s =="
  elif [ -n "${REEL_REQUIRE_ORACLE:-}" ]; then
    echo "error: REEL_REQUIRE_ORACLE is set but the LeRobot venv is missing: the Python tests cannot run" >&2
    py_rc=1
  else
    echo "note: no LeRobot venv: skipping the Python tests"
  fi
fi
if [ $rust_rc != 0 ] || [ $py_rc != 0 ]; then
  echo "== test.sh: FAILED (Rust exit $rust_rc, Python exit $py_rc; every test ran, failures listed above) ==" >&2
  exit 1
fi

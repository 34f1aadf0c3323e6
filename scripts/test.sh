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
export SVT_LOG=1
cargo test --workspace -j2 "$@"

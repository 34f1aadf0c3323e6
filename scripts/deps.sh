#!/usr/bin/env bash
# Installs the system packages reel needs (Debian 12), only those missing. Sourced by setup.sh and test.sh.
# With REEL_DEPS_TESTS=1 (test.sh sets it) also what the tests need: Debian's chromium, the
# headless browser that renders `reel report` and the live page in the tests.
set -euo pipefail
REEL_APT_PACKAGES=(libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libavfilter-dev
                   libavdevice-dev libswresample-dev libclang-dev pkg-config ffmpeg)
if [ "${REEL_DEPS_TESTS:-0}" = 1 ]; then
  REEL_APT_PACKAGES+=(chromium)
fi
missing=()
for p in "${REEL_APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
if ! command -v cargo >/dev/null 2>&1; then
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || { echo "error: Rust (cargo >= 1.85) is required; install it with rustup" >&2; exit 1; }
# The built-in SVT-AV1 (crate reel-svt): built once per machine from Debian's source package,
# exported as REEL_SVTAV1_DIR for the build (scripts/media.sh).
# shellcheck source=scripts/media.sh
source "$(dirname "${BASH_SOURCE[0]}")/media.sh"

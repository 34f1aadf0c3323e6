#!/usr/bin/env bash
# The wheel of scripts/build_wheel.sh on a bare machine: a minimal Debian 12 root (debootstrap
# --variant=minbase with python3 and python3-venv only: no Rust, no compiler, no FFmpeg), the
# wheel installed with pip into a fresh venv inside it (chroot), then
#   * python -c "import reel"
#   * reel record --sim --no-keys --root /ds        (2 episodes x 5 s, simulated robot, 2 synthetic cameras)
#   * ldd of the module and of the bundled binary: nothing resolved outside the venv but the
#     C runtime (glibc, libgcc_s, libstdc++), offenders listed
# and outside the root, LeRobot's loader on the dataset: lerobot_check.py --strict.
#
#   scripts/test_wheel.sh [--suite bookworm|jammy|noble] [WHEEL]
#       WHEEL: default the newest wheel in $CARGO_TARGET_DIR/wheel-dist
#       --suite: the root's distribution (default bookworm = Debian 12, glibc 2.36; jammy =
#       Ubuntu 22.04, glibc 2.35, Python 3.10; noble = Ubuntu 24.04, glibc 2.39, Python 3.12).
#       Ubuntu roots come from archive.ubuntu.com with --no-check-gpg (Debian 12 has no
#       ubuntu-keyring package); they are test roots, nothing of them is installed here.
#
# Needs root (debootstrap, chroot, mount). The root's tarball and the numpy wheel are cached in
# ~/.cache/reel/wheel-test (REEL_WHEEL_TEST_CACHE), so a rerun does not download anything.
# LEROBOT_VENV (default ~/venv-lerobot) and REEL_CONFORMANCE_DIR (default ../shared/conformance)
# locate the oracle; REEL_WHEEL_TEST_KEEP=1 keeps the root. Prints timings; exit 1 on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
TARGET="${CARGO_TARGET_DIR:-$PWD/target}"
SUITE=bookworm
WHEEL=""
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    --suite) SUITE="${2:?--suite needs a name}"; shift 2 ;;
    --suite=*) SUITE="${1#--suite=}"; shift ;;
    *) WHEEL="$1"; shift ;;
  esac
done
case "$SUITE" in
  bookworm) MIRROR=http://deb.debian.org/debian; DBS_ARGS=() ;;
  jammy|noble) MIRROR=http://archive.ubuntu.com/ubuntu; DBS_ARGS=(--no-check-gpg --components=main,universe) ;;
  *) echo "unknown --suite $SUITE (bookworm, jammy, noble)" >&2; exit 2 ;;
esac
# Debian 12's debootstrap has no script for noble; Ubuntu's suites all use the gutsy script.
DBS_SCRIPT=()
[ -e "/usr/share/debootstrap/scripts/$SUITE" ] || DBS_SCRIPT=(/usr/share/debootstrap/scripts/gutsy)
WHEEL="${WHEEL:-$(ls -t "$TARGET"/wheel-dist/reel_recorder-*.whl 2>/dev/null | head -1)}"
[ -f "$WHEEL" ] || { echo "no wheel (run scripts/build_wheel.sh, or give its path)" >&2; exit 1; }
WHEEL=$(realpath "$WHEEL")
CACHE="${REEL_WHEEL_TEST_CACHE:-$HOME/.cache/reel/wheel-test}"
LEROBOT_VENV="${LEROBOT_VENV:-$HOME/venv-lerobot}"
CONFORMANCE="${REEL_CONFORMANCE_DIR:-$REPO/../shared/conformance}"
[ "$(id -u)" = 0 ] || { echo "test_wheel.sh needs root (debootstrap, chroot, mount)" >&2; exit 1; }
mkdir -p "$CACHE"
TARBALL="$CACHE/$SUITE-minbase-python3.tar.gz"
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
t_start=$(now)

# 1. The minimal Debian 12 root, made once.
t0=$(now)
if [ ! -f "$TARBALL" ]; then
  command -v debootstrap >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap; }
  echo "== debootstrap --variant=minbase --include=python3,python3-venv $SUITE (once, cached in $TARBALL)"
  tmp_root="$CACHE/root.tmp"
  rm -rf --one-file-system "$tmp_root"
  debootstrap "${DBS_ARGS[@]}" --variant=minbase --include=python3,python3-venv "$SUITE" "$tmp_root" "$MIRROR" "${DBS_SCRIPT[@]}" \
    > "$CACHE/debootstrap-$SUITE.log" 2>&1 || { tail -20 "$CACHE/debootstrap-$SUITE.log"; exit 1; }
  tar -C "$tmp_root" -czf "$TARBALL.tmp" .
  mv "$TARBALL.tmp" "$TARBALL"
  rm -rf --one-file-system "$tmp_root"
  awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.0f\n", b - a }' > "$CACHE/debootstrap-$SUITE.seconds"
  debootstrap_how="made"
else
  debootstrap_how="cached; made in $(cat "$CACHE/debootstrap-$SUITE.seconds" 2>/dev/null || echo '?') s"
fi
t_debootstrap=$(secs "$t0" "$(now)")

ROOT=$(mktemp -d /tmp/reel-wheel-root.XXXXXX)
cleanup() {
  local rc=$?
  for m in "$ROOT/dev" "$ROOT/proc"; do
    if mountpoint -q "$m" 2>/dev/null; then umount -R "$m" || umount -lR "$m" || true; fi
  done
  if findmnt -rn -o TARGET | grep -q "^$ROOT/"; then
    echo "warning: something is still mounted under $ROOT; not removing it" >&2
  elif [ "${REEL_WHEEL_TEST_KEEP:-0}" = 1 ]; then
    echo "root kept: $ROOT"
  else
    rm -rf --one-file-system "$ROOT"
  fi
  exit $rc
}
trap cleanup EXIT INT TERM
t0=$(now)
tar -C "$ROOT" -xzf "$TARBALL"
t_unpack=$(secs "$t0" "$(now)")
# numpy (the module's one dependency) for the root's Python, downloaded once per version.
PYV=$(chroot "$ROOT" /usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
NUMPY_DIR="$CACHE/wheels-py${PYV/./}"
if ! ls "$NUMPY_DIR"/numpy-*.whl >/dev/null 2>&1; then
  echo "== pip download numpy for Python $PYV (once, cached in $NUMPY_DIR)"
  python3 -m pip download -q numpy --only-binary :all: --python-version "$PYV" \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d "$NUMPY_DIR"
fi
mkdir -p "$ROOT/wheels"
cp "$WHEEL" "$NUMPY_DIR"/numpy-*.whl "$ROOT/wheels/"
cp scripts/wheel_bundle.py "$ROOT/wheel_bundle.py"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
mount -t proc proc "$ROOT/proc"
mount --rbind /dev "$ROOT/dev"
mount --make-rslave "$ROOT/dev"

inroot() { env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb chroot "$ROOT" /bin/bash -c "$1"; }

cat > "$ROOT/probe.sh" <<'PROBE'
. /etc/os-release
echo "== the root: $PRETTY_NAME, glibc $(ldd --version | head -1 | grep -o '[0-9.]*$'), python $(python3 -c 'import platform; print(platform.python_version())'), $(dpkg-query -W | wc -l) packages"
found=""
for c in cc gcc clang rustc cargo ld ffmpeg pkg-config; do command -v $c >/dev/null && found="$found $c"; done
pkgs=$(dpkg-query -W -f='${Package}\n' | grep -E '^lib(av|sw|x26|dav1d|vpx|svtav1)|^ffmpeg|^gcc(-[0-9]+)?$|^rust|^clang|^binutils' | tr '\n' ' ')
echo "   toolchain/FFmpeg commands: ${found:-none}; codec/toolchain packages: ${pkgs:-none}"
[ -z "$found" ] && [ -z "$pkgs" ]
PROBE
inroot "bash /probe.sh" || { echo "the root is not bare"; exit 1; }

failed=0
echo "== pip install $(basename "$WHEEL") into a fresh venv /v"
t0=$(now)
inroot "python3 -m venv /v && /v/bin/pip install -q --no-index --find-links /wheels /wheels/$(basename "$WHEEL")"
t_install=$(secs "$t0" "$(now)")
SITE=$(inroot '/v/bin/python -c "import sysconfig; print(sysconfig.get_paths()[\"purelib\"])"')
echo "   installed: $(du -sh "$ROOT/v" | cut -f1) venv, reel at $SITE/reel"

echo "== python -c 'import reel'"
inroot "cd / && /v/bin/python -c 'import reel; print(\"import reel: ok, version\", reel.__version__, reel.__file__)'" || failed=1

echo "== ldd of the module and of the bundled binary"
TAG_MINOR=$(python3 scripts/wheel_bundle.py tag-minor "$WHEEL")
inroot "cd / && REEL_WHEEL_TAG_MINOR=$TAG_MINOR python3 /wheel_bundle.py check /v $SITE/reel/_reel.abi3.so $SITE/reel/_bin/reel" || failed=1

echo "== reel record --sim --no-keys --root /ds (inside the root)"
t0=$(now)
if ! inroot "cd /root && /v/bin/reel record --sim --no-keys --root /ds" 2>&1 | sed 's/^/   /'; then
  echo "   reel record: FAIL"; failed=1
fi
t_record=$(secs "$t0" "$(now)")
if ! inroot "/v/bin/reel check /ds" 2>&1 | tail -3 | sed 's/^/   /'; then echo "   reel check: FAIL"; failed=1; fi

echo "== lerobot_check.py --strict (outside the root, LeRobot 0.6.1's loader)"
t0=$(now)
if [ -d "$ROOT/ds" ]; then
  if ! "$LEROBOT_VENV/bin/python" "$CONFORMANCE/lerobot_check.py" --strict "$ROOT/ds" > "$ROOT/lerobot_check.txt" 2>&1; then
    echo "   lerobot_check: FAIL"; failed=1
  fi
  tail -15 "$ROOT/lerobot_check.txt" | sed 's/^/   /'
else
  echo "   no dataset at /ds"; failed=1
fi
t_check=$(secs "$t0" "$(now)")

echo "== timings: debootstrap $t_debootstrap s ($debootstrap_how), root unpacked $t_unpack s, pip install $t_install s, reel record $t_record s, lerobot_check $t_check s, total $(secs "$t_start" "$(now)") s"
echo "   wheel: $(basename "$WHEEL"), $(du -h "$WHEEL" | cut -f1)"
if [ "$failed" != 0 ]; then echo "test_wheel: FAIL"; exit 1; fi
echo "test_wheel: PASS"

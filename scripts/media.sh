#!/usr/bin/env bash
# reel's built-in media stack: a current SVT-AV1, built from Debian's source package.
#
# Debian 12 ships SVT-AV1 1.4.1; reel drives a newer SVT-AV1 through its own C API (crate
# reel-svt) and keeps Debian's FFmpeg 5.1 for everything else (ARCHITECTURE.md, "Decision:
# SVT-AV1 built in"). This script fetches the pinned source package from Debian's archive
# through a private sources list (the machine's apt configuration is not touched), checks it
# against the signed index *and* the sha256 pinned below, and builds the encoder library
# (static libSvtAv1Enc.a, headers, SvtAv1Enc.pc) into
#   ${REEL_MEDIA_CACHE:-$HOME/.cache/reel}/media-svtav1-<version>
# once per machine. Run again, it only prints the prefix.
#
#   scripts/media.sh                  build the pinned version (if needed), print its prefix
#   source scripts/media.sh           the same, and export REEL_SVTAV1_DIR (+ PKG_CONFIG_PATH)
#   scripts/media.sh --bench-versions also every candidate version that can be fetched, with
#                                     SvtAv1EncApp (for scripts/bench_svt_versions.sh)
#
# Environment: REEL_MEDIA_CACHE (cache root), REEL_MEDIA_JOBS (make -j, default 2).
# Cold build on the 2-core dev machine: see BENCHMARKS.md "SVT-AV1 built in".

# Sourced or run: do not leak `set -e` into an interactive shell that sources us.
_reel_media_main() {
  set -euo pipefail

  # The pinned version (chosen by scripts/bench_svt_versions.sh, BENCHMARKS.md).
  local pinned="2.3.0+dfsg-1"
  # Every candidate: Debian version, suite, sha256 of .dsc, orig tarball, debian tarball (the
  # values of the signed Sources index on the day they were pinned).
  local -A suite=(
    [2.3.0+dfsg-1]=trixie
    [3.1.2+dfsg-2]=sid
    [4.2.0+dfsg-3]=sid
  )
  local -A sha_dsc=(
    [2.3.0+dfsg-1]=c113f4882ebc41220cd5cfe676834326e1f7ab8a6132026821c5079ffe751301
    [3.1.2+dfsg-2]=cf3a4f6a69b345d0a0b3597b33624d7d6e3a9d8e2282f683876ee53f1e8bfff6
    [4.2.0+dfsg-3]=5eacba3d1025ae963f1c0e6de9d96ff641bc989b5b15c751e8129039fec41140
  )
  local -A sha_orig=(
    [2.3.0+dfsg-1]=815e88cc539c41b8ebd1a6f362f82ab510147635fc6c3edfa35edcfbed302cd8
    [3.1.2+dfsg-2]=765d418581869fa26a140e05f891dbe708d5d73b5ccb1e39f02e0c2ec757ccf3
    [4.2.0+dfsg-3]=d9cc80e6aedcab0d218bfd808cde6af4f26e31f16c26cb9edbd31e5127f84001
  )
  local -A sha_debian=(
    [2.3.0+dfsg-1]=40054958d7135b2da4de632e7c87b691b2cdf2a6b8e6d3a4e60eab345fdb448a
    [3.1.2+dfsg-2]=dd456294f49af2cf661f0e494327a907499e88d83067a65f0b79839f64a89672
    [4.2.0+dfsg-3]=e8fe0d65b8b051b3a279a25b866076b5ce2c07a3b86d41a8ddf31c28689815ad
  )

  local bench=0
  case "${1:-}" in
    --bench-versions) bench=1 ;;
    "") ;;
    *) echo "usage: scripts/media.sh [--bench-versions]" >&2; return 2 ;;
  esac

  local cache="${REEL_MEDIA_CACHE:-$HOME/.cache/reel}"
  local jobs="${REEL_MEDIA_JOBS:-2}"
  local src_root="$cache/media-src"

  local SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

  _need_tools() {
    local missing=() p
    for p in cmake nasm dpkg-dev build-essential xz-utils curl ca-certificates debian-archive-keyring; do
      dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
      echo "media.sh: installing ${missing[*]}" >&2
      $SUDO apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >&2
    fi
  }

  # apt with a private sources list, lists and cache under $src_root: nothing in /etc/apt changes.
  _apt() {
    apt-get -o Dir::Etc::SourceList="$src_root/sources.list" -o Dir::Etc::SourceParts=/dev/null \
      -o Dir::State::Lists="$src_root/lists" -o Dir::Cache="$src_root/cache" \
      -o APT::Sandbox::User="$(id -un)" "$@"
  }

  _apt_update() {
    [ -n "${_reel_media_updated:-}" ] && return 0
    mkdir -p "$src_root/lists/partial" "$src_root/cache/archives/partial"
    cat > "$src_root/sources.list" <<'EOF'
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main
EOF
    echo "media.sh: apt-get update (private list $src_root/sources.list)" >&2
    _apt update -qq >&2
    _reel_media_updated=1
  }

  _sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

  # Fetches and unpacks svt-av1=$1 into $src_root/svt-av1-$1; prints that directory.
  _fetch() {
    local v="$1" up="${1%%+*}" dl="$src_root/dl" dir="$src_root/svt-av1-$1"
    local dsc="svt-av1_${v}.dsc" orig="svt-av1_${v%-*}.orig.tar.xz" deb="svt-av1_${v}.debian.tar.xz"
    if [ -f "$dir/.unpacked" ]; then echo "$dir"; return 0; fi
    mkdir -p "$dl"
    if ! _sha_ok "$dl/$orig" "${sha_orig[$v]}"; then
      _apt_update
      # The signed index must list exactly the pinned files.
      local uris
      uris="$(_apt --print-uris source "svt-av1=$v" 2>/dev/null)" || true
      for f in "$dsc:${sha_dsc[$v]}" "$orig:${sha_orig[$v]}" "$deb:${sha_debian[$v]}"; do
        if ! grep -q " ${f%%:*} [0-9]* SHA256:${f#*:}\$" <<<"$uris"; then
          echo "media.sh: Debian's signed index does not list ${f%%:*} with the pinned sha256" >&2
          return 1
        fi
      done
      # apt downloads and checks every file against the index; it keeps those it got even
      # when one is missing on the mirror (the mirror here serves some files only).
      (cd "$dl" && _apt source --download-only -qq "svt-av1=$v" >&2 2>"$dl/apt-$v.log") || true
    fi
    _sha_ok "$dl/$orig" "${sha_orig[$v]}" || {
      echo "media.sh: could not fetch $orig (sha256 ${sha_orig[$v]}) from Debian's archive; see $dl/apt-$v.log" >&2
      return 1
    }
    rm -rf "$dir.tmp"
    if _sha_ok "$dl/$dsc" "${sha_dsc[$v]}" && _sha_ok "$dl/$deb" "${sha_debian[$v]}"; then
      # The full source package: dpkg-source checks the .dsc's checksums and applies Debian's patches.
      dpkg-source --no-check -x "$dl/$dsc" "$dir.tmp" >&2
    else
      echo "media.sh: $dsc / $deb not on the mirror; building the verified upstream tarball without Debian's patches" >&2
      mkdir -p "$dir.tmp"
      tar -xJf "$dl/$orig" -C "$dir.tmp" --strip-components=1
    fi
    rm -rf "$dir"; mv "$dir.tmp" "$dir"; touch "$dir/.unpacked"
    echo "$dir"
  }

  # Builds svt-av1=$1 (apps too when $2 = 1) into $cache/media-svtav1-<upstream version>.
  _build() {
    local v="$1" apps="$2" up="${1%%+*}"
    local prefix="$cache/media-svtav1-$up"
    # What the build must have been made with (a cached build made otherwise is rebuilt).
    # No LTO: GCC's LTO objects in a static archive are unreadable to Rust's linker (rust-lld).
    local recipe="recipe=2 lto=off pic=on"
    if [ -f "$prefix/.complete" ] && grep -q "$recipe" "$prefix/.complete" &&
       { [ "$apps" = 0 ] || [ -x "$prefix/bin/SvtAv1EncApp" ]; }; then
      echo "$prefix"; return 0
    fi
    _need_tools
    local src; src="$(_fetch "$v")" || return 1
    local build="$src/build-reel"
    local on=OFF; [ "$apps" = 1 ] && on=ON
    local t0; t0=$(date +%s)
    echo "media.sh: building SVT-AV1 $up (apps $on) into $prefix, make -j$jobs" >&2
    rm -rf "$build" "$prefix"
    cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$prefix" \
      -DCMAKE_INSTALL_LIBDIR=lib -DBUILD_SHARED_LIBS=OFF -DBUILD_DEC=OFF -DBUILD_TESTING=OFF \
      -DBUILD_APPS="$on" -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DSVT_AV1_LTO=OFF >"$src/cmake-reel.log" 2>&1 || {
      tail -30 "$src/cmake-reel.log" >&2; return 1; }
    cmake --build "$build" -j"$jobs" >"$src/build-reel.log" 2>&1 || { tail -30 "$src/build-reel.log" >&2; return 1; }
    cmake --install "$build" >>"$src/build-reel.log" 2>&1 || { tail -30 "$src/build-reel.log" >&2; return 1; }
    echo "$recipe debian=$v apps=$on seconds=$(( $(date +%s) - t0 ))" > "$prefix/.complete"
    echo "media.sh: SVT-AV1 $up built in $(( $(date +%s) - t0 )) s" >&2
    echo "$prefix"
  }

  local prefix
  if [ "$bench" = 1 ]; then
    local v
    for v in "${!suite[@]}"; do
      _build "$v" 1 || echo "media.sh: SVT-AV1 $v not built (see above)" >&2
    done
  fi
  prefix="$(_build "$pinned" 0)"
  REEL_SVTAV1_DIR="$prefix"
  echo "$prefix"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  _reel_media_main "$@"
else
  # Sourced: run in a subshell (its `set -e` and helpers stay there), export the result.
  # (A sourcing script's own arguments reach us as "$@": only --bench-versions is ours.)
  _reel_media_args=()
  if [ "${1:-}" = --bench-versions ]; then _reel_media_args=(--bench-versions); fi
  REEL_SVTAV1_DIR="$( (_reel_media_main "${_reel_media_args[@]}") | tail -1)" || return 1
  unset _reel_media_args
  [ -n "$REEL_SVTAV1_DIR" ] || return 1
  export REEL_SVTAV1_DIR
  export PKG_CONFIG_PATH="$REEL_SVTAV1_DIR/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  unset -f _reel_media_main
fi

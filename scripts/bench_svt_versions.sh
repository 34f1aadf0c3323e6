#!/usr/bin/env bash
# SVT-AV1 versions side by side, the way reel's cameras encode: the three clips of
# ../shared/footage/ decoded ONCE to y4m (yuv420p), then for every SvtAv1EncApp and preset three
# encodes at once (one per clip), crf 30, keyint 2 (LeRobot's g=2: a keyframe every 2 frames),
# closed GOP, fast-decode 0, threads unpinned (as FFmpeg's libsvtav1 wrapper leaves them).
# Prints version, preset, aggregate frames/s of the three streams and the ratio to Debian's
# 1.4.1 at the same preset; every output is decoded back and its frame count checked.
#
#   scripts/media.sh --bench-versions      # builds the candidate versions with SvtAv1EncApp
#   scripts/bench_svt_versions.sh [FRAMES] [PRESETS]   # defaults: 300 frames, "12 10 8"
#
# Debian's SvtAv1EncApp 1.4.1 comes from `apt-get install svt-av1`.
set -euo pipefail
cd "$(dirname "$0")/.."
FRAMES="${1:-300}"
PRESETS="${2:-12 10 8}"
FOOTAGE="${REEL_FOOTAGE:-$(cd .. && pwd)/shared/footage}"
[ -d "$FOOTAGE" ] || FOOTAGE=/work/shared/footage
CACHE="${REEL_MEDIA_CACHE:-$HOME/.cache/reel}"
WORK="${TMPDIR:-/tmp}/reel-bench-svt"
mkdir -p "$WORK"

command -v SvtAv1EncApp >/dev/null || { echo "apt-get install svt-av1 (Debian's 1.4.1 SvtAv1EncApp)" >&2; exit 1; }
apps=("1.4.1:$(command -v SvtAv1EncApp)")
for d in "$CACHE"/media-svtav1-*; do
  [ -x "$d/bin/SvtAv1EncApp" ] && apps+=("${d##*media-svtav1-}:$d/bin/SvtAv1EncApp")
done

clips=()
for c in aloha_top aloha_angle aloha_front_close; do
  y="$WORK/$c.$FRAMES.y4m"
  if [ ! -s "$y" ]; then
    ffmpeg -v error -y -i "$FOOTAGE/$c.mkv" -frames:v "$FRAMES" -pix_fmt yuv420p -f yuv4mpegpipe -strict -1 "$y"
  fi
  clips+=("$y")
done

echo "# $(date -u +%FT%TZ) $(nproc) cores, load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $FRAMES frames x 3 clips at once, crf 30, keyint 2, irefresh-type 2, --pin 0"
printf "%-8s %-6s %12s %10s %s\n" version preset "frames/s" "vs 1.4.1" "check"
declare -A base
for preset in $PRESETS; do
  for entry in "${apps[@]}"; do
    ver="${entry%%:*}"; app="${entry#*:}"
    pids=(); outs=()
    t0=$(date +%s.%N)
    for i in 0 1 2; do
      out="$WORK/out-$ver-$preset-$i.ivf"; outs+=("$out")
      "$app" -i "${clips[$i]}" -b "$out" -n "$FRAMES" --preset "$preset" --crf 30 --keyint 2 \
        --irefresh-type 2 --fast-decode 0 --pin 0 --progress 0 >"$out.log" 2>&1 &
      pids+=($!)
    done
    ok=1
    for p in "${pids[@]}"; do wait "$p" || ok=0; done
    t1=$(date +%s.%N)
    check="ok"
    for o in "${outs[@]}"; do
      n=$(ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames -of csv=p=0 "$o" 2>/dev/null || echo 0)
      [ "$n" = "$FRAMES" ] || { check="BAD ($n frames)"; ok=0; }
    done
    [ "$ok" = 1 ] || check="${check/ok/FAILED}"
    fps=$(python3 -c "print(f'{3*$FRAMES/($t1-$t0):.1f}')")
    [ "$ver" = 1.4.1 ] && base[$preset]=$fps
    ratio=$(python3 -c "print(f'{$fps/${base[$preset]}:.2f}x')")
    printf "%-8s %-6s %12s %10s %s\n" "$ver" "$preset" "$fps" "$ratio" "$check"
    rm -f "${outs[@]}"
  done
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"

#!/usr/bin/env bash
# The transcoding ladder: streamedge's single ffmpeg process (decode once, split, encode
# 1080/720/480/360 with aligned keyframes) against one ffmpeg process per rendition (the
# seeds' video microservice design), same 60 s 1080p clip, same encoder settings, same run.
# Prints total CPU seconds (user + sys, children included) and wall time as a multiple of
# real time, and the CPU ratio (goal: single / per-rendition <= 0.8).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$root/target/release/streamedge
[ -x "$bin" ] || { echo "build first: make build" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time is missing: make deps" >&2; exit 1; }

work=$(mktemp -d /tmp/streamedge-ladder.XXXXXX)
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT
secs=${LADDER_SECONDS:-60}

echo "making a ${secs} s 1080p30 test clip (H.264 + AAC)"
ffmpeg -v error -f lavfi -i "testsrc2=size=1920x1080:rate=30" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
  -t "$secs" -c:v libx264 -preset fast -b:v 8M -pix_fmt yuv420p -c:a aac -b:a 160k -shortest "$work/clip.mp4"

# cpu_and_wall CMD...: prints "cpu_seconds wall_seconds"
cpu_and_wall() {
  /usr/bin/time -f "%U %S %e" -o "$work/time" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; return 1; }
  awk '{printf "%.1f %.1f\n", $1 + $2, $3}' "$work/time"
}

echo "single process: streamedge library import (the code path of fetch jobs)"
"$bin" init --dir "$work/srv" --bind 127.0.0.1 --host 127.0.0.1 --http-port 18080 --https-port 18443 --rtmp-port 11935 >/dev/null
read -r single_cpu single_wall < <(cpu_and_wall "$bin" --config "$work/srv" library import "$work/clip.mp4")

echo "one process per rendition, run at once (as separate microservice workers would)"
per_rendition() {
  local h kbps pids=()
  for spec in 1080:5000:128 720:2800:128 480:1400:96 360:800:96; do
    IFS=: read -r h kbps akbps <<<"$spec"
    mkdir -p "$work/per/${h}p"
    ffmpeg -nostdin -v error -y -i "$work/clip.mp4" -vf "scale=-2:$h" \
      -c:v libx264 -preset veryfast -profile:v main -pix_fmt yuv420p -sc_threshold 0 \
      -g 60 -keyint_min 60 -force_key_frames "expr:gte(t,n_forced*2)" \
      -b:v "${kbps}k" -maxrate "$((kbps * 107 / 100))k" -bufsize "$((kbps * 3 / 2))k" \
      -c:a aac -ac 2 -ar 48000 -b:a "${akbps}k" \
      -f hls -hls_time 2 -hls_playlist_type vod -hls_segment_type fmp4 \
      -hls_segment_filename "$work/per/${h}p/seg_%03d.m4s" "$work/per/${h}p/index.m3u8" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
}
export -f per_rendition
export work
read -r per_cpu per_wall < <(cpu_and_wall bash -c per_rendition)

awk -v s="$single_cpu" -v sw="$single_wall" -v p="$per_cpu" -v pw="$per_wall" -v d="$secs" 'BEGIN {
  printf "single process : %6.1f CPU s, wall %5.1f s (%.2fx real time)\n", s, sw, sw / d
  printf "per rendition  : %6.1f CPU s, wall %5.1f s (%.2fx real time)\n", p, pw, pw / d
  printf "CPU ratio single/per-rendition: %.2f (goal <= 0.80)\n", s / p
}'

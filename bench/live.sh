#!/usr/bin/env bash
# The live ladder: a 1080p30 stream published with ffmpeg into a real streamedge server.
#  1. Publish -> first playable source playlist and first playable master playlist (the
#     stream's entry /live/NAME/ answering index.m3u8, then master.m3u8).
#  2. CPU of the ladder (ONE ffmpeg: decode once, 720/480/360) over a window of the stream,
#     against one ffmpeg per rendition on the same live input with the same encoder settings
#     (the usual nginx-rtmp exec recipe), measured the same way in the same run. Prints the
#     ratio (goal: ladder / per-rendition <= 0.8).
source "$(dirname "$0")/lib.sh"
SECS=${LIVE_SECONDS:-70}
# The publisher's keyframe interval, seconds (2 by default: what services ask for; docs/obs.md suggests 1), and the segment length
# of the ladder and of the per-rendition recipe alike (live.fragment's default).
GOP=${GOP:-2} SEG=1
# The publisher's picture (SIZE=1280x720: a source the ladder makes 480p and 360p of).
SIZE=${SIZE:-1920x1080}
FROM=${WINDOW_FROM:-20} TO=${WINDOW_TO:-50}

now_ms() { date +%s%3N; }
# CPU seconds (user + sys) of the processes PIDS..., from /proc.
cpu_of() {
  local total=0 p
  for p in "$@"; do
    { read -r -a f <"/proc/$p/stat"; } 2>/dev/null || continue
    total=$((total + f[13] + f[14]))
  done
  awk -v t="$total" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'
}
# The publisher sends a clip encoded beforehand, as OBS on another machine would: encoding
# 1080p on the server's own 2 cores would leave the ladder one, and measure the publisher.
# Like OBS (librtmp) it sets TCP_NODELAY, and its first video frame comes FIRST_FRAME
# seconds after the publish: OBS starts its encoders once the publish is accepted, so its
# first frame is at least one frame interval later. FIRST_FRAME=0 is ffmpeg sending a file,
# whose first keyframe arrives before nginx-rtmp's push to the sidecar is up: the ladder then
# starts from the second keyframe, GOP seconds later.
FIRST_FRAME=${FIRST_FRAME:-0.05}
clip() {
  local offset=()
  [ "$FIRST_FRAME" = 0 ] || offset=(-itsoffset "$FIRST_FRAME")
  ffmpeg -hide_banner -nostdin -loglevel error "${offset[@]}" -f lavfi -i "testsrc2=size=$SIZE:rate=30" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000" -t 10 -c:v libx264 -preset veryfast \
    -tune zerolatency -g $((GOP * 30)) -b:v 6M -pix_fmt yuv420p -c:a aac -b:a 128k -f flv "$work/clip.flv"
}
publish() { # url
  ffmpeg -hide_banner -nostdin -loglevel error -re -stream_loop -1 -i "$work/clip.flv" -t "$SECS" \
    -c copy -tcp_nodelay 1 -f flv "$1" &
  pids+=($!)
  publisher=$!
}
entry() { curl -s -o /dev/null -w "%{http_code} %{redirect_url}" "http://127.0.0.1:$http/live/cam/"; }

clip
start_server
key=$("$bin" --config "$cfg" keys add cam --json | python3 -c 'import json,sys; v=json.load(sys.stdin); print(v["server_url"] + "/" + v["stream_key"])')

echo "ladder: publishing ${SECS} s of ${SIZE} at 30 fps, a keyframe every ${GOP} s, the first video frame ${FIRST_FRAME} s after the publish"
t0=$(now_ms); publish "$key"
source_ms="" master_ms=""
while [ -z "$master_ms" ] && [ $(( $(now_ms) - t0 )) -lt 30000 ]; do
  e=$(entry)
  [ -z "$source_ms" ] && [[ $e == 302* ]] && source_ms=$(( $(now_ms) - t0 ))
  [[ $e == *master.m3u8 ]] && master_ms=$(( $(now_ms) - t0 ))
  sleep 0.05
done
[ -n "$master_ms" ] || { echo "no master playlist within 30 s" >&2; tail "$work/run.log" >&2; exit 1; }
sleep $((FROM - master_ms / 1000))
# The ladder running now; one that dropped a rung is a new process, measured again over a
# window as long, while the stream lasts.
ladder_cpu=""
while [ -z "$ladder_cpu" ] && [ $(( $(now_ms) - t0 )) -lt $(( (SECS - TO + FROM) * 1000 )) ]; do
  ladder=$(pgrep -f -- "-var_stream_map" | head -n1); a=$(cpu_of "$ladder")
  sleep $((TO - FROM)); b=$(cpu_of "$ladder")
  [ "$(pgrep -f -- "-var_stream_map" | head -n1)" = "$ladder" ] || continue
  ladder_cpu=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", b - a }')
done
[ -n "$ladder_cpu" ] || { echo "the ladder did not run one whole window" >&2; tail "$work/run.log" >&2; exit 1; }
rungs=$(grep -c STREAM-INF "$work/srv/data/live/cam/master.m3u8")
# The rungs the ladder made in the window (it drops its top one when it cannot keep up):
# the per-rendition recipe makes the same ones, so the figures compare like with like.
made=" $(grep -o '^[0-9]*p/' "$work/srv/data/live/cam/master.m3u8" | tr -d 'p/' | tr '\n' ' ')"
grep -o 'top rung is dropped' "$work/run.log" >&2 || true
wait "$publisher" 2>/dev/null || true
for _ in $(seq 100); do [ -z "$(pgrep -f -- "-var_stream_map")" ] && break; sleep 0.1; done

echo "per rendition: the same stream, one ffmpeg per rung on the same live input"
sed -i 's/^transcode = .*/transcode = "off"/' "$cfg"
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true
"$bin" --config "$cfg" run >"$work/run2.log" 2>&1 &
pids[0]=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$internal/api/streams" >/dev/null && break; sleep 0.1; done
t0=$(now_ms); publish "$key"
until [[ $(entry) == 302* ]]; do sleep 0.05; done
started=$(( $(now_ms) - t0 ))
dir=$work/srv/data/live/cam
per=()
for spec in 720:2800:128 480:1400:96 360:800:96; do
  IFS=: read -r h kbps akbps <<<"$spec"
  [[ $made == *" $h "* ]] || continue
  mkdir -p "$work/per/${h}p"
  (cd "$dir" && exec ffmpeg -nostdin -v error -live_start_index -1 -i index.m3u8 -vf "scale=-2:$h" \
    -c:v libx264 -preset veryfast -profile:v main -pix_fmt yuv420p -sc_threshold 0 \
    -g $((SEG * 30)) -keyint_min $((SEG * 30)) -force_key_frames "expr:gte(t,n_forced*$SEG)" -tune zerolatency \
    -b:v "${kbps}k" -maxrate "$((kbps * 107 / 100))k" -bufsize "$((kbps * 3 / 2))k" \
    -c:a aac -ac 2 -ar 48000 -b:a "${akbps}k" -f hls -hls_time $SEG -hls_list_size $((12 / SEG)) \
    -hls_flags delete_segments -hls_segment_filename "$work/per/${h}p/%d.ts" "$work/per/${h}p/index.m3u8") &
  per+=($!)
  pids+=($!)
done
sleep 1
workers=()
for p in "${per[@]}"; do workers+=($(pgrep -P "$p" || echo "$p")); done
sleep $((FROM - started / 1000 - 1)); a=$(cpu_of "${workers[@]}")
sleep $((TO - FROM)); b=$(cpu_of "${workers[@]}")
per_cpu=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", b - a }')

awk -v s="$source_ms" -v m="$master_ms" -v l="$ladder_cpu" -v p="$per_cpu" -v w="$((TO - FROM))" -v r="$rungs" 'BEGIN {
  printf "publish -> source playable : %5.2f s\n", s / 1000
  printf "publish -> master playable : %5.2f s (goal <= 2 s)  %d variants in the window\n", m / 1000, r
  printf "ladder        : %6.2f CPU s over %d s of stream (%.2f cores)\n", l, w, l / w
  printf "per rendition : %6.2f CPU s over %d s of stream (%.2f cores)\n", p, w, p / w
  printf "CPU ratio ladder/per-rendition: %.2f (goal <= 0.80)\n", l / p
}'

#!/usr/bin/env bash
# Many viewers of one live stream: simulated HLS players (tests/src/bin/players.rs) of a
# ~500 kbit/s stream against the streamedge server as `streamedge init` configures it
# (module routes, limits, connection caps), then against a plain nginx location serving the
# same live folder with the same worker and connection settings. Players come from 100
# loopback source addresses (30 per address at 3,000), as viewers come from many homes.
# Reports errors, refusals, segment latency and the nginx workers' CPU, and the ratios.
source "$(dirname "$0")/lib.sh"
PLAYERS=${PLAYERS:-3000}
SECS=${SECS:-40}
players=$root/target/release/players
[ -x "$players" ] || { echo "build first: make build" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)"

start_server
data=$work/srv/data
key=$("$bin" --config "$cfg" keys add many --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["stream_key"])')
# 15 fps 640x360 at ~450 kbit/s video + 48 kbit/s audio, 2 s keyframes (as OBS would send).
ffmpeg -hide_banner -nostdin -loglevel error -re -f lavfi -i "testsrc2=size=640x360:rate=15" \
  -f lavfi -i "sine=frequency=440" -t $((2 * SECS + 60)) -c:v libx264 -preset ultrafast -b:v 450k \
  -maxrate 450k -bufsize 900k -g 30 -c:a aac -b:a 48k -f flv "rtmp://127.0.0.1:$rtmp/live/$key" &
pids+=($!)
for _ in $(seq 200); do
  n=$(grep -c '\.ts' "$data/live/many/index.m3u8" 2>/dev/null) || true
  [ "${n:-0}" -ge 4 ] && break; sleep 0.2
done
[ -f "$data/live/many/index.m3u8" ] || { echo "the stream did not start" >&2; exit 1; }
streamedge_pids=$(pgrep -P "$(cat "$work/srv/nginx.pid")" | tr '\n' ' ')
conns=$(awk '/worker_connections/ {gsub(";",""); print $2}' "$work/srv/nginx.conf")
files=$(awk '/worker_rlimit_nofile/ {gsub(";",""); print $2}' "$work/srv/nginx.conf")

WORKER_CONNECTIONS=$conns NOFILE=$files start_nginx "
  server {
    listen 127.0.0.1:{port};
    location = / { return 200; }
    location /live/ {
      alias $data/live/;
      types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }
      add_header Access-Control-Allow-Origin *;
      add_header Cache-Control no-cache;
    }
  }"
plain_pids=$(pgrep -P "$(cat "$work/ngx/nginx.pid")" | tr '\n' ' ')

cpu_ticks() { local t=0; for p in $1; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
run() { # label url pids
  local before after out
  before=$(cpu_ticks "$3")
  out=$("$players" "$2" "$PLAYERS" "$SECS" 100)
  after=$(cpu_ticks "$3")
  echo "$out cpu_s=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t / hz }')"
}
echo "$PLAYERS players of one ~500 kbit/s live stream, ${SECS}s each, 2 nginx workers"
se=$(run streamedge "http://127.0.0.1:$http/live/many/index.m3u8" "$streamedge_pids")
pl=$(run plain "http://127.0.0.1:$port/live/many/index.m3u8" "$plain_pids")
echo "  streamedge: $se"
echo "  plain:      $pl"
field() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k { print $2 }'; }
awk -v a="$(field "$se" cpu_s)" -v b="$(field "$pl" cpu_s)" 'BEGIN { printf "  nginx CPU streamedge/plain: %.2f\n", a / b }'
awk -v a="$(field "$se" segment_p99_ms)" -v b="$(field "$pl" segment_p99_ms)" 'BEGIN { printf "  segment p99 streamedge/plain: %.2f\n", a / b }'
errors=$(( $(field "$se" not_200) + $(field "$se" failed) ))
echo "  streamedge errors: $errors"
grep -q "worker_connections are not enough" "$work/srv/logs/error.log" && echo "  nginx ran out of worker_connections"
[ "$errors" -eq 0 ]

#!/usr/bin/env bash
# Many listeners of one live audio stream (a DJ's Icecast source): simulated HLS players
# (tests/src/bin/players.rs) of its audio-only rendition, with and without their own
# playback session ids, and the module's count of them in /api/streams while they play.
# The peer is plain nginx serving the same folder (nothing counted), for the CPU the
# counting costs; the ratio is printed.
source "$(dirname "$0")/lib.sh"
PLAYERS=${PLAYERS:-1000}
SECS=${SECS:-40}
players=$root/target/release/players
[ -x "$players" ] || { echo "build first: make build" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)"

start_server
data=$work/srv/data
icecast=$(awk -F' *= *' '/^icecast/ {print $2}' "$cfg")
secret=$("$bin" --config "$cfg" keys add dj --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["stream_key"].split("?key=")[1])')
ffmpeg -hide_banner -nostdin -loglevel error -re -f lavfi -i "sine=frequency=440:sample_rate=44100" \
  -t $((3 * SECS + 60)) -c:a libmp3lame -b:a 128k -content_type audio/mpeg -f mp3 \
  "icecast://source:$secret@127.0.0.1:$icecast/dj" 2>"$work/source.log" &
pids+=($!)
for _ in $(seq 200); do
  n=$(grep -c '\.ts' "$data/live/dj/audio/index.m3u8" 2>/dev/null) || true
  [ "${n:-0}" -ge 4 ] && break; sleep 0.2
done
[ -f "$data/live/dj/audio/index.m3u8" ] || { echo "the audio stream did not start" >&2; cat "$work/run.log" >&2; exit 1; }
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
      add_header Cache-Control no-cache;
    }
  }"
plain_pids=$(pgrep -P "$(cat "$work/ngx/nginx.pid")" | tr '\n' ' ')

cpu_ticks() { local t=0; for p in $1; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
viewers() { curl -fs "http://127.0.0.1:$http/api/streams" | python3 -c 'import json,sys; print(next(s for s in json.load(sys.stdin) if s["name"]=="dj").get("audience",{}).get("viewers"))'; }
# label url pids sessions: players' summary, CPU, and the count sampled after 30 s
run() {
  local before after out count
  before=$(cpu_ticks "$3")
  PLAYER_SESSIONS=$4 "$players" "$2" "$PLAYERS" "$SECS" 100 >"$work/out" &
  local p=$!
  sleep 30
  count=$(viewers)
  wait $p
  out=$(cat "$work/out")
  after=$(cpu_ticks "$3")
  echo "$out cpu_s=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t / hz }') counted=$count"
}
url=/live/dj/audio/index.m3u8
echo "$PLAYERS listeners of one 160 kbit/s live audio stream, ${SECS}s each, 2 nginx workers, 100 source addresses"
with=$(run streamedge "http://127.0.0.1:$http$url" "$streamedge_pids" 1)
# The same players without session ids: one per address and user agent is all HLS tells.
sleep 35
without=$(run streamedge "http://127.0.0.1:$http$url" "$streamedge_pids" 0)
plain=$(run plain "http://127.0.0.1:$port$url" "$plain_pids" 1)
echo "  streamedge, session ids: $with"
echo "  streamedge, none:        $without"
echo "  plain nginx:             $plain"
field() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k { print $2 }'; }
echo "  counted with session ids: $(field "$with" counted) of $PLAYERS; without: $(field "$without" counted) (one per source address)"
awk -v a="$(field "$with" cpu_s)" -v b="$(field "$plain" cpu_s)" 'BEGIN { printf "  nginx CPU streamedge/plain: %.2f\n", a / b }'

#!/usr/bin/env bash
# Restreaming: one 2.5 Mbit/s stream published into a real streamedge server and sent on to
# N loopback destinations (an nginx-rtmp "sink", one stream name per destination), for N in
# $COUNTS (default "10 50"). CPU over a window of the stream:
#   streamedge: the sidecar (feed, program) + its N `streamedge push` processes + nginx's
#               workers (which take the publish and push it to the sidecar once);
#   peer:       nginx-rtmp's own `push` directive, N of them in `application live`, in a
#               bare nginx taking the same publish (its workers).
# Prints CPU per destination and total for both, and the ratio streamedge / peer.
source "$(dirname "$0")/lib.sh"
COUNTS=${COUNTS:-"10 50"}
FROM=${WINDOW_FROM:-10} TO=${WINDOW_TO:-30}
SECS=$((TO + 5))

cpu_of() { # PIDS... -> CPU seconds (user + sys)
  local total=0 p
  for p in "$@"; do
    { read -r -a f <"/proc/$p/stat"; } 2>/dev/null || continue
    total=$((total + f[13] + f[14]))
  done
  awk -v t="$total" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'
}
rtmp_module=/usr/lib/nginx/modules/ngx_rtmp_module.so

# A 720p30 clip at 2.3 Mbit/s video + 128 kbit/s audio, encoded beforehand: the publisher
# only copies it, so the 2 cores measure the restreaming.
ffmpeg -hide_banner -nostdin -loglevel error -f lavfi -i "testsrc2=size=1280x720:rate=30" \
  -f lavfi -i "sine=frequency=440:sample_rate=48000" -t 10 -c:v libx264 -preset veryfast \
  -g 60 -b:v 2300k -maxrate 2300k -bufsize 4600k -pix_fmt yuv420p -c:a aac -b:a 128k \
  -f flv "$work/clip.flv"
publish() { # url
  ffmpeg -hide_banner -nostdin -loglevel error -re -stream_loop -1 -i "$work/clip.flv" -t "$SECS" \
    -c copy -f flv "$1" &
  pids+=($!)
  publisher=$!
}

# The destinations: one nginx-rtmp taking every stream name in `dest`, its info log saying
# which were published.
sink=$(free_port)
mkdir -p "$work/sink/logs"
cat >"$work/sink/nginx.conf" <<CONF
load_module $rtmp_module;
worker_processes 1;
pid $work/sink/nginx.pid;
error_log $work/sink/logs/error.log info;
events { worker_connections 1024; }
rtmp { server { listen 127.0.0.1:$sink; application dest { live on; } } }
CONF
nginx -p "$work/sink" -c "$work/sink/nginx.conf"
pids+=("$(cat "$work/sink/nginx.pid")")
published() { # PREFIX -> distinct stream names with that prefix published to the sink
  grep -o "publish: name='$1[0-9]*'" "$work/sink/logs/error.log" | sort -u | wc -l
}

start_server
sed -i 's/^transcode = .*/transcode = "off"/' "$cfg"
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
"$bin" --config "$cfg" run >"$work/run.log" 2>&1 &
pids[-1]=$!
sidecar=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$internal/api/streams" >/dev/null && break; sleep 0.1; done
url=$("$bin" --config "$cfg" keys add cam --json | python3 -c 'import json,sys; v=json.load(sys.stdin); print(v["server_url"] + "/" + v["stream_key"])')
nginx_master=$(cat "$work/srv/nginx.pid" 2>/dev/null || pgrep -f "nginx: master.*$work/srv" | head -n1)

results=()
for n in $COUNTS; do
  round=r$n-
  # streamedge: N destinations.
  "$bin" --config "$cfg" restream list --json | python3 -c 'import json,sys; [print(d["id"]) for d in json.load(sys.stdin)]' \
    | while read -r id; do "$bin" --config "$cfg" restream remove "$id" >/dev/null; done
  for i in $(seq "$n"); do
    "$bin" --config "$cfg" restream add cam "rtmp://127.0.0.1:$sink/dest/${round}ours$i" >/dev/null
  done
  publish "$url"
  sleep "$FROM"
  pushes=($(pgrep -f "streamedge push"))
  workers=($(pgrep -P "$nginx_master"))
  a=$(cpu_of "$sidecar" "${pushes[@]}" "${workers[@]}")
  as=$(cpu_of "$sidecar"); ap=$(cpu_of "${pushes[@]}")
  sleep $((TO - FROM))
  b=$(cpu_of "$sidecar" "${pushes[@]}" "${workers[@]}")
  bs=$(cpu_of "$sidecar"); bp=$(cpu_of "${pushes[@]}")
  ours=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", b - a }')
  parts=$(awk -v as="$as" -v bs="$bs" -v ap="$ap" -v bp="$bp" -v o="$ours" 'BEGIN { printf "sidecar %.2f, pushes %.2f, nginx %.2f", bs - as, bp - ap, o - (bs - as) - (bp - ap) }')
  ours_ok=$(published "${round}ours")
  rss=$(for p in "${pushes[@]}"; do awk '/VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null; done | awk '{s+=$1} END {printf "%.1f", s/NR/1024}')
  wait "$publisher" 2>/dev/null || true
  for _ in $(seq 100); do [ -z "$(pgrep -f "streamedge push")" ] && break; sleep 0.2; done

  # The peer: a bare nginx-rtmp with N push directives.
  peer=$(free_port)
  mkdir -p "$work/peer$n/logs"
  {
    echo "load_module $rtmp_module;"
    echo "worker_processes 1;"
    echo "pid $work/peer$n/nginx.pid;"
    echo "error_log $work/peer$n/logs/error.log notice;"
    echo "events { worker_connections 1024; }"
    echo "rtmp { server { listen 127.0.0.1:$peer; application live { live on;"
    for i in $(seq "$n"); do echo "  push rtmp://127.0.0.1:$sink/dest/${round}peer$i;"; done
    echo "} } }"
  } >"$work/peer$n/nginx.conf"
  nginx -p "$work/peer$n" -c "$work/peer$n/nginx.conf"
  peer_master=$(cat "$work/peer$n/nginx.pid")
  pids+=("$peer_master")
  sleep 0.5
  publish "rtmp://127.0.0.1:$peer/live/cam"
  sleep "$FROM"
  workers=($(pgrep -P "$peer_master"))
  a=$(cpu_of "${workers[@]}")
  sleep $((TO - FROM))
  b=$(cpu_of "${workers[@]}")
  theirs=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", b - a }')
  peer_ok=$(published "${round}peer")
  wait "$publisher" 2>/dev/null || true
  kill "$peer_master"
  results+=("$n $ours $ours_ok $theirs $peer_ok $rss $parts")
done

w=$((TO - FROM))
echo "one 2.5 Mbit/s stream to N loopback destinations, CPU over $w s of stream"
for r in "${results[@]}"; do
  read -r n ours ours_ok theirs peer_ok rss parts <<<"$r"
  awk -v n="$n" -v o="$ours" -v ok="$ours_ok" -v t="$theirs" -v pk="$peer_ok" -v w="$w" -v rss="$rss" -v parts="$parts" 'BEGIN {
    printf "N=%-3d streamedge: %6.2f CPU s (%.3f cores, %.4f per destination; %d/%d received; %.1f MiB RSS per push)\n", n, o, o / w, o / w / n, ok, n, rss
    printf "      (%s)\n", parts
    printf "      nginx-rtmp push: %6.2f CPU s (%.3f cores, %.4f per destination; %d/%d received)\n", t, t / w, t / w / n, pk, n
    printf "      ratio streamedge / nginx-rtmp push: %.2f\n", o / t
  }'
done

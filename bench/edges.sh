#!/usr/bin/env bash
# How many viewers a home server behind a 20 Mbit/s uplink serves with no error and every
# segment in time, straight from the home server and through two edges
# (`streamedge init --edge`). A network of the bench's own: network namespaces for the home
# server (its uplink shaped with `tc tbf`), two edges and the viewers (100 addresses), cabled
# to a router namespace; nothing is sent anywhere else, and all is removed at the end.
# A 2.5 Mbit/s stream in 4 s segments; simulated HLS players (tests/src/bin/players.rs) in
# steps of more viewers until a step has an error or a segment slower than its length (p99).
# Reports the most viewers each way, their ratio, and the home uplink's bytes per viewer.
source "$(dirname "$0")/lib.sh"
SECS=${SECS:-30}
UPLINK=${UPLINK:-20mbit}
KBIT=${KBIT:-2500}
DIRECT_STEPS=${DIRECT_STEPS:-"2 4 6 8 10 12 16"}
EDGE_STEPS=${EDGE_STEPS:-"50 100 200 400 800 1200 1600"}
players=$root/target/release/players
[ -x "$players" ] || { echo "build first: make build" >&2; exit 1; }
command -v tc >/dev/null || { echo "tc is missing (iproute2): make deps" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "network namespaces need root" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)"

tag=seb$$
router=${tag}r
namespaces=()
remove_namespaces() { for n in "${namespaces[@]}"; do ip netns del "$n" 2>/dev/null || true; done; }
trap 'cleanup; remove_namespaces' EXIT
in_ns() { local n=$1; shift; ip netns exec "$n" "$@"; }

ip netns add "$router"; namespaces+=("$router")
ip -n "$router" link set lo up
in_ns "$router" sysctl -qw net.ipv4.ip_forward=1
# host N: a namespace $tag$N with address 10.202.N.1 on its link "uplink" to the router.
host() {
  local n=$1 name=$tag$1
  ip netns add "$name"; namespaces+=("$name")
  ip -n "$name" link set lo up
  ip link add uplink netns "$name" type veth peer name "h$n" netns "$router"
  ip -n "$name" addr add "10.202.$n.1/24" dev uplink
  ip -n "$name" link set uplink up
  ip -n "$router" addr add "10.202.$n.254/24" dev "h$n"
  ip -n "$router" link set "h$n" up
  ip -n "$name" route add default via "10.202.$n.254"
}
host 1; host 2; host 3; host 4
home=${tag}1 viewers=${tag}4
ip netns exec "$home" tc qdisc add dev uplink root tbf rate "$UPLINK" burst 32kb latency 400ms
for a in $(seq 2 100); do ip -n "$viewers" addr add "10.202.4.$a/24" dev uplink; done
uplink_bytes() { in_ns "$home" cat /sys/class/net/uplink/statistics/tx_bytes; }

# A server in namespace $1, folder $2, init arguments after; waits for its playlist server.
serve() {
  local ns=$1 dir=$work/$2; shift 2
  "$bin" init --dir "$dir" --bind 0.0.0.0 --host 10.202.1.1 --worker-processes 2 \
    --http-port 8080 --https-port 8443 --rtmp-port 1935 --internal-port 8081 \
    --icecast-port 8000 --module "$module" "$@" >/dev/null
  # The source rendition only, in 4 s segments (with edges, playlists are kept 1 to 2 s).
  sed -i -e 's/^fragment = .*/fragment = "4s"/' -e 's/^transcode = .*/transcode = "off"/' "$dir/streamedge.toml"
  grep -q '^fragment = "4s"' "$dir/streamedge.toml" || { echo "no [live] fragment in $dir" >&2; exit 1; }
  [ -f "$work/home/data/sign.keys" ] && [ "$dir" != "$work/home" ] && cp "$work/home/data/sign.keys" "$dir/data/"
  in_ns "$ns" "$bin" --config "$dir/streamedge.toml" run >"$dir.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do in_ns "$ns" curl -fs http://127.0.0.1:8081/api/streams >/dev/null && return 0; sleep 0.1; done
  cat "$dir.log" >&2; return 1
}
serve "$home" home
key=$("$bin" --config "$work/home/streamedge.toml" keys add alice --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["stream_key"])')
video=$((KBIT - 96))
# As Publisher::start_bitrate: noise the encoder cannot shrink below the rate it is given.
in_ns "$home" ffmpeg -hide_banner -nostdin -loglevel error -re -f lavfi \
  -i "testsrc2=size=640x360:rate=25,noise=alls=60:allf=t" -f lavfi -i "sine=frequency=440" \
  -c:v libx264 -preset ultrafast -g 25 -b:v "${video}k" -minrate "${video}k" -maxrate "${video}k" \
  -bufsize "${video}k" -pix_fmt yuv420p -c:a aac -b:a 96k -f flv "rtmp://127.0.0.1:1935/live/$key" &
pids+=($!)
serve "${tag}2" edge1 --edge --origin http://10.202.1.1:8080
serve "${tag}3" edge2 --edge --origin http://10.202.1.1:8080
for u in 10.202.1.1 10.202.2.1 10.202.3.1; do
  for _ in $(seq 300); do
    n=$(in_ns "$viewers" curl -fs "http://$u:8080/live/alice/index.m3u8" | grep -c '\.ts$') || true
    [ "${n:-0}" -ge 3 ] && break; sleep 0.2
  done
  [ "${n:-0}" -ge 3 ] || { echo "no stream at $u" >&2; exit 1; }
done

field() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k { print $2 }'; }
# step N URL...: N players shared by the URLs; prints the players' summaries, "ok" or "not
# ok", and the uplink's bytes.
step() {
  local n=$1 out bad=0 before after each; shift
  each=$((n / $#))
  before=$(uplink_bytes)
  out=$(for u in "$@"; do
    PLAYER_SESSIONS=1 PLAYER_SOURCES_FROM=10.202.4.0 in_ns "$viewers" "$players" "$u" "$each" "$SECS" 99 &
  done; wait)
  after=$(uplink_bytes)
  # A players process that printed no summary (it failed) is an error too.
  [ "$(grep -c '^players=' <<<"$out")" -eq $# ] || bad=1
  while read -r line; do
    local not_ok failed p99
    not_ok=$(field "$line" not_200) failed=$(field "$line" failed) p99=$(field "$line" segment_p99_ms)
    [ "${not_ok:-1}" -eq 0 ] && [ "${failed:-1}" -eq 0 ] && awk -v p="${p99:-1e9}" 'BEGIN { exit !(p < 4000) }' || bad=1
  done <<<"$out"
  echo "$out" | sed 's/^/    /' >&2
  echo "$([ $bad -eq 0 ] && echo ok || echo "not ok") $((after - before))"
}
# climb LABEL STEPS URL...: the most viewers with every step up to it ok; bytes per viewer.
climb() {
  local label=$1 steps=$2 best=0 per=0 r; shift 2
  for n in $steps; do
    r=$(step "$n" "$@")
    echo "  $label $n viewers: $r" >&2
    [ "${r% *}" = ok ] || break
    best=$n per=$(( ${r##* } / n ))
  done
  echo "$best $per"
}
echo "viewers of a ${KBIT} kbit/s stream (4 s segments) behind a $UPLINK uplink, ${SECS}s per step"
direct=$(climb direct "$DIRECT_STEPS" http://10.202.1.1:8080/live/alice/index.m3u8)
edges=$(climb "two edges" "$EDGE_STEPS" http://10.202.2.1:8080/live/alice/index.m3u8 \
  http://10.202.3.1:8080/live/alice/index.m3u8)
echo "  direct: ${direct% *} viewers, uplink ${direct#* } bytes per viewer"
echo "  through two edges: ${edges% *} viewers, uplink ${edges#* } bytes per viewer"
awk -v a="${edges% *}" -v b="${direct% *}" 'BEGIN { if (b > 0) printf "  viewers with edges / direct: %.1f\n", a / b }'
[ "${direct% *}" -gt 0 ] && [ "${edges% *}" -gt 0 ]

#!/usr/bin/env bash
# One stream's chat with many viewers: CLIENTS WebSockets (tests/src/bin/chatters.rs) from
# 100 loopback source addresses join the chat of one stream through nginx (the upgrade
# proxied to the sidecar, its limit zone in front), then one more sends MESSAGES messages a
# little over a second apart. Reports how long each took to reach every viewer (p50, p99,
# max), what the sidecar's memory grew by per viewer, and the same against the peer: the
# plain Node.js `ws` broadcast server (bench/chat_peer.cjs), with the ratios.
source "$(dirname "$0")/lib.sh"
CLIENTS=${CLIENTS:-1000}
MESSAGES=${MESSAGES:-10}
chatters=$root/target/release/chatters
[ -x "$chatters" ] || { echo "build first: make build" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)"

start_server
sidecar=${pids[-1]}
"$bin" --config "$cfg" keys add dj >/dev/null
ours=$("$chatters" "ws://127.0.0.1:$http/api/streams/dj/chat/ws" "$CLIENTS" "$MESSAGES" 100 "$sidecar")

peer_port=$(free_port)
NODE_PATH=/usr/share/nodejs node "$root/bench/chat_peer.cjs" "$peer_port" >"$work/peer.log" 2>&1 &
pids+=($!)
peer=${pids[-1]}
for _ in $(seq 50); do grep -q listening "$work/peer.log" && break; sleep 0.1; done
grep -q listening "$work/peer.log" || { cat "$work/peer.log" >&2; echo "the peer did not start (make deps-bench installs node-ws)" >&2; exit 1; }
theirs=$("$chatters" "ws://127.0.0.1:$peer_port/" "$CLIENTS" "$MESSAGES" 100 "$peer")

echo "$CLIENTS viewers in one chat, $MESSAGES messages"
echo "  streamedge (through nginx): $ours"
echo "  node ws (direct):           $theirs"
field() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k { print $2 }'; }
awk -v a="$(field "$ours" p99_ms)" -v b="$(field "$theirs" p99_ms)" 'BEGIN { printf "  delivery p99 streamedge/node-ws: %.2f\n", a / b }'
awk -v a="$(field "$ours" rss_kib_per_client)" -v b="$(field "$theirs" rss_kib_per_client)" 'BEGIN { printf "  memory per viewer streamedge/node-ws: %.2f\n", a / b }'
grep -q "delivered=$((CLIENTS * MESSAGES))/" <<<"$ours" || { echo "streamedge lost messages" >&2; exit 1; }

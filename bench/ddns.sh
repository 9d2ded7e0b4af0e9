#!/usr/bin/env bash
# A simulated day of dynamic DNS: 1,440 checks (one a minute, run back to back) against an
# IONOS stand-in and a real DNS server (pebble-challtestsrv) that already has the address.
# Counts IONOS calls for a stable address and for one change at midday, against the seed
# design (a cron job calling the update URL every minute: 1,440 calls), and reports the
# sidecar's CPU time and peak memory over the run (/usr/bin/time).
source "$(dirname "$0")/lib.sh"
CHECKS=${CHECKS:-1440}
OLD=81.2.69.142 NEW=81.2.69.160 NAME=home.example.org

"$bin" init --dir "$work/srv" --bind 127.0.0.1 --host 127.0.0.1 --module "$module" >/dev/null
cfg=$work/srv/streamedge.toml
dns=$(free_port); dmgmt=$(free_port)
pebble-challtestsrv -defaultIPv4 "" -defaultIPv6 "" -dns01 "127.0.0.1:$dns" -http01 "" -https01 "" \
  -tlsalpn01 "" -management "127.0.0.1:$dmgmt" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 50); do curl -fs -o /dev/null -X POST -d "{\"host\":\"$NAME.\",\"addresses\":[\"$OLD\"]}" "http://127.0.0.1:$dmgmt/add-a" && break; sleep 0.1; done

day() { # label change_after
  # The tests' IONOS stand-in (tests/src/ionos.rs), which prints its port when it listens.
  local port
  "$root/target/release/ionos-standin" pub.secret "$OLD" "$NEW" "$2" >"$work/standin.port" &
  pids+=($!)
  for _ in $(seq 100); do port=$(head -n1 "$work/standin.port"); [ -n "$port" ] && break; sleep 0.05; done
  rm -f "$work/srv/data/ddns/state.json"
  sed -i '/^\[ddns\]/,$d' "$cfg"
  cat >>"$cfg" <<TOML
[ddns]
mode = "dyndns"
api_key = "pub.secret"
api_base = "http://127.0.0.1:$port"
domains = ["$NAME"]
ip_sources_v4 = ["http://127.0.0.1:$port/echo"]
nameservers = ["127.0.0.1:$dns"]
interval = "1ms"
requests_per_minute = 100000
TOML
  "$bin" --config "$cfg" ddns setup >/dev/null
  local before; before=$(curl -fs "http://127.0.0.1:$port/_calls")
  /usr/bin/time -f "%U %S %M" -o "$work/time" "$bin" --config "$cfg" ddns check --count "$CHECKS" >/dev/null 2>&1 || true
  local calls=$(( $(curl -fs "http://127.0.0.1:$port/_calls") - before ))
  read -r user sys rss <"$work/time"
  printf '  %-28s IONOS calls %4d (seed design: %d)   CPU %.2f s   peak %.1f MiB\n' "$1" "$calls" "$CHECKS" \
    "$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')" "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')"
}
echo "a simulated day: $CHECKS checks"
day "stable address" 1000000000
day "one change at midday" $((CHECKS / 2))

#!/usr/bin/env bash
# Requests per second through a location limited by streamedge_limit against the same
# location limited by nginx's own limit_req, same key, a rate too high to refuse; and a
# location with no limit as the ceiling. Same nginx, same run; the order alternates over
# rounds so neither side always runs on a warmer machine.
source "$(dirname "$0")/lib.sh"
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
ROUNDS=${ROUNDS:-2}

start_nginx '
  limit_req_zone $binary_remote_addr zone=lr:10m rate=1000000r/s;
  streamedge_limit_zone $binary_remote_addr zone=se:10m rate=1000000r/s burst=1000000;
  server {
    listen 127.0.0.1:{port};
    location = / { return 200; }
    location = /none { empty_gif; }
    location = /limit_req { limit_req zone=lr burst=1000000 nodelay; empty_gif; }
    location = /streamedge { streamedge_limit zone=se; empty_gif; }
  }'

declare -A total
for round in $(seq "$ROUNDS"); do
  order="/limit_req /streamedge /none"
  [ $((round % 2)) -eq 0 ] && order="/streamedge /limit_req /none"
  for path in $order; do
    read -r rps _ < <(wrk_run -t2 -c"$CONNECTIONS" -d"$DURATION" "http://127.0.0.1:$port$path")
    total[$path]=$(awk -v a="${total[$path]:-0}" -v b="$rps" 'BEGIN { print a + b }')
  done
done
printf 'limits, one key, %s connections, %s x %s rounds each\n' "$CONNECTIONS" "$DURATION" "$ROUNDS"
for path in /none /limit_req /streamedge; do
  printf '  %-12s %10.0f req/s\n' "$path" "$(awk -v t="${total[$path]}" -v n="$ROUNDS" 'BEGIN { print t / n }')"
done
awk -v s="${total[/streamedge]}" -v l="${total[/limit_req]}" 'BEGIN { printf "  ratio streamedge_limit/limit_req: %.3f\n", s / l }'

#!/usr/bin/env bash
# Requests per second through a location limited by streamedge_limit against the same
# location limited by nginx's own limit_req, same key, a rate too high to refuse; and a
# location with no limit as the ceiling. Each is asked for a file (/x/index.html) and for
# its folder (/x/, which nginx's index module redirects internally to the same file, so a
# limit that charged twice would show here). Same nginx, same run; the order alternates
# over rounds so neither side always runs on a warmer machine.
source "$(dirname "$0")/lib.sh"
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
ROUNDS=${ROUNDS:-2}

site=$work/site
mkdir -p "$site"
echo "<p>hello</p>" >"$site/index.html"
chmod -R a+rX "$site"

start_nginx "
  limit_req_zone \$binary_remote_addr zone=lr:10m rate=1000000r/s;
  streamedge_limit_zone \$binary_remote_addr zone=se:10m rate=1000000r/s burst=1000000;
  server {
    listen 127.0.0.1:{port};
    location = / { return 200; }
    location /none/ { alias $site/; }
    location /limit_req/ { limit_req zone=lr burst=1000000 nodelay; alias $site/; }
    location /streamedge/ { streamedge_limit zone=se; alias $site/; }
  }"

declare -A total
for round in $(seq "$ROUNDS"); do
  sides="limit_req streamedge none"
  [ $((round % 2)) -eq 0 ] && sides="streamedge limit_req none"
  for side in $sides; do
    for what in file folder; do
      path="/$side/"
      [ "$what" = file ] && path="/$side/index.html"
      read -r rps _ < <(wrk_run -t2 -c"$CONNECTIONS" -d"$DURATION" "http://127.0.0.1:$port$path")
      total[$side.$what]=$(awk -v a="${total[$side.$what]:-0}" -v b="$rps" 'BEGIN { print a + b }')
    done
  done
done
printf 'limits, one key, %s connections, %s x %s rounds each\n' "$CONNECTIONS" "$DURATION" "$ROUNDS"
for what in file folder; do
  for side in none limit_req streamedge; do
    printf '  %-7s %-11s %10.0f req/s\n' "$what" "$side" "$(awk -v t="${total[$side.$what]}" -v n="$ROUNDS" 'BEGIN { print t / n }')"
  done
  awk -v s="${total[streamedge.$what]}" -v l="${total[limit_req.$what]}" -v w="$what" \
    'BEGIN { printf "  %-7s ratio streamedge_limit/limit_req: %.3f\n", w, s / l }'
done

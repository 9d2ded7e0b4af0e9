#!/usr/bin/env bash
# One certificate issuance against the same local pebble (PEBBLE_VA_NOSLEEP=1), several
# rounds each: `streamedge cert renew --force` (which also reloads nginx and checks that the
# new certificate is served), `certbot certonly --webroot` and `lego --http.webroot`, all
# answering HTTP-01 through the same nginx. Wall time and peak memory (RSS) by
# /usr/bin/time; medians and ratios.
source "$(dirname "$0")/lib.sh"
ROUNDS=${ROUNDS:-5}
DOMAIN=bench.streamedge.test
for tool in pebble pebble-challtestsrv certbot lego /usr/bin/time openssl; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: make deps" >&2; exit 1; }
done

# pebble's own HTTPS: a CA and a listener certificate for 127.0.0.1.
p=$work/pebble
pebble_tls "$p"

# The server first: pebble must know its HTTP port.
http=$(free_port)
"$bin" init --dir "$work/srv" --bind 127.0.0.1 --host 127.0.0.1 --worker-processes 2 \
  --http-port "$http" --https-port "$(free_port)" --rtmp-port "$(free_port)" --module "$module" \
  --domain "$DOMAIN" --email bench@streamedge.test >/dev/null
cfg=$work/srv/streamedge.toml
pebble_port=$(free_port); mgmt=$(free_port); dns=$(free_port)
cat >"$p/pebble.json" <<JSON
{"pebble": {"listenAddress": "127.0.0.1:$pebble_port", "managementListenAddress": "127.0.0.1:$mgmt",
 "certificate": "$p/cert.pem", "privateKey": "$p/key.pem", "httpPort": $http, "tlsPort": $(free_port),
 "ocspResponderURL": "", "externalAccountBindingRequired": false}}
JSON
pebble-challtestsrv -defaultIPv6 "" -dns01 "127.0.0.1:$dns" -http01 "" -https01 "" -tlsalpn01 "" \
  -management "127.0.0.1:$(free_port)" >"$p/dns.log" 2>&1 &
pids+=($!)
PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 pebble -config "$p/pebble.json" -dnsserver "127.0.0.1:$dns" >"$p/pebble.log" 2>&1 &
pids+=($!)
dir=https://127.0.0.1:$pebble_port/dir
for _ in $(seq 50); do curl -fs --cacert "$p/ca.pem" "$dir" >/dev/null && break; sleep 0.2; done
# The CA is pebble, trusted through its own root.
sed -i "s|^directory = \"letsencrypt\"|directory = \"$dir\"\nca_root = \"$p/ca.pem\"|" "$cfg"
"$bin" --config "$cfg" run >"$work/run.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$http/api/streams" >/dev/null && break; sleep 0.1; done
webroot=$work/srv/data/acme/challenge

measure() { # name, command...: appends "seconds kilobytes" to $work/<name>
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/time.tmp" "$@" >"$work/$name.out" 2>&1 || { cat "$work/$name.out" >&2; return 1; }
  cat "$work/time.tmp" >>"$work/times.$name"
}
for round in $(seq "$ROUNDS"); do
  measure streamedge "$bin" --config "$cfg" cert renew --force
  measure certbot env REQUESTS_CA_BUNDLE="$p/ca.pem" certbot certonly --webroot -w "$webroot" -d "$DOMAIN" \
    --server "$dir" --non-interactive --agree-tos -m bench@streamedge.test --force-renewal \
    --config-dir "$work/certbot" --work-dir "$work/certbot" --logs-dir "$work/certbot"
  measure lego env LEGO_CA_CERTIFICATES="$p/ca.pem" lego --server "$dir" --email bench@streamedge.test \
    --accept-tos --domains "$DOMAIN" --http --http.webroot "$webroot" --path "$work/lego" run
done
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
printf 'one issuance against pebble, %s rounds, medians\n' "$ROUNDS"
for t in streamedge certbot lego; do
  s=$(awk '{ print $1 }' "$work/times.$t" | median); m=$(awk '{ print $2 }' "$work/times.$t" | median)
  printf '  %-11s %6.2f s   peak %7.1f MiB\n' "$t" "$s" "$(awk -v k="$m" 'BEGIN { print k / 1024 }')"
  eval "sec_$t=$s mem_$t=$m"
done
awk -v a="$sec_certbot" -v b="$sec_streamedge" -v c="$sec_lego" -v m="$mem_certbot" -v n="$mem_streamedge" \
  'BEGIN { printf "  time: certbot/streamedge %.1fx, lego/streamedge %.1fx; memory: certbot/streamedge %.1fx\n", a / b, c / b, m / n }'

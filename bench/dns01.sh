#!/usr/bin/env bash
# One DNS-01 issuance for a name and its wildcard against the same local pebble
# (PEBBLE_VA_NOSLEEP=1), validating with pebble-challtestsrv, several rounds each:
# `streamedge cert renew --force` with acme.challenge = "dns-01" (TXT records through the IONOS
# stand-in, which keeps challtestsrv's TXT records the same as its own; the sidecar waits
# until challtestsrv answers them, tells the CA, then deletes them), and `certbot certonly
# --manual --preferred-challenges dns` whose hooks do the same through the same stand-in
# (create the record, delete it by id afterwards). Wall time and peak memory (RSS) by
# /usr/bin/time; medians and ratios.
source "$(dirname "$0")/lib.sh"
ROUNDS=${ROUNDS:-5}
DOMAIN=bench.streamedge.test
KEY=pub.secret
for tool in pebble pebble-challtestsrv certbot /usr/bin/time openssl jq; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: make deps-bench" >&2; exit 1; }
done
[ -x "$root/target/release/ionos-standin" ] || { echo "build first: make build" >&2; exit 1; }

# pebble's own HTTPS: a CA and a listener certificate for 127.0.0.1.
p=$work/pebble
pebble_tls "$p"

pebble_port=$(free_port); dns=$(free_port); cts=$(free_port)
cat >"$p/pebble.json" <<JSON
{"pebble": {"listenAddress": "127.0.0.1:$pebble_port", "managementListenAddress": "127.0.0.1:$(free_port)",
 "certificate": "$p/cert.pem", "privateKey": "$p/key.pem", "httpPort": $(free_port), "tlsPort": $(free_port),
 "ocspResponderURL": "", "externalAccountBindingRequired": false}}
JSON
pebble-challtestsrv -defaultIPv6 "" -dns01 "127.0.0.1:$dns" -http01 "" -https01 "" -tlsalpn01 "" \
  -management "127.0.0.1:$cts" >"$p/dns.log" 2>&1 &
pids+=($!)
PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0 pebble -config "$p/pebble.json" -dnsserver "127.0.0.1:$dns" >"$p/pebble.log" 2>&1 &
pids+=($!)
"$root/target/release/ionos-standin" "$KEY" 127.0.0.1 127.0.0.1 0 streamedge.test "http://127.0.0.1:$cts" >"$work/standin.port" &
pids+=($!)
dir=https://127.0.0.1:$pebble_port/dir
for _ in $(seq 50); do curl -fs --cacert "$p/ca.pem" "$dir" >/dev/null && break; sleep 0.2; done
for _ in $(seq 100); do api=$(head -n1 "$work/standin.port"); [ -n "$api" ] && break; sleep 0.05; done
api=http://127.0.0.1:$api

# streamedge: no nginx runs, so `cert renew` issues and installs, and reloads nothing.
"$bin" init --dir "$work/srv" --bind 127.0.0.1 --host 127.0.0.1 --http-port "$(free_port)" \
  --https-port "$(free_port)" --rtmp-port "$(free_port)" --module "$module" \
  --domain "$DOMAIN" --email bench@streamedge.test >/dev/null
cfg=$work/srv/streamedge.toml
sed -i -e "s|^directory = \"letsencrypt\"|directory = \"$dir\"\nca_root = \"$p/ca.pem\"|" \
  -e 's|^challenge = "http-01"|challenge = "dns-01"|' -e "s|^nameservers = \[\]|nameservers = [\"127.0.0.1:$dns\"]|" "$cfg"
sed -i "s|^domains = \\[\"$DOMAIN\"\\]|domains = [\"$DOMAIN\", \"*.$DOMAIN\"]|" "$cfg"
cat >>"$cfg" <<TOML

[ddns]
api_key = "$KEY"
api_base = "$api"
domains = ["$DOMAIN"]
ip_sources_v4 = ["$api/echo"]
nameservers = ["127.0.0.1:$dns"]
TOML

# certbot's hooks: the same IONOS calls (create the TXT record, delete it by the id IONOS
# gave), nothing else.
cat >"$work/auth-hook" <<SH
#!/bin/sh
curl -fs -X POST -H 'X-API-Key: $KEY' -H 'Content-Type: application/json' \\
  -d "[{\\"name\\":\\"_acme-challenge.\$CERTBOT_DOMAIN\\",\\"type\\":\\"TXT\\",\\"content\\":\\"\$CERTBOT_VALIDATION\\",\\"ttl\\":60,\\"prio\\":0,\\"disabled\\":false}]" \\
  "$api/dns/v1/zones/z1/records" | jq -r '.[0].id' >>"$work/certbot-ids"
SH
cat >"$work/cleanup-hook" <<SH
#!/bin/sh
id=\$(head -n1 "$work/certbot-ids") && sed -i 1d "$work/certbot-ids"
curl -fs -X DELETE -H 'X-API-Key: $KEY' "$api/dns/v1/zones/z1/records/\$id" >/dev/null
SH
chmod +x "$work/auth-hook" "$work/cleanup-hook"

measure() { # name, command...: appends "seconds kilobytes" to $work/<name>
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/time.tmp" "$@" >"$work/$name.out" 2>&1 || { cat "$work/$name.out" >&2; return 1; }
  cat "$work/time.tmp" >>"$work/times.$name"
}
left() { curl -fs -H "X-API-Key: $KEY" "$api/dns/v1/zones/z1?recordType=TXT" | jq '[.records[] | select(.type == "TXT")] | length'; }
for round in $(seq "$ROUNDS"); do
  measure streamedge "$bin" --config "$cfg" cert renew --force
  measure certbot env REQUESTS_CA_BUNDLE="$p/ca.pem" certbot certonly --manual --preferred-challenges dns \
    --manual-auth-hook "$work/auth-hook" --manual-cleanup-hook "$work/cleanup-hook" \
    -d "$DOMAIN" -d "*.$DOMAIN" --server "$dir" --non-interactive --agree-tos -m bench@streamedge.test \
    --force-renewal --config-dir "$work/certbot" --work-dir "$work/certbot" --logs-dir "$work/certbot"
  [ "$(left)" = 0 ] || { echo "TXT records left at the stand-in after round $round" >&2; exit 1; }
done
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
printf 'one DNS-01 issuance (%s and *.%s) against pebble, %s rounds, medians\n' "$DOMAIN" "$DOMAIN" "$ROUNDS"
for t in streamedge certbot; do
  s=$(awk '{ print $1 }' "$work/times.$t" | median); m=$(awk '{ print $2 }' "$work/times.$t" | median)
  printf '  %-11s %6.2f s   peak %7.1f MiB\n' "$t" "$s" "$(awk -v k="$m" 'BEGIN { print k / 1024 }')"
  eval "sec_$t=$s mem_$t=$m"
done
awk -v a="$sec_certbot" -v b="$sec_streamedge" -v m="$mem_certbot" -v n="$mem_streamedge" \
  'BEGIN { printf "  time: certbot/streamedge %.1fx; memory: certbot/streamedge %.1fx; TXT records left: 0\n", a / b, m / n }'

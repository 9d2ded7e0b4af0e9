#!/usr/bin/env bash
# Publish-auth decisions per second: the module's callback location (as the default
# configuration has it, with the per-publisher limit zone) against the usual design, nginx
# proxying the same callback to a separate auth service (bench/auth_service.py) doing the
# same check. Same nginx, same run, same bodies (right key, varying publisher address), wrk
# on loopback.
source "$(dirname "$0")/lib.sh"
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}

start_server
key=$("$bin" --config "$cfg" keys add bench --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["stream_key"].split("?key=")[1])')

svc_port=$(free_port)
python3 "$root/bench/auth_service.py" "$svc_port" "$work/srv/data/keys.toml" &
pids+=($!)
# The peer behind the same nginx, as the seeds deploy it: a proxied location.
cat >>"$work/srv/site.conf" <<CONF
location = /bench/proxied-auth {
    allow 127.0.0.1; deny all; access_log off;
    proxy_pass http://127.0.0.1:$svc_port/auth;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
}
CONF
nginx -p "$work/srv" -c "$work/srv/nginx.conf" -s reload 2>/dev/null
sleep 1

head="app=live&flashver=FMLE/3.0%20(compatible%3B%20FMSc/1.0)&swfurl=&tcurl=rtmp://127.0.0.1:1935/live&pageurl=&addr="
tail="&clientid=42&call=publish&name=bench&type=live&key=$key"
body="${head}10.0.0.1${tail}"
# Each request from another publisher address, as the default configuration limits each
# address (the publishers zone): the measured path includes that limit's lookup.
cat >"$work/post.lua" <<LUA
local n = 0
request = function()
  n = n + 1
  local addr = string.format("10.%d.%d.%d", math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
  return wrk.format("POST", nil, {["Content-Type"] = "application/x-www-form-urlencoded"}, "$head" .. addr .. "$tail")
end
LUA
# The module's callback lives on the internal loopback server, the peer on the public one.
for url in "http://127.0.0.1:$internal/rtmp/auth" "http://127.0.0.1:$http/bench/proxied-auth"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data "$body" "$url")
  [ "$code" = 200 ] || { echo "$url answered $code" >&2; exit 1; }
done

read -r m_rps m_p99 < <(wrk_run -t2 -c"$CONNECTIONS" -d"$DURATION" -s "$work/post.lua" "http://127.0.0.1:$internal/rtmp/auth")
read -r p_rps p_p99 < <(wrk_run -t2 -c"$CONNECTIONS" -d"$DURATION" -s "$work/post.lua" "http://127.0.0.1:$http/bench/proxied-auth")
printf 'publish auth, %s connections, %s each, right key\n' "$CONNECTIONS" "$DURATION"
printf '  %-34s %10.0f req/s   p99 %7.2f ms\n' "module (streamedge_publish_auth)" "$m_rps" "$m_p99"
printf '  %-34s %10.0f req/s   p99 %7.2f ms\n' "nginx -> python auth service" "$p_rps" "$p_p99"
awk -v m="$m_rps" -v p="$p_rps" 'BEGIN { printf "  ratio module/service: %.1fx\n", m / p }'

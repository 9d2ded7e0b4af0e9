# Shared by the bench scripts: a streamedge server from the built binaries in a temp folder.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$root/target/release/streamedge
module=$root/target/release/libngx_http_streamedge_module.so
[ -x "$bin" ] && [ -f "$module" ] || { echo "build first: make build" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is missing: make deps" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

work=$(mktemp -d /tmp/streamedge-bench.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; if [ -n "${KEEP:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi; }
trap cleanup EXIT

# Starts `streamedge run` on free ports with 2 workers; sets http, internal (the loopback
# server of nginx-rtmp's callbacks), rtmp, cfg.
start_server() {
  http=$(free_port)
  internal=$(free_port)
  rtmp=$(free_port)
  "$bin" init --dir "$work/srv" --bind 127.0.0.1 --host 127.0.0.1 --worker-processes 2 \
    --http-port "$http" --https-port "$(free_port)" --rtmp-port "$rtmp" \
    --internal-port "$internal" --icecast-port "$(free_port)" --module "$module" >/dev/null
  cfg=$work/srv/streamedge.toml
  "$bin" --config "$cfg" run >"$work/run.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$internal/api/streams" >/dev/null && return 0; sleep 0.1; done
  cat "$work/run.log" >&2; return 1
}

# wrk summary: "requests/s p99_ms"
wrk_run() {
  local out
  out=$(wrk --latency "$@")
  local rps p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' <<<"$out")
  grep -q "Non-2xx" <<<"$out" && { echo "wrk saw errors:" >&2; echo "$out" >&2; return 1; }
  echo "$rps $p99"
}

# Starts a bare nginx (2 workers) with the module and the given http block; sets port.
start_nginx() {
  port=$(free_port)
  mkdir -p "$work/ngx/logs"
  local user=""
  # As streamedge's own configuration does: workers as www-data when started as root.
  [ "$(id -u)" -eq 0 ] && user="user www-data;"
  cat >"$work/ngx/nginx.conf" <<CONF
load_module $module;
$user
worker_processes 2;
pid $work/ngx/nginx.pid;
error_log $work/ngx/logs/error.log notice;
worker_rlimit_nofile ${NOFILE:-2048};
events { worker_connections ${WORKER_CONNECTIONS:-1024}; }
http {
  access_log off;
  client_body_temp_path $work/ngx/body;
  proxy_temp_path $work/ngx/proxy;
  fastcgi_temp_path $work/ngx/fastcgi;
  uwsgi_temp_path $work/ngx/uwsgi;
  scgi_temp_path $work/ngx/scgi;
  ${1//\{port\}/$port}
}
CONF
  nginx -p "$work/ngx" -c "$work/ngx/nginx.conf"
  pids+=("$(cat "$work/ngx/nginx.pid")")
  for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/" >/dev/null && return 0; sleep 0.1; done
  cat "$work/ngx/logs/error.log" >&2; return 1
}

# pebble_tls DIR: a CA (ca.pem) and pebble's listener certificate for 127.0.0.1 and
# localhost (cert.pem, key.pem), for a day.
pebble_tls() {
  local d=$1; mkdir -p "$d"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=bench-ca \
    -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
    -keyout "$d/key.pem" -out "$d/req.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$d/ext"
  openssl x509 -req -in "$d/req.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 1 \
    -extfile "$d/ext" -out "$d/cert.pem" 2>/dev/null
}

#!/usr/bin/env bash
# Zone memory per tracked key: streamedge_limit_zone against limit_req_zone (see
# limit_memory.py for the method).
source "$(dirname "$0")/lib.sh"
start_nginx '
  limit_req_zone $arg_k zone=lr:1m rate=1r/m;
  streamedge_limit_zone $arg_k zone=se:1m rate=1r/m;
  limit_req_status 429;
  server {
    listen 127.0.0.1:{port};
    keepalive_requests 1000000;
    location = / { return 200; }
    location = /limit_req { limit_req zone=lr; empty_gif; }
    location = /streamedge { streamedge_limit zone=se; empty_gif; }
  }'
echo "zone memory per key, 1m zones, keys of 9 to 16 bytes"
python3 "$root/bench/limit_memory.py" "$port"

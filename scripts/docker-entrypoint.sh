#!/bin/sh
# The image's entry point: a configuration in /data on first start (domain from
# STREAMEDGE_DOMAIN if set), then the server in the foreground.
set -eu
if [ ! -f /data/streamedge.toml ]; then
  set -- --dir /data --module /usr/lib/nginx/modules/ngx_http_streamedge_module.so
  [ -n "${STREAMEDGE_DOMAIN:-}" ] && set -- "$@" --domain "$STREAMEDGE_DOMAIN"
  [ -n "${STREAMEDGE_HOST:-}" ] && set -- "$@" --host "$STREAMEDGE_HOST"
  streamedge init "$@"
  streamedge keys add main
fi
exec streamedge run --config /data/streamedge.toml

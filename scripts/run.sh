#!/usr/bin/env bash
# `make run`: a working server in RUN_DIR (default .run/) on the router-mapped ports, a first
# stream key printed once, then the server in the foreground until Ctrl-C.
set -euo pipefail

run_dir=${1:-.run}
bin=target/release/streamedge
module=target/release/libngx_http_streamedge_module.so
config="$run_dir/streamedge.toml"

if [ ! -f "$config" ]; then
  "$bin" init --dir "$run_dir" --module "$module"
fi

if [ -z "$("$bin" --config "$config" keys list --json | tr -d '[:space:][]')" ]; then
  echo
  "$bin" --config "$config" keys add main
  echo
else
  echo
  echo "Stream keys in $config (secrets are shown only when made):"
  "$bin" --config "$config" keys list
  echo "A new secret for a name: $bin --config $config keys rotate NAME"
  echo
fi

echo "Starting streamedge (Ctrl-C stops it)."
exec "$bin" --config "$config" run

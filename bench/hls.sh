#!/usr/bin/env bash
# HLS delivery: requests/s through the module's routes (streamedge_hls) against a plain nginx
# location (alias, same headers) serving the same files, in the same nginx, same run: a ~1 MB
# live segment and a live playlist (public), then a private library segment and a private
# playlist through their signed paths (/s/TOKEN/vod/..., token checked, the file served as
# it is). "guarded" is the plain
# location plus the symlink refusal the module applies (disable_symlinks), to show what that
# costs apart from the module's own work. No limits anywhere.
source "$(dirname "$0")/lib.sh"
DURATION=${DURATION:-8s}

# A data directory with keys and signing secrets, made by streamedge itself.
"$bin" init --dir "$work/cfg" --bind 127.0.0.1 --host 127.0.0.1 --module "$module" >/dev/null
cfg=$work/cfg/streamedge.toml
data=$work/cfg/data
key=$("$bin" --config "$cfg" keys add alice --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["stream_key"].split("?key=")[1])')
mkdir -p "$data/live/alice" "$data/vod/priv"
head -c 1048576 /dev/urandom >"$data/live/alice/0.ts"
cp "$data/live/alice/0.ts" "$data/vod/priv/seg_0.m4s"
{
  echo "#EXTM3U"; echo "#EXT-X-VERSION:3"; echo "#EXT-X-MEDIA-SEQUENCE:0"; echo "#EXT-X-TARGETDURATION:2"
  for i in 0 1 2 3 4 5; do echo "#EXTINF:2.000,"; echo "$i.ts"; done
} >"$data/live/alice/index.m3u8"
{
  echo "#EXTM3U"; echo "#EXT-X-VERSION:7"; echo "#EXT-X-PLAYLIST-TYPE:VOD"; echo "#EXT-X-TARGETDURATION:2"
  echo '#EXT-X-MAP:URI="init.mp4"'
  for i in $(seq 0 29); do echo "#EXTINF:2.000,"; echo "seg_$i.m4s"; done
  echo "#EXT-X-ENDLIST"
} >"$data/vod/priv/index.m3u8"
echo '{"id":"priv","private":true}' >"$data/vod/priv/meta.json"
token_path() { "$bin" --config "$cfg" sign "$1" --ttl 1h --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["path"])'; }
seg_signed=$(token_path /vod/priv/seg_0.m4s)
list_signed=$(token_path /vod/priv/index.m3u8)

start_nginx "
  streamedge_data $data;
  streamedge_hls_secrets $data/sign.keys;
  server {
    listen 127.0.0.1:{port};
    sendfile on;
    location = / { return 200; }
    location = /rtmp/auth { streamedge_publish_auth; }
    location /live/ { streamedge_hls live; }
    location /vod/ { streamedge_hls vod; }
    location /s/ { streamedge_hls signed; }
    # Plain nginx, with the headers the module sets, so both answer the same bytes.
    location /plain/ {
      alias $data/;
      types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; video/mp4 m4s; }
      add_header Access-Control-Allow-Origin *;
      add_header Cache-Control no-cache;
    }
    # The same, also refusing symlinks below live/ and vod/, as the module does.
    location /guarded/live/ {
      alias $data/live/;
      disable_symlinks on from=$data/live;
      types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; video/mp4 m4s; }
      add_header Access-Control-Allow-Origin *;
      add_header Cache-Control no-cache;
    }
    location /guarded/vod/ {
      alias $data/vod/;
      disable_symlinks on from=$data/vod;
      types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; video/mp4 m4s; }
      add_header Access-Control-Allow-Origin *;
      add_header Cache-Control no-cache;
    }
  }"
# alice goes live the way nginx-rtmp reports it.
curl -fs -X POST --data "addr=127.0.0.1&clientid=1&call=publish&name=alice&key=$key" "http://127.0.0.1:$port/rtmp/auth" >/dev/null || { cat "$work/ngx/logs/error.log"; exit 1; }
# Then writes its playlist, as nginx-rtmp does after the publish: the module serves a live
# playlist only when it belongs to the current broadcast.
sleep 0.1; touch "$data/live/alice/index.m3u8"

rps() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port$2")
  [ "$code" = 200 ] || { echo "$2 answered $code" >&2; exit 1; }
  read -r r _ < <(wrk_run -t2 -c"$1" -d"$DURATION" "http://127.0.0.1:$port$2")
  echo "$r"
}
row() { # label connections module-path plain-path
  local m p g
  m=$(rps "$2" "$3"); p=$(rps "$2" "$4"); g=$(rps "$2" "${4/\/plain\//\/guarded\/}")
  printf '  %-36s %9.0f %9.0f %9.0f   %.3f   %.3f\n' "$1" "$m" "$p" "$g" \
    "$(awk -v a="$m" -v b="$p" 'BEGIN { print a / b }')" "$(awk -v a="$m" -v b="$g" 'BEGIN { print a / b }')"
}
echo "HLS routes against plain nginx, $DURATION each, requests/s"
printf '  %-36s %9s %9s %9s   %s   %s\n' "" module plain guarded "module/plain" "module/guarded"
row "live segment (1 MB), 8 conn" 8 /live/alice/0.ts /plain/live/alice/0.ts
row "live playlist, 32 conn" 32 /live/alice/index.m3u8 /plain/live/alice/index.m3u8
row "private segment, signed path, 8 conn" 8 "$seg_signed" /plain/vod/priv/seg_0.m4s
row "private playlist, signed path, 32 conn" 32 "$list_signed" /plain/vod/priv/index.m3u8

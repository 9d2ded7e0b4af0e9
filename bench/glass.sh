#!/usr/bin/env bash
# Glass-to-glass delay of a live stream, watched on the web page with hls.js in Chromium.
# ffmpeg publishes 720p30 whose frames carry their own time (bench/glass.mjs explains the
# code); the page plays /live/NAME/ (the ladder's master playlist, or the source alone with
# live.transcode = "off") and reads the time back off the picture at its live edge.
# GOP=seconds between the publisher's keyframes (OBS: "Keyframe Interval"; default 1, what
# docs/obs.md asks for; 2 is what most services ask for). TRANSCODE=off: the single rendition.
source "$(dirname "$0")/lib.sh"
GOP=${GOP:-1} VIEWERS=${VIEWERS:-4} MEASURE_SECONDS=${MEASURE_SECONDS:-10}
SECS=$((VIEWERS * (MEASURE_SECONDS + ${SETTLE_SECONDS:-6} + 6) + 20))
[ -d "$root/web/node_modules/playwright-core" ] || { echo "make deps first (playwright-core)" >&2; exit 1; }

start_server
if [ "${TRANSCODE:-on}" = off ]; then
  sed -i 's/^transcode = .*/transcode = "off"/' "$cfg"
  kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true
  "$bin" --config "$cfg" run >"$work/run.log" 2>&1 &
  pids[0]=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$internal/api/streams" >/dev/null && break; sleep 0.1; done
fi
key=$("$bin" --config "$cfg" keys add cam --json | python3 -c 'import json,sys; v=json.load(sys.stdin); print(v["server_url"] + "/" + v["stream_key"])')

# The clock: a 16x1 picture of the frame time's bits, blown up to blocks over the picture.
bits="color=c=black:size=16x1:rate=30,format=gray,geq=lum='255*mod(floor(floor(T*10+0.001)/pow(2\,X))\,2)',scale=1280:80:flags=neighbor,format=yuv420p[bits];testsrc2=size=1280x720:rate=30[bg];[bg][bits]overlay=0:0"
t0=$(date +%s%3N)
ffmpeg -hide_banner -nostdin -loglevel error -re -f lavfi -i "$bits" \
  -f lavfi -i "sine=frequency=440:sample_rate=48000" -t "$SECS" -c:v libx264 -preset veryfast \
  -tune zerolatency -g $((GOP * 30)) -b:v 3M -pix_fmt yuv420p -c:a aac -b:a 128k -f flv "$key" &
pids+=($!)
until curl -fs "http://127.0.0.1:$http/api/streams" | grep -q '"live":true'; do sleep 0.1; done
result=$(cd "$root/web" && BASE="http://127.0.0.1:$http" PLAY=/live/cam/ T0="$t0" \
  SECONDS_MEASURED=$MEASURE_SECONDS VIEWERS=$VIEWERS node "$root/bench/glass.mjs")
echo "$result"
python3 - "$result" "$GOP" "${TRANSCODE:-on}" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
if r.get("error"):
    sys.exit(f"glass: {r['error']}")
viewers = " ".join(f"{v:.2f}" for v in r["viewers"])
print(f"glass to glass (GOP {sys.argv[2]} s, transcode {sys.argv[3]}): median {r['delay_s']:.2f} s "
      f"(viewers {viewers}; min {r['delay_min_s']:.2f}, max {r['delay_max_s']:.2f}, {r['samples']} frames), "
      f"hls.js latency {r['hls_latency_s']:.2f} s, heights {r['heights']}, stalls {r['stalls']} (goal < 5 s)")
PY

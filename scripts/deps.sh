#!/usr/bin/env bash
# Installs what streamedge needs on Debian bookworm, and only what is missing:
#   scripts/deps.sh run     what building and running a server needs (`make deps`, and so
#                           `make build` and `make run`)
#   scripts/deps.sh test    that, plus what the tests run (`make test`)
#   scripts/deps.sh bench   that, plus the benchmarks' tools and peers (`make bench`)
set -euo pipefail

what=${1:-run}
packages=(
  # nginx, its source tree for building the module, and the RTMP module
  nginx nginx-dev libnginx-mod-rtmp
  # what bindgen and nginx's configure need
  clang libclang-dev libpcre3-dev libssl-dev zlib1g-dev pkg-config make
  # media; the font of the restreams' "be right back" slate
  ffmpeg fonts-dejavu-core
  # openssl for inspecting certificates, curl for checks
  openssl ca-certificates curl
  # the yt-dlp virtual environment
  python3 python3-venv
)
case "$what" in
  run) ;;
  # a real ACME server; the web player's browser test; ip for the tests' own namespaces;
  # nginx's stream module: the RTMPS destination of the restream tests
  test) packages+=(pebble chromium iproute2 libnginx-mod-stream) ;;
  # benchmarks, and the peers they compare against (jq: the certbot hooks of bench/dns01.sh)
  bench) packages+=(wrk hyperfine time certbot lego node-ws jq) ;;
  *) echo "usage: scripts/deps.sh run|test|bench" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

sudo=()
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then
  sudo=(sudo)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "streamedge: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ] && [ ${#sudo[@]} -eq 0 ]; then
    echo "streamedge: run as root or install sudo to install: ${missing[*]}" >&2; exit 1
  fi
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # Debian's nginx package enables and starts nginx.service, with its default site on port
  # 80. streamedge runs nginx itself, so when nginx was installed just now, that service is
  # put back to how it was before: not running, not enabled.
  if [[ " ${missing[*]} " == *" nginx "* ]] && [ -d /run/systemd/system ]; then
    "${sudo[@]}" systemctl disable --now nginx.service >/dev/null 2>&1 || true
    echo "streamedge: Debian's nginx package enabled nginx.service (its default site on port 80);"
    echo "streamedge: streamedge runs its own nginx, so that service was stopped and disabled again"
    echo "streamedge: (\`systemctl enable --now nginx\` brings it back if you want it)."
  fi
fi

# yt-dlp: the PyPI release (Debian's is years behind the sites it reads), in the project's
# own virtual environment, made with Debian's Python so it does not depend on the caller's.
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${STREAMEDGE_VENV:-$root/.venv}"
ytdlp_version="$(cat "$root/scripts/yt-dlp.version")"
if [ "$("$venv/bin/yt-dlp" --version 2>/dev/null)" != "$ytdlp_version" ]; then
  echo "streamedge: installing yt-dlp $ytdlp_version into $venv"
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "yt-dlp==$ytdlp_version"
fi

# The web player's one library (hls.js) and the browser driver of its test, from npm.
if ! command -v npm >/dev/null 2>&1; then
  echo "streamedge: installing nodejs and npm"
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends nodejs npm
fi
# hls.js for the player; the browser test's driver (a devDependency) only for `make test`.
npm_stale() {
  [ ! -f "$root/web/node_modules/.package-lock.json" ] || [ "$root/web/package-lock.json" -nt "$root/web/node_modules/.package-lock.json" ]
}
if [ "$what" = test ]; then
  if npm_stale || [ ! -d "$root/web/node_modules/playwright-core" ]; then
    echo "streamedge: installing the web player's npm packages and its test driver"
    (cd "$root/web" && npm ci --no-audit --no-fund --loglevel=error)
  fi
elif npm_stale; then
  echo "streamedge: installing the web player's npm packages"
  (cd "$root/web" && npm ci --omit=dev --no-audit --no-fund --loglevel=error)
fi

if ! command -v cargo >/dev/null 2>&1; then
  cat >&2 <<'MSG'
streamedge: cargo was not found. Debian bookworm's rustc is too old for this project;
install a current toolchain with rustup (https://rustup.rs), then run make again.
MSG
  exit 1
fi

if [ "$what" = test ]; then
  # A real S3 server for the library-in-a-bucket tests (it checks signatures, multipart
  # and ranges); built from crates.io once (about 9 minutes on 2 cores) into cargo's bin.
  s3s_version="$(cat "$root/scripts/s3s-fs.version")"
  cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
  if [ "$("$cargo_bin/s3s-fs" --version 2>/dev/null | awk '{print $2}')" != "$s3s_version" ]; then
    echo "streamedge: building s3s-fs $s3s_version for the tests (once; about 9 minutes)"
    cargo install --quiet --locked --jobs "$(nproc)" s3s-fs --version "$s3s_version" --features binary
  fi
fi

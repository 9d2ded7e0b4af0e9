#!/usr/bin/env bash
# Installs what streamedge needs on Debian bookworm, and only what is missing.
# Called by `make deps`, and so by `make build`, `make run` and `make test`.
set -euo pipefail

packages=(
  # nginx, its source tree for building the module, and the RTMP module
  nginx nginx-dev libnginx-mod-rtmp
  # what bindgen and nginx's configure need
  clang libclang-dev libpcre3-dev libssl-dev zlib1g-dev pkg-config make
  # media
  ffmpeg
  # certificates: a real ACME server for the tests, openssl for inspecting certificates
  pebble openssl ca-certificates curl
  # the yt-dlp virtual environment
  python3 python3-venv
  # benchmarks, and the peers they compare against
  wrk hyperfine time certbot lego
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "streamedge: installing ${missing[*]}"
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "streamedge: run as root or install sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
  fi
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  cat >&2 <<'MSG'
streamedge: cargo was not found. Debian bookworm's rustc is too old for this project;
install a current toolchain with rustup (https://rustup.rs), then run make again.
MSG
  exit 1
fi

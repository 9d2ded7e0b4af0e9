#!/usr/bin/env bash
# `make install` / `make uninstall`: streamedge on this host, beside Debian's nginx.
#   /usr/local/bin/streamedge                                the sidecar and command line
#   /usr/lib/nginx/modules/ngx_http_streamedge_module.so    the nginx module
#   /usr/share/streamedge/web/                               the web player
#   /opt/streamedge/venv/                                    yt-dlp (PyPI) in its own venv
#   /etc/systemd/system/streamedge.service                   `streamedge run` as a service
#   /etc/streamedge/streamedge.toml, /var/lib/streamedge/    configuration and data (kept by
#                                                            uninstall: they hold your keys
#                                                            and library)
# DESTDIR stages the files elsewhere (for packaging); then no configuration is written and
# no service is started.
set -euo pipefail
action=${1:?install or uninstall}
root="$(cd "$(dirname "$0")/.." && pwd)"
d=${DESTDIR:-}
bin=$d/usr/local/bin/streamedge
module=$d/usr/lib/nginx/modules/ngx_http_streamedge_module.so
web=$d/usr/share/streamedge/web
venv=$d/opt/streamedge/venv
unit=$d/etc/systemd/system/streamedge.service
doc=$d/usr/share/doc/streamedge
live_system() { [ -z "$d" ] && [ -d /run/systemd/system ]; }

case "$action" in
install)
  install -D -m 755 "$root/target/release/streamedge" "$bin"
  install -D -m 644 "$root/target/release/libngx_http_streamedge_module.so" "$module"
  install -d -m 755 "$web"
  install -m 644 "$root"/target/release/web/* "$web/"
  install -D -m 644 "$root/packaging/streamedge.service" "$unit"
  install -D -m 644 "$root/README.md" "$doc/README.md"
  cp -r "$root/docs" "$doc/"
  if [ "${SKIP_VENV:-0}" != 1 ]; then
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "yt-dlp==$(cat "$root/scripts/yt-dlp.version")"
  fi
  if [ -z "$d" ] && [ ! -f /etc/streamedge/streamedge.toml ]; then
    /usr/local/bin/streamedge init --dir /etc/streamedge --data-dir /var/lib/streamedge \
      --nginx-prefix /var/lib/streamedge/nginx --module /usr/lib/nginx/modules/ngx_http_streamedge_module.so
    /usr/local/bin/streamedge --config /etc/streamedge/streamedge.toml keys add main
  fi
  if live_system; then
    systemctl daemon-reload
    systemctl enable --now streamedge.service
    echo "streamedge is running: systemctl status streamedge; configuration in /etc/streamedge"
  else
    echo "installed; start it with: streamedge run --config /etc/streamedge/streamedge.toml"
  fi
  ;;
uninstall)
  if live_system && systemctl list-unit-files streamedge.service >/dev/null 2>&1; then
    systemctl disable --now streamedge.service || true
  fi
  rm -f "$bin" "$module" "$unit"
  rm -rf "$web" "$venv" "$doc"
  rmdir "$d/usr/share/streamedge" "$d/opt/streamedge" 2>/dev/null || true
  if live_system; then systemctl daemon-reload; fi
  echo "removed streamedge; kept /etc/streamedge and /var/lib/streamedge (keys, certificates, library)"
  ;;
*) echo "usage: $0 install|uninstall" >&2; exit 2 ;;
esac

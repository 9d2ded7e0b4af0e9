# streamedge as an image: the same `make deps` and `make build` as on a host, on Debian
# bookworm so the module matches the nginx package it is loaded into. One volume holds the
# configuration, keys, certificates, live HLS output and the library.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# yt-dlp's virtual environment where the runtime image keeps it (the same path, since a venv
# names its own location).
ENV STREAMEDGE_VENV=/opt/streamedge/venv
RUN make deps && make build

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      nginx libnginx-mod-rtmp ffmpeg fonts-dejavu-core python3 ca-certificates openssl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /data --shell /usr/sbin/nologin streamedge
COPY --from=build /src/target/release/streamedge /usr/local/bin/streamedge
COPY --from=build /src/target/release/libngx_http_streamedge_module.so /usr/lib/nginx/modules/ngx_http_streamedge_module.so
COPY --from=build /src/target/release/web /usr/share/streamedge/web
COPY --from=build /opt/streamedge/venv /opt/streamedge/venv
COPY scripts/docker-entrypoint.sh /usr/local/bin/streamedge-entrypoint
RUN mkdir -p /data && chown streamedge:streamedge /data
# nginx listens on unprivileged ports, so nothing here needs root.
USER streamedge
VOLUME /data
# 8000: Icecast sources from DJ software (ports.icecast).
EXPOSE 8080 4433 1935 8000
ENV STREAMEDGE_CONFIG=/data/streamedge.toml
HEALTHCHECK --interval=30s --timeout=5s CMD ["streamedge", "status"]
ENTRYPOINT ["streamedge-entrypoint"]

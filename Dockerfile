# chargegate container image: the single executable on a small Debian base.
#   npm run build && podman build -t chargegate .       (or docker build; arm64: see README)
# BASE is a build argument so an image can be built from a local base where no registry
# is reachable (the tests use a debootstrap'd Debian 12). Any glibc >= 2.34 base with
# bash works; distroless cc has no bash for the health check.
ARG BASE=debian:bookworm-slim
FROM ${BASE}
# The executable for the image's CPU: dist/chargegate-linux-x64 or dist/chargegate-linux-arm64
# (with --platform linux/arm64).
ARG EXE=dist/chargegate-linux-x64
COPY ${EXE} /usr/bin/chargegate
RUN useradd --system --user-group --uid 10001 --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin chargegate \
 && install -d -o chargegate -g chargegate -m 0750 /data
# /data holds the database and the unpack cache of the embedded addon and workers (it
# must allow executables, which a volume does).
ENV DB_PATH=/data/chargegate.db \
    CHARGEGATE_CACHE_DIR=/data/cache \
    HOST=0.0.0.0 \
    PORT=8080 \
    SHUTDOWN_TIMEOUT_MS=10000
VOLUME /data
WORKDIR /data
USER chargegate:chargegate
EXPOSE 8080
# SIGTERM drains (up to SHUTDOWN_TIMEOUT_MS, then leases are handed back) and exits 0:
# give the container a stop grace above it (compose.yaml: 30 s; docker stop -t 30).
STOPSIGNAL SIGTERM
# Ready = serving and not stopping. No curl in the image: bash's /dev/tcp does the GET.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${PORT:-8080} && printf 'GET /health/ready HTTP/1.0\\r\\n\\r\\n' >&3 && read -r _ code _ <&3 && [ \"$code\" = 200 ]"]
ENTRYPOINT ["/usr/bin/chargegate"]
CMD ["serve"]

# syntax=docker/dockerfile:1
#
# One image, several roles. The same image runs:
#   events-host gateway | events-host collector | events-host all (default)
#   events-reporter
#   events-publisher                      (the simulator)
#   events-host plugin check <file.wasm>  (plugin validation)
# Plugins (WebAssembly components) live in /plugins (PLUGINS_DIR).
#
# Build:  docker build -t events-pipeline:local .
# Stages: chef (toolchain + cargo-chef) -> planner (dependency recipe)
#         -> deps (dependencies only: cached until Cargo.toml/Cargo.lock change)
#         -> builder (the workspace binaries) ; plugins (wasm32-wasip2) ; runtime.

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# --- toolchain ----------------------------------------------------------------
FROM ${RUST_IMAGE} AS chef
# wasmtime 48 needs rustc >= 1.95; plugins need the wasm32-wasip2 target
# (scripts/build-plugins.sh picks rustup's target when it is installed).
RUN rustup target add wasm32-wasip2 \
    && cargo install cargo-chef --locked \
    && rm -rf "${CARGO_HOME:-/usr/local/cargo}/registry/src"
WORKDIR /src
# sqlx macros must never try to reach a database at build time.
ENV SQLX_OFFLINE=true \
    CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0

# --- dependency recipe (changes only when manifests / the lock file change) ---
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# --- dependencies only: this layer is reused across source-only changes -------
FROM chef AS deps
COPY --from=planner /src/recipe.json recipe.json
# (the whole workspace: cargo-chef takes at most one -p; the recipe carries
# Cargo.lock, and the real build below is --locked)
RUN cargo chef cook --release --recipe-path recipe.json

# --- the binaries --------------------------------------------------------------
FROM deps AS builder
COPY . .
RUN cargo build --release --locked \
        -p events-host -p events-reporter -p events-publisher \
    && mkdir -p /out \
    && cp target/release/events-host target/release/events-reporter \
          target/release/events-publisher /out/

# --- the plugins (own workspace, own target dir; built in parallel with builder
# under BuildKit) -----------------------------------------------------------------
FROM chef AS plugins
COPY . .
RUN bash scripts/build-plugins.sh \
    && ls -l dist/plugins/*.wasm

# --- runtime ---------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 events \
    && useradd --system --uid 10001 --gid events --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin events \
    && install -d -o events -g events -m 0700 /var/cache/events-host
COPY --from=builder /out/ /usr/local/bin/
COPY --from=plugins /src/dist/plugins/ /plugins/
# The compiled-plugin cache must be private to the service user.
ENV PLUGINS_DIR=/plugins \
    PLUGINS_CACHE_DIR=/var/cache/events-host/plugins \
    LOG_LEVEL=info
USER events:events
WORKDIR /tmp
# gateway 3000, facebook collector 3001, tiktok collector 3002, reporter 3003
EXPOSE 3000 3001 3002 3003
STOPSIGNAL SIGTERM
# Every server role serves /health/ready on METRICS_PORT when set, else on PORT.
# The simulator role (events-publisher) serves nothing: compose overrides this
# check for it with a process check.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD curl -fsS -o /dev/null "http://127.0.0.1:${METRICS_PORT:-${PORT:-3000}}/health/ready" || exit 1
CMD ["events-host", "all"]

#!/usr/bin/env bash
# The project's test command (README "Test"; .ci/run calls exactly this).
#
#   scripts/test.sh
#
# Needs PostgreSQL on 127.0.0.1:5432 (trust) and NATS with JetStream on
# 127.0.0.1:4222 running (see README "Run natively"); builds the plugins,
# checks formatting and lints, then runs every test of both workspaces.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
export PLUGINS_TARGET_DIR="${PLUGINS_TARGET_DIR:-$CARGO_TARGET_DIR/plugins}"
# Tests of the deployment start the real binaries from here.
export EVENTS_BIN_DIR="${EVENTS_BIN_DIR:-$CARGO_TARGET_DIR/debug}"
step() { printf '\n==> %s\n' "$*" >&2; }

step "plugins: build the WebAssembly components"
scripts/build-plugins.sh

step "format"
cargo fmt --all -- --check
(cd plugins && cargo fmt --all -- --check)

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings
CARGO_TARGET_DIR="$CARGO_TARGET_DIR/plugins-native" \
  cargo clippy --manifest-path plugins/Cargo.toml --workspace --all-targets --locked -- -D warnings

# Both test runs are logged so the script can end with one total line.
LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT

step "plugins: native unit tests"
CARGO_TARGET_DIR="$CARGO_TARGET_DIR/plugins-native" \
  cargo test --manifest-path plugins/Cargo.toml --workspace --locked 2>&1 | tee -a "$LOG"

step "workspace: build binaries, then every test"
cargo build --workspace --bins --locked
DEPLOY_E2E_REQUIRED=1 cargo test --workspace --locked 2>&1 | tee -a "$LOG"

# cargo's last line is often an empty doc-test run; say what ran in total.
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "\ntests: %d passed, %d failed, %d skipped\n", p, f, i }' "$LOG"

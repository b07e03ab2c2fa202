#!/usr/bin/env bash
# The whole pipeline natively, in the foreground (after `cargo build --release --bins`):
#
#   scripts/dev.sh [--simulator]
#
# Starts the gateway (`events-host gateway`), one collector for every source
# (`events-host collector`, COLLECTOR_TYPE=all unless set) and the reporter
# (`events-reporter`); with --simulator also `events-publisher`, once the
# gateway is ready. Every output line is prefixed with its process:
# `[gateway] ...`. Ctrl-C (SIGINT) or SIGTERM stops them all (SIGTERM to each,
# then waits; a second Ctrl-C kills). When one exits on its own, the others
# are stopped and the script exits 1 (except the simulator finishing a
# PUBLISHER_COUNT / PUBLISHER_DURATION_SECS run with status 0). Started with
# `&` by another script, bash ignores SIGINT for it: stop it with SIGTERM.
#
# Needs PostgreSQL and NATS with JetStream (README "Run natively"). Settings:
#   EVENTS_BIN_DIR   binaries (default: ${CARGO_TARGET_DIR:-<repo>/target}/release)
#   GATEWAY_PORT     3000 (the gateway's PORT; the simulator posts here)
#   COLLECTOR_PORT   3001
#   REPORTER_PORT    3003
#   PLUGINS_DIR      <repo>/dist/plugins (scripts/build-plugins.sh builds them)
#   DEV_STOP_TIMEOUT_SECS  40: how long stopping may take before SIGKILL
# Every other variable you export reaches every process unchanged
# (DATABASE_URL, NATS_URL, JETSTREAM_STREAM, LOG_LEVEL, ... see README
# "Configuration"); NATS_NAME, when set, gets -gateway / -collector appended.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SUPERVISE_TAG=dev
# say, die, require_binaries, require_plugins, start, first_exited, http_ready, stop_pids, reap_all
source "$REPO/scripts/lib/supervise.sh"

SIMULATOR=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --simulator) SIMULATOR=1; shift ;;
    -h|--help) usage_from_header "$0"; exit 0 ;;
    *) die "unknown argument: $1 (usage: $0 [--simulator])" ;;
  esac
done
require_bash_4_4

require_binaries "$SIMULATOR"

GATEWAY_PORT="${GATEWAY_PORT:-3000}"
COLLECTOR_PORT="${COLLECTOR_PORT:-3001}"
REPORTER_PORT="${REPORTER_PORT:-3003}"
STOP_TIMEOUT="${DEV_STOP_TIMEOUT_SECS:-40}"
export PLUGINS_DIR="${PLUGINS_DIR:-$REPO/dist/plugins}"
export COLLECTOR_TYPE="${COLLECTOR_TYPE:-all}"
require_plugins

# stop_all: SIGTERM to every process still running, wait for all (SIGKILL
# after STOP_TIMEOUT, or on a second Ctrl-C), then for their output. Fails
# when one had to be killed.
stop_all() {
  local killed=0
  stopping
  stop_pids TERM "$STOP_TIMEOUT" "${PIDS[@]}" || killed=1
  reap_all
  return "$killed"
}

REQUESTED=""
trap 'REQUESTED=SIGINT' INT
trap 'REQUESTED=SIGTERM' TERM

# An empty NATS_NAME counts as unset: the host's default name applies.
start gateway env PORT="$GATEWAY_PORT" NATS_NAME="${NATS_NAME:+$NATS_NAME-gateway}" \
  "$BIN_DIR/events-host" gateway
start collector env PORT="$COLLECTOR_PORT" NATS_NAME="${NATS_NAME:+$NATS_NAME-collector}" \
  "$BIN_DIR/events-host" collector
start reporter env PORT="$REPORTER_PORT" "$BIN_DIR/events-reporter"
SIMULATOR_PENDING=$SIMULATOR

status=0
while :; do
  if [[ -n "$REQUESTED" ]]; then
    say "$REQUESTED: stopping"
    break
  fi
  if i="$(first_exited)"; then
    wait "${PIDS[$i]}"
    code=$?
    if [[ "${NAMES[$i]}" == simulator && $code == 0 ]]; then
      say "simulator finished; the others keep running"
      unset 'NAMES[i]' 'PIDS[i]'
      continue
    fi
    say "${NAMES[$i]} exited on its own (status $code): stopping the others"
    status=1
    break
  fi
  if ((SIMULATOR_PENDING)) && http_ready "$GATEWAY_PORT"; then
    SIMULATOR_PENDING=0
    start simulator env EVENT_ENDPOINT="${EVENT_ENDPOINT:-http://127.0.0.1:$GATEWAY_PORT/webhook}" \
      "$BIN_DIR/events-publisher"
  fi
  sleep 0.2 & wait $!
done
stop_all || status=1
say "stopped"
exit "$status"

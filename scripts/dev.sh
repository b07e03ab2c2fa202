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
die() { echo "[dev] error: $*" >&2; exit 2; }
say() { echo "[dev] $*" >&2; }

SIMULATOR=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --simulator) SIMULATOR=1; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (usage: $0 [--simulator])" ;;
  esac
done
if ((BASH_VERSINFO[0] < 4 || (BASH_VERSINFO[0] == 4 && BASH_VERSINFO[1] < 4))); then
  die "needs bash 4.4 or newer (this is $BASH_VERSION)"
fi

BIN_DIR="${EVENTS_BIN_DIR:-${CARGO_TARGET_DIR:-$REPO/target}/release}"
BINS=(events-host events-reporter)
((SIMULATOR)) && BINS+=(events-publisher)
for b in "${BINS[@]}"; do
  [[ -x "$BIN_DIR/$b" ]] || die "$BIN_DIR/$b not found: run cargo build --release --bins first (or set EVENTS_BIN_DIR)"
done

GATEWAY_PORT="${GATEWAY_PORT:-3000}"
COLLECTOR_PORT="${COLLECTOR_PORT:-3001}"
REPORTER_PORT="${REPORTER_PORT:-3003}"
STOP_TIMEOUT="${DEV_STOP_TIMEOUT_SECS:-40}"
export PLUGINS_DIR="${PLUGINS_DIR:-$REPO/dist/plugins}"
export COLLECTOR_TYPE="${COLLECTOR_TYPE:-all}"
[[ -d "$PLUGINS_DIR" ]] || die "no plugins directory $PLUGINS_DIR: run scripts/build-plugins.sh first (or set PLUGINS_DIR)"
compgen -G "$PLUGINS_DIR/*.wasm" >/dev/null ||
  say "warning: no *.wasm in $PLUGINS_DIR (run scripts/build-plugins.sh): nothing will be collected"

NAMES=() PIDS=() PREFIXERS=()

# Copies stdin to stdout, each line prefixed with [$1]. It ignores SIGINT and
# SIGTERM (a terminal's Ctrl-C reaches the whole process group) and ends when
# its process has exited, so the shutdown logs are not lost.
prefix() {
  trap '' INT TERM
  local line
  while IFS= read -r line || [[ -n "$line" ]]; do
    printf '[%s] %s\n' "$1" "$line"
  done
}

# start NAME COMMAND...: runs COMMAND in the background, output prefixed.
start() {
  local name="$1" fd
  shift
  exec {fd}> >(prefix "$name")
  PREFIXERS+=("$!")
  "$@" >&"$fd" 2>&1 </dev/null &
  NAMES+=("$name") PIDS+=("$!")
  exec {fd}>&-
  say "started $name (pid $!)"
}

# Index (in PIDS) of the first process that has exited, if any.
first_exited() {
  local i
  for i in "${!PIDS[@]}"; do
    kill -0 "${PIDS[$i]}" 2>/dev/null || { echo "$i"; return 0; }
  done
  return 1
}

# gateway_ready: does the gateway's /health/ready answer 200? (bash only)
gateway_ready() {
  local status=""
  { exec {http}<>"/dev/tcp/127.0.0.1/$GATEWAY_PORT"; } 2>/dev/null || return 1
  printf 'GET /health/ready HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&"$http"
  IFS= read -r -t 5 status <&"$http"
  exec {http}>&-
  [[ "$status" == *" 200 "* ]]
}

# stop_all: SIGTERM to every process still running, wait for all (SIGKILL
# after STOP_TIMEOUT, or on a Ctrl-C 2 s or more after the first: one Ctrl-C
# may arrive twice, to the script and to its process group), then for their
# output. Fails when one had to be killed.
stop_all() {
  local force=0 killed=0 since=$SECONDS deadline=$((SECONDS + STOP_TIMEOUT)) alive pid
  trap '((SECONDS - since >= 2)) && force=1' INT TERM
  kill -TERM "${PIDS[@]}" 2>/dev/null
  while :; do
    alive=()
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
    ((${#alive[@]})) || break
    if ((force || SECONDS >= deadline)); then
      say "killing ${#alive[@]} process(es) still running"
      kill -KILL "${alive[@]}" 2>/dev/null
      killed=1
      break
    fi
    sleep 0.2
  done
  for pid in "${PIDS[@]}" "${PREFIXERS[@]}"; do wait "$pid" 2>/dev/null; done
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
  if ((SIMULATOR_PENDING)) && gateway_ready; then
    SIMULATOR_PENDING=0
    start simulator env EVENT_ENDPOINT="${EVENT_ENDPOINT:-http://127.0.0.1:$GATEWAY_PORT/webhook}" \
      "$BIN_DIR/events-publisher"
  fi
  sleep 0.2 & wait $!
done
stop_all || status=1
say "stopped"
exit "$status"

#!/usr/bin/env bash
# The ingest benchmark (bench/README.md): (a) bare and real-schema PostgreSQL
# COPY floors, (b) the full pipeline fed by events-publisher, (c) their ratio,
# (d) optionally the pipeline before/after against a baseline host.
# Numbers are printed and written to bench/results/, never asserted.
#
#   scripts/bench-ingest.sh                      # everything (~6 min)
#   scripts/bench-ingest.sh --phases copy,copyreal   # only the COPY floors
#   scripts/bench-ingest.sh --stream-secs 120 --skip-build
#   scripts/bench-ingest.sh --baseline-host-bin /tmp/old/events-host \
#       --baseline-plugins-dir /tmp/old/plugins  # before/after (~11 min)
#
# Needs: PostgreSQL (superuser, trust or password in --pg-url), cargo; for
# the pipeline phases also NATS with JetStream and dist/plugins/*.wasm
# (scripts/build-plugins.sh).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

usage() {
  cat <<'EOF'
usage: scripts/bench-ingest.sh [options]
  --phases LIST          copy,copyreal,jsfloor,stream,post50k,load (default: all)
  --stream-secs N        stream phase length, real-publisher-like traffic (60)
  --post50k-secs N       phase of 50,000-event POSTs (30)
  --post50k-interval-ms N  ms between them (2000 = the real mean 25k ev/s; 1000 = overload)
  --copy-events N        events per COPY run, bare and real-schema (300000)
  --copy-runs N          COPY runs of each floor, median reported (3)
  --load-count N         load phase: events in total (1000000)
  --load-rate N          load phase: events/s offered (40000)
  --load-concurrency N   load phase: POSTs in flight (4)
  --drain-timeout N      max seconds to wait for the pipeline to drain (600)
  --host-env NAME=VALUE  extra env for the host processes (repeatable)
  --seed N               generator seed (1)
  --pg-url URL           PostgreSQL server without database (postgres://postgres@127.0.0.1:5432)
  --nats-url URL         (nats://127.0.0.1:4222)
  --plugins-dir DIR      (dist/plugins)
  --baseline-host-bin PATH     before/after: run every pipeline phase also
                         with this events-host (first, fresh database/streams)
  --baseline-plugins-dir DIR   ... and these plugins (default: --plugins-dir);
                         either option alone turns before/after on
  --migrations-dir DIR   copyreal: migrations to apply (migrations)
  --out FILE             results JSON (bench/results/ingest-<UTC date>.json)
  --work-dir DIR         logs, ledgers, per-second samples (a new temp dir)
  --skip-build           use the existing release events-host/events-publisher
                         (ingest-bench itself is still built)
  --keep-work-dir        do not delete the work dir at the end
Env: CARGO_TARGET_DIR (default target/).
EOF
}

PG_URL=postgres://postgres@127.0.0.1:5432
NATS_URL=nats://127.0.0.1:4222
PLUGINS_DIR=$ROOT/dist/plugins
BASE_HOST_BIN=
BASE_PLUGINS_DIR=
PHASES=copy,copyreal,jsfloor,stream,post50k,load
OUT=$ROOT/bench/results/ingest-$(date -u +%Y-%m-%d).json
WORK_DIR=
SKIP_BUILD=0
KEEP_WORK=0
PASS=()
while (($#)); do
  case $1 in
    --phases)
      (($# >= 2)) || { echo "$1 needs a value" >&2; exit 2; }
      PHASES=$2; PASS+=("$1" "$2"); shift 2 ;;
    --stream-secs|--post50k-secs|--post50k-interval-ms|--copy-events|--copy-runs|--load-count|--load-rate|--load-concurrency|--host-env|--seed|--migrations-dir)
      (($# >= 2)) || { echo "$1 needs a value" >&2; exit 2; }
      PASS+=("$1" "$2"); shift 2 ;;
    --drain-timeout)
      (($# >= 2)) || { echo "$1 needs a value" >&2; exit 2; }
      PASS+=(--drain-timeout-secs "$2"); shift 2 ;;
    --pg-url) PG_URL=$2; shift 2 ;;
    --nats-url) NATS_URL=$2; shift 2 ;;
    --plugins-dir) PLUGINS_DIR=$(realpath "$2"); shift 2 ;;
    --baseline-host-bin)
      (($# >= 2)) || { echo "$1 needs a value" >&2; exit 2; }
      BASE_HOST_BIN=$(realpath "$2"); shift 2 ;;
    --baseline-plugins-dir)
      (($# >= 2)) || { echo "$1 needs a value" >&2; exit 2; }
      BASE_PLUGINS_DIR=$(realpath "$2"); shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --work-dir) WORK_DIR=$2; shift 2 ;;
    --skip-build) SKIP_BUILD=1; shift ;;
    --keep-work-dir) KEEP_WORK=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
done

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
HOST_BIN=$TARGET/release/events-host
PUB_BIN=$TARGET/release/events-publisher
BENCH_BIN=$TARGET/release/ingest-bench

# The floors need only ingest-bench; the pipeline phases need the host,
# the publisher and the plugins too.
PIPELINE=0
[[ ,$PHASES, =~ ,(stream|post50k|load), ]] && PIPELINE=1
BIN_ARGS=()
if ((PIPELINE)); then
  if ! compgen -G "$PLUGINS_DIR/*.wasm" >/dev/null; then
    echo "no plugins in $PLUGINS_DIR: run scripts/build-plugins.sh first" >&2
    exit 1
  fi
  BIN_ARGS+=(--host-bin "$HOST_BIN" --publisher-bin "$PUB_BIN" --plugins-dir "$PLUGINS_DIR")
  if [[ -n $BASE_HOST_BIN || -n $BASE_PLUGINS_DIR ]]; then
    if [[ -n $BASE_HOST_BIN ]]; then
      [[ -x $BASE_HOST_BIN ]] || { echo "--baseline-host-bin: $BASE_HOST_BIN is not executable" >&2; exit 1; }
      BIN_ARGS+=(--baseline-host-bin "$BASE_HOST_BIN")
    fi
    if [[ -n $BASE_PLUGINS_DIR ]]; then
      compgen -G "$BASE_PLUGINS_DIR/*.wasm" >/dev/null \
        || { echo "--baseline-plugins-dir: no *.wasm in $BASE_PLUGINS_DIR" >&2; exit 1; }
      BIN_ARGS+=(--baseline-plugins-dir "$BASE_PLUGINS_DIR")
    fi
  fi
elif [[ -n $BASE_HOST_BIN || -n $BASE_PLUGINS_DIR ]]; then
  echo "note: --baseline-* apply to the pipeline phases only (none selected)" >&2
fi

if ((SKIP_BUILD)) || ! ((PIPELINE)); then
  cargo build --release -p events-bench
else
  cargo build --release -p events-host -p events-publisher -p events-bench
fi
NEED=("$BENCH_BIN")
((PIPELINE)) && NEED+=("$HOST_BIN" "$PUB_BIN")
for b in "${NEED[@]}"; do
  [[ -x $b ]] || { echo "missing $b" >&2; exit 1; }
done

# Names of this run's databases (bench_ingest_<id>_*) and streams.
RUN_ID=r$$$(date +%s | tail -c 5)
if [[ -z $WORK_DIR ]]; then
  WORK_DIR=$(mktemp -d -t bench-ingest.XXXXXX)
else
  mkdir -p "$WORK_DIR"
  KEEP_WORK=1
fi
: >"$WORK_DIR/pids"
BENCH_PID=

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $BENCH_PID ]] && kill -0 "$BENCH_PID" 2>/dev/null; then
    kill -TERM "$BENCH_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$BENCH_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$BENCH_PID" 2>/dev/null || true
  fi
  # Every host/publisher process the helper started (normally already gone).
  while read -r pid; do
    [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null || true
  done <"$WORK_DIR/pids"
  "$BENCH_BIN" cleanup --run-id "$RUN_ID" --pg-url "$PG_URL" --nats-url "$NATS_URL" 2>&1 | grep -v '^$' || true
  if ((KEEP_WORK)); then
    echo "work dir (logs, ledgers, per-second samples): $WORK_DIR" >&2
  else
    rm -rf "$WORK_DIR"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "run $RUN_ID, work dir $WORK_DIR, loadavg $(cat /proc/loadavg)" >&2
"$BENCH_BIN" run \
  --run-id "$RUN_ID" --pg-url "$PG_URL" --nats-url "$NATS_URL" \
  ${BIN_ARGS[@]+"${BIN_ARGS[@]}"} \
  --work-dir "$WORK_DIR" --out "$OUT" ${PASS[@]+"${PASS[@]}"} &
BENCH_PID=$!
wait "$BENCH_PID"

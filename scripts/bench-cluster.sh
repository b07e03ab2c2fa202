#!/usr/bin/env bash
# The scale-out benchmark (README "Scaling out"), in one run on this machine:
#   1. throughput side by side: (a) one nats-server with R1 streams, (b) a
#      3-node JetStream cluster with R3 streams. Each runs ingest-bench's
#      post50k phase (50,000-event POSTs every 2 s: their p99) and load phase
#      (above capacity: the sustained end-to-end rate), with the release
#      gateway and two collectors (bench/README.md describes both phases);
#   2. leader kill: on a fresh 3-node cluster with R3 streams, a gateway and a
#      collector get a one-event POST every 50 ms while the events stream's
#      leader is killed with SIGKILL (`ingest-bench failover`): the time to
#      the first acked publish, repeated --kills times (the killed node is
#      restarted and caught up in between);
#   3. partition pruning: a year of events (gen-events) in a fresh database,
#      EXPLAIN of a one-day query on `events`.
# Numbers are printed and written to bench/results/, never asserted.
#
#   scripts/bench-cluster.sh                 # builds, then everything (~4 min)
#   scripts/bench-cluster.sh --skip-build --parts failover,pruning
#   scripts/bench-cluster.sh --help
#
# Needs: PostgreSQL (superuser, trust or password in --pg-url), nats-server
# 2.9.x or 2.12+ in PATH (or --nats-server), cargo, curl, jq, psql,
# dist/plugins/*.wasm (scripts/build-plugins.sh). Starts its own nats-server
# processes on free ports with their own stores: the shared NATS is not used.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

usage() {
  cat <<'EOF'
usage: scripts/bench-cluster.sh [options]
  --parts LIST           throughput,failover,pruning (default: all)
  --post50k-secs N       throughput: seconds of 50,000-event POSTs every 2 s (30)
  --load-count N         throughput: load phase events (900000)
  --load-rate N          throughput: load phase events/s offered, above capacity (80000)
  --kills N              failover: leader kills, one after another (3)
  --probe-interval-ms N  failover: ms between one-event POSTs (50)
  --probe-after-secs N   failover: probing after each kill (20)
  --year-events N        pruning: events spread over 365 days (365000)
  --year-end TIME        pruning: end of the year of events (2026-01-01T00:00:00Z)
  --day DATE             pruning: the day queried (2025-06-15)
  --max-bytes N          JETSTREAM_MAX_BYTES of the streams (2147483648)
  --host-env NAME=VALUE  extra env for every host process (repeatable)
  --pg-url URL           PostgreSQL server without database (postgres://postgres@127.0.0.1:5432)
  --nats-server PATH     nats-server binary (nats-server in PATH)
  --plugins-dir DIR      (dist/plugins)
  --out FILE             results JSON (bench/results/cluster-<UTC date>.json)
  --work-dir DIR         logs, stores, per-phase files (a new temp dir; kept)
  --skip-build           use the existing release binaries
  --keep-work-dir        do not delete the work dir at the end
Env: CARGO_TARGET_DIR (default target/).
EOF
}

PG_URL=postgres://postgres@127.0.0.1:5432
NATS_SERVER=$(command -v nats-server || echo /usr/sbin/nats-server)
PLUGINS_DIR=$ROOT/dist/plugins
PARTS=throughput,failover,pruning
POST50K_SECS=30
LOAD_COUNT=900000
LOAD_RATE=80000
KILLS=3
PROBE_INTERVAL_MS=50
PROBE_AFTER_SECS=20
YEAR_EVENTS=365000
YEAR_END=2026-01-01T00:00:00Z
DAY=2025-06-15
MAX_BYTES=$((2 << 30))
HOST_ENV=()
OUT=$ROOT/bench/results/cluster-$(date -u +%Y-%m-%d).json
WORK_DIR=
SKIP_BUILD=0
KEEP_WORK=0
while (($#)); do
  case $1 in
    --skip-build) SKIP_BUILD=1; shift; continue ;;
    --keep-work-dir) KEEP_WORK=1; shift; continue ;;
    -h|--help) usage; exit 0 ;;
  esac
  (($# >= 2)) || { echo "$1 needs a value (--help)" >&2; exit 2; }
  case $1 in
    --parts) PARTS=$2 ;;
    --post50k-secs) POST50K_SECS=$2 ;;
    --load-count) LOAD_COUNT=$2 ;;
    --load-rate) LOAD_RATE=$2 ;;
    --kills) KILLS=$2 ;;
    --probe-interval-ms) PROBE_INTERVAL_MS=$2 ;;
    --probe-after-secs) PROBE_AFTER_SECS=$2 ;;
    --year-events) YEAR_EVENTS=$2 ;;
    --year-end) YEAR_END=$2 ;;
    --day) DAY=$2 ;;
    --max-bytes) MAX_BYTES=$2 ;;
    --host-env) HOST_ENV+=("$2") ;;
    --pg-url) PG_URL=${2%/} ;;
    --nats-server) NATS_SERVER=$2 ;;
    --plugins-dir) PLUGINS_DIR=$(realpath "$2") ;;
    --out) OUT=$2 ;;
    --work-dir) WORK_DIR=$2 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift 2
done
want() { [[ ,$PARTS, == *,$1,* ]]; }
for p in ${PARTS//,/ }; do
  [[ $p =~ ^(throughput|failover|pruning)$ ]] || { echo "--parts: unknown part $p" >&2; exit 2; }
done
for t in curl jq psql; do
  command -v "$t" >/dev/null || { echo "needs $t" >&2; exit 1; }
done
if want throughput || want failover; then
  [[ -x $NATS_SERVER ]] || { echo "no nats-server (--nats-server)" >&2; exit 1; }
  compgen -G "$PLUGINS_DIR/*.wasm" >/dev/null \
    || { echo "no plugins in $PLUGINS_DIR: run scripts/build-plugins.sh first" >&2; exit 1; }
fi

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
HOST_BIN=$TARGET/release/events-host
PUB_BIN=$TARGET/release/events-publisher
BENCH_BIN=$TARGET/release/ingest-bench
GEN_BIN=$TARGET/release/gen-events
if ! ((SKIP_BUILD)); then
  cargo build --release -p events-host -p events-publisher -p events-bench -p events-reporter --bins
fi
for b in "$HOST_BIN" "$PUB_BIN" "$BENCH_BIN" "$GEN_BIN"; do
  [[ -x $b ]] || { echo "missing $b (build, or drop --skip-build)" >&2; exit 1; }
done

# This run's databases: bench_ingest_<id>r1_* / bench_ingest_<id>r3_*
# (ingest-bench) and bench_cluster_<id>_*.
RUN_ID=c$$$(date +%s | tail -c 5)
if [[ -z $WORK_DIR ]]; then
  WORK_DIR=$(mktemp -d -t bench-cluster.XXXXXX)
else
  mkdir -p "$WORK_DIR"
  WORK_DIR=$(realpath "$WORK_DIR")
  KEEP_WORK=1
fi
: >"$WORK_DIR/pids"
BENCH_PID=
T_START=$(date +%s)

psql_admin() { psql "$PG_URL/postgres" -X -q -v ON_ERROR_STOP=1 "$@"; }

drop_run_databases() {
  local names
  names=$(psql_admin -At -c "SELECT datname FROM pg_database
      WHERE starts_with(datname, 'bench_ingest_${RUN_ID}r') OR starts_with(datname, 'bench_cluster_${RUN_ID}_')" 2>/dev/null) || return 0
  for n in $names; do
    psql_admin -c "DROP DATABASE IF EXISTS \"$n\" WITH (FORCE)" >/dev/null 2>&1 \
      && echo "[cleanup] dropped database $n" >&2
  done
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $BENCH_PID ]] && kill -0 "$BENCH_PID" 2>/dev/null; then
    kill -TERM "$BENCH_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$BENCH_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$BENCH_PID" 2>/dev/null || true
  fi
  # Every nats-server, host and publisher this run started (ingest-bench
  # records its own children in <phase dir>/pids).
  local pid
  for f in "$WORK_DIR"/pids "$WORK_DIR"/*/pids; do
    [[ -f $f ]] || continue
    while read -r pid; do
      [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null || true
    done <"$f"
  done
  drop_run_databases
  if ((KEEP_WORK)); then
    echo "work dir (logs, per-phase files): $WORK_DIR" >&2
  else
    rm -rf "$WORK_DIR"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "[bench-cluster] $*" >&2; }

# A free TCP port below the ephemeral range (ingest-bench and the kernel
# hand out ports above it).
USED_PORTS=" "
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 12000))
    [[ $USED_PORTS == *" $p "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      USED_PORTS+="$p "
      echo "$p"
      return
    fi
  done
}

wait_port() { # port seconds
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# A cluster (or a single node): NODE_NAME[i], NODE_PORT[i], NODE_MON[i],
# NODE_PID[i]; start_nodes TAG N writes each node's config and starts it.
declare -a NODE_NAME NODE_PORT NODE_MON NODE_PID NODE_CONF NODE_STORE NODE_LOG
start_node() { # index
  local i=$1
  "$NATS_SERVER" -a 127.0.0.1 -p "${NODE_PORT[i]}" -m "${NODE_MON[i]}" -js \
    -sd "${NODE_STORE[i]}" -l "${NODE_LOG[i]}" -c "${NODE_CONF[i]}" \
    </dev/null >/dev/null 2>&1 &
  NODE_PID[i]=$!
  # Not a job: bash would report the SIGKILL of the leader as "Killed".
  disown "${NODE_PID[i]}"
  echo "${NODE_PID[i]}" >>"$WORK_DIR/pids"
  wait_port "${NODE_PORT[i]}" 30 || { tail -20 "${NODE_LOG[i]}" >&2; say "nats-server ${NODE_NAME[i]} did not listen"; exit 1; }
}
start_nodes() { # tag count
  local tag=$1 n=$2 i routes=() route_ports=() all_routes
  NODE_NAME=() NODE_PORT=() NODE_MON=() NODE_PID=() NODE_CONF=() NODE_STORE=() NODE_LOG=()
  for ((i = 0; i < n; i++)); do
    route_ports[i]=$(free_port)
    routes+=("nats-route://127.0.0.1:${route_ports[i]}")
  done
  all_routes=$(IFS=,; echo "${routes[*]}")
  for ((i = 0; i < n; i++)); do
    NODE_NAME[i]=n$i
    NODE_PORT[i]=$(free_port)
    NODE_MON[i]=$(free_port)
    mkdir -p "$WORK_DIR/nats-$tag-n$i"
    NODE_CONF[i]=$WORK_DIR/nats-$tag-n$i/nats.conf
    NODE_STORE[i]=$WORK_DIR/nats-$tag-n$i/store
    NODE_LOG[i]=$WORK_DIR/nats-$tag-n$i/nats.log
    {
      echo "server_name: n$i"
      if ((n > 1)); then
        printf 'cluster {\n  name: bench-%s-%s\n  listen: 127.0.0.1:%s\n  routes: [%s]\n}\n' \
          "$RUN_ID" "$tag" "${route_ports[i]}" "$all_routes"
      fi
    } >"${NODE_CONF[i]}"
    start_node "$i"
  done
  # JetStream of a cluster is usable once it has a meta leader.
  local m
  for ((i = 0; i < 600; i++)); do
    m=$(curl -sf "http://127.0.0.1:${NODE_MON[0]}/jsz" | jq -r '.meta_cluster.leader // empty' 2>/dev/null || true)
    { ((n == 1)) || [[ -n $m ]]; } && break
    sleep 0.1
  done
  ((n == 1)) || [[ -n $m ]] || { say "the $tag cluster elected no meta leader"; exit 1; }
}
stop_nodes() {
  local i
  for i in "${!NODE_PID[@]}"; do
    kill -TERM "${NODE_PID[i]}" 2>/dev/null || true
  done
  for i in "${!NODE_PID[@]}"; do
    wait_gone "${NODE_PID[i]}"
  done
}
wait_gone() { # pid: up to 30 s
  local i
  for ((i = 0; i < 300; i++)); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$1" 2>/dev/null || true
}
nats_urls() {
  local i out=()
  for i in "${!NODE_PORT[@]}"; do out+=("nats://127.0.0.1:${NODE_PORT[i]}"); done
  (IFS=,; echo "${out[*]}")
}

say "run $RUN_ID, work dir $WORK_DIR, $(nproc) cores, loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- throughput
throughput() { # tag nodes replicas
  local tag=$1 n=$2 r=$3 args=()
  say "throughput ($tag): $n nats-server node(s), JETSTREAM_REPLICAS=$r"
  start_nodes "$tag" "$n"
  args+=(--host-env "NATS_URL=$(nats_urls)" --host-env "JETSTREAM_REPLICAS=$r"
    --host-env "JETSTREAM_MAX_BYTES=$MAX_BYTES")
  for e in ${HOST_ENV[@]+"${HOST_ENV[@]}"}; do args+=(--host-env "$e"); done
  # ingest-bench samples JetStream through the first node; the hosts get
  # every node (NATS_URL above overrides the one it would pass).
  "$BENCH_BIN" run --run-id "$RUN_ID$tag" --pg-url "$PG_URL" \
    --nats-url "nats://127.0.0.1:${NODE_PORT[0]}" \
    --host-bin "$HOST_BIN" --publisher-bin "$PUB_BIN" --plugins-dir "$PLUGINS_DIR" \
    --phases post50k,load --post50k-secs "$POST50K_SECS" \
    --load-count "$LOAD_COUNT" --load-rate "$LOAD_RATE" \
    "${args[@]}" --work-dir "$WORK_DIR/$tag" --out "$WORK_DIR/$tag.json" \
    >"$WORK_DIR/$tag.table.txt" &
  BENCH_PID=$!
  wait "$BENCH_PID" || say "ingest-bench ($tag) failed: see above"
  BENCH_PID=
  stop_nodes
}

# ------------------------------------------------------------------ failover
FO_GW_PORT= FO_COL_PORT= FO_PIDS=()
spawn_host() { # name role port [NAME=VALUE...]
  local name=$1 role=$2 port=$3
  shift 3
  env -u WEBHOOK_SECRET -u METRICS_PORT \
    APP_ENV=development LOG_LEVEL=warn PORT="$port" \
    DATABASE_URL="$PG_URL/bench_cluster_${RUN_ID}_failover" \
    NATS_URL="$(nats_urls)" NATS_NAME="bench-cluster-$name" \
    JETSTREAM_STREAM="BENCH_CLUSTER_${RUN_ID^^}_EVENTS" \
    JETSTREAM_DLQ_STREAM="BENCH_CLUSTER_${RUN_ID^^}_DLQ" \
    JETSTREAM_SUBJECT_PREFIX="bench_cluster_$RUN_ID" \
    JETSTREAM_REPLICAS=3 JETSTREAM_MAX_BYTES="$MAX_BYTES" \
    PLUGINS_DIR="$PLUGINS_DIR" PLUGINS_CACHE_DIR="$WORK_DIR/plugin-cache" \
    ${HOST_ENV[@]+"${HOST_ENV[@]}"} "$@" \
    "$HOST_BIN" "$role" </dev/null >"$WORK_DIR/failover.$name.log" 2>&1 &
  local pid=$! i
  disown "$pid"
  echo "$pid" >>"$WORK_DIR/pids"
  FO_PIDS+=("$pid")
  for ((i = 0; i < 1200; i++)); do
    curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  tail -20 "$WORK_DIR/failover.$name.log" >&2
  say "$name not ready"
  exit 1
}

failover() {
  say "failover: 3 nodes, R3, one-event POST every $PROBE_INTERVAL_MS ms, $KILLS leader kill(s)"
  start_nodes fo 3
  psql_admin -c "CREATE DATABASE bench_cluster_${RUN_ID}_failover"
  FO_GW_PORT=$(free_port)
  FO_COL_PORT=$(free_port)
  spawn_host gateway gateway "$FO_GW_PORT"
  spawn_host collector collector "$FO_COL_PORT" COLLECTOR_TYPE=all
  local k i killed nodes monitors acked=0
  for ((k = 1; k <= KILLS; k++)); do
    nodes=() monitors=()
    for i in "${!NODE_PID[@]}"; do
      nodes+=(--node "${NODE_NAME[i]}=${NODE_PID[i]}")
      monitors+=(--monitor "http://127.0.0.1:${NODE_MON[i]}")
    done
    echo "kill $k:" >"$WORK_DIR/failover-$k.txt"
    "$BENCH_BIN" failover --nats-url "$(nats_urls)" \
      --stream "BENCH_CLUSTER_${RUN_ID^^}_EVENTS" "${nodes[@]}" "${monitors[@]}" \
      --gateway-port "$FO_GW_PORT" --gateway-nats-name bench-cluster-gateway \
      --interval-ms "$PROBE_INTERVAL_MS" --after-secs "$PROBE_AFTER_SECS" \
      --seed $((1000 + k)) --out "$WORK_DIR/failover-$k.json" \
      >>"$WORK_DIR/failover-$k.txt" &
    BENCH_PID=$!
    wait "$BENCH_PID" || { BENCH_PID=; say "failover probe $k failed"; break; }
    BENCH_PID=
    sed 's/^/  /' "$WORK_DIR/failover-$k.txt" >&2
    acked=$((acked + $(jq .answered_200 "$WORK_DIR/failover-$k.json")))
    # The killed node comes back on its port and store; the next probe
    # waits until it is a current replica again.
    killed=$(jq -r .killed "$WORK_DIR/failover-$k.json")
    wait_gone "${NODE_PID[${killed#n}]}"
    start_node "${killed#n}"
  done
  # Every acked probe event ends up in `events` (the collector drains).
  local stored=0
  for ((i = 0; i < 600; i++)); do
    stored=$(psql "$PG_URL/bench_cluster_${RUN_ID}_failover" -X -At -c "SELECT count(*) FROM events")
    ((stored >= acked)) && break
    sleep 0.1
  done
  echo "$acked $stored" >"$WORK_DIR/failover-stored.txt"
  for i in "${FO_PIDS[@]}"; do kill -TERM "$i" 2>/dev/null || true; done
  for i in "${FO_PIDS[@]}"; do wait_gone "$i"; done
  stop_nodes
}

# ------------------------------------------------------------------- pruning
pruning() {
  local db=bench_cluster_${RUN_ID}_year day_end
  day_end=$(date -u -d "$DAY + 1 day" +%Y-%m-%d)
  say "pruning: $YEAR_EVENTS events over the 365 days before $YEAR_END into $db"
  psql_admin -c "CREATE DATABASE $db"
  "$GEN_BIN" --database-url "$PG_URL/$db" --events "$YEAR_EVENTS" --days 365 --end "$YEAR_END" \
    >"$WORK_DIR/gen-events.log" 2>&1 || { tail -20 "$WORK_DIR/gen-events.log" >&2; return 1; }
  local q="SELECT source, funnel_stage, event_type, count(*) FROM events
           WHERE occurred_at >= '${DAY}T00:00:00Z' AND occurred_at < '${day_end}T00:00:00Z'
           GROUP BY 1, 2, 3"
  psql "$PG_URL/$db" -X -q -v ON_ERROR_STOP=1 >"$WORK_DIR/pruning.txt" <<SQL
SET timezone = 'UTC';
\\pset footer off
\\echo '-- the table'
SELECT count(*) AS partitions,
       (SELECT count(DISTINCT tableoid) FROM events) AS "holding rows",
       min(c.relname) AS first, max(c.relname) AS last
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
 WHERE i.inhparent = 'events'::regclass;
SELECT count(*) AS events, min(occurred_at) AS oldest, max(occurred_at) AS newest,
       (SELECT count(*) FROM events WHERE occurred_at >= '${DAY}T00:00:00Z'
           AND occurred_at < '${day_end}T00:00:00Z') AS "on $DAY"
  FROM events;
\\echo '-- a one-day report''s raw-event query, as planned with its bounds (plan-time pruning)'
EXPLAIN (COSTS OFF) $q;
\\echo '-- the same as a prepared statement with a generic plan (bind parameters, run-time pruning)'
PREPARE one_day(timestamptz, timestamptz) AS
  SELECT source, funnel_stage, event_type, count(*) FROM events
   WHERE occurred_at >= \$1 AND occurred_at < \$2 GROUP BY 1, 2, 3;
SET plan_cache_mode = force_generic_plan;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE one_day('${DAY}T00:00:00Z', '${day_end}T00:00:00Z');
SQL
}

# ------------------------------------------------------------------- run it
if want throughput; then
  throughput r1 1 1
  throughput r3 3 3
fi
want failover && failover
want pruning && pruning

# ------------------------------------------------------------------ results
WALL=$(($(date +%s) - T_START))
LOADAVG_END=$(cut -d' ' -f1-3 /proc/loadavg)
fmt() { # number -> 12,345 (or —)
  local v=$1
  [[ -z $v || $v == null ]] && { echo "—"; return; }
  printf '%.0f' "$v" 2>/dev/null | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' || echo "$v"
}
phase() { # tag phase jq-expression over the phase object
  [[ -f $WORK_DIR/$1.json ]] || { echo null; return; }
  jq -r --arg p "$2" "[.phases[] | select(.name == \$p)][0] | if . == null then null else ($3) end" "$WORK_DIR/$1.json"
}
row() { # label tag phase expr [unit-formatting: fmt|raw]
  local label=$1 a b
  a=$(phase r1 "$2" "$3")
  b=$(phase r3 "$2" "$3")
  if [[ ${4:-fmt} == fmt ]]; then a=$(fmt "$a"); b=$(fmt "$b"); fi
  # Padded by characters (printf pads bytes; µ is two).
  printf '  %s%*s %18s %18s\n' "$label" $((50 - ${#label})) "" "$a" "$b"
}

echo
echo "== bench-cluster $RUN_ID, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, loadavg $LOADAVG_START -> $LOADAVG_END, wall ${WALL} s"
if want throughput; then
  echo
  echo "-- throughput: gateway + facebook + tiktok collector (release), fresh database and streams per phase"
  printf '  %-50s %18s %18s\n' "" "(a) 1 node, R1" "(b) 3 nodes, R3"
  echo "  load: $LOAD_COUNT events offered at $LOAD_RATE/s, 4 POSTs in flight"
  row "sustained E2E ev/s (rows / first POST→last commit)" load '.e2e_events_per_sec'
  row "stored ev/s (rows / first→last stored)" load \
    'if (.last_commit_secs - .first_commit_secs) > 0 then .rows_committed / (.last_commit_secs - .first_commit_secs) else null end'
  row "commit ev/s while backlogged (ceiling)" load '.backlogged_commit_per_sec'
  row "POST p50 / p99 ms" load '"\(.post_latency.p50_ms|round) / \(.post_latency.p99_ms|round)"' raw
  echo "  post50k: 50,000-event POSTs every 2 s (25,000 ev/s offered) for $POST50K_SECS s"
  row "50k-POST p50 / p99 / max ms" post50k \
    '"\(.post_latency.p50_ms|round) / \(.post_latency.p99_ms|round) / \(.post_latency.max_ms|round)"' raw
  row "E2E ev/s" post50k '.e2e_events_per_sec'
  row "lag at publisher end (events)" post50k '.lag_at_publisher_end_events'
  echo "  both phases"
  for p in load post50k; do
    row "$p: CPU µs/event nats-server (all) / pipeline" $p \
      '"\(.cpu_us_per_event["nats-server"]) / \(.cpu_us_per_event.pipeline)"' raw
    row "$p: 5xx; rows = ledger" $p '"\(.http_5xx); \(.rows_committed) \(if .ledger_exact then "exact" else "NOT exact" end)"' raw
    row "$p: other users' CPU %" $p '.other_cpu_pct'
  done
  for t in r1 r3; do
    [[ -f $WORK_DIR/$t.json ]] && jq -r '.errors[] | "  ERROR ('"$t"'): \(.)"' "$WORK_DIR/$t.json"
  done
fi
if want failover; then
  echo
  echo "-- leader kill: 3 nodes, R3; a one-event POST every $PROBE_INTERVAL_MS ms; SIGKILL of the events stream's leader"
  for f in "$WORK_DIR"/failover-[0-9]*.txt; do [[ -f $f ]] && sed 's/^/  /' "$f"; done
  if compgen -G "$WORK_DIR/failover-[0-9]*.json" >/dev/null; then
    jq -rs '[.[].first_ack_after_kill_secs | select(. != null)] | sort
      | "  kill → first acked publish over \(length) kill(s): min \(.[0]) s, median \(.[(length - 1) / 2 | floor]) s, max \(.[-1]) s"' \
      "$WORK_DIR"/failover-[0-9]*.json
  fi
  [[ -f $WORK_DIR/failover-stored.txt ]] && read -r a s <"$WORK_DIR/failover-stored.txt" \
    && echo "  probe events answered 200: $a; rows in events: $s"
fi
if want pruning && [[ -f $WORK_DIR/pruning.txt ]]; then
  echo
  echo "-- partition pruning: $YEAR_EVENTS events over the year before $YEAR_END, one day ($DAY) queried"
  sed 's/^/  /' "$WORK_DIR/pruning.txt"
fi

# One JSON document: both ingest-bench reports, every kill, the EXPLAINs.
mkdir -p "$(dirname "$OUT")"
slurp() { if [[ -f $1 ]]; then cat "$1"; else echo null; fi; }
KILLS_JSON='[]'
if compgen -G "$WORK_DIR/failover-[0-9]*.json" >/dev/null; then
  KILLS_JSON=$(jq -s . "$WORK_DIR"/failover-[0-9]*.json)
fi
jq -n --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg run "$RUN_ID" \
  --arg loadavg_start "$LOADAVG_START" --arg loadavg_end "$LOADAVG_END" \
  --argjson wall "$WALL" --argjson cores "$(nproc)" \
  --argjson r1 "$(slurp "$WORK_DIR/r1.json")" --argjson r3 "$(slurp "$WORK_DIR/r3.json")" \
  --argjson kills "$KILLS_JSON" \
  --arg pruning "$(slurp "$WORK_DIR/pruning.txt")" \
  --arg settings "post50k ${POST50K_SECS}s; load $LOAD_COUNT @ $LOAD_RATE/s; kills $KILLS, probe every ${PROBE_INTERVAL_MS} ms; year $YEAR_EVENTS events to $YEAR_END, day $DAY" \
  '{date: $date, run: $run, cores: $cores, loadavg_start: $loadavg_start, loadavg_end: $loadavg_end,
    wall_secs: $wall, settings: $settings,
    single_node_r1: $r1, cluster_3_nodes_r3: $r3, leader_kills: $kills, pruning_explain: $pruning}' >"$OUT"
say "results: $OUT"

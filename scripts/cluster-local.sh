#!/usr/bin/env bash
# The cluster topology of deploy/compose/docker-compose.cluster.yml natively,
# on one machine, in the foreground (after `cargo build --release --bins`):
#
#   scripts/cluster-local.sh [--simulator] [--fresh]
#
# Starts, each with its own ports (and stores), every output line prefixed
# with its process ([nats-1] ...):
#   nats-1..3     nats-server, a 3-node JetStream cluster (routes to each other)
#   pg-primary    PostgreSQL (initdb in the work dir), database `events`
#   pg-replica    its streaming replica (pg_basebackup -R), hot standby
#   gateway-1..2  events-host gateway, NATS_URL = all 3 nodes, JETSTREAM_REPLICAS=3
#   haproxy       the webhook port, balanced over both gateways
#                 (deploy/haproxy/haproxy.cfg, health checks on /health/ready)
#   fb-1, fb-2    events-host collector, COLLECTOR_TYPE=facebook
#   ttk-1, ttk-2  events-host collector, COLLECTOR_TYPE=tiktok
#   collector     COLLECTOR_TYPE=all, COLLECTOR_EXCLUDE=facebook,tiktok
#   reporter      events-reporter, REPORTER_DATABASE_URL = the replica
#   simulator     with --simulator, once everything is ready: events-publisher
#                 posting to HAProxy
# When all are ready it says "[cluster] ready: ...". Ctrl-C (SIGINT), SIGTERM
# or SIGHUP stops them all: HAProxy first, then the services, then NATS, then
# the replica and the primary (a second Ctrl-C kills). Each process runs in a
# session of its own, so a Ctrl-C reaches only the script, which keeps that
# order. When one exits on its own, the others are stopped and the script
# exits 1 (except the simulator finishing with status 0); so does a start
# that is not ready in time. Started with `&` by another script, bash
# ignores SIGINT for it: stop it with SIGTERM.
#
# --fresh  delete the work dir first (data of earlier runs is kept otherwise:
#          the databases, the replica and the JetStream stores are reused)
#
# Needs nats-server, PostgreSQL 15 server binaries and haproxy
# (`apt-get install nats-server postgresql-15 haproxy` on Debian 12), and
# bash >= 4.4. Run as root, PostgreSQL runs as user `postgres`. Settings:
#   CLUSTER_BASE_PORT   7000; every port is this plus an offset:
#                         +0 webhook (HAProxy)        +1 HAProxy /stats /metrics
#                         +10, +11 gateway-1, -2      +20, +21 fb-1, -2
#                         +22, +23 ttk-1, -2          +24 collector (others)
#                         +30 reporter                +40..42 NATS clients
#                         +50..52 NATS routes         +60..62 NATS monitoring
#                         +70 PostgreSQL primary      +71 replica
#   CLUSTER_WORK_DIR    ${TMPDIR:-/tmp}/events-cluster-<base port>: stores,
#                       data directories, configs and the state file
#   EVENTS_BIN_DIR      binaries (default: ${CARGO_TARGET_DIR:-<repo>/target}/release)
#   PG_BIN_DIR          /usr/lib/postgresql/15/bin
#   PLUGINS_DIR         <repo>/dist/plugins (scripts/build-plugins.sh builds them)
#   JETSTREAM_MAX_BYTES 1073741824 here (1 GiB per stream and replica: three
#                       replicas share this disk)
#   SHUTDOWN_PRE_STOP_MS  3000 on the gateways, so HAProxy's checks (every
#                       second, 2 failures) route around one being stopped
#   CLUSTER_START_TIMEOUT_SECS  180: everything ready by then, or stop (exit 1)
#   CLUSTER_STOP_TIMEOUT_SECS   40 per stage before SIGKILL
# Every other variable you export reaches every service (LOG_LEVEL,
# JETSTREAM_STREAM, COLLECTOR_BATCH_SIZE, ... see README "Configuration");
# the script sets PORT, NATS_URL, NATS_NAME (<NATS_NAME or events-cluster>-<process>),
# DATABASE_URL, REPORTER_DATABASE_URL, JETSTREAM_REPLICAS and COLLECTOR_*.
#
# State file <work dir>/cluster.state, rewritten whenever it changes, one
# record per line, fields separated by single spaces:
#   status starting|ready|stopping|stopped
#   script <pid of this script>
#   webhook http://127.0.0.1:<port>/webhook
#   nats_url nats://127.0.0.1:<port>,nats://127.0.0.1:<port>,nats://127.0.0.1:<port>
#   primary_url postgres://postgres@127.0.0.1:<port>/events
#   replica_url postgres://postgres@127.0.0.1:<port>/events
#   process <name> <pid> <ports>   one per process; <ports> comma-separated,
#                                  the HTTP (or client) port first; "-" if none
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SUPERVISE_TAG=cluster
# say, die, require_binaries, require_plugins, start, pid_of, first_exited, http_ready, port_open,
# stop_pids, reap_all
source "$REPO/scripts/lib/supervise.sh"

SIMULATOR=0 FRESH=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --simulator) SIMULATOR=1; shift ;;
    --fresh) FRESH=1; shift ;;
    -h|--help) usage_from_header "$0"; exit 0 ;;
    *) die "unknown argument: $1 (usage: $0 [--simulator] [--fresh])" ;;
  esac
done
require_bash_4_4

# --- what it needs ------------------------------------------------------------
require_binaries "$SIMULATOR"
export PLUGINS_DIR="${PLUGINS_DIR:-$REPO/dist/plugins}"
require_plugins
NATS_SERVER="$(command -v nats-server)" || die "nats-server not found: apt-get install nats-server"
HAPROXY="$(command -v haproxy)" ||
  die "haproxy not found: apt-get install haproxy (the load balancer in front of the two gateways)"
PG_BIN="${PG_BIN_DIR:-/usr/lib/postgresql/15/bin}"
for b in initdb postgres pg_basebackup pg_isready psql; do
  [[ -x "$PG_BIN/$b" ]] || die "$PG_BIN/$b not found: apt-get install postgresql-15 (or set PG_BIN_DIR)"
done
HAPROXY_CFG="$REPO/deploy/haproxy/haproxy.cfg"
command -v setsid >/dev/null || die "setsid not found (util-linux)"

# PostgreSQL refuses to run as root: then its commands run as `postgres`.
# setpriv execs (no intermediate process), so the server is our child and
# gets our signals itself; runuser is enough for the one-shot commands.
AS_PG=() RUN_PG=()
if ((EUID == 0)); then
  id -u postgres >/dev/null 2>&1 || die "running as root needs a postgres user: apt-get install postgresql-15"
  command -v setpriv >/dev/null || die "setpriv not found (util-linux)"
  AS_PG=(runuser -u postgres --)
  RUN_PG=(setpriv --reuid=postgres --regid=postgres --init-groups --)
fi

# --- ports, work dir ----------------------------------------------------------
BASE="${CLUSTER_BASE_PORT:-7000}"
[[ "$BASE" =~ ^[0-9]+$ ]] && ((BASE >= 1024 && BASE + 71 <= 65535)) ||
  die "CLUSTER_BASE_PORT must be a number from 1024 to 65464 (got $BASE)"
HAPROXY_PORT=$BASE STATS_PORT=$((BASE + 1))
declare -A SVC_PORT=(
  [gateway-1]=$((BASE + 10)) [gateway-2]=$((BASE + 11))
  [fb-1]=$((BASE + 20)) [fb-2]=$((BASE + 21)) [ttk-1]=$((BASE + 22)) [ttk-2]=$((BASE + 23))
  [collector]=$((BASE + 24)) [reporter]=$((BASE + 30))
)
NATS_NODES=(nats-1 nats-2 nats-3)
nats_port() { echo $((BASE + 40 + $1)); }
route_port() { echo $((BASE + 50 + $1)); }
monitor_port() { echo $((BASE + 60 + $1)); }
PRIMARY_PORT=$((BASE + 70)) REPLICA_PORT=$((BASE + 71))
DB="events"

ALL_PORTS=("$HAPROXY_PORT" "$STATS_PORT" "${SVC_PORT[@]}" "$PRIMARY_PORT" "$REPLICA_PORT")
for i in 0 1 2; do ALL_PORTS+=("$(nats_port $i)" "$(route_port $i)" "$(monitor_port $i)"); done
for p in "${ALL_PORTS[@]}"; do
  port_open "$p" && die "port $p is already in use: choose another CLUSTER_BASE_PORT (ports $BASE-$((BASE + 71)))"
done

NATS_URLS="$(for i in 0 1 2; do printf 'nats://127.0.0.1:%s,' "$(nats_port $i)"; done)"
NATS_URLS="${NATS_URLS%,}"
PRIMARY_URL="postgres://postgres@127.0.0.1:$PRIMARY_PORT/$DB"
REPLICA_URL="postgres://postgres@127.0.0.1:$REPLICA_PORT/$DB"

WORK="${CLUSTER_WORK_DIR:-${TMPDIR:-/tmp}/events-cluster-$BASE}"
if [[ -s "$WORK/cluster.state" ]]; then
  read -r _ other < <(grep '^script ' "$WORK/cluster.state")
  status="$(awk '$1 == "status" { print $2 }' "$WORK/cluster.state")"
  [[ "$status" != stopped && -n "${other:-}" ]] && kill -0 "$other" 2>/dev/null &&
    die "$WORK is in use by a running cluster-local.sh (pid $other)"
fi
if ((FRESH)) && [[ -d "$WORK" ]]; then
  [[ -e "$WORK/cluster.state" || -z "$(ls -A "$WORK")" ]] ||
    die "--fresh: $WORK does not look like a cluster work dir (no cluster.state); delete it yourself"
  rm -rf "$WORK" || die "cannot delete $WORK"
fi
mkdir -p "$WORK" || die "cannot create $WORK"
WORK="$(cd "$WORK" && pwd)"
STATE="$WORK/cluster.state"
if ((EUID == 0)); then
  # The postgres user must reach its data directories.
  chmod 755 "$WORK"
  runuser -u postgres -- test -x "$WORK" ||
    die "user postgres cannot enter $WORK (a parent directory is private): set CLUSTER_WORK_DIR elsewhere"
fi

STOP_TIMEOUT="${CLUSTER_STOP_TIMEOUT_SECS:-40}"
START_TIMEOUT="${CLUSTER_START_TIMEOUT_SECS:-180}"
export JETSTREAM_MAX_BYTES="${JETSTREAM_MAX_BYTES:-1073741824}"
NAME_PREFIX="${NATS_NAME:-events-cluster}"
STATUS=starting
declare -A PORTS_OF=()

# The state file (format above), replaced atomically.
write_state() {
  local i tmp="$STATE.tmp"
  {
    echo "status $STATUS"
    echo "script $$"
    echo "webhook http://127.0.0.1:$HAPROXY_PORT/webhook"
    echo "nats_url $NATS_URLS"
    echo "primary_url $PRIMARY_URL"
    echo "replica_url $REPLICA_URL"
    for i in "${!NAMES[@]}"; do
      echo "process ${NAMES[$i]} ${PIDS[$i]} ${PORTS_OF[${NAMES[$i]}]:--}"
    done
  } >"$tmp" && mv -f "$tmp" "$STATE"
}

# launch NAME PORTS COMMAND...: start + state file. Each process gets a
# session of its own (setsid execs, the pid stays the same): a Ctrl-C in the
# terminal reaches only this script, which stops them in order.
launch() {
  local name="$1"
  PORTS_OF[$name]="$2"
  shift 2
  start "$name" setsid "$@"
  write_state
}

REQUESTED=""
trap 'REQUESTED=SIGINT' INT
trap 'REQUESTED=SIGTERM' TERM
trap 'REQUESTED=SIGHUP' HUP
# Safety net: an error in this script must not leave its processes behind.
trap '[[ $STATUS == stopped ]] || { ((${#PIDS[@]})) && kill -KILL "${PIDS[@]}"; } 2>/dev/null' EXIT
FAILED=0

# Stop reason, if any: a signal, or a process that exited on its own.
should_stop() {
  local i code
  if [[ -n "$REQUESTED" ]]; then
    say "$REQUESTED: stopping"
    return 0
  fi
  if i="$(first_exited)"; then
    wait "${PIDS[$i]}"
    code=$?
    if [[ "${NAMES[$i]}" == simulator && $code == 0 ]]; then
      say "simulator finished; the others keep running"
      unset 'NAMES[i]' 'PIDS[i]'
      write_state
      return 1
    fi
    say "${NAMES[$i]} exited on its own (status $code): stopping the others"
    FAILED=1
    return 0
  fi
  return 1
}

# wait_until WHAT COMMAND...: polls COMMAND until it succeeds; fails on a stop
# request, a process exiting, or the start deadline.
START_DEADLINE=$((SECONDS + START_TIMEOUT))
wait_until() {
  local what="$1"
  shift
  until "$@"; do
    should_stop && return 1
    if ((SECONDS >= START_DEADLINE)); then
      say "not ready after ${START_TIMEOUT}s (CLUSTER_START_TIMEOUT_SECS): $what"
      FAILED=1
      return 1
    fi
    sleep 0.2 & wait $!
  done
}

# --- NATS: three JetStream nodes ----------------------------------------------
start_nats() {
  local i routes="" conf name
  for i in 0 1 2; do routes+="${routes:+, }nats-route://127.0.0.1:$(route_port $i)"; done
  for i in 0 1 2; do
    name="${NATS_NODES[$i]}" conf="$WORK/$name.conf"
    mkdir -p "$WORK/$name"
    # Debian's nats-server is 2.9: no sync_interval (see README "Scaling out:
    # a NATS cluster"). The compose cluster uses deploy/nats/cluster/nats.conf.
    cat >"$conf" <<EOF
server_name: $name
listen: 127.0.0.1:$(nats_port $i)
http: 127.0.0.1:$(monitor_port $i)
jetstream {
  store_dir: "$WORK/$name"
}
cluster {
  name: events-cluster
  listen: 127.0.0.1:$(route_port $i)
  routes: [$routes]
}
EOF
    launch "$name" "$(nats_port $i),$(route_port $i),$(monitor_port $i)" "$NATS_SERVER" -c "$conf"
  done
}

nats_healthy() {
  local i
  for i in 0 1 2; do http_ready "$(monitor_port $i)" /healthz || return 1; done
}

# --- PostgreSQL: primary + streaming replica ----------------------------------
pg_dir() { echo "$WORK/pg-$1"; }

# start_pg NAME PORT SETTING...: the server in the foreground, TCP only.
start_pg() {
  local name="$1" port="$2"
  shift 2
  launch "pg-$name" "$port" "${RUN_PG[@]}" "$PG_BIN/postgres" -D "$(pg_dir "$name")" \
    -c port="$port" -c listen_addresses=127.0.0.1 -c unix_socket_directories= "$@"
}

pg_ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$1" -U postgres -d postgres; }

# As the postgres user (root) or ourselves, from a directory it can read.
as_pg() { (cd "$WORK" && "${AS_PG[@]}" "$@"); }

# An empty data directory the server's user owns, mode 0700.
own_pg_dir() {
  mkdir -p "$1" && chmod 700 "$1" || return 1
  ((EUID != 0)) || chown postgres:postgres "$1"
}

start_primary() {
  local data
  data="$(pg_dir primary)"
  if [[ ! -s "$data/PG_VERSION" ]]; then
    own_pg_dir "$data" || return 1
    say "initdb $data"
    # The default pg_hba.conf of -A trust accepts 127.0.0.1, replication included.
    as_pg "$PG_BIN/initdb" -D "$data" -A trust -U postgres -E UTF8 --locale=C --no-sync >/dev/null ||
      { say "initdb failed"; return 1; }
  fi
  # wal_keep_size: the replica can catch up after being stopped a while.
  start_pg primary "$PRIMARY_PORT" -c wal_keep_size=512MB
}

create_database() {
  local have
  have="$("$PG_BIN/psql" -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$DB'")" || return 1
  [[ "$have" == 1 ]] && return 0
  say "creating database $DB"
  "$PG_BIN/psql" -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -d postgres -qc "CREATE DATABASE $DB" >/dev/null
}

start_replica() {
  local data
  data="$(pg_dir replica)"
  if [[ ! -s "$data/PG_VERSION" ]]; then
    rm -rf "$data"
    own_pg_dir "$data" || return 1
    say "pg_basebackup -R from the primary into $data"
    as_pg "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -D "$data" \
      -R -X stream --checkpoint=fast --no-sync ||
      { say "pg_basebackup failed"; return 1; }
  fi
  # primary_conninfo on the command line wins over the one pg_basebackup -R
  # wrote, so a reused replica follows the primary to a new base port.
  # hot_standby_feedback: long reports are not cancelled by replayed vacuums.
  start_pg replica "$REPLICA_PORT" -c hot_standby=on -c hot_standby_feedback=on \
    -c "primary_conninfo=host=127.0.0.1 port=$PRIMARY_PORT user=postgres application_name=pg-replica"
}

# --- the services -------------------------------------------------------------
# host NAME ROLE VAR=VALUE...: events-host with this cluster's settings
# (JETSTREAM_REPLICAS on the collectors too: they warn when theirs differs).
host() {
  local name="$1" role="$2"
  shift 2
  launch "$name" "${SVC_PORT[$name]}" env -u METRICS_PORT -u REPORTER_DATABASE_URL \
    PORT="${SVC_PORT[$name]}" NATS_URL="$NATS_URLS" NATS_NAME="$NAME_PREFIX-$name" \
    DATABASE_URL="$PRIMARY_URL" JETSTREAM_REPLICAS=3 "$@" "$BIN_DIR/events-host" "$role"
}

start_gateway() {
  host "$1" gateway SHUTDOWN_PRE_STOP_MS="${SHUTDOWN_PRE_STOP_MS:-3000}"
}

start_haproxy() {
  local env=(HAPROXY_WEBHOOK_BIND="127.0.0.1:$HAPROXY_PORT" HAPROXY_STATS_BIND="127.0.0.1:$STATS_PORT"
    GATEWAY_1_ADDR="127.0.0.1:${SVC_PORT[gateway-1]}" GATEWAY_2_ADDR="127.0.0.1:${SVC_PORT[gateway-2]}")
  local out
  out="$(env "${env[@]}" "$HAPROXY" -c -q -f "$HAPROXY_CFG" 2>&1)" ||
    { say "haproxy refuses $HAPROXY_CFG: $out"; return 1; }
  # -db: foreground, no daemon.
  launch haproxy "$HAPROXY_PORT,$STATS_PORT" env "${env[@]}" "$HAPROXY" -db -f "$HAPROXY_CFG"
}

start_services() {
  start_gateway gateway-2
  start_haproxy || return 1
  host fb-1 collector COLLECTOR_TYPE=facebook COLLECTOR_EXCLUDE=
  host fb-2 collector COLLECTOR_TYPE=facebook COLLECTOR_EXCLUDE=
  host ttk-1 collector COLLECTOR_TYPE=tiktok COLLECTOR_EXCLUDE=
  host ttk-2 collector COLLECTOR_TYPE=tiktok COLLECTOR_EXCLUDE=
  host collector collector COLLECTOR_TYPE=all COLLECTOR_EXCLUDE=facebook,tiktok
  # On the replica the reporter never migrates: it waits for the collectors'
  # migrations to be replayed (MIGRATION_TIMEOUT_MS, 180 s here: debug builds
  # on a busy machine start slowly).
  launch reporter "${SVC_PORT[reporter]}" env -u METRICS_PORT PORT="${SVC_PORT[reporter]}" \
    DATABASE_URL="$PRIMARY_URL" REPORTER_DATABASE_URL="$REPLICA_URL" \
    MIGRATION_TIMEOUT_MS="${MIGRATION_TIMEOUT_MS:-180000}" "$BIN_DIR/events-reporter"
}

# Names of what is not ready yet (empty when everything is).
not_ready() {
  local name missing=()
  for name in "${!SVC_PORT[@]}"; do http_ready "${SVC_PORT[$name]}" || missing+=("$name"); done
  http_ready "$HAPROXY_PORT" /health/ready || missing+=("haproxy->gateways")
  http_ready "$STATS_PORT" /healthz || missing+=("haproxy")
  nats_healthy || missing+=("nats")
  pg_ready "$REPLICA_PORT" || missing+=("pg-replica")
  echo "${missing[*]}"
}

# --- start --------------------------------------------------------------------
write_state
say "work dir $WORK, base port $BASE; binaries from $BIN_DIR"
startup() {
  start_nats
  start_primary || return 1
  wait_until "PostgreSQL primary on :$PRIMARY_PORT" pg_ready "$PRIMARY_PORT" || return 1
  create_database || { say "cannot create database $DB"; return 1; }
  start_replica || return 1
  wait_until "PostgreSQL replica on :$REPLICA_PORT" pg_ready "$REPLICA_PORT" || return 1
  wait_until "NATS cluster (/healthz of nats-1..3)" nats_healthy || return 1
  # One gateway first: it creates the R3 streams and compiles the plugins
  # into the shared cache (PLUGINS_CACHE_DIR), so the others start faster.
  start_gateway gateway-1
  wait_until "gateway-1 ready" http_ready "${SVC_PORT[gateway-1]}" || return 1
  start_services || return 1
  local last_report=$SECONDS missing
  while missing="$(not_ready)"; [[ -n "$missing" ]]; do
    should_stop && return 1
    if ((SECONDS >= START_DEADLINE)); then
      say "not ready after ${START_TIMEOUT}s (CLUSTER_START_TIMEOUT_SECS): $missing"
      FAILED=1
      return 1
    fi
    if ((SECONDS - last_report >= 15)); then
      say "waiting for: $missing"
      last_report=$SECONDS
    fi
    sleep 0.5 & wait $!
  done
}

if startup; then
  STATUS=ready
  write_state
  say "ready: webhook http://127.0.0.1:$HAPROXY_PORT/webhook (HAProxy stats http://127.0.0.1:$STATS_PORT/stats)," \
    "reporter http://127.0.0.1:${SVC_PORT[reporter]}, NATS_URL=$NATS_URLS, primary $PRIMARY_URL, replica $REPLICA_URL"
  if ((SIMULATOR)); then
    launch simulator - env EVENT_ENDPOINT="${EVENT_ENDPOINT:-http://127.0.0.1:$HAPROXY_PORT/webhook}" \
      "$BIN_DIR/events-publisher"
  fi
  until should_stop; do
    sleep 0.2 & wait $!
  done
elif [[ -z "$REQUESTED" ]]; then
  FAILED=1
fi

# --- stop ---------------------------------------------------------------------
STATUS=stopping
write_state
stopping
killed=0
# stop_stage SIGNAL NAME...: the named processes that were started.
stop_stage() {
  local sig="$1" name pid pids=()
  shift
  for name in "$@"; do pid="$(pid_of "$name")" && pids+=("$pid"); done
  stop_pids "$sig" "$STOP_TIMEOUT" "${pids[@]}" || killed=1
}
# HAProxy: SIGUSR1 is its graceful stop (SIGTERM drops connections).
stop_stage USR1 haproxy
stop_stage TERM simulator gateway-1 gateway-2 fb-1 fb-2 ttk-1 ttk-2 collector reporter
stop_stage TERM "${NATS_NODES[@]}"
# SIGINT: PostgreSQL's fast shutdown (its clients are gone by now).
stop_stage INT pg-replica
stop_stage INT pg-primary
reap_all
STATUS=stopped
write_state
((killed)) && FAILED=1
say "stopped"
exit "$FAILED"

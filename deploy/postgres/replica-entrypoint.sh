#!/usr/bin/env bash
# Entrypoint of `postgres-replica` in deploy/compose/docker-compose.cluster.yml
# (postgres:15 image, started as root): a hot-standby streaming replica of
# `postgres`, the primary the collectors write to. The reporter reads from it
# (REPORTER_DATABASE_URL).
#
# First start (empty volume): waits for the primary, then
#   pg_basebackup -h $PRIMARY_HOST -U replicator -D $PGDATA -R -X stream -S replica_1
# (-R writes standby.signal and primary_conninfo; role and slot come from
# deploy/postgres/primary-init.sh). Every start then hands over to the image's
# own entrypoint, which runs postgres as user postgres on the existing data,
# with primary_conninfo given on the command line so that a changed
# POSTGRES_REPLICATION_PASSWORD applies at the next start.
#
# Environment: POSTGRES_REPLICATION_PASSWORD (required), PRIMARY_HOST
# (postgres), PRIMARY_PORT (5432), REPLICATION_SLOT (replica_1), PGDATA.
set -euo pipefail
: "${POSTGRES_REPLICATION_PASSWORD:?set POSTGRES_REPLICATION_PASSWORD}"
PGDATA="${PGDATA:-/var/lib/postgresql/data}"
PRIMARY_HOST="${PRIMARY_HOST:-postgres}"
PRIMARY_PORT="${PRIMARY_PORT:-5432}"
SLOT="${REPLICATION_SLOT:-replica_1}"

# The password in a passfile (never on a command line): `:` and `\` escaped.
PASSFILE="${REPLICA_PASSFILE:-/var/lib/postgresql/replica.pgpass}"
pw="${POSTGRES_REPLICATION_PASSWORD//\\/\\\\}"
pw="${pw//:/\\:}"
printf '%s:%s:*:replicator:%s\n' "$PRIMARY_HOST" "$PRIMARY_PORT" "$pw" >"$PASSFILE"
chown postgres:postgres "$PASSFILE"
chmod 600 "$PASSFILE"

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
  echo "replica: waiting for the primary at $PRIMARY_HOST:$PRIMARY_PORT"
  until pg_isready -q -h "$PRIMARY_HOST" -p "$PRIMARY_PORT"; do sleep 1; done
  mkdir -p "$PGDATA"
  chown postgres:postgres "$PGDATA"
  chmod 700 "$PGDATA"
  echo "replica: pg_basebackup from $PRIMARY_HOST (slot $SLOT)"
  if ! gosu postgres env PGPASSFILE="$PASSFILE" pg_basebackup -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" \
    -U replicator -D "$PGDATA" -R -X stream -S "$SLOT" --checkpoint=fast; then
    # Leave no half copy behind: the next start (restart policy) tries again.
    find "$PGDATA" -mindepth 1 -delete
    exit 1
  fi
fi

exec docker-entrypoint.sh postgres \
  -c hot_standby=on \
  -c hot_standby_feedback=on \
  -c "primary_conninfo=host=$PRIMARY_HOST port=$PRIMARY_PORT user=replicator passfile=$PASSFILE application_name=postgres-replica" \
  -c "primary_slot_name=$SLOT"

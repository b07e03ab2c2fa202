#!/usr/bin/env bash
# The primary's first-start hook in deploy/compose/docker-compose.cluster.yml
# (mounted into /docker-entrypoint-initdb.d/, so the postgres image runs it
# once, when the data volume is initialised): the role and the slot its
# streaming replica (deploy/postgres/replica-entrypoint.sh) uses.
#
#   replicator  REPLICATION LOGIN, password POSTGRES_REPLICATION_PASSWORD
#   replica_1   a physical replication slot: the primary keeps the WAL the
#               replica has not received yet (at most max_slot_wal_keep_size,
#               set on the primary's command line, so a replica gone for good
#               cannot fill the disk)
#   pg_hba.conf `host replication replicator all scram-sha-256` (the image's
#               `host all all all` line does not cover replication)
set -euo pipefail
: "${POSTGRES_REPLICATION_PASSWORD:?set POSTGRES_REPLICATION_PASSWORD}"

psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
  -v password="$POSTGRES_REPLICATION_PASSWORD" <<'SQL'
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'password';
SELECT pg_create_physical_replication_slot('replica_1');
SQL

echo "host replication replicator all scram-sha-256" >>"$PGDATA/pg_hba.conf"

#!/bin/bash
# Entrypoint of the compose replica (runs as the postgres user): on the first start, with an empty
# $PGDATA, clone the primary with pg_basebackup as the replication role and write the standby settings
# (-R); then run postgres as a hot standby. Arguments are passed on to postgres.
#   PRIMARY_HOST, PRIMARY_PORT  the primary (default primary:5432)
#   REPLICATION_USER            role created by initdb/10-replication.sh (default replicator)
#   REPLICATION_PASSWORD        its password (required)
#   PGDATA                      data directory (default /var/lib/postgresql/data)
set -eu
PGDATA="${PGDATA:-/var/lib/postgresql/data}"
PRIMARY_HOST="${PRIMARY_HOST:-primary}"
PRIMARY_PORT="${PRIMARY_PORT:-5432}"
REPLICATION_USER="${REPLICATION_USER:-replicator}"
# libpq reads it in pg_basebackup and, after a restart, in the standby's WAL receiver.
export PGPASSWORD="${REPLICATION_PASSWORD:?set REPLICATION_PASSWORD to the password of the replication role}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  until pg_isready -q -h "$PRIMARY_HOST" -p "$PRIMARY_PORT"; do
    echo "replica: waiting for the primary at $PRIMARY_HOST:$PRIMARY_PORT" >&2
    sleep 1
  done
  pg_basebackup -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U "$REPLICATION_USER" -D "$PGDATA" -R -X stream --checkpoint=fast
  chmod 700 "$PGDATA"
fi
exec postgres -D "$PGDATA" -c hot_standby=on "$@"

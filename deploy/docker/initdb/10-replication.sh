#!/bin/bash
# Run by the official postgres image on the primary's first start (mounted into
# /docker-entrypoint-initdb.d/): creates the replication role and lets it connect for replication from
# any host with a password. The image's own pg_hba.conf allows replication from localhost only, so
# without this a replica in another container cannot clone the primary.
#   REPLICATION_USER      role name (default replicator)
#   REPLICATION_PASSWORD  its password (required)
# Written to work both executed and sourced (the image sources .sh files that are not executable):
# no "exit", no "set -u".
set -e
if [ -z "${REPLICATION_PASSWORD:-}" ]; then
  echo "10-replication.sh: set REPLICATION_PASSWORD (the replication role's password) on the primary" >&2
  false
fi
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-${POSTGRES_USER:-postgres}}" \
  --set=role="${REPLICATION_USER:-replicator}" --set=password="$REPLICATION_PASSWORD" <<'SQL'
SET password_encryption = 'scram-sha-256';
CREATE ROLE :"role" WITH LOGIN REPLICATION PASSWORD :'password';
SQL
printf '\n# streaming replicas (deploy/docker/initdb/10-replication.sh)\nhost replication %s all scram-sha-256\n' \
  "${REPLICATION_USER:-replicator}" >> "$PGDATA/pg_hba.conf"

#!/usr/bin/env bash
# Prepares a local PostgreSQL for the service: the spec's role and database.
# Idempotent. Connects as a superuser via PGHOST/PGPORT/PGUSER (default 127.0.0.1:5432, postgres).
set -euo pipefail
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
role="${DB_USERNAME:-foodies_admin}"
password="${DB_PASSWORD:-foodies_password}"
database="${DB_NAME:-foodies-payment-database}"

if ! pg_isready -q; then
  echo "PostgreSQL is not reachable at $PGHOST:$PGPORT." >&2
  echo "Start it: pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start  (or: docker compose up -d postgres)" >&2
  exit 1
fi
psql -v ON_ERROR_STOP=1 -qtA -d postgres -v role="$role" -v password="$password" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN CREATEDB PASSWORD %L', :'role', :'password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('ALTER ROLE %I LOGIN CREATEDB PASSWORD %L', :'role', :'password') \gexec
SQL
if [ "$(psql -qtAc "SELECT 1 FROM pg_database WHERE datname = '$database'" -d postgres)" != "1" ]; then
  psql -v ON_ERROR_STOP=1 -qc "CREATE DATABASE \"$database\" OWNER \"$role\"" -d postgres
fi
echo "database \"$database\" ready for role $role on $PGHOST:$PGPORT"
echo "use: DB_URL=postgres://$PGHOST:$PGPORT/$database"

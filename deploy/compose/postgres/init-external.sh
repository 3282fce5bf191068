#!/bin/bash
# PostgreSQL's first start (the image runs /docker-entrypoint-initdb.d/*.sh once, on an empty
# data folder): the external plane's state store apart from the internal plane's — its own
# user and database — so that nothing the external plane writes (an idempotency key, say)
# can decide for the internal one (docs/production.md, "Planes"). Neither user may connect
# to the other's database.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v pw="$KNUT_EXTERNAL_STORE_PASSWORD" <<'SQL'
CREATE USER knut_external PASSWORD :'pw';
CREATE DATABASE knut_external OWNER knut_external;
REVOKE CONNECT ON DATABASE knut FROM PUBLIC;
REVOKE CONNECT ON DATABASE knut_external FROM PUBLIC;
SQL

#!/bin/sh
# Creates (idempotently) and migrates Temporal's two PostgreSQL databases, as
# temporalio/samples-server's compose does with temporal-sql-tool.
set -eu
: "${POSTGRES_SEEDS:?}" "${POSTGRES_USER:?}" "${POSTGRES_PWD:?}"
export SQL_PASSWORD="$POSTGRES_PWD"
schema=/etc/temporal/schema/postgresql/v12

until pg_isready -h "$POSTGRES_SEEDS" -p "${DB_PORT:-5432}" -U "$POSTGRES_USER"; do sleep 1; done

for db in temporal temporal_visibility; do
  dir=temporal
  [ "$db" = temporal_visibility ] && dir=visibility
  tool="temporal-sql-tool --plugin postgres12 --ep $POSTGRES_SEEDS -u $POSTGRES_USER -p ${DB_PORT:-5432} --db $db"
  $tool create || true          # already exists on a second run
  $tool setup-schema -v 0.0 || true
  $tool update-schema -d "$schema/$dir/versioned"
done

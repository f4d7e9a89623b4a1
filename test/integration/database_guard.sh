#!/usr/bin/env bash
# The extension lives only in gateway.database, the one the worker serves: elsewhere its decrypt
# audits would never be written and its interfaces never synced.
set -u
source "$REPO/test/integration/lib/tap.sh"
plan 3

cluster_psql "$CLUSTER" -d postgres -c "DROP DATABASE IF EXISTS elsewhere" -c "CREATE DATABASE elsewhere" >/dev/null
out=$(cluster_psql "$CLUSTER" -d elsewhere -c "\set VERBOSITY verbose" -c "CREATE EXTENSION pg_gateway" 2>&1)
ok $([[ "$out" == *"55000"*'pg_gateway can only be installed in database "gateway"'* ]]; echo $?) \
   "CREATE EXTENSION in another database is refused (55000) and names gateway.database"
ok $([[ "$out" == *"HINT:"*"set gateway.database to this one"* ]]; echo $?) "with a hint that says what to do"
is "$(cluster_psql "$CLUSTER" -d elsewhere -Atc "SELECT count(*) FROM pg_namespace WHERE nspname = 'gateway'")" 0 \
   "and nothing was created there"
cluster_psql "$CLUSTER" -d postgres -c "DROP DATABASE elsewhere" >/dev/null

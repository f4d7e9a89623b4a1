#!/usr/bin/env bash
# The extension lives only in gateway.database, the one the worker serves: elsewhere its decrypt
# audits would never be written and its interfaces never synced. When gateway.database moves away
# from a database that has the extension (a rename, a changed setting), decryptions there are
# refused at once instead of going unaudited, and the database the worker does serve is not held
# up by them.
set -u
source "$REPO/test/integration/lib/tap.sh"
plan 8

cluster_psql "$CLUSTER" -d postgres -c "DROP DATABASE IF EXISTS elsewhere" -c "CREATE DATABASE elsewhere" >/dev/null
out=$(cluster_psql "$CLUSTER" -d elsewhere -c "\set VERBOSITY verbose" -c "CREATE EXTENSION pg_gateway" 2>&1)
ok $([[ "$out" == *"55000"*'pg_gateway can only be installed in database "gateway"'* ]]; echo $?) \
   "CREATE EXTENSION in another database is refused (55000) and names gateway.database"
ok $([[ "$out" == *"HINT:"*"set gateway.database to this one"* ]]; echo $?) "with a hint that says what to do"
is "$(cluster_psql "$CLUSTER" -d elsewhere -Atc "SELECT count(*) FROM pg_namespace WHERE nspname = 'gateway'")" 0 \
   "and nothing was created there"
cluster_psql "$CLUSTER" -d postgres -c "DROP DATABASE elsewhere" >/dev/null

# gateway.database moved away from the database with the extension.
dir=$(own_cluster moved)
cluster_init "$dir" "$(free_port 25900)" "gateway.usage_flush_interval = '100ms'" >/dev/null
cluster_start "$dir"
trap 'cluster_stop "$dir"' EXIT
mq() { cluster_psql "$dir" -d "$1" -At -c "$2" 2>&1; }
cluster_psql "$dir" -d postgres -c "CREATE DATABASE gateway" -c "CREATE DATABASE other" >/dev/null
mq gateway "CREATE EXTENSION pg_gateway" >/dev/null
sealed=$(mq gateway "SELECT encode(gateway.encrypt_credentials('{\"token\": \"moved-secret\"}', 'ctx'), 'hex')")
cluster_stop "$dir"
as_pg bash -c "echo \"gateway.database = 'other'\" >> '$dir/data/postgresql.conf'"
cluster_start "$dir"
out=$(cluster_psql "$dir" -d gateway -At -c "\\set VERBOSITY verbose" \
       -c "SELECT gateway.decrypt_credentials(decode('$sealed', 'hex'), 'ctx')" 2>&1)
ok $([[ "$out" == *"55000"*"does not serve this database"* ]]; echo $?) \
   "a decryption in a database the worker no longer serves is refused at once (55000)"
ok $([[ "$out" != *"moved-secret"* ]]; echo $?) "and returns no plaintext"
is "$(mq gateway "SELECT reason FROM gateway.api_key_verify('gw_nope')")" malformed "the rest of the extension still answers there"
mq other "CREATE EXTENSION pg_gateway" >/dev/null
sealed=$(mq other "SELECT encode(gateway.encrypt_credentials('{\"token\": \"served\"}', 'ctx'), 'hex')")
is "$(mq other "SELECT gateway.decrypt_credentials(decode('$sealed', 'hex'), 'ctx') ->> 'token'")" served \
   "the database the worker serves decrypts as usual"
oq() { mq other "$1"; }
is "$(poll_with oq "SELECT count(*) FROM gateway.audit_log WHERE action = 'credentials.decrypted'" 1)" 1 \
   "and its decryption is audited"

#!/usr/bin/env bash
# Without shared_preload_libraries the extension refuses to load, with a hint; with an unsafe or
# missing master key file, key operations fail with a clear error and change nothing.
set -u
source "$REPO/test/integration/lib/tap.sh"
plan 9

dir=$(own_cluster no-preload)
port=$(free_port 25700)
cluster_init "$dir" "$port" && as_pg sed -i "s/^shared_preload_libraries = 'pg_gateway'$/shared_preload_libraries = ''/" "$dir/data/postgresql.conf"
cluster_start "$dir"
cluster_psql "$dir" -d postgres -c "CREATE DATABASE gateway" >/dev/null
out=$(cluster_psql "$dir" -d gateway -c "CREATE EXTENSION pg_gateway" 2>&1)
ok $([[ "$out" == *"pg_gateway must be loaded via shared_preload_libraries"* ]]; echo $?) \
   "CREATE EXTENSION without preload fails with a clear message"
ok $([[ "$out" == *"HINT:  Add pg_gateway to shared_preload_libraries"* ]]; echo $?) "and a hint that says what to do"
is "$(cluster_psql "$dir" -d gateway -Atc "SELECT count(*) FROM pg_extension WHERE extname = 'pg_gateway'")" 0 \
   "nothing was created"

# The same cluster, preloaded, with a master key readable by others.
cluster_stop "$dir"
as_pg sed -i "s/^shared_preload_libraries = ''$/shared_preload_libraries = 'pg_gateway'/" "$dir/data/postgresql.conf"
as_pg chmod 644 "$dir/master.key"
cluster_start "$dir"
cluster_psql "$dir" -d gateway -c "CREATE EXTENSION pg_gateway" >/dev/null
# Keys are issued to editors of their project; the membership itself needs no master key.
cluster_psql "$dir" -d gateway -c "INSERT INTO gateway.project_members (project_id, user_id, role)
  VALUES ('c1000000-0000-4000-8000-000000000001', 'a1000000-0000-4000-8000-000000000001', 'editor')" >/dev/null
out=$(cluster_psql "$dir" -d gateway -c "\set VERBOSITY verbose" -c "SELECT * FROM gateway.api_key_issue('a1000000-0000-4000-8000-000000000001', 'c1000000-0000-4000-8000-000000000001', 'x')" 2>&1)
ok $([[ "$out" == *"F0000"*"is accessible by group or others"* ]]; echo $?) \
   "a group/world-readable key file is refused (SQLSTATE F0000)"
ok $([[ "$out" == *"chmod 600"* ]]; echo $?) "with a hint to fix the permissions"
is "$(cluster_psql "$dir" -d gateway -Atc "SELECT count(*) FROM gateway.api_keys")" 0 "no key was created"
is "$(cluster_psql "$dir" -d gateway -Atc "SELECT reason FROM gateway.api_key_verify('not a key')")" malformed \
   "malformed keys are still answered without the master key"

# No key file configured at all.
cluster_stop "$dir"
as_pg sed -i "/^gateway.master_key_file/d" "$dir/data/postgresql.conf"
cluster_start "$dir"
out=$(cluster_psql "$dir" -d gateway -c "SELECT * FROM gateway.api_key_issue('a1000000-0000-4000-8000-000000000001', 'c1000000-0000-4000-8000-000000000001', 'x')" 2>&1)
ok $([[ "$out" == *"gateway.master_key_file is not set"* ]]; echo $?) "an unset master key file is named in the error"
ok $([[ "$out" == *"HINT:"*"openssl rand -hex 32"* ]]; echo $?) "with a hint on how to create one"
cluster_stop "$dir"

#!/usr/bin/env bash
# ALTER EXTENSION UPDATE 0.6.0 -> 0.7.0 re-creates api_key_verify and carries its grants over. A
# grant made by a role holding the grant option (probe_admin -> probe_app) is made again by that
# role, so REVOKE ... FROM probe_admin CASCADE still takes probe_app's away (the first version of
# the script made every grant as the updating superuser, flattening the chain; found by review).
set -u
source "$REPO/test/integration/lib/tap.sh"
plan 3
dir=$(own_cluster upgrade_grant_chain)
port=$(free_port 26250)
cluster_init "$dir" "$port" >/dev/null
cluster_start "$dir"
trap 'cluster_stop "$dir"' EXIT
cq() { cluster_psql "$dir" -d gateway -At -c "$1"; }
verify='gateway.api_key_verify(text, uuid, text, integer)'
cluster_psql "$dir" -d postgres -c "CREATE DATABASE gateway" >/dev/null
cluster_psql "$dir" -d postgres -q -c 'CREATE ROLE probe_admin NOLOGIN' -c 'CREATE ROLE probe_app NOLOGIN' >/dev/null
cq "CREATE EXTENSION pg_gateway VERSION '0.6.0'" >/dev/null
cq "GRANT USAGE ON SCHEMA gateway TO probe_admin; GRANT EXECUTE ON FUNCTION $verify TO probe_admin WITH GRANT OPTION" >/dev/null
cq "SET ROLE probe_admin; GRANT EXECUTE ON FUNCTION $verify TO probe_app" >/dev/null
is "$(cq "ALTER EXTENSION pg_gateway UPDATE TO '0.7.0'" 2>&1)" "" "update from 0.6.0 (no error)"
is "$(cq "SELECT has_function_privilege('probe_app', '$verify', 'EXECUTE')")" "t" \
  "after the update probe_app still calls verify"
cq "REVOKE EXECUTE ON FUNCTION $verify FROM probe_admin CASCADE" >/dev/null
is "$(cq "SELECT has_function_privilege('probe_app', '$verify', 'EXECUTE')")" "f" \
  "a grant made by a holder of the grant option goes with REVOKE ... CASCADE after the update"

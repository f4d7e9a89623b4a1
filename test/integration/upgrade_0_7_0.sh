#!/usr/bin/env bash
# Hostile checks of the 0.7.0 changes (found by review, each failing first):
#  - ALTER EXTENSION UPDATE carries EXECUTE on api_key_verify over to a role whose name needs
#    quoting ("Review App"): the scripts quoted regrole's text (already quoted) a second time, so
#    the GRANT named a role that does not exist and the whole update failed (0.5.0 -> 0.6.0 and
#    0.6.0 -> 0.7.0 alike).
#  - The re-created api_key_verify gets no EXECUTE from the updating role's default privileges
#    (ALTER DEFAULT PRIVILEGES ... GRANT EXECUTE ON FUNCTIONS): only the old function's grantees
#    may call it afterwards (docs/security.md: verify is service_role's only).
#  - The verify cache's admission (a key is filled on its second miss) cannot be defeated by a
#    flood of well-formed keys with unknown prefixes: they used to overwrite the doorkeeper slots,
#    so a real key that was not cached yet never got in while the flood went on.
#  - A DBA's ALTER TYPE gateway.api_key_verification ALTER ATTRIBUTE ... TYPE makes verify raise,
#    not crash the server (the C code forms the row by the type's descriptor).
set -u
source "$REPO/test/integration/lib/tap.sh"
plan 9

dir=$(own_cluster upgrade_0_7_0)
port=$(free_port 26150)
cluster_init "$dir" "$port" "gateway.verify_cache_size = 64" >/dev/null
cluster_start "$dir"
trap 'cluster_stop "$dir"' EXIT
cq() { cluster_psql "$dir" -d gateway -At -c "$1"; }
# update SQL: runs an ALTER EXTENSION; prints its exit status (its errors go to the TAP output).
update() {
  local rc
  cluster_psql "$dir" -d gateway -q -v ON_ERROR_STOP=1 -c "$1" >/dev/null 2>"$dir/update.err"
  rc=$?
  echo "$rc"
}
update_error() { [[ -s $dir/update.err ]] && diag "$(head -1 "$dir/update.err")"; return 0; }
cluster_psql "$dir" -d postgres -c "CREATE DATABASE gateway" >/dev/null
cluster_psql "$dir" -d postgres -q -c 'CREATE ROLE "Review App" NOLOGIN' -c 'CREATE ROLE review_default NOLOGIN' >/dev/null

# 1-2: from 0.5.0 (through 0.6.0) with a grantee whose name needs quoting.
cq "CREATE EXTENSION pg_gateway VERSION '0.5.0'" >/dev/null
cq 'GRANT EXECUTE ON FUNCTION gateway.api_key_verify(text, uuid) TO "Review App"' >/dev/null
is "$(update "ALTER EXTENSION pg_gateway UPDATE")" "0" "update from 0.5.0 with a grantee named \"Review App\" succeeds"
update_error
is "$(cq "SELECT has_function_privilege('Review App', 'gateway.api_key_verify(text, uuid, text, integer)', 'EXECUTE')" 2>&1)" \
  "t" "\"Review App\" keeps EXECUTE on api_key_verify from 0.5.0"

# 3-4: from 0.6.0.
cq "DROP EXTENSION pg_gateway CASCADE" >/dev/null 2>&1
cq "CREATE EXTENSION pg_gateway VERSION '0.6.0'" >/dev/null
cq 'GRANT EXECUTE ON FUNCTION gateway.api_key_verify(text, uuid, text, integer) TO "Review App" WITH GRANT OPTION' >/dev/null
is "$(update "ALTER EXTENSION pg_gateway UPDATE TO '0.7.0'")" "0" "update from 0.6.0 with a grantee named \"Review App\" succeeds"
update_error
is "$(cq "SELECT has_function_privilege('Review App', 'gateway.api_key_verify(text, uuid, text, integer)', 'EXECUTE WITH GRANT OPTION')" 2>&1)" \
  "t" "\"Review App\" keeps EXECUTE WITH GRANT OPTION from 0.6.0"

# 5-6: default privileges of the updating role give nobody EXECUTE on the new verify.
cq "DROP EXTENSION pg_gateway CASCADE" >/dev/null 2>&1
cq "CREATE EXTENSION pg_gateway VERSION '0.6.0'" >/dev/null
cq "ALTER DEFAULT PRIVILEGES IN SCHEMA gateway GRANT EXECUTE ON FUNCTIONS TO review_default" >/dev/null
cq "ALTER DEFAULT PRIVILEGES GRANT EXECUTE ON FUNCTIONS TO review_default" >/dev/null
before=$(cq "SELECT has_function_privilege('review_default', 'gateway.api_key_verify(text, uuid, text, integer)', 'EXECUTE')")
out=$(update "ALTER EXTENSION pg_gateway UPDATE TO '0.7.0'")
after=$(cq "SELECT has_function_privilege('review_default', 'gateway.api_key_verify(text, uuid, text, integer)', 'EXECUTE')")
is "$before/$out/$after" "f/0/f" "a role with default EXECUTE on new functions does not get verify by the update"
cq "ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM review_default" >/dev/null
is "$(cq "SELECT coalesce(string_agg(a.grantee::regrole::text, ','), '') FROM pg_proc AS p, aclexplode(p.proacl) AS a
          WHERE p.oid = 'gateway.api_key_verify(text, uuid, text, integer)'::regprocedure AND a.grantee <> p.proowner
            AND a.grantee NOT IN (SELECT oid FROM pg_roles WHERE rolname = 'service_role')")" \
  "" "verify's ACL after the update: its owner and service_role only"

# 7: doorkeeper. 64 entries: 8 sets, 3 doorkeeper slots each. A real key is verified five times,
# each time followed by 200 well-formed keys with unknown prefixes (every slot is hit by ~8 of
# them). Its second verify fills the cache, so at least three of five are hits; unknown prefixes
# are never hits.
user=a7000000-0000-4000-8000-000000000001
project=c7000000-0000-4000-8000-000000000001
cq "INSERT INTO gateway.project_members (project_id, user_id, role) VALUES ('$project', '$user', 'editor')" >/dev/null
key=$(cq "SELECT api_key FROM gateway.api_key_issue('$user', '$project', 'doorkeeper')")
hits=$(cluster_psql "$dir" -d gateway -At <<SQL
SELECT hits AS hits_before FROM gateway.verify_cache \gset
DO \$\$
DECLARE
  junk text[] := ARRAY(SELECT (gateway._api_key_generate()).api_key FROM generate_series(1, 200));
BEGIN
  FOR r IN 1..5 LOOP
    PERFORM gateway.api_key_verify('$key');
    FOR i IN 1..200 LOOP PERFORM gateway.api_key_verify(junk[i]); END LOOP;
  END LOOP;
END
\$\$;
SELECT hits - :hits_before FROM gateway.verify_cache;
SQL
)
ok $(( hits >= 3 ? 0 : 1 )) "a flood of unknown prefixes does not keep a real key out of the verify cache (hits: $hits of 5)"

# 8-9: ALTER TYPE on the result type: an error, not a crash.
cq "ALTER TYPE gateway.api_key_verification ALTER ATTRIBUTE valid TYPE text" >/dev/null
out=$(cq "SELECT reason FROM gateway.api_key_verify('$key')" 2>&1)
ok $([[ $out == *ERROR:*api_key_verification* ]] && echo 0 || echo 1) "verify raises on a result type whose column types changed"
[[ $out == *ERROR:* ]] || diag "$(echo "$out" | head -1)"
sleep 1
crashes=$(grep -c "terminated by signal" "$dir/server.log")
is "$crashes" "0" "no backend crashed"
[[ $crashes == 0 ]] || diag "$(grep -m1 'terminated by signal' "$dir/server.log")"

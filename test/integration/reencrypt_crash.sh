#!/usr/bin/env bash
# Re-encryption survives a crash in the middle: the batches it committed stay done, nothing is
# damaged, and calling it again finishes the rest.
set -u
source "$REPO/test/integration/lib/tap.sh"
plan 5

project=ce000000-0000-4000-8000-000000000001
q "INSERT INTO gateway.connectors (project_id, name, connector_type, encrypted_credentials)
   SELECT '$project', 'crash-' || g, 'http', NULL FROM generate_series(1, 20000) g" >/dev/null
q "UPDATE gateway.connectors SET encrypted_credentials = gateway.encrypt_credentials(jsonb_build_object('n', name), id::text)
    WHERE project_id = '$project'" >/dev/null
active=$(q "SELECT gateway.rotate_encryption_key()")
moved() { q "SELECT count(*) FROM gateway.connectors WHERE project_id = '$project' AND encryption_key_id = $active"; }

cluster_psql "$CLUSTER" -d gateway -c "CALL gateway.reencrypt_credentials(200)" >/dev/null 2>&1 &
for i in $(seq 200); do
  [[ $(moved) -gt 0 ]] && break
  sleep 0.02
done
pid=$(q "SELECT pid FROM pg_stat_activity WHERE query LIKE 'CALL gateway.reencrypt_credentials%' AND pid <> pg_backend_pid()")
[[ -n "$pid" ]] && kill -9 "$pid"
wait
# The postmaster restarts after the crash; wait until it accepts connections again.
for i in $(seq 100); do q "SELECT 1" >/dev/null 2>&1 && break; sleep 0.2; done
after_crash=$(moved)
ok $([[ -n "$pid" && $after_crash -gt 0 && $after_crash -lt 20000 ]]; echo $?) \
   "the crash came mid-way ($after_crash of 20000 moved)"
is "$(q "SELECT count(*) FROM gateway.connectors WHERE project_id = '$project'
          AND gateway.connector_credentials(id) ->> 'n' IS DISTINCT FROM name")" 0 \
   "every credential still decrypts to its own value"
cluster_psql "$CLUSTER" -d gateway -c "CALL gateway.reencrypt_credentials(1000)" >/dev/null 2>&1
is "$(moved)" 20000 "calling it again finishes the rest"
is "$(q "SELECT count(*) FROM gateway.connectors WHERE project_id = '$project'
          AND gateway.connector_credentials(id) ->> 'n' IS DISTINCT FROM name")" 0 "and everything decrypts"
is "$(wait_for "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'" 1 20)" 1 \
   "the worker is back after the crash restart"
q "DELETE FROM gateway.connectors WHERE project_id = '$project'" >/dev/null

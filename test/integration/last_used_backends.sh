#!/usr/bin/env bash
# last_used_at with two backends using one cached key. Each backend records a key's use at most
# once per gateway.last_used_resolution (R), and the worker writes a use only R past the one it
# last took from the key's slot. Backend A's use at t0 is written; backend B's first use at
# t0 + 0.5 R is within R of it, so it is dropped; B's next use at t0 + 1.3 R lies R past the
# written one and must reach the row. Were B to count its dropped use as recorded, it would skip
# until t0 + 1.5 R and the row would trail B's uses by up to 2 R (found in review).
set -u
source "$REPO/test/integration/lib/tap.sh"
plan 2

R=6
cluster_psql "$CLUSTER" -d gateway -c "ALTER SYSTEM SET gateway.last_used_resolution = '${R}s'" -c "SELECT pg_reload_conf()" >/dev/null
q "INSERT INTO gateway.project_members (project_id, user_id, role)
   VALUES ('c8000000-0000-4000-8000-000000000001', 'a8000000-0000-4000-8000-000000000001', 'editor') ON CONFLICT DO NOTHING" >/dev/null
issue() {
  q "SELECT key_id || ' ' || api_key FROM gateway.api_key_issue(
       'a8000000-0000-4000-8000-000000000001', 'c8000000-0000-4000-8000-000000000001', '$1')"
}
# The worker first has to be past its reload (it writes nothing meanwhile): a throwaway key's use
# is written once it is.
read -r warm_id warm_key < <(issue last-used-warm-up)
q "SELECT reason FROM gateway.api_key_verify('$warm_key')" >/dev/null
wait_for "SELECT last_used_at IS NOT NULL FROM gateway.api_keys WHERE id = '$warm_id'" t 20 >/dev/null

read -r kid key < <(issue last-used-two-backends)
# An old last_used_at (no cache invalidation for that column): the cache is filled with a value
# older than R, as on a server that has been up for longer than one resolution.
q "UPDATE gateway.api_keys SET last_used_at = now() - interval '1 hour' WHERE id = '$kid'" >/dev/null

# Backend A (one session): probe (records t0), fill, hit.
t0=$(q "SELECT clock_timestamp()")
q "SELECT string_agg((gateway.api_key_verify('$key')).reason, ',') FROM generate_series(1, 3)" >/dev/null
is "$(wait_for "SELECT last_used_at >= '$t0'::timestamptz FROM gateway.api_keys WHERE id = '$kid'" t 20)" t \
   "backend A's use is written"
# Backend B (one session): a use at t0 + 0.5 R, then one at t0 + 1.3 R.
cluster_psql "$CLUSTER" -d gateway -At \
  -c "SELECT pg_sleep(extract(epoch FROM '$t0'::timestamptz + interval '$R s' * 0.5 - clock_timestamp()))" \
  -c "SELECT reason FROM gateway.api_key_verify('$key')" \
  -c "SELECT pg_sleep(extract(epoch FROM '$t0'::timestamptz + interval '$R s' * 1.3 - clock_timestamp()))" \
  -c "SELECT reason FROM gateway.api_key_verify('$key')" >/dev/null
is "$(wait_for "SELECT last_used_at >= '$t0'::timestamptz + interval '$R s' * 1.2 FROM gateway.api_keys WHERE id = '$kid'" t 10)" t \
   "backend B's use a resolution past A's reaches the row, although its use in between was dropped"
cluster_psql "$CLUSTER" -d gateway -c "ALTER SYSTEM RESET gateway.last_used_resolution" -c "SELECT pg_reload_conf()" >/dev/null

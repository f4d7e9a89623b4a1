#!/usr/bin/env bash
# The worker records last use and verify failures in batches, sleeps on its latch, reloads on
# SIGHUP, and on SIGTERM writes what it has batched before it stops.
set -u
source "$REPO/test/integration/lib/tap.sh"
plan 15

worker_pid() { q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'"; }

pid=$(wait_for "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'" 1)
is "$pid" 1 "one pg_gateway worker runs"
is "$(q "SELECT datname FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'")" gateway \
   "it is connected to gateway.database"
is "$(q "SELECT wait_event_type || '/' || wait_event FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'")" \
   "Extension/Extension" "idle, it sleeps on its latch"

q "INSERT INTO gateway.project_members (project_id, user_id, role)
   VALUES ('c8000000-0000-4000-8000-000000000001', 'a8000000-0000-4000-8000-000000000001', 'editor') ON CONFLICT DO NOTHING" >/dev/null
read -r key_id key < <(q "SELECT key_id || ' ' || api_key FROM gateway.api_key_issue(
  'a8000000-0000-4000-8000-000000000001', 'c8000000-0000-4000-8000-000000000001', 'usage')")
is "$(q "SELECT last_used_at IS NULL FROM gateway.api_keys WHERE id = '$key_id'")" t "a new key was never used"
is "$(q "SELECT reason FROM gateway.api_key_verify('$key')")" ok "verify succeeds"
is "$(wait_for "SELECT last_used_at IS NOT NULL FROM gateway.api_keys WHERE id = '$key_id'" t)" t \
   "the worker records last_used_at shortly after"

# last_used_at has a resolution (gateway.last_used_resolution, 15 min): a row used longer ago than
# that moves to the new use; one used within it keeps its time (verify then records nothing).
read -r old_id old_key < <(q "SELECT key_id || ' ' || api_key FROM gateway.api_key_issue(
  'a8000000-0000-4000-8000-000000000001', 'c8000000-0000-4000-8000-000000000001', 'used-long-ago')")
read -r recent_id recent_key < <(q "SELECT key_id || ' ' || api_key FROM gateway.api_key_issue(
  'a8000000-0000-4000-8000-000000000001', 'c8000000-0000-4000-8000-000000000001', 'used-recently')")
q "UPDATE gateway.api_keys SET last_used_at = now() - CASE id WHEN '$old_id' THEN interval '2 hours' ELSE interval '1 minute' END
   WHERE id IN ('$old_id', '$recent_id')" >/dev/null
recent_before=$(q "SELECT last_used_at FROM gateway.api_keys WHERE id = '$recent_id'")
q "SELECT count(*) FROM gateway.api_key_verify('$recent_key') AS a, gateway.api_key_verify('$old_key') AS b
   WHERE a.valid AND b.valid" >/dev/null
is "$(wait_for "SELECT last_used_at > now() - interval '1 minute' FROM gateway.api_keys WHERE id = '$old_id'" t)" t \
   "a key last used beyond the resolution gets the new use"
is "$(q "SELECT last_used_at FROM gateway.api_keys WHERE id = '$recent_id'")" "$recent_before" \
   "a key last used within the resolution keeps its time (same batch window as the one above)"

# Keys in continuous use from one backend: their rows follow the uses, once per resolution. Each
# backend records a key's use at most once per resolution (and a cached key's cached last_used_at
# stays the one it was filled with), and a rate-limited key's slot wakes the worker only once a
# resolution has passed since its last write: this fails if either were never written again.
cluster_psql "$CLUSTER" -d gateway -c "ALTER SYSTEM SET gateway.last_used_resolution = '2s'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
read -r busy_id busy_key < <(q "SELECT key_id || ' ' || api_key FROM gateway.api_key_issue(
  'a8000000-0000-4000-8000-000000000001', 'c8000000-0000-4000-8000-000000000001', 'in-use')")
read -r limited_id limited_key < <(q "SELECT key_id || ' ' || api_key FROM gateway.api_key_issue(
  'a8000000-0000-4000-8000-000000000001', 'c8000000-0000-4000-8000-000000000001', 'in-use-limited',
  rate_limit_per_minute => 100000)")
started=$(q "SELECT clock_timestamp()")
q "DO \$\$ BEGIN FOR i IN 1..35 LOOP
     PERFORM gateway.api_key_verify('$busy_key'); PERFORM gateway.api_key_verify('$limited_key'); PERFORM pg_sleep(0.2);
   END LOOP; END \$\$" >/dev/null
is "$(wait_for "SELECT last_used_at >= '$started'::timestamptz + interval '4 s' FROM gateway.api_keys WHERE id = '$busy_id'" t)" t \
   "a key used for 7 s with a 2 s resolution has a last_used_at from its last seconds of use"
is "$(wait_for "SELECT last_used_at >= '$started'::timestamptz + interval '4 s' FROM gateway.api_keys WHERE id = '$limited_id'" t)" t \
   "the same for a rate-limited key"
cluster_psql "$CLUSTER" -d gateway -c "ALTER SYSTEM RESET gateway.last_used_resolution" -c "SELECT pg_reload_conf()" >/dev/null

q "SELECT reason FROM gateway.api_key_verify('gw_integration_bad')" >/dev/null
q "SELECT gateway.api_key_revoke('$key_id')" >/dev/null
q "SELECT reason FROM gateway.api_key_verify('$key')" >/dev/null
is "$(wait_for "SELECT count(*) FROM gateway.audit_log WHERE action = 'api_key.verify_failed' AND object_id = '$key_id' AND details->>'reason' = 'revoked'" 1)" 1 \
   "a failed verify of a revoked key is audited with its key id"
is "$(q "SELECT count(*) FROM gateway.audit_log WHERE details::text LIKE '%$(echo "$key" | cut -c17-)%'")" 0 \
   "the audit log never holds the key"

# SIGHUP: a long batching window now; SIGTERM must still write the pending batch.
cluster_psql "$CLUSTER" -d gateway -c "ALTER SYSTEM SET gateway.usage_flush_interval = '1h'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
read -r key2_id key2 < <(q "SELECT key_id || ' ' || api_key FROM gateway.api_key_issue(
  'a8000000-0000-4000-8000-000000000001', 'c8000000-0000-4000-8000-000000000001', 'usage-2')")
q "SELECT reason FROM gateway.api_key_verify('$key2')" >/dev/null
sleep 1
is "$(q "SELECT last_used_at IS NULL FROM gateway.api_keys WHERE id = '$key2_id'")" t \
   "after SIGHUP the worker batches for the new, longer interval"
old_pid=$(worker_pid)
kill -TERM "$old_pid"
is "$(wait_for "SELECT last_used_at IS NOT NULL FROM gateway.api_keys WHERE id = '$key2_id'" t)" t \
   "SIGTERM: the worker writes its pending batch before it stops"
new_pid=$(wait_for "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker' AND pid <> $old_pid" 1 20)
is "$new_pid" 1 "the postmaster restarts the worker"

cluster_psql "$CLUSTER" -d gateway -c "ALTER SYSTEM RESET gateway.usage_flush_interval" -c "SELECT pg_reload_conf()" >/dev/null

#!/usr/bin/env bash
# gateway.audit_decrypt_durable: a decryption returns only once the worker has committed its
# audit record, so a crash right after it returns loses nothing; without the worker's
# confirmation it fails (55000) and returns no plaintext. Off, decrypt does not wait for the
# worker at all. On a cluster of its own: it kills the server's processes.
set -u
source "$REPO/test/integration/lib/tap.sh"
plan 12

dir=$(own_cluster durable-decrypt)
port=$(free_port 25760)
# A batching window far longer than the test: any record in the table came from a confirmation.
cluster_init "$dir" "$port" "gateway.database = 'postgres'" "gateway.usage_flush_interval = '1h'"
cluster_start "$dir"
dq() { cluster_psql "$dir" -d postgres -At -c "$1" 2>&1; }
dq_verbose() { cluster_psql "$dir" -d postgres -At -v VERBOSITY=verbose -c "$1" 2>&1; }
setting() { dq "ALTER SYSTEM SET $1" >/dev/null; dq "SELECT pg_reload_conf()" >/dev/null; sleep 0.3; }
audited() { dq "SELECT count(*) FROM gateway.audit_log WHERE action = 'credentials.decrypted' AND details->>'context' = '$1'"; }
worker_pid() { dq "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'"; }
postmaster_pid() { head -1 "$dir/data/postmaster.pid"; }
stopped=""
trap '[[ -n $stopped ]] && kill -CONT "$stopped" 2>/dev/null' EXIT

dq "CREATE EXTENSION pg_gateway" >/dev/null
wait_worker() { poll_with dq "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'" 1 20 >/dev/null; }
wait_worker
sealed() { dq "SELECT gateway.encrypt_credentials('{\"password\": \"s3cret-$1\"}', '$1')"; }
decrypt() { dq_verbose "SELECT gateway.decrypt_credentials('$(sealed "$1")', '$1') ->> 'password'"; }

# Kills every child of the postmaster at once (as a crash would), then waits for its restart.
crash() {
  local pm child
  pm=$(postmaster_pid)
  for child in $(ps -o pid= --ppid "$pm"); do kill -9 "$child" 2>/dev/null; done
  for _ in $(seq 150); do dq "SELECT 1" >/dev/null 2>&1 && break; sleep 0.2; done
  wait_worker
}

setting "gateway.audit_decrypt_durable = on"
is "$(decrypt durable-now)" s3cret-durable-now "durable: decrypt returns the plaintext"
is "$(audited durable-now)" 1 "durable: its audit record is committed when decrypt returns (batch window 1h)"

is "$(decrypt durable-crash)" s3cret-durable-crash "durable: a decrypt returns"
crash
is "$(audited durable-crash)" 1 "durable: after kill -9 of every server process right after it returned, its record is there"

setting "gateway.audit_decrypt_durable = off"
is "$(decrypt lazy-crash)" s3cret-lazy-crash "not durable: a decrypt returns"
crash
is "$(audited lazy-crash)" 0 "not durable: the same crash loses the record still batched in shared memory"

# The worker stopped (SIGSTOP): alive, registered, but confirming nothing.
stopped=$(worker_pid)
kill -STOP "$stopped"
is "$(decrypt lazy-stopped)" s3cret-lazy-stopped "not durable, worker stopped: decrypt still returns"

setting "gateway.audit_decrypt_durable = on"
setting "gateway.audit_decrypt_timeout = '700ms'"
start=$(date +%s%N)
out=$(decrypt durable-stopped)
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
ok $([[ "$out" == *"55000"*"did not confirm the audit record"* ]]; echo $?) \
   "durable, worker stopped: decrypt fails with 55000 after gateway.audit_decrypt_timeout"
[[ "$out" == *"55000"* ]] || diag "$out"
ok $([[ "$out" != *"s3cret"* && $elapsed_ms -ge 700 ]]; echo $?) \
   "and returns no plaintext (failed after $elapsed_ms ms)"
kill -CONT "$stopped"
stopped=""
is "$(decrypt durable-resumed)" s3cret-durable-resumed "durable, worker resumed: decrypt works again"

# No worker at all (terminated; the postmaster restarts it after 5 s): refused at once.
pid=$(worker_pid)
dq "SELECT pg_terminate_backend($pid)" >/dev/null
poll_with dq "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'" 0 5 >/dev/null
out=$(decrypt durable-noworker)
ok $([[ "$out" == *"55000"*"worker is not running"* && "$out" != *"s3cret"* ]]; echo $?) \
   "durable, no worker: decrypt fails with 55000 and returns no plaintext"
[[ "$out" == *"55000"* ]] || diag "$out"
wait_worker
is "$(decrypt durable-back)" s3cret-durable-back "durable: the restarted worker confirms again"

#!/usr/bin/env bash
# 10,000 calls queued in one transaction, half answered synchronously and half completed later
# through the callback listener, through 30 % 503s, a kill -9 of the worker and a server restart:
# every call ends in exactly one final state, none is lost, no operation is started twice.
set -u
source "$REPO/test/integration/lib/tap.sh"
source "$REPO/test/integration/lib/temporal.sh"
source "$REPO/test/integration/lib/nexus.sh"
plan 9

start_temporal_fake nexus-bulk
nexus_cluster nexus-bulk
SYNC=$(ready_connector bulk-sync)
ASYNC=$(tq "INSERT INTO gateway.project_connectors (source_project_id, target_project_id, target_service_id,
                                                    target_interface_id, name, nexus_service_name, created_by)
            VALUES ('$SOURCE_PROJECT', '$TARGET_PROJECT', '$TARGET_WORKFLOW', '$TARGET_INTERFACE', 'bulk-async',
                    'orders-async', '$SOURCE_EDITOR') RETURNING id")
approve "$ASYNC"
twait "SELECT sync_state FROM gateway.project_connectors WHERE id = '$ASYNC'" synced 30 >/dev/null
handler approve-order '*' '{"kind": "sync", "result": {"ok": true}}'
handler orders-async '*' '{"kind": "async", "delay_ms": 200, "outcome": "succeeded", "result": {"ok": true}}'
worker_pid() { tq "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'"; }

temporal_faults '{"error_rate": 0.3, "error_status": 503}'
tq "SELECT count(gateway.connector_call(CASE WHEN i % 2 = 0 THEN '$SYNC' ELSE '$ASYNC' END::uuid,
                                        jsonb_build_object('i', i), '1 hour'))
      FROM generate_series(1, 10000) AS i" >/dev/null
ok $? "10,000 calls are queued in one transaction"
twait "SELECT count(*) > 1000 FROM gateway.connector_calls WHERE state IN ('running', 'succeeded')" t 120 >/dev/null
kill -9 "$(worker_pid)"
ok $? "the worker is killed with SIGKILL mid-way"
twait "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'" 1 30 >/dev/null
twait "SELECT count(*) > 5000 FROM gateway.connector_calls WHERE state IN ('running', 'succeeded')" t 180 >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$TCLUSTER/data" -m fast -w restart -l "$TCLUSTER/server.log" >/dev/null
ok $? "the server restarts in the middle"
is "$(twait "SELECT count(*) FROM gateway.connector_calls WHERE state NOT IN ('succeeded', 'failed', 'canceled', 'timed_out')" 0 300)" 0 \
   "every call reaches a final state"
is "$(tq "SELECT count(*) FILTER (WHERE state = 'succeeded') || '/' || count(*) FROM gateway.connector_calls")" "10000/10000" \
   "all 10,000 succeeded: none lost, none failed"
temporal_faults '{"error_rate": 0}'
is "$(nexus_stat nexus_operations)" 10000 "the fake started exactly 10,000 operations"
is "$(nexus_stat nexus_duplicate_operations)" 0 "0 duplicate operations"
diag "duplicate start requests absorbed by request id: $(nexus_stat nexus_duplicate_starts)"
is "$(tq "SELECT count(*) FROM gateway.sync_jobs WHERE target = 'nexus' AND object_kind = 'connector_call'")" 0 \
   "no call job is left in the outbox"
check_temporal_contract

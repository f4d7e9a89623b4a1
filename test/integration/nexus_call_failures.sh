#!/usr/bin/env bash
# Cross-project calls when things go wrong: a deadline passes; a call canceled before it starts;
# the endpoint deleted under a running call; Temporal down, then back (calls start once it
# returns); the worker killed between a start and its record (the retry carries the same request
# id: no second operation); the listener down while a completion is delivered (the retried
# delivery lands).
set -u
source "$REPO/test/integration/lib/tap.sh"
source "$REPO/test/integration/lib/temporal.sh"
source "$REPO/test/integration/lib/nexus.sh"
plan 19

start_temporal_fake nexus-failures
nexus_cluster nexus-failures
CONNECTOR=$(ready_connector failures)
worker_pid() { tq "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'"; }
listener_pid() { tq "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_gateway callback listener'"; }

# --- the deadline passes while the operation runs: timed out, and the handler is asked to cancel
handler '*' '*' '{"kind": "async", "delay_ms": 60000, "outcome": "succeeded", "result": {}}'
id=$(call "$CONNECTOR" '{}' '2 s')
is "$(twait "SELECT state FROM gateway.connector_calls WHERE id = '$id'" running 10)" running "a 2-second call is running"
is "$(settled "$id" 15)" timed_out "it times out at its deadline"
is "$(twait "SELECT cancel_sent_at IS NOT NULL FROM gateway.connector_calls WHERE id = '$id'" t 5)" t \
   "and the handler was asked to cancel the operation"

# --- canceled before it starts: in the same transaction as the call
out=$(tq "SELECT gateway.connector_call_cancel(gateway.connector_call('$CONNECTOR', '{}'))")
is "$out" t "a call canceled in the transaction that queued it"
is "$(tq "SELECT state || ' ' || (SELECT count(*) FROM gateway.sync_jobs WHERE object_kind = 'connector_call' AND state = 'pending')
            FROM gateway.connector_calls ORDER BY created_at DESC LIMIT 1")" "canceled 0" \
   "is canceled and leaves no job behind"

# --- the endpoint is deleted under a running call: the completion still lands
handler '*' '*' '{"kind": "async", "delay_ms": 2500, "outcome": "succeeded", "result": {"done": 1}}'
id=$(call "$CONNECTOR" '{}')
twait "SELECT state FROM gateway.connector_calls WHERE id = '$id'" running 10 >/dev/null
tq "SELECT gateway.connector_consent_revoke('$CONNECTOR')" >/dev/null
is "$(twait "SELECT sync_state FROM gateway.project_connectors WHERE id = '$CONNECTOR'" absent 20)" absent \
   "consent revoked: the endpoint is deleted while the call runs"
is "$(settled "$id" 20)" succeeded "the running operation's completion still lands on the row"
out=$(tq "SELECT gateway.connector_call('$CONNECTOR', '{}')" 2>&1)
ok "$([[ "$out" == *"not approved"* ]]; echo $?)" "a new call through the revoked connector is refused"
approve "$CONNECTOR"
twait "SELECT sync_state FROM gateway.project_connectors WHERE id = '$CONNECTOR'" synced 30 >/dev/null

# --- Temporal down, then back: calls wait and start once it returns, each once
handler '*' '*' '{"kind": "sync", "result": {"ok": true}}'
temporal_faults '{"down": true}'
tq "SELECT count(gateway.connector_call('$CONNECTOR', jsonb_build_object('n', i))) FROM generate_series(1, 20) AS i" >/dev/null
sleep 2
is "$(tq "SELECT count(*) FROM gateway.connector_calls WHERE input ? 'n' AND state IN ('queued', 'started')")" 20 \
   "with Temporal down, 20 calls wait"
ok "$(tq "SELECT count(*) > 0 FROM gateway.connector_calls WHERE input ? 'n' AND last_error IS NOT NULL" | grep -q t; echo $?)" \
   "and their rows say why"
temporal_faults '{"down": false}'
is "$(twait "SELECT count(*) FROM gateway.connector_calls WHERE input ? 'n' AND state = 'succeeded'" 20 60)" 20 \
   "once Temporal is back, every one succeeds"
is "$(nexus_stat nexus_duplicate_operations)" 0 "none was started twice"

# --- kill -9 between the start and its record: the retry carries the same request id
temporal_faults '{"latency_ms": 1500}'
id=$(call "$CONNECTOR" '{"crash": 1}')
twait "SELECT state FROM gateway.connector_calls WHERE id = '$id'" started 10 >/dev/null
sleep 0.7   # the start has reached the fake; its answer is still on its way
kill -9 "$(worker_pid)"
ok $? "the worker is killed while the start is in flight"
temporal_faults '{"latency_ms": 0}'
is "$(settled "$id" 60)" succeeded "after the restart the call succeeds"
is "$(temporal_py "sum(1 for o in d['operations'] if o['request_id'] == '$id')" /__fake/nexus/operations)" 1 \
   "the fake holds exactly one operation for that request id"
is "$(nexus_stat nexus_duplicate_operations)" 0 "0 duplicate operations"

# --- the listener is down while the completion is delivered: the retried delivery lands
twait "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_gateway callback listener'" 1 30 >/dev/null
handler '*' '*' '{"kind": "async", "delay_ms": 1000, "outcome": "succeeded", "result": {"late": true}}'
id=$(call "$CONNECTOR" '{"listener": 1}')
twait "SELECT state FROM gateway.connector_calls WHERE id = '$id'" running 10 >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$TCLUSTER/data" -m fast -w stop >/dev/null
sleep 3   # the fake tries to deliver and fails
as_pg "$PGBIN/pg_ctl" -D "$TCLUSTER/data" -w -l "$TCLUSTER/server.log" start >/dev/null
ok $? "the server (with its listener) was down while the completion was due"
is "$(settled "$id" 40)" succeeded "the retried delivery lands once the listener is back"
ok "$(temporal_py "d['callbacks_failed_attempts'] > 0" /__fake/stats | grep -q True; echo $?)" \
   "the fake did retry a failed delivery"

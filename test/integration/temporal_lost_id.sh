#!/usr/bin/env bash
# A create whose confirming read fails: the job ends as a retry that knows the new endpoint's id.
# That id is recorded (the contract: "never lose an id"), so when B withdraws consent before the
# retry succeeds, the endpoint targeting B is deleted by the connector's own job, not left for a
# reconcile that may be hours away (reconcile is off here).
set -u
source "$REPO/test/integration/lib/tap.sh"
source "$REPO/test/integration/lib/temporal.sh"
plan 6

start_temporal_fake temporal-lost-id
temporal_cluster temporal-lost-id
twait "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'" 1 >/dev/null

# Every request on one endpoint's path (read, update, delete) fails; creates and listings pass.
temporal_faults '{"error_rate": 1, "error_status": 503, "error_path": "/cluster/nexus/endpoints/"}'
id=$(connect lost-id)
approve "$id"
is "$(twait "SELECT sync_state FROM gateway.project_connectors WHERE id = '$id'" failed 20)" failed \
   "the create passed, its confirming read failed: the job is retried"
is "$(endpoint_count)" 1 "Temporal holds the new endpoint"
remote=$(temporal_py 'd["endpoints"][0]["id"]' /__fake/endpoints)
is "$(tq "SELECT endpoint_id FROM gateway.nexus_endpoints WHERE connector_id = '$id'")" "$remote" \
   "the retry recorded the id it learnt"

tq "SELECT gateway.connector_consent_revoke('$id')" >/dev/null
temporal_faults '{"error_rate": 0, "error_path": null}'
is "$(twait "SELECT sync_state FROM gateway.project_connectors WHERE id = '$id'" absent 20)" absent \
   "consent withdrawn: the connector settles as absent"
is "$(endpoint_count)" 0 "the endpoint targeting B is gone, without a reconcile"
check_temporal_contract

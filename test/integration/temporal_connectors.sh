#!/usr/bin/env bash
# A project connector is the single source of truth for one Nexus endpoint: none exists before
# the target project agrees; approving creates it (confirmed by a GET), edits update it in place
# (same id, the stored version, a version conflict re-read), revoking consent, the target's
# workers row going, or deleting the connector removes it; a name held by an endpoint we do not
# own is a dead letter, never adopted; connector_test reports what is wrong.
set -u
source "$REPO/test/integration/lib/tap.sh"
source "$REPO/test/integration/lib/temporal.sh"
plan 28

start_temporal_fake temporal-connectors
temporal_cluster temporal-connectors
endpoint() { temporal_py "[e for e in d['endpoints'] if e['spec']['name'] == '$1'][0]$2" /__fake/endpoints; }
row() { tq "SELECT $2 FROM gateway.project_connectors WHERE id = '$1'"; }

c1=$(connect orders)
is "$(twait "SELECT sync_state FROM gateway.project_connectors WHERE id = '$c1'" absent)" absent \
   "a connector B has not approved is settled with no endpoint"
is "$(endpoint_count)" 0 "no endpoint targets B before B agrees"

approve "$c1"
is "$(twait "SELECT sync_state FROM gateway.project_connectors WHERE id = '$c1'" synced)" synced \
   "once B approves, the connector is synced"
name=$(row "$c1" nexus_endpoint_name)
ok $([[ $name =~ ^gw-[0-9a-f]{16}$ ]] && echo 0 || echo 1) "its endpoint name is the deterministic default ($name)"
id=$(row "$c1" nexus_endpoint_id)
is "$(endpoint "$name" "['id']")" "$id" "the endpoint exists in Temporal under the id the row records"
is "$(endpoint "$name" "['spec']['target']['worker']")" "{'namespace': '$TARGET_NAMESPACE', 'taskQueue': '$TARGET_QUEUE'}" \
   "it targets B's namespace and task queue"
ok $(endpoint "$name" "['spec']['description']" | grep -q "^pg_gateway owner=" && echo 0 || echo 1) \
   "its description carries our ownership marker"
is "$(row "$c1" nexus_endpoint_version)" 1 "the row records the endpoint's version"
ok $(temporal_py 'd["reads"] >= 1' /__fake/stats | grep -q True && echo 0 || echo 1) "the create was confirmed by a read before the row said synced"

# An edit updates in place.
tq "UPDATE gateway.project_connectors SET description = 'orders, v2' WHERE id = '$c1'" >/dev/null
is "$(twait "SELECT nexus_endpoint_version FROM gateway.project_connectors WHERE id = '$c1' AND sync_state = 'synced'" 2)" 2 \
   "an edit updates the endpoint with the stored version"
is "$(endpoint "$name" "['id']")" "$id" "the same endpoint (never deleted and recreated)"
ok $(endpoint "$name" "['spec']['description']" | grep -q "orders, v2" && echo 0 || echo 1) "with the new description"

# Someone else updated the endpoint meanwhile: our stored version is stale.
temporal POST "/cluster/nexus/endpoints/$id/update" "$(temporal_py "json.dumps({'version': '2', 'spec': [e for e in d['endpoints'] if e['id'] == '$id'][0]['spec']})" /__fake/endpoints)" >/dev/null
tq "UPDATE gateway.project_connectors SET description = 'orders, v3' WHERE id = '$c1'" >/dev/null
is "$(twait "SELECT sync_state || ' ' || nexus_endpoint_version FROM gateway.project_connectors WHERE id = '$c1' AND description = 'orders, v3'" "synced 4")" "synced 4" \
   "a version conflict is re-read and retried, not a dead letter"

# The connector test.
is "$(tq "SELECT status FROM gateway.connector_test('$c1', '10 s')")" ok "connector_test reports ok, waiting for the worker"
is "$(row "$c1" "test_status || ' ' || (tested_at IS NOT NULL)")" "ok true" "the result lands on the row with its time"
temporal DELETE "/__fake/namespaces/$TARGET_NAMESPACE" >/dev/null
is "$(tq "SELECT status || ': ' || detail FROM gateway.connector_test('$c1', '10 s')")" "failed: namespace \"<target namespace>\" does not exist" \
   "a missing target namespace is reported precisely (its name masked: it is the target project's)"
temporal POST /__fake/namespaces "{\"name\": \"$TARGET_NAMESPACE\"}" >/dev/null

# Consent withdrawn, then given again.
tq "SELECT gateway.connector_consent_revoke('$c1')" >/dev/null
is "$(twait "SELECT sync_state FROM gateway.project_connectors WHERE id = '$c1'" absent)" absent "revoking consent removes the endpoint"
is "$(endpoint_count)" 0 "it is gone from Temporal"
is "$(tq "SELECT status || ': ' || detail FROM gateway.connector_test('$c1', '10 s')")" "failed: consent not approved" \
   "the connector test says why there is no endpoint"
approve "$c1"
twait "SELECT sync_state FROM gateway.project_connectors WHERE id = '$c1'" synced >/dev/null
ok $([[ "$(row "$c1" nexus_endpoint_id)" != "$id" && "$(endpoint_count)" == 1 ]] && echo 0 || echo 1) \
   "approving again creates a new endpoint"

# The target's workers row goes, then comes back.
tq "DELETE FROM gateway.project_workers WHERE project_id = '$TARGET_PROJECT'" >/dev/null
is "$(twait "SELECT sync_state FROM gateway.project_connectors WHERE id = '$c1'" absent)" absent \
   "without a workers row for B the endpoint is removed"
tq "INSERT INTO gateway.project_workers (project_id, temporal_namespace, task_queue)
    VALUES ('$TARGET_PROJECT', '$TARGET_NAMESPACE', 'queue-2')" >/dev/null
twait "SELECT sync_state FROM gateway.project_connectors WHERE id = '$c1'" synced >/dev/null
is "$(endpoint "$(row "$c1" nexus_endpoint_name)" "['spec']['target']['worker']['taskQueue']")" queue-2 \
   "with it back, the endpoint returns with the new task queue"

# A name held by an endpoint we do not own.
temporal POST /cluster/nexus/endpoints "{\"spec\": {\"name\": \"taken-by-someone\", \"description\": \"their endpoint\", \"target\": {\"worker\": {\"namespace\": \"$TARGET_NAMESPACE\", \"taskQueue\": \"theirs\"}}}}" >/dev/null
c2=$(tq "INSERT INTO gateway.project_connectors (source_project_id, target_project_id, target_service_id,
                 target_interface_id, name, nexus_endpoint_name, created_by)
         VALUES ('$SOURCE_PROJECT', '$TARGET_PROJECT', '$TARGET_WORKFLOW', '$TARGET_INTERFACE', 'clash',
                 'taken-by-someone', '$SOURCE_EDITOR') RETURNING id")
approve "$c2"
is "$(twait "SELECT sync_state FROM gateway.project_connectors WHERE id = '$c2'" dead)" dead \
   "a name held by an endpoint we do not own is a dead letter"
ok $(tq "SELECT last_error FROM gateway.sync_jobs WHERE object_id = '$c2' AND state = 'dead'" | grep -q "taken-by-someone.*does not own" && echo 0 || echo 1) \
   "its error says the name is held by an endpoint pg_gateway does not own"
is "$(endpoint taken-by-someone "['spec']['target']['worker']['taskQueue']")" theirs "the other endpoint is left alone"

# Deleting the connector removes its endpoint.
tq "DELETE FROM gateway.project_connectors WHERE id = '$c1'" >/dev/null
is "$(twait "SELECT count(*) FROM gateway.sync_jobs WHERE target = 'temporal' AND state <> 'dead'" 0)" 0 "the delete is synced"
is "$(temporal_py '[e["spec"]["name"] for e in d["endpoints"]]' /__fake/endpoints)" "['taken-by-someone']" \
   "only the endpoint we do not own remains"
check_temporal_contract

#!/usr/bin/env bash
# Reconciliation against the endpoint registry: an endpoint of ours deleted or changed behind our
# back is repaired, one of ours that no connector wants is deleted, endpoints without our marker
# are never touched; the list's lag and its empty last page do not confuse it.
set -u
source "$REPO/test/integration/lib/tap.sh"
source "$REPO/test/integration/lib/temporal.sh"
plan 9

start_temporal_fake temporal-reconcile
temporal_cluster temporal-reconcile "gateway.kong_owner_tag = 'reconcile-test'"
ids=()
for i in $(seq 5); do ids+=("$(connect "rec-$i")"); done
approve "${ids[@]}"
is "$(twait "$ALL_CONNECTORS_SYNCED" 0 30)" 0 "five approved connectors are synced"
is "$(endpoint_count)" 5 "five endpoints exist"

# Drift: one deleted, one retargeted behind our back; an orphan of ours; a foreign endpoint.
gone=$(tq "SELECT nexus_endpoint_id || ' ' || nexus_endpoint_version FROM gateway.project_connectors WHERE id = '${ids[0]}'")
temporal DELETE "/cluster/nexus/endpoints/${gone% *}?version=${gone#* }" >/dev/null
changed=$(tq "SELECT nexus_endpoint_id FROM gateway.project_connectors WHERE id = '${ids[1]}'")
temporal POST "/cluster/nexus/endpoints/$changed/update" "$(temporal_py "json.dumps({'version': [e for e in d['endpoints'] if e['id'] == '$changed'][0]['version'], 'spec': dict([e for e in d['endpoints'] if e['id'] == '$changed'][0]['spec'], target={'worker': {'namespace': '$TARGET_NAMESPACE', 'taskQueue': 'hijacked'}})})" /__fake/endpoints)" >/dev/null
temporal POST /cluster/nexus/endpoints "{\"spec\": {\"name\": \"gw-orphan\", \"description\": \"pg_gateway owner=reconcile-test connector=00000000-0000-4000-8000-0000000000ff\\n\\n\", \"target\": {\"worker\": {\"namespace\": \"$TARGET_NAMESPACE\", \"taskQueue\": \"x\"}}}}" >/dev/null
temporal POST /cluster/nexus/endpoints "{\"spec\": {\"name\": \"not-ours\", \"description\": \"pg_gateway owner=another-database connector=00000000-0000-4000-8000-0000000000ee\\n\\n\", \"target\": {\"worker\": {\"namespace\": \"$TARGET_NAMESPACE\", \"taskQueue\": \"y\"}}}}" >/dev/null
# Page size 2 forces several pages, and a full last page is followed by an empty one.
temporal_faults '{"list_lag_ms": 0, "page_size_max": 2}'

tq "SELECT gateway.sync_reconcile('temporal')" >/dev/null
is "$(twait "SELECT count(*) FROM gateway.sync_jobs WHERE target = 'temporal'" 0 30)" 0 "the reconcile and its repairs ran"
is "$(twait "SELECT count(*) FROM gateway.project_connectors WHERE sync_state = 'synced'" 5)" 5 "every connector is synced again"
is "$(temporal_py "len([e for e in d['endpoints'] if e['spec']['description'].startswith('pg_gateway owner=reconcile-test')])" /__fake/endpoints)" 5 \
   "exactly five endpoints of ours: the deleted one is back, the orphan is gone"
is "$(temporal_py "[e['spec']['target']['worker']['taskQueue'] for e in d['endpoints'] if e['id'] == '$changed'][0]" /__fake/endpoints)" "$TARGET_QUEUE" \
   "the retargeted endpoint is repaired in place"
is "$(temporal_py "[e['spec']['name'] for e in d['endpoints'] if e['spec']['name'] == 'not-ours']" /__fake/endpoints)" "['not-ours']" \
   "an endpoint with another database's marker is left alone"
ok $(grep -q "reconciled [0-9]* Nexus endpoints: [0-9]* connectors to repair, 1 orphans" "$TCLUSTER/server.log" && echo 0 || echo 1) \
   "the server log says what the reconcile found"
check_temporal_contract

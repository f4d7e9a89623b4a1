#!/usr/bin/env bash
# Temporal down, a 5xx storm, 429 with Retry-After: connector changes commit at once, their jobs
# retry with backoff and land when Temporal is back, each endpoint once. Kong and Temporal are two
# targets of one engine: Kong down does not slow Temporal's jobs, and Temporal down does not slow
# Kong's.
set -u
source "$REPO/test/integration/lib/tap.sh"
source "$REPO/test/integration/lib/kong.sh"
source "$REPO/test/integration/lib/temporal.sh"
plan 12

start_kong_fake temporal-outage-kong
start_temporal_fake temporal-outage
temporal_cluster temporal-outage
KCLUSTER=$TCLUSTER
kq "INSERT INTO gateway.project_members (project_id, user_id, role)
    VALUES ('$KONG_PROJECT', 'a5000000-0000-4000-8000-000000000001', 'editor')" >/dev/null

temporal_faults '{"down": true}'
ids=()
for i in $(seq 10); do ids+=("$(connect "down-$i")"); done
approve "${ids[@]}"
is "$(twait "SELECT count(*) FROM gateway.project_connectors WHERE sync_state = 'failed'" 10)" 10 \
   "connectors approved while Temporal is down wait, marked failed (retrying)"
is "$(tq "SELECT pending > 0 AND last_error LIKE '%Temporal did not answer:%' FROM gateway.sync_status WHERE target = 'temporal'")" t \
   "sync_status has a row for Temporal that says why"
publish "while-temporal-down" >/dev/null
KONG_SYNCED="SELECT (SELECT count(*) FROM gateway.sync_jobs WHERE target = 'kong')
                  + (SELECT count(*) FROM gateway.public_interfaces WHERE sync_state <> 'synced')"
is "$(kwait "$KONG_SYNCED" 0 20)" 0 "Kong's jobs drain while Temporal is down"
temporal_faults '{"down": false}'
is "$(twait "$ALL_CONNECTORS_SYNCED" 0 30)" 0 "when Temporal is back every connector lands"
is "$(endpoint_count)" 10 "each endpoint exists once"

# A 5xx storm: 30 % of all requests fail.
temporal_faults '{"error_rate": 0.3, "error_status": 503}'
for i in $(seq 10); do ids+=("$(connect "storm-$i")"); done
approve "${ids[@]:10}"
tq "UPDATE gateway.project_connectors SET description = 'after the storm' WHERE name LIKE 'down-%'" >/dev/null
is "$(twait "$ALL_CONNECTORS_SYNCED" 0 60)" 0 "through a 5xx storm every change lands"
temporal_faults '{"error_rate": 0}'
is "$(endpoint_count)" 20 "and no endpoint is duplicated"
is "$(temporal_py "len([e for e in d['endpoints'] if 'after the storm' in e['spec']['description']])" /__fake/endpoints)" 10 \
   "with the latest descriptions"

# 429: retried, not dead.
temporal_faults '{"rate_limit": true}'
ids+=("$(connect slow-down)")
approve "${ids[-1]}"
is "$(twait "SELECT bool_or(last_status = 429) AND bool_and(state <> 'dead') FROM gateway.sync_jobs WHERE target = 'temporal'" t)" t \
   "a 429 is retried, not dead"
temporal_faults '{"rate_limit": false}'
is "$(twait "$ALL_CONNECTORS_SYNCED" 0 30)" 0 "and lands once Temporal accepts again"

# Kong down while Temporal is up: Temporal's jobs drain at their own pace.
fake_faults '{"down": true}'
for i in $(seq 20); do publish "kong-down-$i" >/dev/null; done
start=$(date +%s%N)
connect_many kong-down 20
twait "$ALL_CONNECTORS_SYNCED" 0 30 >/dev/null
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
ok $((elapsed_ms < 3000 ? 0 : 1)) "with Kong down, 20 connectors approved in one transaction land at once (${elapsed_ms} ms) while Kong's jobs retry"
fake_faults '{"down": false}'
check_temporal_contract

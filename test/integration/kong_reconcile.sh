#!/usr/bin/env bash
# Drift reconciliation: repairs changed and missing objects, deletes tagged orphans, never touches
# an object without our tag; refills a Kong that was wiped, except keys it can no longer send.
set -u
source "$REPO/test/integration/lib/tap.sh"
source "$REPO/test/integration/lib/kong.sh"
plan 10

start_kong_fake kong-reconcile
kong_cluster kong-reconcile
tag=$(kq "SELECT 'pg-gateway-' || (SELECT system_identifier FROM pg_control_system()) || '-' || oid FROM pg_database WHERE datname = 'gateway'")

a=$(publish drift-a 10)
b=$(publish drift-b)
read -r key_id key < <(kq "SELECT key_id || ' ' || api_key FROM gateway.api_key_issue(
  'a7000000-0000-4000-8000-000000000001', '$KONG_PROJECT', 'drift-key', '$a')")
kwait "$ALL_SYNCED" 0 >/dev/null

route_a=$(kong_py 'd["id"]' "/routes/gw-$a")
kong PATCH "/routes/$route_a" '{"paths": ["/hijacked"]}' >/dev/null
rl=$(kong_py '[p["id"] for p in d["data"] if p["name"] == "rate-limiting"][0]' "/plugins?tags=$tag")
kong DELETE "/plugins/$rl" >/dev/null
kong PUT "/services/$(python3 -c 'import uuid; print(uuid.uuid4())')" "{\"name\": \"orphan\", \"host\": \"x\", \"tags\": [\"$tag\"]}" >/dev/null
kong PUT "/services/$(python3 -c 'import uuid; print(uuid.uuid4())')" '{"name": "someone-elses", "host": "x"}' >/dev/null
before=$(kong_py 'd["requests"]' /__fake/stats)

kq "SELECT gateway.sync_reconcile('kong')" >/dev/null
kwait "$ALL_SYNCED" 0 >/dev/null
sleep 0.3
is "$(kong_py 'd["paths"]' "/routes/$route_a")" "['$(kq "SELECT http_path FROM gateway.public_interfaces WHERE id = '$a'")']" \
   "a changed route is put back"
is "$(kong_py 'len([p for p in d["data"] if p["name"] == "rate-limiting"])' "/plugins?tags=$tag")" 1 "a deleted plugin is recreated"
is "$(kong GET /services/orphan | python3 -c 'import json,sys; print(json.load(sys.stdin).get("message"))')" "Not found" \
   "a tagged orphan is deleted"
is "$(kong_py 'd["name"]' /services/someone-elses)" someone-elses "an object without our tag is never touched"

# Nothing changed: a reconcile lists and writes nothing.
before=$(kong_py 'd["writes"]' /__fake/stats)
kq "SELECT gateway.sync_reconcile('kong')" >/dev/null
kwait "SELECT count(*) FROM gateway.sync_jobs" 0 >/dev/null
sleep 0.3
is "$(kong_py 'd["writes"]' /__fake/stats)" "$before" "a reconcile of a Kong that matches writes nothing"

# Kong wiped (restarted without its database): the next reconcile refills it.
kong POST /__fake/reset >/dev/null
kq "SELECT gateway.sync_reconcile('kong')" >/dev/null
is "$(kwait "SELECT count(*) FROM gateway.public_interfaces WHERE sync_state = 'synced'" 2)" 2 "interfaces are recreated"
kwait "SELECT count(*) FROM gateway.sync_jobs WHERE state <> 'dead'" 0 >/dev/null
is "$(kong_py 'd["objects"]["services"]' /__fake/stats)" 2 "Kong has both services again"
is "$(kwait "SELECT kong_sync_state FROM gateway.api_keys WHERE id = '$key_id'" dead)" dead \
   "a key whose plaintext was already handed over cannot be recreated: its job is dead"
# Periodic reconciliation, without being asked.
kong PUT "/services/$(python3 -c 'import uuid; print(uuid.uuid4())')" "{\"name\": \"late-orphan\", \"host\": \"x\", \"tags\": [\"$tag\"]}" >/dev/null
kq "ALTER SYSTEM SET gateway.sync_reconcile_interval = '1s'" >/dev/null
kq "SELECT pg_reload_conf()" >/dev/null
for _ in $(seq 100); do
  [[ $(kong GET /services/late-orphan | python3 -c 'import json,sys; print(json.load(sys.stdin).get("message"))') == "Not found" ]] && break
  sleep 0.1
done
is "$(kong GET /services/late-orphan | python3 -c 'import json,sys; print(json.load(sys.stdin).get("message"))')" "Not found" \
   "with gateway.sync_reconcile_interval set, drift is repaired without anyone asking"
check_contract

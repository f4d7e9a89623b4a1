#!/usr/bin/env bash
# make demo: a guided run of pg_gateway on a throwaway cluster, as the postgres OS user.
# Idempotent: a previous demo cluster is stopped and replaced. Set DEMO_KEEP=1 to leave it running.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO"

step "build and install the extension"
make -s -j2 all
make -s install >/dev/null
note "installed pg_gateway $(make -s version) into $("$PG_CONFIG" --pkglibdir)"

demo=/tmp/pg_gateway-demo
if [[ -d $demo ]]; then
  step "stop the previous demo cluster"
  cluster_stop "$demo"
  rm -rf "$demo"
fi
pkill -f "kong_fake.py --port-file $demo.kong-port" 2>/dev/null || true
pkill -f "temporal_fake.py --port-file $demo.temporal-port" 2>/dev/null || true
mkdir -p "$demo"
[[ $(id -u) -eq 0 ]] && chown postgres: "$demo"

step "start a Kong Admin API fake (test/fakes/kong_fake.py: Kong cannot be installed here)"
# With DEMO_KEEP it outlives this script (for an hour); otherwise it ends with it.
fake_parent=$$
[[ -n "${DEMO_KEEP:-}" ]] && fake_parent=1
rm -f "$demo.kong-port"
python3 test/fakes/kong_fake.py --port-file "$demo.kong-port" --parent-pid "$fake_parent" \
  --max-seconds 3600 >"$demo.kong.log" 2>&1 &
for _ in $(seq 100); do [[ -s "$demo.kong-port" ]] && break; sleep 0.05; done
kong_url="http://127.0.0.1:$(cat "$demo.kong-port")"
note "Kong Admin API (fake) at $kong_url"

step "start a Temporal operator API fake (test/fakes/temporal_fake.py: Temporal cannot be installed here)"
rm -f "$demo.temporal-port"
python3 test/fakes/temporal_fake.py --port-file "$demo.temporal-port" --parent-pid "$fake_parent" \
  --max-seconds 3600 --namespaces project-b >"$demo.temporal.log" 2>&1 &
for _ in $(seq 100); do [[ -s "$demo.temporal-port" ]] && break; sleep 0.05; done
temporal_url="http://127.0.0.1:$(cat "$demo.temporal-port")"
note "Temporal HTTP API (fake) at $temporal_url, with namespace project-b"

step "start a throwaway cluster with pg_gateway preloaded (in $demo)"
port=$(free_port 25600)
cluster_init "$demo" "$port" "gateway.usage_flush_interval = '500ms'" \
  "gateway.kong_admin_url = '$kong_url'" "gateway.temporal_url = '$temporal_url'" "gateway.kong_upstream_url = 'http://app.internal:3000/api/interfaces'" \
  "gateway.sync_retry_base = '200ms'" "gateway.sync_retry_max = '2s'" \
  "gateway.callback_listen = '127.0.0.1:$(free_port 27600)'"
cluster_start "$demo"
cluster_psql "$demo" -d postgres -c "CREATE DATABASE gateway"
cluster_psql "$demo" -d gateway -c "CREATE EXTENSION pg_gateway"
# The worker started with the server, before database "gateway" existed; the postmaster retries it
# every few seconds. Wait for it, so the demo can show what it records.
for i in $(seq 100); do
  [[ $(cluster_psql "$demo" -d gateway -Atc "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'") == 1 ]] && break
  sleep 0.2
done
note "port $port, master key $demo/master.key (mode 600), worker in database 'gateway'"
# Supabase's API roles, and the grants docs/security.md tells Supabase users to run (the same
# block the tests apply), so the demo can act as a signed-in user.
cluster_psql "$demo" -d gateway -q -f - <test/pgtap/include/supabase_roles.psql
bash scripts/doc-grants.sh | cluster_psql "$demo" -d gateway -q -v ON_ERROR_STOP=1 -f -

# Runs SQL in the demo database, echoing it first like a tutorial.
show() {
  printf '\n-- %s\n' "$1"
  # An error is part of the story (a refused key, a foreign ciphertext), not the end of the demo.
  cluster_psql "$demo" -d gateway -e -v ON_ERROR_STOP=0 -c "$2" 2>&1 | sed 's/^/   /' || true
}

step "API keys"
alice=a0000000-0000-4000-8000-00000000a11c
project=c0000000-0000-4000-8000-000000000001
show "alice is an editor of the project (keys are issued to editors and above)" \
  "INSERT INTO gateway.project_members (project_id, user_id, role) VALUES ('$project', '$alice', 'editor')"
read -r key_id key < <(cluster_psql "$demo" -d gateway -At -F ' ' -c \
  "SELECT key_id, api_key FROM gateway.api_key_issue('$alice', '$project', 'production', rate_limit_per_minute => 3)")
printf '\n-- issue a key: the plaintext is shown once, only a keyed hash is stored\n'
note "key_id  $key_id"
note "api_key $key"
show "what the table holds: a public prefix and a 32-byte hash, never the key" \
  "SELECT name, key_prefix, encode(key_hash, 'hex') AS key_hash, rate_limit_per_minute FROM gateway.api_keys"
show "verify the key (what a tRPC handler does with X-API-Key)" \
  "SELECT valid, reason, user_id, rate_limit_remaining FROM gateway.api_key_verify('$key')"
typo="${key:0:30}$([[ ${key:30:1} == a ]] && echo b || echo a)${key:31}"
show "a mistyped key is rejected by its checksum, without touching the table" \
  "SELECT valid, reason FROM gateway.api_key_verify('$typo')"
show "3 requests per minute: the bucket runs dry" \
  "SELECT reason, rate_limit_remaining, retry_after_seconds FROM gateway.api_key_verify('$key')"
show "" "SELECT reason, rate_limit_remaining, retry_after_seconds FROM gateway.api_key_verify('$key')"
show "" "SELECT reason, rate_limit_remaining, retry_after_seconds FROM gateway.api_key_verify('$key')"
read -r new_id new_key < <(cluster_psql "$demo" -d gateway -At -F ' ' -c \
  "SELECT new_key_id, api_key FROM gateway.api_key_rotate('$key_id', interval '1 hour')")
printf '\n-- rotate: a new key with every setting of the old one; the old one works for the grace period\n'
note "new api_key $new_key"
show "the listing never shows hashes" \
  "SELECT name, key_prefix, status, expires_at, revoked_at FROM gateway.api_keys_list ORDER BY created_at"
show "revoke the new key: effective for the very next verify" \
  "SELECT gateway.api_key_revoke('$new_id')"
show "" "SELECT valid, reason FROM gateway.api_key_verify('$new_key')"
sleep 1.5
show "the worker recorded last use and the failed verifications in batches (verify itself never writes)" \
  "SELECT occurred_at::time(0), action, details FROM gateway.audit_log ORDER BY occurred_at"
show "" "SELECT key_prefix, last_used_at IS NOT NULL AS used FROM gateway.api_keys ORDER BY created_at"

step "connector credentials"
show "a connector in the project (alice, its editor, may read its credentials)" \
  "INSERT INTO gateway.connectors (id, project_id, name, connector_type)
   VALUES ('e0000000-0000-4000-8000-000000000001', '$project', 'stripe', 'stripe')"
show "store its credentials: sealed before they touch the row" \
  "SELECT gateway.connector_set_credentials('e0000000-0000-4000-8000-000000000001', '{\"api_key\": \"sk_live_demo\"}')"
show "what the table holds: an envelope (version, key id, nonce, ciphertext, tag)" \
  "SELECT name, encryption_key_id, left(encode(encrypted_credentials, 'hex'), 40) || '...' AS encrypted_credentials FROM gateway.connectors"
show "alice, signed in through Supabase, reads them back (an editor may)" \
  "SET request.jwt.claims = '{\"sub\": \"$alice\"}'; SELECT gateway.connector_credentials('e0000000-0000-4000-8000-000000000001')"
show "the same bytes copied to another row do not decrypt there" \
  "SELECT gateway.decrypt_credentials(encrypted_credentials, 'another-row') FROM gateway.connectors"
sleep 1
show "every decryption is in the audit log" \
  "SELECT action, details FROM gateway.audit_log WHERE action LIKE '%decrypted' ORDER BY occurred_at"

step "public interfaces, published to Kong"
kong() { curl -s "$kong_url$1"; }
# Prints one line per object Kong holds, from the fake's Admin API.
kong_objects() {
  printf '\n-- %s\n' "$1"
  for collection in services routes plugins consumers key-auths acls; do
    kong "/$collection?size=1000" | python3 -c "
import json, sys
for o in json.load(sys.stdin)['data']:
    what = {'services': lambda o: '%s -> %s://%s:%s%s' % (o['name'], o['protocol'], o['host'], o['port'], o['path']),
            'routes': lambda o: '%s %s %s' % (o['name'], o['methods'], o['paths']),
            'plugins': lambda o: '%-14s %s' % (o['name'], {k: v for k, v in o['config'].items() if k in ('key_names', 'hide_credentials', 'allow', 'minute')}),
            'consumers': lambda o: o['username'],
            'key-auths': lambda o: 'key %s...' % o['key'][:16],
            'acls': lambda o: 'group ' + o['group']}['$collection'](o)
    print('   %-10s %s' % ('$collection'[:-1] if '$collection' != 'key-auths' else 'key-auth', what))
"
  done
}
show "a workflow's signal, and its public HTTP face (the path is derived; Kong sync is queued in the same transaction)" \
  "INSERT INTO gateway.service_interfaces (id, project_id, workflow_id, name, interface_type, callable_name, is_public)
   VALUES ('e1000000-0000-4000-8000-000000000001', '$project', 'f1000000-0000-4000-8000-000000000001', 'approve', 'signal', 'approveOrder', true);
   INSERT INTO gateway.public_interfaces (id, service_interface_id, rate_limit_per_minute)
   VALUES ('d1000000-0000-4000-8000-000000000001', 'e1000000-0000-4000-8000-000000000001', 120)"
read -r bound_id bound_key < <(cluster_psql "$demo" -d gateway -At -F ' ' -c \
  "SELECT key_id, api_key FROM gateway.api_key_issue('$alice', '$project', 'approvals', 'd1000000-0000-4000-8000-000000000001')")
printf '\n-- a key bound to that interface (it will be a Kong consumer of that interface only)\n'
note "api_key $bound_key"
wait_synced() {
  for _ in $(seq 200); do
    [[ $(cluster_psql "$demo" -d gateway -Atc "SELECT count(*) FROM gateway.sync_jobs WHERE state <> 'dead'") == 0 ]] && break
    sleep 0.05
  done
}
wait_synced
show "the worker made Kong match at commit" \
  "SELECT http_method, http_path, sync_state, synced_at::time(3), kong_service_id FROM gateway.public_interfaces"
show "" "SELECT name, kong_sync_state, kong_key_sealed IS NULL AS sealed_copy_wiped FROM gateway.api_keys WHERE public_interface_id IS NOT NULL"
kong_objects "what Kong holds now (every object tagged as ours)"

step "Kong goes down; the database does not notice"
curl -s -X POST "$kong_url/__fake/faults" -H 'Content-Type: application/json' -d '{"down": true}' >/dev/null
show "change the rate limit while Kong is unreachable: the commit does not wait" \
  "UPDATE gateway.public_interfaces SET rate_limit_per_minute = 30 WHERE id = 'd1000000-0000-4000-8000-000000000001'"
sleep 1.5
show "the job waits and retries with backoff; sync_status says why" \
  "SELECT target, pending, retrying, dead, last_error FROM gateway.sync_status"
show "" "SELECT http_path, sync_state, sync_error FROM gateway.public_interfaces"
curl -s -X POST "$kong_url/__fake/faults" -H 'Content-Type: application/json' -d '{"down": false}' >/dev/null
printf '\n-- Kong is back\n'
wait_synced
show "it caught up by itself" \
  "SELECT http_path, sync_state, sync_error, synced_at::time(3) FROM gateway.public_interfaces"
kong_objects "Kong's rate-limiting plugin has the new limit"
show "every interface change is in the audit log" \
  "SELECT action, details FROM gateway.audit_log WHERE object_type = 'public_interface' ORDER BY occurred_at"

step "project connectors: Temporal Nexus endpoints, with the target project's consent"
bob=b0000000-0000-4000-8000-000000000b0b
project_b=c0000000-0000-4000-8000-00000000000b
temporal() { curl -s "$temporal_url$1"; }
# Prints the Nexus endpoints the fake holds.
nexus_endpoints() {
  printf '\n-- %s\n' "$1"
  temporal /__fake/endpoints | python3 -c "
import json, sys
endpoints = json.load(sys.stdin)['endpoints']
for e in endpoints:
    w = e['spec']['target']['worker']
    print('   endpoint %s  id %s  version %s  -> namespace %s, task queue %s' % (e['spec']['name'], e['id'][:8] + '...', e['version'], w['namespace'], w['taskQueue']))
    print('            description: %s' % e['spec'].get('description', '').split(chr(10))[0])
if not endpoints:
    print('   (no endpoints)')
"
}
wait_connectors() {
  for _ in $(seq 200); do
    [[ $(cluster_psql "$demo" -d gateway -Atc "SELECT count(*) FROM gateway.sync_jobs WHERE target = 'temporal' AND state <> 'dead'") == 0 ]] && break
    sleep 0.05
  done
}
show "project B: bob is its admin; its workers poll namespace project-b (the platform fills project_workers)" \
  "INSERT INTO gateway.project_members (project_id, user_id, role) VALUES ('$project_b', '$bob', 'admin');
   INSERT INTO gateway.project_workers (project_id, temporal_namespace, task_queue) VALUES ('$project_b', 'project-b', 'project-b-nexus');
   INSERT INTO gateway.service_interfaces (id, project_id, workflow_id, name, interface_type, callable_name)
   VALUES ('e2000000-0000-4000-8000-000000000002', '$project_b', 'f2000000-0000-4000-8000-000000000002', 'ship-order', 'update', 'shipOrder')"
show "alice (editor of project A) makes a connector to B's interface: no endpoint until B agrees" \
  "SET request.jwt.claims = '{\"sub\": \"$alice\"}'; SET ROLE authenticated;
   INSERT INTO gateway.project_connectors (source_project_id, target_project_id, target_service_id, target_interface_id, name, description)
   VALUES ('$project', '$project_b', 'f2000000-0000-4000-8000-000000000002',
           'e2000000-0000-4000-8000-000000000002', 'shipping', 'A asks B to ship orders')
   RETURNING name, nexus_endpoint_name, nexus_service_name, consent_state"
connector=$(cluster_psql "$demo" -d gateway -Atc "SELECT id FROM gateway.project_connectors WHERE name = 'shipping'")
wait_connectors
nexus_endpoints "Temporal holds no endpoint for it yet"
show "alice cannot approve her own connector into B's project" \
  "SET request.jwt.claims = '{\"sub\": \"$alice\"}'; SET ROLE authenticated; SELECT gateway.connector_approve('$connector')"
show "bob, B's admin, approves it" \
  "SET request.jwt.claims = '{\"sub\": \"$bob\"}'; SET ROLE authenticated; SELECT gateway.connector_approve('$connector')"
wait_connectors
show "the worker created the endpoint, confirmed it with a GET, and recorded its id and version" \
  "SELECT name, consent_state, sync_state, nexus_endpoint_id, nexus_endpoint_version FROM gateway.project_connectors"
nexus_endpoints "what Temporal holds now (the description carries our ownership marker)"
show "test the connector: the worker checks the endpoint and B's namespace (the call waits up to 10 s)" \
  "SELECT * FROM gateway.connector_test('$connector', '10 s')"
step "cross-project calls: queued in SQL, started exactly once, results on a row"
# What B's Nexus handler does (the fake plays it): answer at once, or start an operation whose
# completion Temporal delivers later to the worker's callback listener.
nexus_handler() {
  curl -s -X POST "$temporal_url/__fake/nexus/handlers" -H 'Content-Type: application/json' \
    -d "{\"service\": \"*\", \"operation\": \"*\", \"behaviour\": $1}" >/dev/null
}
wait_call() {  # wait_call STATE...: until the newest call is in one of these states
  local want="'$(echo "$@" | sed "s/ /', '/g")'"
  for _ in $(seq 200); do
    [[ $(cluster_psql "$demo" -d gateway -Atc "SELECT state IN ($want) FROM gateway.connector_calls ORDER BY created_at DESC LIMIT 1") == t ]] && break
    sleep 0.05
  done
}
show "B's interface takes an order id and quantities (its input_schema, JSON Schema)" \
  "UPDATE gateway.service_interfaces SET input_schema = '{\"type\": \"object\", \"required\": [\"orderId\"],
     \"properties\": {\"orderId\": {\"type\": \"string\"}, \"qty\": {\"type\": \"integer\", \"minimum\": 1}}}'
    WHERE id = 'e2000000-0000-4000-8000-000000000002'"
show "alice calls it with a bad input: refused with the JSON pointer, nothing queued" \
  "SET request.jwt.claims = '{\"sub\": \"$alice\"}'; SET ROLE authenticated;
   SELECT gateway.connector_call('$connector', '{\"orderId\": \"o-1\", \"qty\": 0}')"
nexus_handler '{"kind": "sync", "result": {"shipped": true, "carrier": "dhl"}}'
show "a synchronous call: B's handler answers at once (200)" \
  "SET request.jwt.claims = '{\"sub\": \"$alice\"}'; SET ROLE authenticated;
   SELECT gateway.connector_call('$connector', '{\"orderId\": \"o-1\", \"qty\": 2}', '1 minute') AS call_id"
wait_call succeeded failed
show "the worker started it (the call's id is its Nexus-Request-Id) and stored the result" \
  "SELECT state, operation, input, result, attempts, finished_at - created_at AS took FROM gateway.connector_calls ORDER BY created_at DESC LIMIT 1"
nexus_handler '{"kind": "async", "delay_ms": 1500, "outcome": "succeeded", "result": {"shipped": true, "tracking": "TRK-42"}}'
show "an asynchronous call: B's handler starts an operation (201) that completes later" \
  "SET request.jwt.claims = '{\"sub\": \"$alice\"}'; SET ROLE authenticated;
   SELECT gateway.connector_call('$connector', '{\"orderId\": \"o-2\", \"qty\": 1}', '1 minute') AS call_id"
wait_call running succeeded
show "running, with B's operation token" \
  "SELECT state, operation_token, result FROM gateway.connector_calls ORDER BY created_at DESC LIMIT 1"
wait_call succeeded failed
show "the completion reached the callback listener (with the call's token) and landed on the row; NOTIFY gateway_connector_calls announced it" \
  "SELECT state, result, links, finished_at - created_at AS took FROM gateway.connector_calls ORDER BY created_at DESC LIMIT 1"
show "per-connector monitoring" \
  "SET request.jwt.claims = '{\"sub\": \"$alice\"}'; SET ROLE authenticated;
   SELECT calls, succeeded, failed, error_rate, round(p50_ms) AS p50_ms, round(p99_ms) AS p99_ms FROM gateway.connector_call_stats"
show "bob withdraws consent: the endpoint goes" \
  "SET request.jwt.claims = '{\"sub\": \"$bob\"}'; SET ROLE authenticated; SELECT gateway.connector_consent_revoke('$connector')"
wait_connectors
nexus_endpoints "Temporal after the revoke"
show "alice deletes the connector; consent, approval and deletion are in the audit log" \
  "SET request.jwt.claims = '{\"sub\": \"$alice\"}'; SET ROLE authenticated; DELETE FROM gateway.project_connectors WHERE id = '$connector'"
show "" "SELECT action, object_type, details FROM gateway.audit_log WHERE object_type IN ('project_connector', 'project_workers') ORDER BY occurred_at"
show "sync_status: one row per target" \
  "SELECT target, pending, retrying, running, dead FROM gateway.sync_status"

if [[ -n "${DEMO_KEEP:-}" ]]; then
  step "the demo cluster keeps running"
  note "psql: runuser -u postgres -- psql -h $demo -p $port -d gateway"
  note "stop: runuser -u postgres -- $PGBIN/pg_ctl -D $demo/data stop"
else
  cluster_stop "$demo"
  step "demo done (cluster and fakes stopped; DEMO_KEEP=1 make demo leaves them running)"
fi

#!/usr/bin/env bash
# bench/nexus_calls: cross-project calls against their named baselines, in one run on one
# throwaway cluster with the callback listener and the Python Temporal fake (without its contract
# checks). Prints numbers and ratios and keeps them in bench/RESULTS.md. Not a test.
#
#   make bench-nexus-calls     (BENCH_CALLS=10000 BENCH_SECONDS=10 BENCH_CONCURRENCY=32)
#
#   1. queued call -> synchronous result on the row, one at a time        report p50, p99
#   2. queued call -> async completion (delivered to the listener) on the row   report p50, p99
#   3. 10,000 calls queued in one transaction: starts/s vs the fake's own ceiling (a plain
#      keep-alive client starting operations alone, same concurrency, same run)
#   4. callbacks accepted per second by the listener (a client of its own, 8 connections)
#   5. the listener never delays the sync engine: endpoint sync drain while callbacks pour in,
#      vs alone
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
source "$(dirname "$0")/lib.sh"

calls=${BENCH_CALLS:-10000}
concurrency=${BENCH_CONCURRENCY:-32}

step "build the fake's ceiling client"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null && cmake --build build -j2 --target fake_ceiling >/dev/null

logs=$(mktemp -d)
chmod 755 "$logs"
python3 test/fakes/temporal_fake.py --port-file "$logs/temporal.port" --spec-dir /nonexistent \
  --namespaces bench,project-b --parent-pid $$ --max-seconds 7200 >"$logs/temporal.log" 2>&1 &
for _ in $(seq 100); do [[ -s "$logs/temporal.port" ]] && break; sleep 0.05; done
temporal_url="http://127.0.0.1:$(cat "$logs/temporal.port")"
temporal() {
  if [[ $# -ge 3 ]]; then curl -s -X "$1" "$temporal_url$2" -H 'Content-Type: application/json' -d "$3"
  else curl -s -X "$1" "$temporal_url$2"; fi
}
py() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
handler() { temporal POST /__fake/nexus/handlers "{\"service\": \"*\", \"operation\": \"*\", \"behaviour\": $1}" >/dev/null; }

callback_port=$(free_port 27800)
bench_cluster bench-nexus-calls "gateway.nexus_concurrency = $concurrency" "gateway.temporal_concurrency = 16" \
  "gateway.sync_reconcile_interval = 0" "gateway.callback_listen = '127.0.0.1:$callback_port'" \
  "gateway.temporal_url = '$temporal_url'"
until [[ $(cluster_psql "$cluster" -d gateway -Atc "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'") == 1 ]]; do sleep 0.1; done
trap 'cluster_stop "$cluster"; rm -rf "$stage" "$logs"' EXIT
sql() { cluster_psql "$cluster" -d gateway -Atc "$1"; }
set_temporal() { sql "ALTER SYSTEM SET gateway.temporal_url = '$1'" >/dev/null; sql "SELECT pg_reload_conf()" >/dev/null; sleep 0.5; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }
open_calls() { sql "SELECT count(*) FROM gateway.connector_calls WHERE finished_at IS NULL"; }

source_project=d1000000-0000-4000-8000-00000000000a
target_project=d2000000-0000-4000-8000-00000000000b
workflow=f2000000-0000-4000-8000-0000000000b1
sql "INSERT INTO gateway.project_workers (project_id, temporal_namespace, task_queue)
     VALUES ('$target_project', 'project-b', 'project-b-nexus')" >/dev/null
interface=$(sql "INSERT INTO gateway.service_interfaces (project_id, workflow_id, name, interface_type, callable_name, input_schema)
                 VALUES ('$target_project', '$workflow', 'approve', 'update', 'approve',
                         '{\"type\": \"object\", \"required\": [\"n\"], \"properties\": {\"n\": {\"type\": \"integer\"}}}') RETURNING id")
connector=$(sql "INSERT INTO gateway.project_connectors (source_project_id, target_project_id, target_service_id, target_interface_id, name)
                 VALUES ('$source_project', '$target_project', '$workflow', '$interface', 'bench') RETURNING id")
sql "SELECT gateway.connector_approve('$connector')" >/dev/null
until [[ $(sql "SELECT sync_state FROM gateway.project_connectors WHERE id = '$connector'") == synced ]]; do sleep 0.1; done
endpoint=$(sql "SELECT nexus_endpoint_id FROM gateway.project_connectors WHERE id = '$connector'")

# 3a. The fake's ceiling for starts, alone.
handler '{"kind": "sync", "result": {"ok": true}}'
step "the fake's ceiling: a plain keep-alive client starting operations alone, ${seconds}s"
read -r ceiling_starts ceiling_seconds < <(build/fake_ceiling nexus "$temporal_url" "$seconds" "$concurrency" "$endpoint")
ceiling=$(awk -v w="$ceiling_starts" -v s="$ceiling_seconds" 'BEGIN { printf "%.0f", w / s }')
note "the fake's ceiling: $ceiling starts/s ($concurrency in flight, alone)"

# latency CALLS: one call at a time, each waited for; prints p50 p99 (ms, queued -> final).
latency() {
  for i in $(seq "$1"); do
    echo "SELECT gateway.connector_call('$connector', '{\"n\": $i}') AS id \\gset"
    echo "SELECT gateway._bench_wait(:'id');"
  done >"$stage/latency.sql"
  chown postgres: "$stage/latency.sql" 2>/dev/null || true
  sql "TRUNCATE gateway.connector_calls, bench.latency" >/dev/null
  cluster_psql "$cluster" -d gateway -q -f "$stage/latency.sql" >/dev/null
  sql "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1) || ' ' ||
              round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1) FROM bench.latency"
}
# Waits for a call to be final on its row, polling in the server (no psql round trip per check),
# and keeps how long it took from the call's commit to the moment the row was seen final. (The
# row's own finished_at is the operation's close time for an async call, not when it landed.)
sql "CREATE SCHEMA bench; CREATE TABLE bench.latency (ms float8);
     CREATE FUNCTION gateway._bench_wait(id uuid) RETURNS void LANGUAGE plpgsql AS \$\$
     DECLARE started timestamptz := clock_timestamp(); BEGIN
       LOOP
         PERFORM FROM gateway.connector_calls WHERE connector_calls.id = \$1 AND finished_at IS NOT NULL;
         EXIT WHEN FOUND; PERFORM pg_sleep(0.0002);
       END LOOP;
       INSERT INTO bench.latency VALUES (extract(epoch FROM clock_timestamp() - started) * 1000); END \$\$" >/dev/null

step "latency: 200 calls one at a time, synchronous answers"
read -r sync_p50 sync_p99 < <(latency 200)
note "queued -> result on the row: p50 $sync_p50 ms, p99 $sync_p99 ms"
step "latency: 200 calls one at a time, asynchronous (201, then a completion to the listener)"
handler '{"kind": "async", "delay_ms": 0, "outcome": "succeeded", "result": {"ok": true}}'
read -r async_p50 async_p99 < <(latency 200)
note "queued -> completion on the row: p50 $async_p50 ms, p99 $async_p99 ms"

# 3b. $calls calls queued in one transaction, released at once.
step "throughput: $calls calls queued in one transaction while calls are paused, then released"
handler '{"kind": "sync", "result": {"ok": true}}'
set_temporal ""
sql "TRUNCATE gateway.connector_calls" >/dev/null
sql "SELECT count(gateway.connector_call('$connector', jsonb_build_object('n', i))) FROM generate_series(1, $calls) AS i" >/dev/null
before=$(temporal GET /__fake/stats | py 'd["nexus_operations"]')
start=$EPOCHREALTIME
set_temporal "$temporal_url"
until [[ $(open_calls) == 0 ]]; do sleep 0.05; done
drain_seconds=$(since "$start")
started=$(($(temporal GET /__fake/stats | py 'd["nexus_operations"]') - before))
drain=$(awk -v w="$started" -v s="$drain_seconds" 'BEGIN { printf "%.0f", w / s }')
note "$started operations started in $drain_seconds s: $drain starts/s"

# 4. Callbacks per second, the listener alone: open calls with valid tokens, a client of its own.
step "callbacks: $calls completions posted to the listener (8 connections)"
set_temporal ""
sql "TRUNCATE gateway.connector_calls" >/dev/null
sql "INSERT INTO gateway.connector_calls (connector_id, source_project_id, target_project_id, service, operation, state, started_at, deadline, operation_token)
     SELECT '$connector', '$source_project', '$target_project', 'approve', 'approve', 'running', now(), now() + interval '1 hour', 't-' || i
       FROM generate_series(1, $calls) AS i" >/dev/null
sql "SELECT id || ' ' || gateway._callback_token(id) FROM gateway.connector_calls" >"$stage/tokens"
callback_client() {  # callback_client TOKENS_FILE: prints accepted/s
  python3 - "$1" "$callback_port" <<'PY'
import http.client, sys, threading, time
lines = [l.split() for l in open(sys.argv[1]) if l.strip()]
port = int(sys.argv[2]); ok = [0]; lock = threading.Lock()
def run(part):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for call_id, token in part:
        c.request("POST", "/nexus/calls/" + call_id, body=b'{"ok": true}',
                  headers={"Pg-Gateway-Token": token, "Nexus-Operation-State": "succeeded",
                           "Content-Type": "application/json"})
        r = c.getresponse(); r.read()
        if r.status == 200:
            with lock: ok[0] += 1
start = time.time()
threads = [threading.Thread(target=run, args=(lines[i::8],)) for i in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print("%.0f %d" % (ok[0] / (time.time() - start), ok[0]))
PY
}
read -r callbacks_per_s accepted < <(callback_client "$stage/tokens")
note "$accepted accepted: $callbacks_per_s callbacks/s"

# 5. The sync engine's endpoint drain, alone and while callbacks pour in.
make_connectors() {
  sql "INSERT INTO gateway.project_connectors (source_project_id, target_project_id, target_service_id, target_interface_id, name)
       SELECT '$source_project', '$target_project', '$workflow', '$interface', '$1-' || i FROM generate_series(1, $2) AS i;
       SELECT count(*) FROM (SELECT gateway.connector_approve(id) FROM gateway.project_connectors WHERE name LIKE '$1-%') AS a" >/dev/null
}
drain_endpoints() {  # drain_endpoints PREFIX: 500 connectors queued while paused, then released; prints seconds
  set_temporal ""
  make_connectors "$1" 500
  local start=$EPOCHREALTIME
  set_temporal "$temporal_url"
  until [[ $(sql "SELECT count(*) FROM gateway.sync_jobs WHERE target = 'temporal'") == 0 ]]; do sleep 0.02; done
  since "$start"
}
step "the listener and the sync engine: 500 endpoints drained alone, then while callbacks pour in"
alone_s=$(drain_endpoints alone)
sql "TRUNCATE gateway.connector_calls" >/dev/null
sql "INSERT INTO gateway.connector_calls (connector_id, source_project_id, target_project_id, service, operation, state, started_at, deadline)
     SELECT '$connector', '$source_project', '$target_project', 'approve', 'approve', 'running', now(), now() + interval '1 hour'
       FROM generate_series(1, $calls) AS i" >/dev/null
sql "SELECT id || ' ' || gateway._callback_token(id) FROM gateway.connector_calls" >"$stage/tokens2"
callback_client "$stage/tokens2" >"$stage/during" &
client=$!
sleep 0.5
together_s=$(drain_endpoints together)
wait "$client"  # (not a bare wait: the fake runs in the background too)
note "alone $alone_s s, during callbacks $together_s s ($(cat "$stage/during" | awk '{print $1}') callbacks/s meanwhile)"
sql "DROP FUNCTION gateway._bench_wait(uuid)" >/dev/null

echo
{
  echo "== bench/nexus_calls: $concurrency calls in flight, Python Temporal fake, callback listener =="
  echo "queued -> synchronous result on the row     = p50 $sync_p50 ms, p99 $sync_p99 ms (one at a time)"
  echo "queued -> async completion on the row       = p50 $async_p50 ms, p99 $async_p99 ms (201, then the callback)"
  echo "$calls calls queued in one transaction      = $drain starts/s ($started operations in $drain_seconds s)"
  echo "starts / fake ceiling ($ceiling/s)             = $(ratio "$drain" "$ceiling")"
  echo "callbacks accepted by the listener          = $callbacks_per_s /s ($accepted, 8 connections, each durable before its 200)"
  echo "endpoint sync alone / during callbacks      = $(ratio "$alone_s" "$together_s")   (1.00: the listener costs the engine nothing; 2 cores shared)"
} | results_section "bench/nexus_calls (make bench-nexus-calls)"

#!/usr/bin/env bash
# bench/nexus: the Temporal target of the sync engine against its named baselines, in one run on
# one throwaway cluster, the Python Temporal fake and the Python Kong fake (both without their
# contract checks). Prints numbers and ratios. Not a test.
#
#   make bench-nexus     (BENCH_CONNECTORS=1000 BENCH_RECONCILE=10000 BENCH_SECONDS=10)
#
#   1. commit -> endpoint present in the fake, fake idle, one change at a time   goal: report p50, p99
#   2. 1,000 connectors -> endpoints: writes/s vs the fake's ceiling            (the confirming GET is a read)
#      (a plain keep-alive client creating endpoints alone, same concurrency, same session)
#   3. Kong and Temporal backlogs draining together: each target's writes/s     goal >= 0.8 of alone
#   4. reconcile of 10,000 endpoints                                            goal <= 5 s
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
source "$(dirname "$0")/lib.sh"

connectors=${BENCH_CONNECTORS:-1000}
reconcile_size=${BENCH_RECONCILE:-10000}
concurrency=${BENCH_CONCURRENCY:-16}

step "build the fakes' ceiling client"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null && cmake --build build -j2 --target fake_ceiling >/dev/null

logs=$(mktemp -d)
chmod 755 "$logs"
python3 test/fakes/temporal_fake.py --port-file "$logs/temporal.port" --spec-dir /nonexistent \
  --namespaces bench,project-b --parent-pid $$ --max-seconds 7200 >"$logs/temporal.log" 2>&1 &
python3 test/fakes/kong_fake.py --port-file "$logs/kong.port" --spec-dir /nonexistent \
  --parent-pid $$ --max-seconds 7200 >"$logs/kong.log" 2>&1 &
for _ in $(seq 100); do [[ -s "$logs/temporal.port" && -s "$logs/kong.port" ]] && break; sleep 0.05; done
temporal_url="http://127.0.0.1:$(cat "$logs/temporal.port")"
kong_url="http://127.0.0.1:$(cat "$logs/kong.port")"
temporal() {
  if [[ $# -ge 3 ]]; then curl -s -X "$1" "$temporal_url$2" -H 'Content-Type: application/json' -d "$3"
  else curl -s -X "$1" "$temporal_url$2"; fi
}
kong() { curl -s -X "$1" "$kong_url$2"; }
py() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# Sync starts paused (no URLs): backlogs are queued first, then released at once.
bench_cluster bench-nexus "gateway.temporal_concurrency = $concurrency" "gateway.sync_concurrency = $concurrency" \
  "gateway.sync_reconcile_interval = 0" "track_commit_timestamp = on" \
  "gateway.kong_upstream_url = 'http://app.internal:3000/run'"
until [[ $(cluster_psql "$cluster" -d gateway -Atc "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'") == 1 ]]; do sleep 0.1; done
trap 'cluster_stop "$cluster"; rm -rf "$stage" "$logs"' EXIT
sql() { cluster_psql "$cluster" -d gateway -Atc "$1"; }
set_urls() {  # set_urls TEMPORAL_URL KONG_URL ('' pauses that target)
  sql "ALTER SYSTEM SET gateway.temporal_url = '$1'" >/dev/null
  sql "ALTER SYSTEM SET gateway.kong_admin_url = '$2'" >/dev/null
  sql "SELECT pg_reload_conf()" >/dev/null
}
pause_all() { set_urls "" ""; sleep 0.5; }  # the worker has seen it before a backlog is queued
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }
temporal_writes() { temporal GET /__fake/stats | py 'd["writes"]'; }
kong_writes() { kong GET /__fake/stats | py 'd["writes"]'; }
drained() { [[ $(sql "SELECT count(*) FROM gateway.sync_jobs WHERE target = '$1'") == 0 ]]; }

source_project=d1000000-0000-4000-8000-00000000000a
target_project=d2000000-0000-4000-8000-00000000000b
workflow=f2000000-0000-4000-8000-0000000000b1
sql "INSERT INTO gateway.project_workers (project_id, temporal_namespace, task_queue)
     VALUES ('$target_project', 'project-b', 'project-b-nexus')" >/dev/null
interface=$(sql "INSERT INTO gateway.service_interfaces (project_id, workflow_id, name, interface_type, callable_name)
                 VALUES ('$target_project', '$workflow', 'approve', 'update', 'approve') RETURNING id")
sql "CREATE SCHEMA bench; CREATE TABLE bench.approved (connector uuid PRIMARY KEY)" >/dev/null
# make_connectors PREFIX N: N approved connectors in one transaction.
make_connectors() {
  sql "INSERT INTO gateway.project_connectors (source_project_id, target_project_id, target_service_id,
                                               target_interface_id, name)
       SELECT '$source_project', '$target_project', '$workflow', '$interface', '$1-' || i
         FROM generate_series(1, $2) AS i;
       SELECT count(*) FROM (SELECT gateway.connector_approve(id) FROM gateway.project_connectors
                              WHERE name LIKE '$1-%') AS a" >/dev/null
}
# publish_interfaces PREFIX N: N public interfaces (Kong: service, route, 2 plugins each).
publish_interfaces() {
  sql "WITH s AS (INSERT INTO gateway.service_interfaces (project_id, workflow_id, name, interface_type, callable_name, is_public)
                  SELECT gen_random_uuid(), gen_random_uuid(), '$1-' || i, 'signal', 'x', true FROM generate_series(1, $2) AS i
                  RETURNING id)
       INSERT INTO gateway.public_interfaces (service_interface_id) SELECT id FROM s" >/dev/null
}

# 2a. The fake's ceiling, alone.
step "the Temporal fake's ceiling: a plain keep-alive client alone, ${seconds}s"
read -r ceiling_writes ceiling_seconds < <(build/fake_ceiling temporal "$temporal_url" "$seconds" "$concurrency")
ceiling=$(awk -v w="$ceiling_writes" -v s="$ceiling_seconds" 'BEGIN { printf "%.0f", w / s }')
note "the fake's ceiling: $ceiling creates/s ($concurrency in flight, alone)"
temporal POST /__fake/reset >/dev/null
for ns in bench project-b; do temporal POST /__fake/namespaces "{\"name\": \"$ns\"}" >/dev/null; done

# 1. Latency: one change at a time, the fake idle.
step "latency: 200 connectors approved one at a time"
set_urls "$temporal_url" ""
sleep 0.5
for i in $(seq 200); do
  echo "BEGIN;"
  echo "INSERT INTO gateway.project_connectors (source_project_id, target_project_id, target_service_id, target_interface_id, name)
        VALUES ('$source_project', '$target_project', '$workflow', '$interface', 'latency-$i');"
  echo "INSERT INTO bench.approved SELECT id FROM gateway.project_connectors WHERE name = 'latency-$i';"
  echo "SELECT gateway.connector_approve(connector) FROM bench.approved WHERE connector = (SELECT id FROM gateway.project_connectors WHERE name = 'latency-$i');"
  echo "COMMIT;"
  echo "SELECT pg_sleep(0.05);"
done >"$stage/latency.sql"
chown postgres: "$stage/latency.sql" 2>/dev/null || true
cluster_psql "$cluster" -d gateway -f "$stage/latency.sql" >/dev/null
until drained temporal; do sleep 0.05; done
sql "SELECT c.nexus_endpoint_name, extract(epoch FROM pg_xact_commit_timestamp(a.xmin)) * 1000
       FROM bench.approved AS a JOIN gateway.project_connectors AS c ON c.id = a.connector" >"$stage/commits"
temporal GET /__fake/endpoints >"$stage/endpoints"
read -r p50 p99 worst measured < <(python3 - "$stage/commits" "$stage/endpoints" <<'PY'
import json, sys
from datetime import datetime
commits = dict(line.split("|") for line in open(sys.argv[1]).read().split())
created = {e["spec"]["name"]: datetime.fromisoformat(e["createdTime"].replace("Z", "+00:00")).timestamp() * 1000
           for e in json.load(open(sys.argv[2]))["endpoints"]}
lat = sorted(created[n] - float(t) for n, t in commits.items() if n in created)
pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print("%.1f %.1f %.1f %d" % (pick(0.5), pick(0.99), lat[-1], len(lat)))
PY
)
note "p50 $p50 ms, p99 $p99 ms, worst $worst ms over $measured changes"

# 2b. The worker draining $connectors connectors alone.
drain_alone() {  # drain_alone TARGET: queue a backlog while paused, release it; prints writes/s
  local target=$1 before start seconds writes
  pause_all
  if [[ $target == temporal ]]; then make_connectors "alone-$RANDOM" "$connectors"; before=$(temporal_writes)
  else publish_interfaces "alone-$RANDOM" "$connectors"; before=$(kong_writes); fi
  start=$EPOCHREALTIME
  if [[ $target == temporal ]]; then set_urls "$temporal_url" ""; else set_urls "" "$kong_url"; fi
  until drained "$target"; do sleep 0.01; done
  seconds=$(since "$start")
  if [[ $target == temporal ]]; then writes=$(($(temporal_writes) - before)); else writes=$(($(kong_writes) - before)); fi
  awk -v w="$writes" -v s="$seconds" 'BEGIN { printf "%.0f %d %.2f\n", w / s, w, s }'
}
step "drain: $connectors connectors queued while sync is paused, Temporal alone"
read -r temporal_alone temporal_alone_writes temporal_alone_s < <(drain_alone temporal)
note "$temporal_alone_writes creates in $temporal_alone_s s: $temporal_alone writes/s"
step "drain: $connectors public interfaces, Kong alone"
read -r kong_alone kong_alone_writes kong_alone_s < <(drain_alone kong)
note "$kong_alone_writes writes in $kong_alone_s s: $kong_alone writes/s"

# 3. Both backlogs at once.
step "drain: both backlogs released together"
pause_all
make_connectors together "$connectors"
publish_interfaces together "$connectors"
t_before=$(temporal_writes) k_before=$(kong_writes)
start=$EPOCHREALTIME
set_urls "$temporal_url" "$kong_url"
t_done="" k_done=""
while [[ -z $t_done || -z $k_done ]]; do
  [[ -z $t_done ]] && drained temporal && t_done=$(since "$start")
  [[ -z $k_done ]] && drained kong && k_done=$(since "$start")
  sleep 0.01
done
temporal_together=$(awk -v w="$(($(temporal_writes) - t_before))" -v s="$t_done" 'BEGIN { printf "%.0f", w / s }')
kong_together=$(awk -v w="$(($(kong_writes) - k_before))" -v s="$k_done" 'BEGIN { printf "%.0f", w / s }')
note "Temporal $temporal_together writes/s (done in $t_done s), Kong $kong_together writes/s (done in $k_done s)"

# 4. Reconcile of many endpoints.
have=$(sql "SELECT count(*) FROM gateway.project_connectors")
more=$((reconcile_size - have))
if ((more > 0)); then
  step "create $more more connectors ($reconcile_size endpoints in all)"
  make_connectors "scale" "$more"
  until drained temporal; do sleep 0.1; done
fi
endpoints=$(temporal GET /__fake/endpoints | py 'len(d["endpoints"])')
step "reconcile of $endpoints endpoints"
before=$(temporal_writes)
start=$EPOCHREALTIME
sql "SELECT gateway.sync_reconcile('temporal')" >/dev/null
until drained temporal; do sleep 0.01; done
reconcile_seconds=$(since "$start")
reconcile_writes=$(($(temporal_writes) - before))
note "$reconcile_seconds s, $reconcile_writes writes; the worker: $(grep -o 'reconciled [0-9]* Nexus.*' "$cluster/server.log" | tail -1)"

echo
{
  echo "== bench/nexus: $concurrency requests in flight per target, Python fakes =="
  echo "commit -> endpoint present                 = p50 $p50 ms, p99 $p99 ms (worst $worst, $measured changes)"
  echo "drain: $connectors connectors, Temporal alone  = $temporal_alone writes/s (each also one confirming read)"
  echo "drain writes / fake ceiling ($ceiling/s)     = $(ratio "$temporal_alone" "$ceiling")   (goal >= 0.8)"
  echo "together / alone, Temporal                  = $(ratio "$temporal_together" "$temporal_alone")   (goal >= 0.8)"
  echo "together / alone, Kong                      = $(ratio "$kong_together" "$kong_alone")   (goal >= 0.8)"
  echo "reconcile of $endpoints endpoints           = $reconcile_seconds s, $reconcile_writes writes   (goal <= 5 s for 10,000)"
} | results_section "bench/nexus (make bench-nexus)"

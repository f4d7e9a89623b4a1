#!/usr/bin/env bash
# bench/sync: the Kong sync engine against its named baselines, in one run on one throwaway
# cluster and one Kong fake (the Python standard-library fake from test/fakes, without its
# contract check). Prints numbers and ratios. Not a test.
#
#   make bench-sync        (BENCH_JOBS=10000 BENCH_RSS_JOBS=100000 BENCH_SECONDS=10 BENCH_ROUNDS=3)
#
#   1. insert into public_interfaces (triggers) vs a copy without triggers   goal <= 1.2x
#      (also vs a copy with the foreign key, and vs the same three writes in one statement)
#   2. commit -> object present in the fake, fake idle, one change at a time  goal p50 <= 10 ms, p99 <= 50 ms
#   3. 10,000 jobs drained: jobs/s and remote writes/s vs the fake's ceiling  goal >= 2,000 jobs/s, >= 50 %
#      (a plain keep-alive client alone, same concurrency, same session)
#   4. reconcile of every object the drain created                          goal <= 5 s for 10,000
#   5. worker RSS across BENCH_RSS_JOBS jobs                                 goal flat within 10 %
#   6. reconcile with BENCH_CONSUMERS keys bound to the interfaces (Kong consumers, each with a
#      key-auth credential and an acl group: 3 objects per key); DESIGN section 4 promises 100,000
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
source "$(dirname "$0")/lib.sh"

jobs=${BENCH_JOBS:-10000}
rss_jobs=${BENCH_RSS_JOBS:-100000}
consumers=${BENCH_CONSUMERS:-100000}
concurrency=${BENCH_CONCURRENCY:-16}

step "build the fake's ceiling client"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null && cmake --build build -j2 --target fake_ceiling >/dev/null

fake_log=$(mktemp)
chmod 644 "$fake_log"
python3 test/fakes/kong_fake.py --port-file "$fake_log.port" --spec-dir /nonexistent \
  --parent-pid $$ --max-seconds 7200 >"$fake_log" 2>&1 &
for _ in $(seq 100); do [[ -s "$fake_log.port" ]] && break; sleep 0.05; done
kong_url="http://127.0.0.1:$(cat "$fake_log.port")"
kong() { curl -s -X "$1" "$kong_url$2"; }
py() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# Sync starts paused (no admin URL): phase 1 measures the database alone.
bench_cluster bench-sync "gateway.sync_concurrency = $concurrency" "gateway.sync_reconcile_interval = 0" \
  "track_commit_timestamp = on" "gateway.kong_upstream_url = 'http://app.internal:3000/run'"
bench_stage_scripts bench/sync
# The worker first started before the database existed; it comes back within 5 s.
until [[ $(cluster_psql "$cluster" -d gateway -Atc "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'") == 1 ]]; do sleep 0.1; done
trap 'cluster_stop "$cluster"; rm -rf "$stage" "$fake_log"*' EXIT
sql() { cluster_psql "$cluster" -d gateway -Atc "$1"; }
set_kong_url() { sql "ALTER SYSTEM SET gateway.kong_admin_url = '$1'" >/dev/null; sql "SELECT pg_reload_conf()" >/dev/null; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }  # seconds since $1
fake_writes() { kong GET /__fake/stats | py 'd["writes"]'; }
wait_drained() {  # until no job is left; prints the seconds it took (10 ms resolution)
  local start=$EPOCHREALTIME
  until [[ $(sql "SELECT count(*) FROM gateway.sync_jobs") == 0 ]]; do sleep 0.01; done
  since "$start"
}
reconcile_now() {  # a reconcile on demand, waited for; prints its seconds and the writes it made
  local start=$EPOCHREALTIME before
  before=$(fake_writes)
  sql "SELECT gateway.sync_reconcile('kong')" >/dev/null
  wait_drained >/dev/null
  echo "$(since "$start") $(($(fake_writes) - before))"
}

per_client=${BENCH_INSERTS:-15000}
needed=$((per_client * clients * rounds * 4 + jobs + 1000))
step "create $needed service interfaces"
cluster_psql "$cluster" -d gateway -v ninterfaces="$needed" -f "$stage/scripts/setup.sql" >/dev/null

# 1. The triggers' cost on the insert that publishes an interface.
insert_tps() {
  as_pg "$PGBIN/pgbench" -n -M prepared -c "$clients" -j "$clients" -t "$per_client" \
    -h "$cluster" -p "$port" -U postgres -f "$stage/scripts/$1" gateway 2>&1 |
    sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}
declare -a with_triggers plain with_fk floor
for r in $(seq "$rounds"); do
  step "insert round $r of $rounds ($((per_client * clients)) rows each, $clients clients)"
  plain+=("$(insert_tps insert_plain.pgbench)")
  with_fk+=("$(insert_tps insert_fk.pgbench)")
  with_triggers+=("$(insert_tps insert_triggers.pgbench)")
  floor+=("$(insert_tps insert_floor.pgbench)")
  note "$(printf 'plain %.0f tps, with the foreign key %.0f, with triggers %.0f, the same writes in one statement %.0f' \
    "${plain[-1]}" "${with_fk[-1]}" "${with_triggers[-1]}" "${floor[-1]}")"
done
insert_ratios=() fk_ratios=() fk_alone=() floor_ratios=() over_floor=()
for i in "${!plain[@]}"; do
  insert_ratios+=("$(ratio "${plain[$i]}" "${with_triggers[$i]}")")
  fk_ratios+=("$(ratio "${with_fk[$i]}" "${with_triggers[$i]}")")
  fk_alone+=("$(ratio "${plain[$i]}" "${with_fk[$i]}")")
  floor_ratios+=("$(ratio "${plain[$i]}" "${floor[$i]}")")
  over_floor+=("$(ratio "${floor[$i]}" "${with_triggers[$i]}")")
done
insert_cost=$(median "${insert_ratios[@]}") fk_cost=$(median "${fk_ratios[@]}") fk_alone_cost=$(median "${fk_alone[@]}")
floor_cost=$(median "${floor_ratios[@]}") over_floor_cost=$(median "${over_floor[@]}")
sql "TRUNCATE gateway.public_interfaces, gateway.sync_jobs, bench.public_interfaces_plain,
     bench.public_interfaces_fk, bench.public_interfaces_floor" >/dev/null

# The fake's ceiling, measured alone (nothing else uses it), then forgotten.
step "the fake's ceiling: a plain keep-alive client alone, ${seconds}s"
read -r ceiling_writes ceiling_seconds < <(build/fake_ceiling kong "$kong_url" "$seconds" "$concurrency")
ceiling=$(awk -v w="$ceiling_writes" -v s="$ceiling_seconds" 'BEGIN { printf "%.0f", w / s }')
note "the fake's ceiling: $ceiling writes/s (plain keep-alive client, $concurrency in flight, alone)"
kong POST /__fake/reset >/dev/null

# 2. Latency: one change at a time, the fake idle; commit time from track_commit_timestamp,
# presence from the fake's record of when it created the last object of the interface (acl).
step "latency: 200 interfaces published one at a time"
set_kong_url "$kong_url"
sleep 1
for i in $(seq 200); do
  echo "INSERT INTO gateway.public_interfaces (service_interface_id) SELECT id FROM bench.si WHERE n = $((needed - i));"
  echo "SELECT pg_sleep(0.05);"
done >"$stage/latency.sql"
chown postgres: "$stage/latency.sql" 2>/dev/null || true
cluster_psql "$cluster" -d gateway -f "$stage/latency.sql" >/dev/null
wait_drained >/dev/null
# The audit row of the insert is never updated, so its xmin is the inserting transaction (the
# interface row itself is rewritten by the worker when it records the sync).
sql "SELECT object_id, extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1000 FROM gateway.audit_log
      WHERE action = 'public_interface.insert'" >"$stage/commits"
kong GET /__fake/created >"$stage/created"
kong GET '/plugins?size=1000' >"$stage/plugins"
latency=$(python3 - "$stage/commits" "$stage/created" "$stage/plugins" <<'PY'
import json, sys
commits = dict(line.split("|") for line in open(sys.argv[1]).read().split())
created = json.load(open(sys.argv[2]))
plugins = json.load(open(sys.argv[3]))["data"]
acl_of = {p["config"]["allow"][0][3:]: p["id"] for p in plugins if p["name"] == "acl"}
lat = sorted(created[acl_of[i]] - float(t) for i, t in commits.items() if i in acl_of)
pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print("%.1f %.1f %.1f %d" % (pick(0.5), pick(0.99), lat[-1], len(lat)))
order = sorted(commits, key=lambda i: float(commits[i]))
slow = sorted(((created[acl_of[i]] - float(commits[i]), order.index(i)) for i in commits if i in acl_of), reverse=True)[:5]
print("slowest (ms, position):", [(round(l), n) for l, n in slow], file=sys.stderr)
PY
)
read -r p50 p99 worst measured <<<"$latency"
note "p50 $p50 ms, p99 $p99 ms, worst $worst ms over $measured changes"

# 3. Drain: the fake's ceiling alone, then the worker draining $jobs jobs.
step "drain: $jobs interfaces queued while sync is paused"
set_kong_url ""
sleep 1
sql "INSERT INTO gateway.public_interfaces (service_interface_id) SELECT id FROM bench.si WHERE n <= $jobs" >/dev/null
queued=$(sql "SELECT count(*) FROM gateway.sync_jobs")
writes_before=$(fake_writes)
set_kong_url "$kong_url"
drain_seconds=$(wait_drained)
writes=$(($(fake_writes) - writes_before))
jobs_per_s=$(awk -v j="$queued" -v s="$drain_seconds" 'BEGIN { printf "%.0f", j / s }')
writes_per_s=$(awk -v w="$writes" -v s="$drain_seconds" 'BEGIN { printf "%.0f", w / s }')
note "$queued jobs, $writes writes in $drain_seconds s: $jobs_per_s jobs/s, $writes_per_s writes/s"

# 4. Reconcile of everything Kong now holds.
objects=$(kong GET /__fake/stats | py 'sum(d["objects"].values())')
step "reconcile of $objects objects"
read -r reconcile_seconds reconcile_writes < <(reconcile_now)
note "$reconcile_seconds s, $reconcile_writes writes; the worker: $(grep -o 'reconciled.*' "$cluster/server.log" | tail -1)"

# 5. Worker memory over many jobs: every round changes every interface (one job each).
step "worker RSS over $rss_jobs jobs"
worker=$(sql "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'")
# Private memory only (RssAnon): VmRSS also counts the shared buffers the worker has touched,
# which grows with the data, not with a leak.
rss() { awk '/^RssAnon/ { print $2 }' "/proc/$worker/status"; }
declare -a rss_samples
done_jobs=0 round=0
while ((done_jobs < rss_jobs)); do
  round=$((round + 1))
  sql "UPDATE gateway.public_interfaces SET rate_limit_per_minute = $((round + 10)) WHERE id IN (SELECT id FROM gateway.public_interfaces LIMIT $jobs)" >/dev/null
  wait_drained >/dev/null
  done_jobs=$((done_jobs + jobs))
  rss_samples+=("$(rss)")
  note "after $done_jobs jobs: worker private RSS ${rss_samples[-1]} kB"
done
rss_first=${rss_samples[0]} rss_last=${rss_samples[-1]}
rss_growth=$(awk -v a="$rss_first" -v b="$rss_last" 'BEGIN { printf "%+.1f", (b - a) * 100 / a }')

# 6. Reconcile at scale: keys bound to the interfaces become consumers, credentials and acls.
step "issue $consumers keys bound to the $jobs interfaces, and sync them"
start=$EPOCHREALTIME
# Keys go to editors of their project: one key holder per project, named after it.
sql "INSERT INTO gateway.project_members (project_id, user_id, role)
     SELECT DISTINCT project_id, md5('holder' || project_id)::uuid, 'editor' FROM gateway.public_interfaces
     ON CONFLICT DO NOTHING" >/dev/null
sql "SELECT count(*) FROM (SELECT id, project_id, row_number() OVER () AS n FROM gateway.public_interfaces LIMIT $jobs) AS p
       CROSS JOIN generate_series(1, ($consumers + $jobs - 1) / $jobs) AS i,
       LATERAL gateway.api_key_issue(md5('holder' || p.project_id)::uuid, p.project_id, 'bench-' || p.n || '-' || i, p.id) AS k
      WHERE (p.n - 1) * (($consumers + $jobs - 1) / $jobs) + i <= $consumers" >/dev/null
issue_seconds=$(since "$start")
key_sync_seconds=$(wait_drained)
note "issued in $issue_seconds s, synced $key_sync_seconds s later"
objects_at_scale=$(kong GET /__fake/stats | py 'sum(d["objects"].values())')
consumers_in_kong=$(kong GET /__fake/stats | py 'd["objects"]["consumers"]')
step "reconcile of $objects_at_scale objects ($consumers_in_kong consumers)"
read -r scale_seconds scale_writes < <(reconcile_now)
note "$scale_seconds s, $scale_writes writes; worker private RSS after it $(rss) kB"

echo
{
echo "== bench/sync: $concurrency requests in flight, Python Kong fake =="
echo "insert with triggers / without (cost)     = $insert_cost   (rounds: ${insert_ratios[*]}; goal <= 1.2)"
echo "  the foreign key alone (its own trigger)   = $fk_alone_cost   (rounds: ${fk_alone[*]})"
echo "  with triggers / copy with the foreign key = $fk_cost   (rounds: ${fk_ratios[*]})"
echo "  floor: row + job + audit, one statement   = $floor_cost   (rounds: ${floor_ratios[*]})"
echo "  with triggers / that floor                = $over_floor_cost   (rounds: ${over_floor[*]})"
echo "commit -> present in Kong                  = p50 $p50 ms, p99 $p99 ms   (goal p50 <= 10, p99 <= 50)"
echo "drain                                      = $jobs_per_s jobs/s, $writes_per_s writes/s   (goal >= 2000 jobs/s)"
echo "drain writes / fake ceiling ($ceiling/s)     = $(ratio "$writes_per_s" "$ceiling")   (goal >= 0.5; DESIGN aims at 0.8)"
echo "reconcile of $objects objects              = $reconcile_seconds s   (goal <= 5 s for 10,000)"
echo "reconcile with $consumers_in_kong consumers ($objects_at_scale objects) = $scale_seconds s, $scale_writes writes   (DESIGN: benchmarked at 100,000 consumers)"
echo "worker private RSS after $jobs / $done_jobs jobs = $rss_first kB / $rss_last kB ($rss_growth %)   (goal within 10 %)"
} | results_section "bench/sync (make bench-sync)"

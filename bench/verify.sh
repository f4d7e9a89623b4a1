#!/usr/bin/env bash
# bench/verify: api_key_verify against named baselines, measured in the same run on one
# throwaway cluster, printed as calls per second and ratios. Not a test: nothing here passes or fails.
#
#   make bench-verify                 (BENCH_KEYS=1000000 BENCH_SECONDS=10 BENCH_ROUNDS=4)
#   BENCH_HOT_KEYS=10000 BENCH_VERIFY_CACHE=65536: the verify cache's hot and not-in-memory regimes
#
# The client is bench/sql_driver (libpq, one prepared statement per connection, like
# `pgbench -M prepared`), which hands every call its key as a parameter drawn from a list in
# memory. pgbench can only draw numbers: its scripts had to fetch each key from a table inside the
# statement, and that fetch cost more than a hot verify. Every answer is checked (valid keys must
# say t, bad ones f), so a run that measured failures stops the benchmark.
#
# Two figures per run: calls per second, and the database's CPU time per call (the postmaster and
# all its children, from /proc: the clients' backends, the worker, the background processes). On
# a machine whose cores the clients share with the server, the rate also carries the clients' own
# CPU (libpq, the kernel's loopback sends), the same for every statement, which pulls every ratio
# of rates towards 1; the CPU per call is what the database pays for a verification.
#
# Verify never writes; the worker writes last_used_at once per key per gateway.last_used_resolution.
# So there are two regimes, both measured: the first use of each key (the worker's batched row
# write is part of the cost, measured with a 1 s batch window so it lands in the run that caused
# it), and the steady state of a running server whose keys' last_used_at are recent.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
source "$(dirname "$0")/lib.sh"

keys=${BENCH_KEYS:-1000000}
rounds=${BENCH_ROUNDS:-4}  # even: every other round runs backwards, so each order counts as often
hot=${BENCH_HOT_KEYS:-10000}          # the hot regime's working set: fits the verify cache
cache=${BENCH_VERIFY_CACHE:-65536}    # gateway.verify_cache_size: far below $keys

step "build the client (bench/sql_driver)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null && cmake --build build -j2 --target sql_driver >/dev/null
driver=$REPO/build/sql_driver

# autovacuum off: a run that fails keys fills gateway.audit_log, and an autovacuum worker that
# this calls up would charge its CPU to whichever run comes next. settle() vacuums instead. (Runs
# right after the malformed keys still vary more than others: the rounds alternate their order.)
bench_cluster bench-verify "gateway.usage_slots = 1100000" "gateway.usage_flush_interval = '1s'" \
  "gateway.verify_cache_size = $cache" "autovacuum = off"
bench_stage_scripts bench/verify
# The floor function, built against this server's headers into the cluster's directory.
cc -O2 -fPIC -shared -I"$("$PG_CONFIG" --includedir-server)" -o "$stage/floor_row.so" "$stage/scripts/floor_row.c"
chmod 755 "$stage/floor_row.so"

step "issue $keys keys through api_key_issue"
start=$SECONDS
cluster_psql "$cluster" -d gateway -v nkeys="$keys" -v floor_library="$stage/floor_row.so" \
  -f "$stage/scripts/setup.sql" >/dev/null
note "done in $((SECONDS - start)) s"

# Before each measurement: a checkpoint, and a worker that has written everything the previous
# run left behind (with a 1 s batch window the worker's cost lands in the run that caused it).
settle() {
  cluster_psql "$cluster" -d gateway -c "VACUUM gateway.audit_log" -c "CHECKPOINT" >/dev/null
  local i quiet=0
  # Idle for longer than the 1 s batch window: nothing pending, nothing being written.
  for i in $(seq 1500); do
    if [[ $(cluster_psql "$cluster" -d gateway -Atc "SELECT count(*) FROM pg_stat_activity
          WHERE backend_type = 'pg_gateway worker' AND state = 'active'") == 0 ]]; then
      quiet=$((quiet + 1))
    else
      quiet=0
    fi
    ((quiet >= 8)) && break
    sleep 0.2
  done
}

conninfo="host=127.0.0.1 port=$port user=postgres dbname=gateway"
# The parameter lists: the keys without a rate limit (half of them: not in memory), its hot working
# set, the same two among the rate-limited half (setup.sql), malformed (a real key with a wrong
# checksum: the whole parse runs, the table is never touched), unknown (well formed, no row).
half=$((keys / 2))
all_keys="SELECT api_key FROM bench.keys WHERE n <= $half"
hot_keys="SELECT api_key FROM bench.keys WHERE n <= $hot"
limited_keys="SELECT api_key FROM bench.keys WHERE n > $half"
limited_hot_keys="SELECT api_key FROM bench.keys WHERE n > $half AND n <= $half + $hot"
malformed_keys="SELECT left(api_key, 59) || '000000' FROM bench.keys WHERE n <= 100000"
unknown_keys="SELECT api_key FROM bench.unknown_keys"
bare="SELECT id, user_id, project_id FROM gateway.api_keys WHERE bench_sha256 = sha256(convert_to(\$1, 'UTF8'))"
verify='SELECT valid, reason FROM gateway.api_key_verify($1)'

# measure NAME: settles, then prints the calls per second and the database's CPU nanoseconds per
# call of one run of NAME (see the table).
measure() {
  local name=$1 info=$conninfo secs=${2:-$seconds}
  [[ $name == *_nocache ]] && info="$info options=-cgateway.verify_cache_bypass=on"
  settle
  local -a how
  case ${name%_nocache} in
    select_1)          how=(- 'SELECT 1') ;;
    floor_row)         how=("$hot_keys" 'SELECT valid, reason FROM bench.floor_row($1)' t) ;;
    bare_lookup)       how=("$all_keys" "$bare") ;;
    bare_lookup_hot)   how=("$hot_keys" "$bare") ;;
    verify_valid)      how=("$all_keys" "$verify" t) ;;
    verify_first_use)  how=("$all_keys" "$verify" t) ;;
    verify_hot)        how=("$hot_keys" "$verify" t) ;;
    verify_valid_limited) how=("$limited_keys" "$verify" t) ;;
    verify_hot_limited) how=("$limited_hot_keys" "$verify" t) ;;
    verify_interface)  how=("$all_keys" "SELECT valid, reason FROM gateway.api_key_verify(\$1, 'db000000-0000-4000-8000-000000000001')" t) ;;
    verify_malformed)  how=("$malformed_keys" "$verify" f) ;;
    verify_unknown)    how=("$unknown_keys" "$verify" f) ;;
    bcrypt)            how=("SELECT api_key FROM bench.bcrypt_keys" 'SELECT bcrypt_hash = crypt($1, bcrypt_hash) FROM bench.bcrypt_keys WHERE api_key = $1' t) ;;
    *) echo "unknown measurement $name" >&2; return 1 ;;
  esac
  local out
  out=$(SQL_DRIVER_SERVER_PID=$(head -1 "$cluster/data/postmaster.pid") \
        "$driver" "$info" "$secs" "$clients" "${how[@]}") || { echo "bench/verify: $name failed" >&2; return 1; }
  local -a fields=($out)
  echo "${fields[0]} ${fields[3]}"
}

step "warm up (bare lookups only: no key has been used yet)"
measure bare_lookup 5 >/dev/null

step "first use of each key (includes the worker's batched last_used_at write)"
# Each run's output goes through a plain assignment first: `read <<<"$(...)"` would drop measure's
# exit status, and a failed or wrong run must stop the benchmark (set -e).
out=$(measure verify_first_use)
read -r first_use first_use_cpu <<<"$out"
out=$(measure bare_lookup)
read -r first_use_bare first_use_bare_cpu <<<"$out"
note "$(printf 'verify_first_use %.0f calls/s %s ns, bare_lookup %.0f calls/s %s ns' "$first_use" "$first_use_cpu" "$first_use_bare" "$first_use_bare_cpu")"

step "steady state: every key used once and its last_used_at recorded"
cluster_psql "$cluster" -d gateway -c "SELECT count(*) FROM bench.keys AS b, gateway.api_key_verify(b.api_key) AS v WHERE v.valid" >/dev/null
settle
# A key whose slot was evicted before its batch was written (gateway.usage_slots is a cache) has
# no last_used_at yet; count those, then give them one, as a running server would have.
unused=$(cluster_psql "$cluster" -d gateway -Atc "SELECT count(*) FROM gateway.api_keys WHERE name LIKE 'bench-%' AND last_used_at IS NULL")
note "$unused of $keys keys had no recorded use after the pass (slot evicted before its batch)"
cluster_psql "$cluster" -d gateway -c "UPDATE gateway.api_keys SET last_used_at = now() WHERE last_used_at IS NULL" >/dev/null
cluster_psql "$cluster" -d gateway -c "VACUUM ANALYZE gateway.api_keys" -c "REINDEX TABLE gateway.api_keys" >/dev/null

declare -A samples cpu
# Regimes: verify_valid draws from the keys without a rate limit (not in memory: far more keys
# than the verify cache holds), verify_hot from the first $hot (they fit), and the *_limited
# runs the same from the rate-limited half; *_nocache runs bypass the cache in that session
# (gateway.verify_cache_bypass), i.e. what verify cost before it, in the same round. floor_row is
# the floor of any function answering with verify's row. Every other round runs the list
# backwards, so no side of a pair always runs first (the worker's audit writes of the previous
# run's failures, and the machine's drift, would otherwise favour one side).
names=(select_1 floor_row bare_lookup_hot verify_hot verify_hot_limited bare_lookup verify_valid
       verify_valid_limited verify_valid_nocache verify_interface verify_malformed verify_unknown
       verify_unknown_nocache)
for r in $(seq "$rounds"); do
  step "round $r of $rounds (${seconds}s each, $clients clients, prepared, keys as parameters)"
  order=("${names[@]}")
  ((r % 2 == 0)) && order=($(printf '%s\n' "${names[@]}" | tac))
  for name in "${order[@]}"; do
    out=$(measure "$name")
    read -r calls ns <<<"$out"
    samples[$name]+="$calls "
    cpu[$name]+="$ns "
    note "$(printf '%-22s %10.0f calls/s %8s ns of database CPU per call' "$name" "$calls" "$ns")"
  done
done

step "bcrypt baseline (cost 10, 200-key sample)"
out=$(measure bcrypt 10)
read -r samples[bcrypt] cpu[bcrypt] <<<"$out"
note "bcrypt ${samples[bcrypt]} calls/s"

m() { median ${samples[$1]}; }
mc() { median ${cpu[$1]}; }
# Speeds per round of NAME, by the current $kind: calls per second ("rate"), or calls per second
# of the database's CPU ("cpu": 1e9 / ns per call), so both read "higher is faster".
speeds() {
  if [[ $kind == rate ]]; then echo ${samples[$1]}; else
    local ns
    for ns in ${cpu[$1]}; do awk -v n="$ns" 'BEGIN { printf "%.1f ", 1e9 / n }'; done
  fi
}
# The ratios are medians of per-round ratios: each pair ran close together, so load from others on
# this shared machine (which drifts over minutes) cancels within a round instead of skewing
# one side's median.
paired() {  # paired NAME BASELINE: median of NAME[i] / BASELINE[i]
  local -a a=($(speeds "$1")) b=($(speeds "$2")) r=()
  local i
  for i in "${!a[@]}"; do r+=("$(ratio "${a[$i]}" "${b[$i]}")"); done
  echo "$(median "${r[@]}") (rounds: ${r[*]})"
}
ratios() {
echo "-- hot keys ($hot, in the verify cache of $cache)"
echo "ratio verify_hot / bare_lookup_hot        = $(paired verify_hot bare_lookup_hot)   (goal >= 1.5; same working set)"
echo "ratio verify_hot / select_1               = $(paired verify_hot select_1)   (goal >= 0.75)"
echo "ratio verify_hot / floor_row              = $(paired verify_hot floor_row)   (1.0 would be a verify that does no work)"
echo "ratio floor_row / bare_lookup_hot         = $(paired floor_row bare_lookup_hot)   (the ceiling of verify_hot / bare_lookup_hot)"
echo "ratio floor_row / select_1                = $(paired floor_row select_1)   (the ceiling of verify_hot / select_1)"
echo "-- keys not in memory ($half keys without a rate limit)"
echo "ratio verify_valid / bare_lookup          = $(paired verify_valid bare_lookup)   (goal >= 1.0)"
echo "ratio verify_valid / verify_valid_nocache = $(paired verify_valid verify_valid_nocache)   (the cache's cost when it misses)"
echo "ratio verify_interface / verify_valid     = $(paired verify_interface verify_valid)   (unbound key on an interface of its project: one more probe)"
echo "-- bad keys"
echo "ratio verify_unknown / verify_unknown_nocache = $(paired verify_unknown verify_unknown_nocache)   (goal >= 1: no slower than without the cache)"
echo "ratio verify_unknown / bare_lookup        = $(paired verify_unknown bare_lookup)"
echo "ratio verify_malformed / bare_lookup      = $(paired verify_malformed bare_lookup)   (never touches the table)"
echo "ratio verify_malformed / select_1         = $(paired verify_malformed select_1)"
echo "-- rate limiting on vs off: the limited half vs the other, same regime, same round (goal 0.95 .. 1.05)"
echo "ratio verify_valid_limited / verify_valid = $(paired verify_valid_limited verify_valid)"
echo "ratio verify_hot_limited / verify_hot     = $(paired verify_hot_limited verify_hot)"
}
row() { printf '%-42s %10.0f %8.0f\n' "$1" "$(m "$2")" "$(mc "$2")"; }
echo
{
echo "== bench/verify: $keys keys, $clients clients, median of $rounds x ${seconds}s (bench/sql_driver: prepared, keys as parameters) =="
printf '%-42s %10s %8s\n' "" "calls/s" "db ns" 
row "SELECT 1" select_1
row "floor: a C function returning verify's row" floor_row
row "bare indexed lookup (sha256), hot keys" bare_lookup_hot
row "bare indexed lookup (sha256), $half keys" bare_lookup
row "api_key_verify, hot keys" verify_hot
row "api_key_verify, $half keys (not in memory)" verify_valid
row "api_key_verify, the same, cache bypassed" verify_valid_nocache
row "api_key_verify, on an interface" verify_interface
row "api_key_verify, malformed keys" verify_malformed
row "api_key_verify, unknown keys" verify_unknown
row "api_key_verify, rate limited, $half keys" verify_valid_limited
row "api_key_verify, rate limited, hot keys" verify_hot_limited
printf '%-42s %10.0f %8.0f\n' "api_key_verify, first use of keys" "$first_use" "$first_use_cpu" \
  "bcrypt cost 10 verification" "${samples[bcrypt]}" "${cpu[bcrypt]}"
echo "(db ns: the database's CPU time per call, all of the cluster's processes, from /proc)"
echo
echo "==== ratios of the database's CPU per call (calls per CPU second; what the database pays) ===="
kind=cpu ratios
echo "ratio verify_first_use / bare_lookup      = $(awk -v a="$first_use_bare_cpu" -v b="$first_use_cpu" 'BEGIN { printf "%.2f", a / b }')   (cold: one batched row write per key)"
echo "ratio verify_valid / bcrypt               = $(awk -v a="${cpu[bcrypt]}" -v b="$(mc verify_valid)" 'BEGIN { printf "%.2f", a / b }')"
echo
echo "==== ratios of calls per second ($clients clients sharing the $(nproc) cores with the server) ===="
kind=rate ratios
echo "ratio verify_first_use / bare_lookup      = $(ratio "$first_use" "$first_use_bare")   (cold: one batched row write per key)"
echo "ratio verify_valid / bcrypt               = $(ratio "$(m verify_valid)" "${samples[bcrypt]}")"
} | results_section "bench/verify (make bench-verify)"

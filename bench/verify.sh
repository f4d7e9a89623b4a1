#!/usr/bin/env bash
# bench/verify: api_key_verify against named baselines, measured in the same run on one
# throwaway cluster, printed as calls per second and ratios. Not a test: nothing here passes or fails.
#
#   make bench-verify                 (BENCH_KEYS=1000000 BENCH_SECONDS=10 BENCH_ROUNDS=3)
#   BENCH_HOT_KEYS=10000 BENCH_VERIFY_CACHE=65536: the verify cache's hot and not-in-memory regimes
#
# The client is bench/sql_driver (libpq, one prepared statement per connection, like
# `pgbench -M prepared`), which hands every call its key as a parameter drawn from a list in
# memory. pgbench can only draw numbers: its scripts had to fetch each key from a table inside the
# statement, and that fetch cost more than a hot verify. Every answer is checked (valid keys must
# say t, bad ones f), so a run that measured failures stops the benchmark.
#
# Verify never writes; the worker writes last_used_at once per key per gateway.last_used_resolution.
# So there are two regimes, both measured: the first use of each key (the worker's batched row
# write is part of the cost, measured with a 1 s batch window so it lands in the run that caused
# it), and the steady state of a running server whose keys' last_used_at are recent.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
source "$(dirname "$0")/lib.sh"

keys=${BENCH_KEYS:-1000000}
hot=${BENCH_HOT_KEYS:-10000}          # the hot regime's working set: fits the verify cache
cache=${BENCH_VERIFY_CACHE:-65536}    # gateway.verify_cache_size: far below $keys

step "build the client (bench/sql_driver)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null && cmake --build build -j2 --target sql_driver >/dev/null
driver=$REPO/build/sql_driver

bench_cluster bench-verify "gateway.usage_slots = 1100000" "gateway.usage_flush_interval = '1s'" \
  "gateway.verify_cache_size = $cache"
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
  cluster_psql "$cluster" -d gateway -c "CHECKPOINT" >/dev/null
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
# The parameter lists: all keys (not in memory), the hot working set, malformed (a real key with a
# wrong checksum: the whole parse runs, the table is never touched), unknown (well formed, no row).
all_keys="SELECT api_key FROM bench.keys"
hot_keys="SELECT api_key FROM bench.keys WHERE n <= $hot"
malformed_keys="SELECT left(api_key, 59) || '000000' FROM bench.keys WHERE n <= 100000"
unknown_keys="SELECT api_key FROM bench.unknown_keys"
bare="SELECT id, user_id, project_id FROM gateway.api_keys WHERE bench_sha256 = sha256(convert_to(\$1, 'UTF8'))"
verify='SELECT valid, reason FROM gateway.api_key_verify($1)'

# measure NAME: settles, then prints the calls per second of one run of NAME (see the table).
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
    verify_interface)  how=("$all_keys" "SELECT valid, reason FROM gateway.api_key_verify(\$1, 'db000000-0000-4000-8000-000000000001')" t) ;;
    verify_malformed)  how=("$malformed_keys" "$verify" f) ;;
    verify_unknown)    how=("$unknown_keys" "$verify" f) ;;
    bcrypt)            how=("SELECT api_key FROM bench.bcrypt_keys" 'SELECT bcrypt_hash = crypt($1, bcrypt_hash) FROM bench.bcrypt_keys WHERE api_key = $1' t) ;;
    *) echo "unknown measurement $name" >&2; return 1 ;;
  esac
  local out
  out=$("$driver" "$info" "$secs" "$clients" "${how[@]}") || { echo "bench/verify: $name failed" >&2; return 1; }
  echo "${out%% *}"
}

step "warm up (bare lookups only: no key has been used yet)"
measure bare_lookup 5 >/dev/null

step "first use of each key (includes the worker's batched last_used_at write)"
first_use=$(measure verify_first_use)
first_use_bare=$(measure bare_lookup)
note "$(printf 'verify_first_use %.0f tps, bare_lookup %.0f tps' "$first_use" "$first_use_bare")"

step "steady state: every key used once and its last_used_at recorded"
cluster_psql "$cluster" -d gateway -c "SELECT count(*) FROM bench.keys AS b, gateway.api_key_verify(b.api_key) AS v WHERE v.valid" >/dev/null
settle
# A key whose slot was evicted before its batch was written (gateway.usage_slots is a cache) has
# no last_used_at yet; count those, then give them one, as a running server would have.
unused=$(cluster_psql "$cluster" -d gateway -Atc "SELECT count(*) FROM gateway.api_keys WHERE name LIKE 'bench-%' AND last_used_at IS NULL")
note "$unused of $keys keys had no recorded use after the pass (slot evicted before its batch)"
cluster_psql "$cluster" -d gateway -c "UPDATE gateway.api_keys SET last_used_at = now() WHERE last_used_at IS NULL" >/dev/null
cluster_psql "$cluster" -d gateway -c "VACUUM ANALYZE gateway.api_keys" -c "REINDEX TABLE gateway.api_keys" >/dev/null

declare -A samples
# Regimes: verify_valid draws from all keys (not in memory: far more keys than the verify cache
# holds), verify_hot from the first $hot (they fit); *_nocache runs bypass the cache in that session
# (gateway.verify_cache_bypass), i.e. what verify cost before it, in the same round. floor_row is
# the floor of any function answering with verify's row.
names=(select_1 floor_row bare_lookup_hot verify_hot bare_lookup verify_valid verify_valid_nocache
       verify_interface verify_malformed verify_unknown verify_unknown_nocache)
for r in $(seq "$rounds"); do
  step "round $r of $rounds (${seconds}s each, $clients clients, prepared, keys as parameters)"
  for name in "${names[@]}"; do
    calls=$(measure "$name")
    samples[$name]+="$calls "
    note "$(printf '%-22s %10.0f calls/s' "$name" "$calls")"
  done
done

step "rate limiting on (every key limited to 1,000,000 per minute: the bucket path runs, never refuses)"
# (Every row rewritten: the indexes rebuilt, as after the setup, so both sides probe compact ones.)
cluster_psql "$cluster" -d gateway -c "UPDATE gateway.api_keys SET rate_limit_per_minute = 1000000" \
  -c "VACUUM ANALYZE gateway.api_keys" -c "REINDEX TABLE gateway.api_keys" >/dev/null
# Every key's bucket made once, as on a running server (a first use claims its slot).
cluster_psql "$cluster" -d gateway -c "SELECT count(*) FROM bench.keys AS b, gateway.api_key_verify(b.api_key) AS v WHERE v.valid" >/dev/null
measure verify_valid 5 >/dev/null
for r in $(seq "$rounds"); do
  for name in verify_valid bare_lookup verify_hot bare_lookup_hot; do
    calls=$(measure "$name")
    samples[${name}_limited]+="$calls "
  done
  note "$(printf "round %s: verify_valid %.0f, bare_lookup %.0f, verify_hot %.0f, bare_lookup_hot %.0f calls/s" "$r" \
    $(for name in verify_valid bare_lookup verify_hot bare_lookup_hot; do a=(${samples[${name}_limited]}); echo "${a[-1]}"; done))"
done

step "bcrypt baseline (cost 10, 200-key sample)"
samples[bcrypt]=$(measure bcrypt 10)
note "bcrypt ${samples[bcrypt]} calls/s"

m() { median ${samples[$1]}; }
# The ratios are medians of per-round ratios: each pair ran close together, so load from others on
# this shared machine (which drifts over minutes) cancels within a round instead of skewing
# one side's median.
paired() {  # paired NAME BASELINE: median of NAME[i] / BASELINE[i]
  local -a a=(${samples[$1]}) b=(${samples[$2]}) r=()
  local i
  for i in "${!a[@]}"; do r+=("$(ratio "${a[$i]}" "${b[$i]}")"); done
  echo "$(median "${r[@]}") (rounds: ${r[*]})"
}
# limited_vs_not REGIME BASELINE: (limited / its baseline) / (not limited / its baseline), per round.
limited_vs_not() {
  local -a on=(${samples[${1}_limited]}) on_base=(${samples[${2}_limited]}) off=(${samples[$1]}) off_base=(${samples[$2]}) r=()
  local i
  for i in "${!on[@]}"; do
    r+=("$(awk -v a="${on[$i]}" -v b="${on_base[$i]}" -v c="${off[$i]}" -v d="${off_base[$i]}" 'BEGIN { printf "%.2f", (a / b) / (c / d) }')")
  done
  echo "$(median "${r[@]}") (rounds: ${r[*]})"
}
echo
{
echo "== bench/verify: $keys keys, $clients clients, median of $rounds x ${seconds}s, calls/s (bench/sql_driver: prepared, keys as parameters) =="
printf '%-40s %10.0f\n' "SELECT 1" "$(m select_1)" \
  "floor: a C function returning verify's row" "$(m floor_row)" \
  "bare indexed lookup (sha256), hot keys" "$(m bare_lookup_hot)" \
  "bare indexed lookup (sha256), all keys" "$(m bare_lookup)" \
  "api_key_verify, hot keys" "$(m verify_hot)" \
  "api_key_verify, all keys (not in memory)" "$(m verify_valid)" \
  "api_key_verify, first use of keys" "$first_use" \
  "api_key_verify, on an interface" "$(m verify_interface)" \
  "api_key_verify, malformed keys" "$(m verify_malformed)" \
  "api_key_verify, unknown keys" "$(m verify_unknown)" \
  "api_key_verify, rate limited, all keys" "$(m verify_valid_limited)" \
  "api_key_verify, rate limited, hot keys" "$(m verify_hot_limited)" \
  "bcrypt cost 10 verification" "${samples[bcrypt]}"
echo "-- hot keys ($hot, in the verify cache of $cache)"
echo "ratio verify_hot / bare_lookup_hot        = $(paired verify_hot bare_lookup_hot)   (goal >= 1.5; same working set)"
echo "ratio verify_hot / select_1               = $(paired verify_hot select_1)   (goal >= 0.75)"
echo "ratio verify_hot / floor_row              = $(paired verify_hot floor_row)   (1.0 would be a verify that does no work)"
echo "ratio floor_row / bare_lookup_hot         = $(paired floor_row bare_lookup_hot)   (the ceiling of verify_hot / bare_lookup_hot)"
echo "ratio floor_row / select_1                = $(paired floor_row select_1)   (the ceiling of verify_hot / select_1)"
echo "-- keys not in memory ($keys keys)"
echo "ratio verify_valid / bare_lookup          = $(paired verify_valid bare_lookup)   (goal >= 1.0)"
echo "ratio verify_valid / verify_valid_nocache = $(paired verify_valid verify_valid_nocache)   (the cache's cost when it misses)"
echo "ratio verify_interface / verify_valid     = $(paired verify_interface verify_valid)   (unbound key on an interface of its project: one more probe)"
echo "ratio verify_first_use / bare_lookup      = $(ratio "$first_use" "$first_use_bare")   (cold: one batched row write per key)"
echo "-- bad keys"
echo "ratio verify_unknown / verify_unknown_nocache = $(paired verify_unknown verify_unknown_nocache)   (goal >= 1: no slower than without the cache)"
echo "ratio verify_unknown / bare_lookup        = $(paired verify_unknown bare_lookup)"
echo "ratio verify_malformed / bare_lookup      = $(paired verify_malformed bare_lookup)   (never touches the table)"
echo "ratio verify_malformed / select_1         = $(paired verify_malformed select_1)"
echo "-- rate limiting on vs off: (limited / bare) / (not limited / bare), same regime (goal 0.95 .. 1.05)"
echo "ratio limited vs not, all keys            = $(limited_vs_not verify_valid bare_lookup)"
echo "ratio limited vs not, hot keys            = $(limited_vs_not verify_hot bare_lookup_hot)"
echo "ratio verify_valid / bcrypt               = $(ratio "$(m verify_valid)" "${samples[bcrypt]}")"
} | results_section "bench/verify (make bench-verify)"

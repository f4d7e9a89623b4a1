#!/usr/bin/env bash
# bench/verify: api_key_verify against named baselines, measured in the same run on one
# throwaway cluster, printed as tps and ratios. Not a test: nothing here passes or fails.
#
#   make bench-verify                 (BENCH_KEYS=1000000 BENCH_SECONDS=10 BENCH_ROUNDS=3)
#   BENCH_HOT_KEYS=10000 BENCH_VERIFY_CACHE=65536: the verify cache's hot and not-in-memory regimes
#
# Every pgbench script fetches its key from a bench table by a random row number inside the same
# statement, so each side pays that identical cost; the difference is what verify adds.
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

bench_cluster bench-verify "gateway.usage_slots = 1100000" "gateway.usage_flush_interval = '1s'" \
  "gateway.verify_cache_size = $cache"
bench_stage_scripts bench/verify

step "issue $keys keys through api_key_issue"
start=$SECONDS
cluster_psql "$cluster" -d gateway -v nkeys="$keys" -f "$stage/scripts/setup.sql" >/dev/null
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

# run NAME SCRIPT [seconds]: settles, then prints the tps of one run.
run() {
  settle
  pgbench_tps "$2" "${3:-$seconds}" -D nkeys="$keys" -D nhot="$hot"
}

step "warm up (bare lookups only: no key has been used yet)"
run warm bare_lookup.pgbench 5 >/dev/null

step "first use of each key (includes the worker's batched last_used_at write)"
first_use=$(run verify_first_use verify_valid.pgbench)
first_use_bare=$(run bare_lookup bare_lookup.pgbench)
note "$(printf 'verify_first_use %.0f tps, bare_lookup %.0f tps' "$first_use" "$first_use_bare")"

step "steady state: every key used once and its last_used_at recorded"
cluster_psql "$cluster" -d gateway -c "SELECT count(*) FROM bench.keys AS b, gateway.api_key_verify(b.api_key) AS v WHERE v.valid" >/dev/null
settle
# A key whose slot was evicted before its batch was written (gateway.usage_slots is a cache) has
# no last_used_at yet; count those, then give them one, as a running server would have.
unused=$(cluster_psql "$cluster" -d gateway -Atc "SELECT count(*) FROM gateway.api_keys WHERE name LIKE 'bench-%' AND last_used_at IS NULL")
note "$unused of $keys keys had no recorded use after the pass (slot evicted before its batch)"
cluster_psql "$cluster" -d gateway -c "UPDATE gateway.api_keys SET last_used_at = now() WHERE last_used_at IS NULL" >/dev/null
cluster_psql "$cluster" -d gateway -c "VACUUM ANALYZE gateway.api_keys" >/dev/null

declare -A samples
# Regimes: verify_valid draws from all keys (not in memory: far more keys than the verify cache
# holds), verify_hot from the first $hot (they fit); *_nocache runs bypass the cache in that session
# (gateway.verify_cache_bypass), i.e. what verify cost before it, in the same round.
names=(bare_lookup verify_valid verify_valid_nocache verify_interface verify_malformed verify_unknown
       verify_unknown_nocache bare_lookup_hot verify_hot select_key select_1)
for r in $(seq "$rounds"); do
  step "round $r of $rounds (${seconds}s each, $clients clients, -M prepared)"
  for name in "${names[@]}"; do
    if [[ $name == *_nocache ]]; then
      tps=$(PGOPTIONS="-c gateway.verify_cache_bypass=on" run "$name" "${name%_nocache}.pgbench")
    else
      tps=$(run "$name" "$name.pgbench")
    fi
    samples[$name]+="$tps "
    note "$(printf '%-18s %10.0f tps' "$name" "$tps")"
  done
done

step "rate limiting on (every key limited to 1,000,000 per minute: the bucket path runs, never refuses)"
cluster_psql "$cluster" -d gateway -c "UPDATE gateway.api_keys SET rate_limit_per_minute = 1000000" -c "VACUUM ANALYZE gateway.api_keys" >/dev/null
run warm verify_valid.pgbench 5 >/dev/null
for r in $(seq "$rounds"); do
  limited_tps=$(run verify_limited verify_valid.pgbench); samples[verify_limited]+="$limited_tps "
  tps=$(run bare_lookup bare_lookup.pgbench); samples[bare_lookup_2]+="$tps "
  note "$(printf "round %s: verify_limited %.0f tps, bare_lookup %.0f tps" "$r" "$limited_tps" "$tps")"
done

step "bcrypt baseline (cost 10, 200-key sample)"
samples[bcrypt]=$(run bcrypt bcrypt.pgbench 10)
note "bcrypt ${samples[bcrypt]} tps"

m() { median ${samples[$1]}; }
bare=$(m bare_lookup); valid=$(m verify_valid); on_interface=$(m verify_interface); malformed=$(m verify_malformed)
unknown=$(m verify_unknown); limited=$(m verify_limited); bare2=$(m bare_lookup_2)
# The ratios are medians of per-round ratios: each pair ran back to back, so load from others on
# this shared machine (which drifts over minutes) cancels within a round instead of skewing
# one side's median.
paired() {  # paired NAME BASELINE: median of NAME[i] / BASELINE[i]
  local -a a=(${samples[$1]}) b=(${samples[$2]}) r=()
  local i
  for i in "${!a[@]}"; do r+=("$(ratio "${a[$i]}" "${b[$i]}")"); done
  echo "$(median "${r[@]}") (rounds: ${r[*]})"
}
echo
{
echo "== bench/verify: $keys keys, $clients clients, median of $rounds x ${seconds}s, tps =="
printf '%-34s %10.0f\n' "bare indexed lookup (sha256)" "$bare" "api_key_verify, valid keys" "$valid" \
  "api_key_verify, first use of keys" "$first_use" \
  "api_key_verify, on an interface" "$on_interface" \
  "api_key_verify, malformed keys" "$malformed" "api_key_verify, unknown keys" "$unknown" \
  "api_key_verify, rate limiting on" "$limited" "bcrypt cost 10 verification" "${samples[bcrypt]}"
echo "ratio verify_valid / bare_lookup         = $(paired verify_valid bare_lookup)   (goal >= 0.90)"
echo "ratio verify_interface / verify_valid   = $(paired verify_interface verify_valid)   (unbound key on an interface of its project: one more probe)"
echo "ratio verify_rate_limited / bare_lookup  = $(paired verify_limited bare_lookup_2)   (goal >= 0.85; same-phase baseline)"
echo "ratio verify_malformed / bare_lookup     = $(paired verify_malformed bare_lookup)   (goal > 1)"
echo "ratio verify_unknown / bare_lookup       = $(paired verify_unknown bare_lookup)"
echo "ratio verify_valid / bcrypt              = $(ratio "$valid" "${samples[bcrypt]}")"
echo "ratio verify_first_use / bare_lookup     = $(ratio "$first_use" "$first_use_bare")   (cold: one batched row write per key)"
echo "-- verify cache (gateway.verify_cache_size = $cache; hot: $hot keys, not in memory: $keys)"
echo "ratio verify_hot / bare_lookup_hot       = $(paired verify_hot bare_lookup_hot)   (goal >= 1.5; same working set)"
echo "ratio verify_hot / bare_lookup           = $(paired verify_hot bare_lookup)   (against the lookup over all keys)"
echo "ratio verify_hot / select_1              = $(paired verify_hot select_1)   (goal >= 0.75)"
echo "ratio verify_hot / select_key            = $(paired verify_hot select_key)   (SELECT 1 that also fetches the key, as every script here does)"
echo "ratio verify_valid / bare_lookup         = $(paired verify_valid bare_lookup)   (not in memory; goal >= 1.0)"
echo "ratio verify_valid / verify_valid_nocache= $(paired verify_valid verify_valid_nocache)   (the cache's cost when it misses)"
echo "ratio verify_unknown / verify_unknown_nocache = $(paired verify_unknown verify_unknown_nocache)   (goal >= 1: no slower than before)"
echo "ratio rate limited vs not                = $(ratio "$(ratio "$limited" "$bare2")" "$(ratio "$valid" "$bare")")   ((limited/bare_2) / (valid/bare); goal within 0.95..1.05)"
} | results_section "bench/verify (make bench-verify)"

#!/usr/bin/env bash
# Usage-limited keys are exact under concurrency on one node (4 backends spending one 1000-use key
# get exactly 1000 ok answers), the worker persists what was spent to gateway.api_key_usage (not
# api_keys), and a clean restart keeps the count; a refill after it adds exactly what it says.
set -u
source "$REPO/test/integration/lib/tap.sh"
plan 10

q "INSERT INTO gateway.project_members (project_id, user_id, role)
   VALUES ('ca000000-0000-4000-8000-000000000001', 'aa000000-0000-4000-8000-000000000001', 'editor') ON CONFLICT DO NOTHING" >/dev/null
read -r key_id key < <(q "SELECT key_id || ' ' || api_key FROM gateway.api_key_issue(
  'aa000000-0000-4000-8000-000000000001', 'ca000000-0000-4000-8000-000000000001', 'metered-$$', remaining => 1000)")

# spend CLIENTS CALLS: each client verifies CALLS times in one statement; prints the total of ok.
spend() {
  local clients=$1 calls=$2 i out="$STAGE/usage_limits.$$"
  for i in $(seq "$clients"); do
    # The cost refers to g so that verify runs once per row (a call with constant arguments in
    # LATERAL would run once and be repeated).
    q "SELECT count(*) FILTER (WHERE v.reason = 'ok') FROM generate_series(1, $calls) AS g,
         LATERAL gateway.api_key_verify('$key', cost => 1 + 0 * g) AS v" >"$out.$i" &
  done
  wait
  cat "$out".* | paste -sd+ | bc
  rm -f "$out".*
}

# The first use has the worker write last_used_at (then not again for gateway.last_used_resolution):
# after that the key's row must not change however much is spent.
is "$(q "SELECT reason || ' ' || usage_remaining FROM gateway.api_key_verify('$key')")" "ok 999" "the first use leaves 999"
wait_for "SELECT last_used_at IS NOT NULL FROM gateway.api_keys WHERE id = '$key_id'" t >/dev/null
row_version=$(q "SELECT xmin FROM gateway.api_keys WHERE id = '$key_id'")
is "$(spend 4 300)" 999 "4 concurrent clients spending the 999 uses left 1200 times get exactly 999 ok"
is "$(q "SELECT reason || ' ' || usage_remaining FROM gateway.api_key_verify('$key')")" "usage_exceeded 0" \
   "then the key answers usage_exceeded with 0 left"
is "$(wait_for "SELECT spent || '/' || granted FROM gateway.api_key_usage WHERE key_id = '$key_id'" 1000/1000)" 1000/1000 \
   "the worker persists what was spent"
is "$(q "SELECT xmin FROM gateway.api_keys WHERE id = '$key_id'")" "$row_version" \
   "spending never rewrote the key's api_keys row"

cluster_stop "$CLUSTER"
cluster_start "$CLUSTER"
wait_for "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'" 1 >/dev/null
is "$(q "SELECT reason || ' ' || usage_remaining FROM gateway.api_key_verify('$key', cost => 0)")" "ok 0" \
   "after a clean restart the key still has 0 uses left"
is "$(q "SELECT reason FROM gateway.api_key_verify('$key')")" usage_exceeded "and is refused"

q "SELECT gateway.api_key_refill('$key_id', 7)" >/dev/null
is "$(spend 2 10)" 7 "a refill of 7 gives exactly 7 more uses to 2 concurrent clients"
is "$(wait_for "SELECT spent || '/' || granted FROM gateway.api_key_usage WHERE key_id = '$key_id'" 1007/1007)" 1007/1007 \
   "and they are persisted too"
is "$(q "SELECT usage_remaining FROM gateway.api_keys_list WHERE id = '$key_id'")" 0 "the listing shows none left"

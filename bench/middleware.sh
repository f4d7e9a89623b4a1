#!/usr/bin/env bash
# bench/middleware: the TypeScript middleware (clients/typescript) against a bare api_key_verify
# call from node-postgres: same process, same pool, same keys, interleaved rounds; prints
# throughput and median latency ratios and keeps them in bench/RESULTS.md. Not a test.
#
#   make bench-middleware     (BENCH_KEYS=1000 BENCH_SECONDS=3 BENCH_ROUNDS=3 BENCH_INFLIGHT=8 BENCH_POOL=4)
#
#   bare       header read + pool.query(api_key_verify) + valid check, what an app writes by hand
#   core       checkApiKey(pool, key)                 (the package's verify call and mapping)
#   route      withApiKey(pool, handler)(request)     (the Next.js / Fetch route wrapper)
#   trpc       t.procedure.concat(apiKeyProcedure(pool)) vs the hand-written check in the resolver,
#              and vs the same check as a hand-written tRPC middleware (t.procedure.use)
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
source "$(dirname "$0")/lib.sh"

nkeys=${BENCH_KEYS:-1000}
export BENCH_SECONDS=${BENCH_SECONDS:-3} BENCH_ROUNDS=${BENCH_ROUNDS:-3}
export BENCH_INFLIGHT=${BENCH_INFLIGHT:-8} BENCH_POOL=${BENCH_POOL:-4}
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

bench_cluster bench-middleware
step "stage clients/typescript (npm ci, tsc)"
ts="$stage/ts"
mkdir -p "$ts"
cp -r clients/typescript/{package.json,package-lock.json,tsconfig.json,src} bench/middleware.mjs "$ts/"
(cd "$ts" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null && node_modules/.bin/tsc -p tsconfig.json)

step "issue $nkeys keys"
cluster_psql "$cluster" -d gateway -c "
  INSERT INTO gateway.project_members (project_id, user_id, role)
  VALUES ('c0000000-0000-4000-8000-000000000001', 'a0000000-0000-4000-8000-000000000001', 'editor');
  CREATE TABLE bench_keys AS SELECT k.api_key FROM generate_series(1, $nkeys) AS g,
    LATERAL gateway.api_key_issue('a0000000-0000-4000-8000-000000000001', 'c0000000-0000-4000-8000-000000000001', 'bench-' || g) AS k;" >/dev/null

step "measure ($BENCH_ROUNDS rounds of ${BENCH_SECONDS} s per variant, $BENCH_INFLIGHT requests in flight, pool of $BENCH_POOL)"
out=$(cd "$ts" && PGPORT=$port node middleware.mjs 2>&1) || { echo "$out"; exit 1; }
get() { echo "$out" | awk -v n="$1" -v f="$2" '$1 == n { print $f }'; }
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

{
  echo "== bench/middleware: node $(node --version), $BENCH_INFLIGHT requests in flight over a pool of $BENCH_POOL, $nkeys keys =="
  printf '%-44s = %s/s, p50 %s ms\n' "bare api_key_verify (pool.query + check)" "$(get bare 2)" "$(get bare 3)"
  printf '%-44s = %s/s, p50 %s ms\n' "checkApiKey (package core)" "$(get core 2)" "$(get core 3)"
  printf '%-44s = %s/s, p50 %s ms\n' "withApiKey route wrapper" "$(get route 2)" "$(get route 3)"
  printf '%-44s = %s/s, p50 %s ms\n' "tRPC procedure, hand-written check" "$(get trpcBare 2)" "$(get trpcBare 3)"
  printf '%-44s = %s/s, p50 %s ms\n' "tRPC procedure, hand-written middleware" "$(get trpcHandMw 2)" "$(get trpcHandMw 3)"
  printf '%-44s = %s/s, p50 %s ms\n' "tRPC procedure + apiKeyProcedure" "$(get trpcKeyed 2)" "$(get trpcKeyed 3)"
  echo "route / bare throughput                      = $(ratio "$(get route 2)" "$(get bare 2)")   (1.00: the middleware costs nothing)"
  echo "core / bare throughput                       = $(ratio "$(get core 2)" "$(get bare 2)")"
  echo "tRPC apiKeyProcedure / check in the resolver = $(ratio "$(get trpcKeyed 2)" "$(get trpcBare 2)")"
  echo "tRPC apiKeyProcedure / hand-written middleware = $(ratio "$(get trpcKeyed 2)" "$(get trpcHandMw 2)")"
  echo "route / bare median latency                  = $(ratio "$(get route 3)" "$(get bare 3)")"
  echo "load average before / after: $load_before / $load_after"
} | results_section "bench/middleware (make bench-middleware)"

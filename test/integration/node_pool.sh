#!/usr/bin/env bash
# A real client (issue 10): node-postgres through a pooled `authenticator` login, the way a
# Supabase app calls pg_gateway. Four users in two projects fire a few hundred interleaved
# requests (issue, list, revoke, rotate, read credentials, and the attacks) over a pool of two
# connections; every answer must belong to its caller. The expectations are a table in
# test/node/pool.test.mjs, which prints the TAP. Its dependencies come from the committed
# package-lock.json (`npm ci`), installed in the stage, never in the repository.
set -u
source "$REPO/test/integration/lib/tap.sh"

dir="$STAGE/node_pool"
mkdir -p "$dir"
cp "$REPO"/test/node/{package.json,package-lock.json,pool.test.mjs} "$dir/"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  plan 1
  ok 1 "node and npm are installed (make deps installs them)"
  exit 1
fi
if ! (cd "$dir" && timeout 180 npm ci --prefer-offline --no-audit --no-fund --loglevel=error) >"$dir/npm.log" 2>&1; then
  plan 1
  ok 1 "npm ci installs node-postgres from test/node/package-lock.json"
  tail -n 20 "$dir/npm.log" | sed 's/^/# /'
  exit 1
fi

cd "$dir" && PGPORT=$PGPORT REPO=$REPO timeout 120 node pool.test.mjs

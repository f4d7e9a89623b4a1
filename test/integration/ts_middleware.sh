#!/usr/bin/env bash
# The TypeScript middleware (clients/typescript, issue 13 part 2) against the test cluster: built
# with tsc from its committed package-lock.json in the stage, then node's test runner, with the
# same flow again through pgbouncer in transaction mode (2 server connections for dozens of
# requests). The tests are clients/typescript/test/middleware.test.mjs, which prints the TAP.
set -u
source "$REPO/test/integration/lib/tap.sh"

dir="$STAGE/ts_middleware"
mkdir -p "$dir"
cp -r "$REPO"/clients/typescript/{package.json,package-lock.json,tsconfig.json,src,test} "$dir/"
[[ $(id -u) -eq 0 ]] && chown -R postgres: "$dir"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  plan 1
  ok 1 "node and npm are installed (make deps installs them)"
  exit 1
fi
if ! (cd "$dir" && timeout 180 npm ci --prefer-offline --no-audit --no-fund --loglevel=error) >"$dir/npm.log" 2>&1; then
  plan 1
  ok 1 "npm ci installs the middleware's dependencies from clients/typescript/package-lock.json"
  tail -n 20 "$dir/npm.log" | sed 's/^/# /'
  exit 1
fi
if ! (cd "$dir" && node_modules/.bin/tsc -p tsconfig.json && node_modules/.bin/tsc -p test/tsconfig.json) >"$dir/tsc.log" 2>&1; then
  plan 1
  ok 1 "tsc builds clients/typescript and type-checks test/consumer.ts against its .d.ts"
  tail -n 20 "$dir/tsc.log" | sed 's/^/# /'
  exit 1
fi

# pgbouncer, as postgres, on a free port, with a config in the stage; stopped when this script
# ends (trap), and by a watchdog should the script be killed outright.
bouncer_port=""
# Debian installs it in /usr/sbin, which a non-login shell's PATH may lack.
pgbouncer=$(command -v pgbouncer || command -v /usr/sbin/pgbouncer || true)
if [[ -n "$pgbouncer" ]]; then
  bouncer_port=$(free_port 25900)
  printf '"%s" ""\n' pgw_ts_app > "$dir/userlist.txt"
  cat > "$dir/pgbouncer.ini" <<INI
[databases]
gateway = host=127.0.0.1 port=$PGPORT dbname=gateway

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bouncer_port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = transaction
default_pool_size = 2
max_client_conn = 200
ignore_startup_parameters = extra_float_digits
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
  [[ $(id -u) -eq 0 ]] && chown postgres: "$dir/pgbouncer.ini" "$dir/userlist.txt"
  stop_bouncer() { [[ -s "$dir/pgbouncer.pid" ]] && kill "$(cat "$dir/pgbouncer.pid")" 2>/dev/null; rm -f "$dir/pgbouncer.pid"; }
  trap stop_bouncer EXIT
  trap 'exit 1' INT TERM
  as_pg "$pgbouncer" -d -q "$dir/pgbouncer.ini"
  for _ in $(seq 50); do (echo >"/dev/tcp/127.0.0.1/$bouncer_port") 2>/dev/null && break; sleep 0.1; done
  (parent=$$; for _ in $(seq 300); do kill -0 "$parent" 2>/dev/null || break; sleep 1; done
   [[ -s "$dir/pgbouncer.pid" ]] && kill "$(cat "$dir/pgbouncer.pid")" 2>/dev/null) >/dev/null 2>&1 &
fi

# node's TAP, less its "# Subtest:" headers and timing lines (make test prints every "#" line).
cd "$dir" && PGPORT=$PGPORT REPO=$REPO PGBOUNCER_PORT=$bouncer_port \
  timeout 120 node --test-reporter=tap test/middleware.test.mjs |
  grep -vE '^# (Subtest: |tests |suites |cancelled |todo |duration_ms )'
status=${PIPESTATUS[0]}
[[ -n "$bouncer_port" ]] || echo "# pgbouncer is not installed (make deps installs it): its tests were skipped"
exit $status

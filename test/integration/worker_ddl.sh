#!/usr/bin/env bash
# DDL on the gateway's tables always wins against the worker, and the worker loses nothing.
# The usage flush updates api_keys and then inserts into audit_log; DROP EXTENSION takes ACCESS
# EXCLUSIVE locks in its own order (audit_log, then api_keys), so a flush running into it closed
# a deadlock cycle, and the detector (deadlock_timeout) aborted the DDL now and then with 40P01.
# Here clients verify a few hundred keys and bad keys without pause (last_used_resolution = 0,
# flushes every 100 ms: the worker writes both tables all the time) while a session drops and
# re-creates the extension, or creates 0.6.0 and updates it, round after round: no DDL may fail.
# A trigger makes each last_used_at row write take 1 ms, so a flush holds api_keys for tens of ms
# before it inserts into audit_log, as a big batch does: without the fix about one DROP in N
# deadlocked (see the commit that added this test).
# Then the worker still writes, runs as the same process, and a table held for 3 s by LOCK TABLE
# delays its writes (last use, verify failures, usage limits) without losing them, logging the
# wait once. Machine-loading: runs alone (the SECONDS - check below).
set -u
source "$REPO/test/integration/lib/tap.sh"
plan 11

rounds=${WORKER_DDL_ROUNDS:-40}
keys=${WORKER_DDL_KEYS:-300}
dir=$(own_cluster worker_ddl)
port=$(free_port 26800)
cluster_init "$dir" "$port" "gateway.usage_flush_interval = '100ms'" "gateway.last_used_resolution = 0" \
  "deadlock_timeout = '1s'" "log_lock_waits = on" >/dev/null
cluster_start "$dir"
loaders=""
trap 'touch "$dir/stop"; [[ -n $loaders ]] && kill $loaders 2>/dev/null; wait 2>/dev/null; cluster_stop "$dir"' EXIT
cq() { cluster_psql "$dir" -d gateway -At -c "$1"; }
cpoll() { poll_with cq "$@"; }
cluster_psql "$dir" -d postgres -c "CREATE DATABASE gateway" >/dev/null
cq "CREATE EXTENSION pg_gateway" >/dev/null

user=ad000000-0000-4000-8000-000000000001
project=cd000000-0000-4000-8000-000000000001
# The keys' secrets live outside the extension, so the clients find the keys of whichever
# extension exists; public.issue_keys() makes a new set after each CREATE EXTENSION.
cluster_psql "$dir" -d gateway -q >/dev/null <<SQL
CREATE TABLE public.test_keys (id uuid, secret text);
CREATE FUNCTION public.slow_row() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
  PERFORM pg_sleep(0.001);
  RETURN NEW;
END
\$\$;
CREATE FUNCTION public.issue_keys(n int) RETURNS void LANGUAGE plpgsql AS \$\$
BEGIN
  DROP TRIGGER IF EXISTS slow_flush ON gateway.api_keys;
  CREATE TRIGGER slow_flush BEFORE UPDATE OF last_used_at ON gateway.api_keys
    FOR EACH ROW EXECUTE FUNCTION public.slow_row();
  DELETE FROM public.test_keys;
  INSERT INTO gateway.project_members (project_id, user_id, role)
  VALUES ('$project', '$user', 'editor') ON CONFLICT DO NOTHING;
  INSERT INTO public.test_keys
  SELECT k.key_id, k.api_key FROM generate_series(1, n) AS g,
         LATERAL gateway.api_key_issue('$user', '$project', 'load ' || g) AS k;
END
\$\$;
SELECT public.issue_keys($keys);
SQL
cpoll "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'" 1 >/dev/null
worker_pid=$(cq "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'")

# Two clients verify every key and twenty bad ones, over and over; their errors while the
# extension is gone are expected and ignored (each statement stands alone).
{
  for _ in $(seq 3); do
    echo "SELECT count(*) FROM public.test_keys AS t, gateway.api_key_verify(t.secret) AS v WHERE v.valid;"
    echo "SELECT count(*) FROM generate_series(1, 20) AS g, gateway.api_key_verify('gw_not_a_key_' || g) AS v;"
  done
} >"$dir/load.sql"
chmod a+r "$dir/load.sql"
load() { while [[ ! -e $dir/stop ]]; do as_pg "$PGBIN/psql" -X -q -h "$dir" -p "$port" -U postgres -d gateway -f "$dir/load.sql" >/dev/null 2>&1; done; }
load & loaders="$loaders $!"
load & loaders="$loaders $!"
sleep 1

# Odd rounds drop and create the current version; even ones create 0.6.0, issue keys there, let
# the clients use them, and update it in one ALTER EXTENSION with the worker busy.
failures=0 deadlocks=0
: >"$dir/ddl.err"
for round in $(seq "$rounds"); do
  if ((round % 2)); then
    ddl="DROP EXTENSION pg_gateway CASCADE;
CREATE EXTENSION pg_gateway;
SELECT public.issue_keys($keys);
SELECT pg_sleep(0.3);"
  else
    ddl="DROP EXTENSION pg_gateway CASCADE;
CREATE EXTENSION pg_gateway VERSION '0.6.0';
SELECT public.issue_keys($keys);
SELECT pg_sleep(0.3);
ALTER EXTENSION pg_gateway UPDATE;
SELECT pg_sleep(0.2);"
  fi
  err=$(as_pg "$PGBIN/psql" -X -q -h "$dir" -p "$port" -U postgres -d gateway -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" -f - <<<"$ddl" 2>&1 >/dev/null)
  if [[ -n $err ]]; then
    failures=$((failures + 1))
    [[ $err == *"deadlock detected"* ]] && deadlocks=$((deadlocks + 1))
    echo "round $round: $err" >>"$dir/ddl.err"
    # A failed round may leave no extension or an old one: start the next from a known state.
    cluster_psql "$dir" -d gateway -q -c "DROP EXTENSION IF EXISTS pg_gateway CASCADE" -c "CREATE EXTENSION pg_gateway" \
      -c "SELECT public.issue_keys($keys)" >/dev/null 2>&1
  fi
done
diag "$rounds DDL rounds: $failures failed, $deadlocks of them with a deadlock"
[[ -s $dir/ddl.err ]] && head -n 12 "$dir/ddl.err" | sed 's/^/#   /'
is "$deadlocks" 0 "no DROP / CREATE / ALTER EXTENSION UPDATE round fails with a deadlock while the worker is busy"
is "$failures" 0 "every DDL round succeeds"
is "$(grep -c 'deadlock detected' "$dir/server.log")" 0 "the server log reports no deadlock at all (the worker gives up its lock waits first)"
is "$(cq "SELECT extversion = (SELECT default_version FROM pg_available_extensions WHERE name = 'pg_gateway') FROM pg_extension WHERE extname = 'pg_gateway'")" t \
  "the extension is at the current version"
is "$(cpoll "SELECT count(*) > 0 FROM gateway.api_keys WHERE last_used_at IS NOT NULL" t)" t \
  "after the last round the worker records last_used_at for the new extension's keys"
touch "$dir/stop"
wait $loaders 2>/dev/null
loaders=""
is "$(cq "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'")" "$worker_pid" \
  "the worker is the same process: it never failed or restarted"
is "$(cpoll "SELECT state || ' ' || wait_event_type || '/' || wait_event FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'" "idle Extension/Extension")" \
  "idle Extension/Extension" "with the clients gone it goes back to sleep on its latch (not stuck, not spinning)"

read -r fresh_id fresh_key < <(cq "SELECT key_id || ' ' || api_key FROM gateway.api_key_issue('$user', '$project', 'fresh')")
cq "SELECT valid FROM gateway.api_key_verify('$fresh_key')" >/dev/null
is "$(cpoll "SELECT last_used_at IS NOT NULL FROM gateway.api_keys WHERE id = '$fresh_id'" t)" t \
  "a key used after the clients stopped gets its last_used_at"

# A session holds the tables for 3 s and, holding them, verifies a usage-limited key and a bad
# key: every write of the batch waits (last use, the verify failure, the spent use), none is lost.
read -r held_id held_key < <(cq "SELECT key_id || ' ' || api_key FROM gateway.api_key_issue('$user', '$project', 'held', remaining => 5)")
log_lines=$(wc -l <"$dir/server.log")
before=$(cq "SELECT now()")
started=$SECONDS
cluster_psql "$dir" -d gateway -At >/dev/null <<SQL &
BEGIN;
LOCK TABLE gateway.api_keys, gateway.audit_log, gateway.api_key_usage IN ACCESS EXCLUSIVE MODE;
SELECT valid FROM gateway.api_key_verify('$held_key');
SELECT valid FROM gateway.api_key_verify('gw_held_not_a_key');
SELECT pg_sleep(3);
COMMIT;
SQL
holder=$!
sleep 2
diag "worker 2 s into the hold: $(cq "SELECT coalesce(wait_event_type || '/' || wait_event, state) || ' ' || coalesce(query, '') FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'")"
is "$(cluster_psql "$dir" -d gateway -At -c "SET lock_timeout = '100ms'" -c "SELECT last_used_at IS NULL FROM gateway.api_keys WHERE id = '$held_id'" 2>&1 | head -1)" \
  "ERROR:  canceling statement due to lock timeout" "while the tables are held, nothing can be written (the probe cannot even read)"
wait $holder
written=$(cpoll "SELECT (SELECT last_used_at IS NOT NULL FROM gateway.api_keys WHERE id = '$held_id')
                    AND (SELECT usage_remaining = 4 FROM gateway.api_keys_list WHERE id = '$held_id')
                    AND EXISTS (SELECT FROM gateway.audit_log WHERE action = 'api_key.verify_failed' AND coalesce((details->>'last_at')::timestamptz, occurred_at) >= '$before')" t 20)
is "$written,$((SECONDS - started >= 3))" "t,1" \
  "once the lock is gone the worker writes the last use, the spent use and the verify failure it kept"
tail -n +"$((log_lines + 1))" "$dir/server.log" >"$dir/held.log"
is "$(grep -c 'a gateway table is locked' "$dir/held.log"),$(grep -c 'batched writes are recorded again' "$dir/held.log")" "1,1" \
  "the wait is logged once, and its end once (no line per retry)"

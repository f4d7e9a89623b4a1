#!/usr/bin/env bash
# A claim that keeps failing (the database turned read-only under the worker): the worker backs
# off as it does for remote errors (gateway.sync_retry_max caps it), logs the run of failures
# once, not each of them, and says when it recovered.
set -u
source "$REPO/test/integration/lib/tap.sh"
source "$REPO/test/integration/lib/kong.sh"
plan 7

start_kong_fake kong-db-errors
kong_cluster kong-db-errors
warm=$(publish warm-up)
is "$(kwait "SELECT sync_state FROM gateway.public_interfaces WHERE id = '$warm'" synced)" synced "the worker syncs"
pid=$(kq "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'")
# Our own sessions stay writable.
export PGOPTIONS='-c default_transaction_read_only=off'

kq "ALTER SYSTEM SET default_transaction_read_only = on" >/dev/null
kq "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
iface=$(publish while-read-only)  # its job is claimed by a worker that cannot write
sleep 0.5
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
log_from=$(($(wc -l <"$KCLUSTER/server.log") + 1))
cpu_before=$(cpu)
sleep 3
cpu_used=$(($(cpu) - cpu_before))
lines=$(tail -n +"$log_from" "$KCLUSTER/server.log" | grep -c 'pg_gateway worker')
diag "over 3 s of a failing claim: $lines worker log lines, $cpu_used CPU ticks (100 a second)"
ok $((lines > 3)) "the worker logs the persistent error once, not each failure (at most 3 lines in 3 s)"
ok $((cpu_used > 30)) "and does not spin (under 10% of a CPU)"
is "$(kq "SELECT sync_state FROM gateway.public_interfaces WHERE id = '$iface'")" pending "the job waits"
grep -q 'pg_gateway worker (Kong sync): claiming sync jobs failed: cannot execute' "$KCLUSTER/server.log"
ok $? "the log says what failed and why"

log_from=$(($(wc -l <"$KCLUSTER/server.log") + 1))
kq "ALTER SYSTEM RESET default_transaction_read_only" >/dev/null
kq "SELECT pg_reload_conf()" >/dev/null
is "$(kwait "SELECT sync_state FROM gateway.public_interfaces WHERE id = '$iface'" synced 10)" synced \
   "once the database accepts writes again, the job syncs (within the capped backoff)"
tail -n +"$log_from" "$KCLUSTER/server.log" | grep -qE 'pg_gateway worker \(Kong sync\): database work recovered after [0-9]+ failures'
ok $? "the log says it recovered, with the count of failures"

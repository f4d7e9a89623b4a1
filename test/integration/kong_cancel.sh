#!/usr/bin/env bash
# pg_cancel_backend() on the worker: no ERROR longjmps over its C++ frames, the same worker goes
# on, and sync still works.
set -u
source "$REPO/test/integration/lib/tap.sh"
source "$REPO/test/integration/lib/kong.sh"
plan 6

start_kong_fake kong-cancel
kong_cluster kong-cancel
worker_pid() { kq "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'"; }

first=$(kwait "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'" 1 10 >/dev/null; worker_pid)
iface=$(publish before-cancel)
kwait "SELECT sync_state FROM gateway.public_interfaces WHERE id = '$iface'" synced >/dev/null

# Only what the log says from here on counts: the worker exits once before CREATE DATABASE.
log_from=$(($(wc -l <"$KCLUSTER/server.log") + 1))
is "$(kq "SELECT pg_cancel_backend($first)")" t "the worker accepts a cancel request"
sleep 0.5
is "$(kq "SELECT pg_cancel_backend($first)")" t "and a second one"
sleep 1
is "$(worker_pid)" "$first" "the same worker process is still running"
iface=$(publish after-cancel)
is "$(kwait "SELECT sync_state FROM gateway.public_interfaces WHERE id = '$iface'" synced 10)" synced \
   "a change made after the cancel still reaches Kong"
after=$(tail -n +"$log_from" "$KCLUSTER/server.log")
is "$(grep -cE 'pg_gateway worker.*(exited with exit code|terminated)|canceling statement due to user request|pg_gateway worker started' <<<"$after")" 0 \
   "the server log shows no worker exit, restart or cancelled statement"
is "$(grep -c 'pg_gateway worker ignores a cancel request' <<<"$after")" 2 "it logs each cancel request it ignored"

#!/usr/bin/env bash
# Jobs queued by a prepared transaction: COMMIT PREPARED wakes the worker, even with periodic
# reconciliation off, so such jobs never wait forever.
set -u
source "$REPO/test/integration/lib/tap.sh"
source "$REPO/test/integration/lib/kong.sh"
plan 6

start_kong_fake kong-prepared
kong_cluster kong-prepared "max_prepared_transactions = 5"
# The worker is up and idle first: a worker (re)starting meanwhile would find the jobs anyway.
warm=$(publish warm-up)
is "$(kwait "SELECT sync_state FROM gateway.public_interfaces WHERE id = '$warm'" synced)" synced "the worker syncs"
sleep 0.5

iface=$(kq "BEGIN;
  WITH s AS (
    INSERT INTO gateway.service_interfaces (project_id, workflow_id, name, interface_type, callable_name, is_public)
    VALUES ('c5000000-0000-4000-8000-000000000001', gen_random_uuid(), 'prepared', 'signal', 'prepared', true)
    RETURNING id)
  INSERT INTO gateway.public_interfaces (service_interface_id, auth_type) SELECT id, 'none' FROM s RETURNING id;
  PREPARE TRANSACTION 'gw_jobs';" | head -1)
sleep 0.5
is "$(kong GET "/services/gw-$iface" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("message"))')" "Not found" "nothing reaches Kong while the transaction is only prepared"
kq "COMMIT PREPARED 'gw_jobs'" >/dev/null
start=$SECONDS
is "$(kwait "SELECT sync_state FROM gateway.public_interfaces WHERE id = '$iface'" synced 10)" synced \
   "COMMIT PREPARED from another session wakes the worker and the interface syncs"
ok $((SECONDS - start > 3)) "within 3 seconds (reconciliation is off)"
is "$(kong_py 'd["name"]' "/services/gw-$iface")" "gw-$iface" "Kong has its service"

# A prepared transaction that is rolled back leaves nothing to do.
kq "BEGIN; INSERT INTO gateway.service_interfaces (project_id, workflow_id, name, interface_type, callable_name, is_public)
    VALUES ('c5000000-0000-4000-8000-000000000001', gen_random_uuid(), 'never', 'signal', 'never', true);
    PREPARE TRANSACTION 'gw_never'; ROLLBACK PREPARED 'gw_never'" >/dev/null
is "$(kwait "SELECT count(*) FROM gateway.sync_jobs" 0 5)" 0 "ROLLBACK PREPARED leaves no job"

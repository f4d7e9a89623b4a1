#!/usr/bin/env bash
# A change Kong refuses (4xx) is a dead letter with Kong's message; it never blocks the others;
# sync_retry and sync_cancel act on it. Kong in DB-less mode is reported as a permanent error.
set -u
source "$REPO/test/integration/lib/tap.sh"
source "$REPO/test/integration/lib/kong.sh"
plan 13

start_kong_fake kong-dead
kong_cluster kong-dead

iface=$(publish dead-letter)
kwait "SELECT sync_state FROM gateway.public_interfaces WHERE id = '$iface'" synced >/dev/null
# Someone else's consumer (no tag of ours) already has the username our key's consumer needs.
key_id=$(kq "SELECT gen_random_uuid()")
kong PUT "/consumers/$(python3 -c 'import uuid; print(uuid.uuid4())')" "{\"username\": \"gw-key-$key_id\"}" >/dev/null
kq "SELECT gateway._api_key_insert('$key_id', 'a6000000-0000-4000-8000-000000000001', '$KONG_PROJECT', 'clash', '$iface', NULL, NULL, NULL) IS NOT NULL" >/dev/null
fine=$(publish still-fine)
is "$(kwait "SELECT kong_sync_state FROM gateway.api_keys WHERE id = '$key_id'" dead)" dead "Kong's 409 makes the key's job dead"
is "$(kq "SELECT last_status || ' ' || (last_error LIKE '%UNIQUE violation%') FROM gateway.sync_jobs WHERE state = 'dead'")" "409 true" \
   "the dead letter keeps Kong's status and message"
is "$(kq "SELECT kong_sync_error LIKE 'HTTP 409%' FROM gateway.api_keys WHERE id = '$key_id'")" t "so does the key row"
is "$(kwait "SELECT sync_state FROM gateway.public_interfaces WHERE id = '$fine'" synced)" synced "other objects are not blocked"
is "$(kq "SELECT attempts FROM gateway.sync_jobs WHERE state = 'dead'")" 1 "a 4xx is not retried"
is "$(kong_py 'len(d["data"])' '/consumers?size=1000')" 1 "the foreign consumer was not touched"

job=$(kq "SELECT id FROM gateway.sync_jobs WHERE state = 'dead'")
kong DELETE "/consumers/gw-key-$key_id" >/dev/null
is "$(kq "SELECT gateway.sync_retry($job)")" t "sync_retry puts the dead job back"
is "$(kwait "SELECT kong_sync_state FROM gateway.api_keys WHERE id = '$key_id'" synced)" synced "and it lands once the clash is gone"
is "$(kq "SELECT count(*) FROM gateway.sync_jobs")" 0 "no job is left"

is "$(cluster_psql "$KCLUSTER" -d gateway -Atc "SELECT gateway.sync_retry(424242)" 2>&1 | grep -c 'sync job 424242 does not exist')" 1 \
   "sync_retry of an unknown job says so"
is "$(kq "SELECT gateway.sync_cancel(424242)")" f "sync_cancel of an unknown job returns false"

# DB-less Kong: detected, and every job says why it cannot work.
start_kong_fake kong-dbless --dbless
kq "ALTER SYSTEM SET gateway.kong_admin_url = '$KONG_URL'" >/dev/null
kq "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
dbless=$(publish dbless)
is "$(kwait "SELECT sync_state FROM gateway.public_interfaces WHERE id = '$dbless'" dead)" dead "with a DB-less Kong the job is dead"
is "$(kq "SELECT sync_error LIKE '%DB-less mode%' FROM gateway.public_interfaces WHERE id = '$dbless'")" t \
   "and the error names DB-less mode"

#!/usr/bin/env bash
# A reconcile never undoes a change committed while it runs. Kong holds the objects of an
# interface the tables say is unpublished (its unpublish job was cancelled); a reconcile lists
# Kong slowly (the fake's latency fault), reads the tables, and a republish commits right after
# that read. The reconcile must leave those objects to the interface's own job, which runs under
# the per-object exclusion: in the end Kong holds the interface and its row is synced.
set -u
source "$REPO/test/integration/lib/tap.sh"
source "$REPO/test/integration/lib/kong.sh"
plan 6

start_kong_fake kong-reconcile-race
kong_cluster kong-reconcile-race
not_found() { kong GET "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("message"))'; }
set_public() { echo "UPDATE gateway.service_interfaces SET is_public = $2 WHERE id = (SELECT service_interface_id FROM gateway.public_interfaces WHERE id = '$1');"; }

iface=$(publish racer)
kwait "$ALL_SYNCED" 0 >/dev/null
# Unpublished in the tables, still in Kong: the job that would remove it is cancelled.
kq "BEGIN; $(set_public "$iface" false)
    SELECT gateway.sync_cancel(id) FROM gateway.sync_jobs WHERE object_id = '$iface'; COMMIT" >/dev/null
is "$(kong_py 'd["name"]' "/routes/gw-$iface")" "gw-$iface" "Kong still holds the unpublished interface's route"

reconciled() { grep -c "pg_gateway worker: reconciled" "$KCLUSTER/server.log"; }
before=$(reconciled)
fake_faults '{"latency_ms": 1000}'
kq "SELECT gateway.sync_reconcile('kong')" >/dev/null
# The reconcile has listed Kong and read the tables once it logs its plan.
for _ in $(seq 400); do [[ $(reconciled) -gt $before ]] && break; sleep 0.05; done
kq "$(set_public "$iface" true)" >/dev/null
is "$(( $(reconciled) > before ))" 1 "the republish committed after the reconcile read the tables"
fake_faults '{"latency_ms": 0}'
kwait "$ALL_SYNCED" 0 30 >/dev/null
sleep 0.5
is "$(kq "SELECT sync_state FROM gateway.public_interfaces WHERE id = '$iface'")" synced "the interface's row is synced"
is "$(kong_py 'd["name"]' "/routes/gw-$iface")" "gw-$iface" "and Kong holds its route"
is "$(kong_py 'd["name"]' "/services/gw-$iface")" "gw-$iface" "and its service"
check_contract

#!/usr/bin/env bash
# Failover: connector jobs queued on the primary (some claimed, in flight) are on the standby too;
# once it is promoted, its worker runs them, adopting endpoints the old primary created but never
# recorded, so each connector ends up with exactly one endpoint.
set -u
source "$REPO/test/integration/lib/tap.sh"
source "$REPO/test/integration/lib/temporal.sh"
plan 5

start_temporal_fake temporal-failover
temporal_cluster temporal-failover "wal_level = replica" "max_wal_senders = 4"
primary=$TCLUSTER
twait "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'" 1 >/dev/null
standby=$(make_standby "$primary" "$(sed -n 's/^port = \([0-9]*\)$/\1/p' "$primary/data/postgresql.conf" | tail -1)" temporal-failover-standby)
trap 'cluster_stop "$primary"; cluster_stop "$standby"' EXIT
sq() { cluster_psql "$standby" -d gateway -At -c "$1"; }
is "$(sq "SELECT pg_is_in_recovery()")" t "a streaming standby runs"

# Temporal answers slowly, so creates are in flight (done in Temporal, unrecorded) when the
# primary dies.
temporal_faults '{"latency_ms": 300}'
ids=()
for i in $(seq 10); do ids+=("$(connect "failover-$i")"); done
approve "${ids[@]}"
twait "SELECT count(*) > 0 FROM gateway.sync_jobs WHERE state = 'running' AND target = 'temporal'" t >/dev/null
tq "SELECT pg_current_wal_lsn()" >/dev/null
sleep 0.5
as_pg "$PGBIN/pg_ctl" -D "$primary/data" -m immediate -w stop >/dev/null
ok $? "the primary dies with connector jobs claimed"
temporal_faults '{"latency_ms": 0}'
as_pg "$PGBIN/pg_ctl" -D "$standby/data" -w promote >/dev/null
TCLUSTER=$standby
is "$(twait "$ALL_CONNECTORS_SYNCED" 0 40)" 0 "after promotion the new primary's worker settles every connector"
is "$(endpoint_count)" 10 "exactly one endpoint per connector"
check_temporal_contract

#!/usr/bin/env bash
# Failover: jobs queued on the primary while Kong is down (some claimed, in flight) are on the
# standby too; once it is promoted, its worker runs them and Kong ends up exactly as the rows say.
set -u
source "$REPO/test/integration/lib/tap.sh"
source "$REPO/test/integration/lib/kong.sh"
plan 6

start_kong_fake kong-failover
kong_cluster kong-failover "wal_level = replica" "max_wal_senders = 4"
primary=$KCLUSTER
kwait "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'" 1 >/dev/null

standby=$(make_standby "$primary" "$(sed -n 's/^port = \([0-9]*\)$/\1/p' "$primary/data/postgresql.conf" | tail -1)" kong-failover-standby)
trap 'cluster_stop "$primary"; cluster_stop "$standby"' EXIT
sq() { cluster_psql "$standby" -d gateway -At -c "$1"; }
is "$(sq "SELECT pg_is_in_recovery()")" t "a streaming standby runs"
is "$(sq "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'")" 0 \
   "no sync worker runs on the standby (it would write)"

# Kong answers slowly, so jobs are claimed (running) when the primary dies.
fake_faults '{"latency_ms": 300}'
for i in $(seq 10); do publish "failover-$i" 15 >/dev/null; done
kwait "SELECT count(*) > 0 FROM gateway.sync_jobs WHERE state = 'running'" t >/dev/null
kq "SELECT pg_current_wal_lsn()" >/dev/null
sleep 0.5  # let the standby replay the claim
as_pg "$PGBIN/pg_ctl" -D "$primary/data" -m immediate -w stop >/dev/null
ok $? "the primary dies with jobs claimed"
fake_faults '{"latency_ms": 0}'

as_pg "$PGBIN/pg_ctl" -D "$standby/data" -w promote >/dev/null
KCLUSTER=$standby
is "$(kwait "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'" 1 20)" 1 \
   "after promotion the worker starts on the new primary"
is "$(kwait "$ALL_SYNCED" 0 30)" 0 "it runs every job, including those claimed on the old primary"
is "$(kong_py '(d["objects"]["services"], d["objects"]["routes"], d["objects"]["plugins"])' /__fake/stats)" "(10, 10, 30)" \
   "Kong has each object exactly once"

#!/usr/bin/env bash
# 1,000 connectors created and approved in one transaction, synced through a kill -9 of the
# worker, a server restart and 30 % 503s: exactly 1,000 endpoints, none created twice, every
# request one Temporal accepts.
set -u
source "$REPO/test/integration/lib/tap.sh"
source "$REPO/test/integration/lib/temporal.sh"
plan 8

start_temporal_fake temporal-crash
temporal_cluster temporal-crash
worker_pid() { tq "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'"; }
twait "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'" 1 >/dev/null

temporal_faults '{"error_rate": 0.3, "error_status": 503, "latency_ms": 20}'
connect_many bulk 1000
ok $? "1,000 connectors are created and approved in one transaction"
twait "SELECT count(*) > 100 FROM gateway.project_connectors WHERE sync_state = 'synced'" t 60 >/dev/null
kill -9 "$(worker_pid)"
ok $? "the worker is killed with SIGKILL mid-batch"
twait "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'" 1 30 >/dev/null
twait "SELECT count(*) > 500 FROM gateway.project_connectors WHERE sync_state = 'synced'" t 60 >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$TCLUSTER/data" -m fast -w restart -l "$TCLUSTER/server.log" >/dev/null
ok $? "the server restarts in the middle of the sync"
is "$(twait "$ALL_CONNECTORS_SYNCED" 0 180)" 0 "every connector is synced in the end"
temporal_faults '{"error_rate": 0, "latency_ms": 0}'
is "$(endpoint_count)" 1000 "exactly 1,000 endpoints exist"
is "$(temporal_py 'len(set(e["spec"]["name"] for e in d["endpoints"]))' /__fake/endpoints)" 1000 "no connector has two"
is "$(tq "SELECT count(DISTINCT nexus_endpoint_id) FROM gateway.project_connectors")" 1000 \
   "each row records its own endpoint"
check_temporal_contract

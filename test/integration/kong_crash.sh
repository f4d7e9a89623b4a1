#!/usr/bin/env bash
# kill -9 of the worker mid-batch and a server restart mid-sync lose no job and duplicate
# nothing: jobs are level-triggered and reclaimed after the restart.
set -u
source "$REPO/test/integration/lib/tap.sh"
source "$REPO/test/integration/lib/kong.sh"
plan 7

start_kong_fake kong-crash
kong_cluster kong-crash
worker_pid() { kq "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'"; }
kwait "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'" 1 >/dev/null

fake_faults '{"latency_ms": 100}'
kq "INSERT INTO gateway.service_interfaces (project_id, workflow_id, name, interface_type, callable_name, is_public)
    SELECT gen_random_uuid(), gen_random_uuid(), 'crash-' || i, 'signal', 'c', true FROM generate_series(1, 40) AS i;
    INSERT INTO gateway.public_interfaces (service_interface_id, rate_limit_per_minute)
    SELECT id, 10 FROM gateway.service_interfaces WHERE name LIKE 'crash-%'" >/dev/null
kwait "SELECT count(*) > 0 FROM gateway.sync_jobs WHERE state = 'running'" t >/dev/null
pid=$(worker_pid)
kill -9 "$pid"
ok $? "the worker is killed with SIGKILL while requests are in flight"
# The postmaster treats it as a crash: every backend restarts, then the worker reclaims its jobs.
kwait "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'" 1 30 >/dev/null
is "$(grep -c 'sync jobs claimed before a restart will run again' "$KCLUSTER/server.log")" 1 \
   "after the restart the worker runs the jobs it had claimed again"
fake_faults '{"latency_ms": 0}'
is "$(kwait "$ALL_SYNCED" 0 60)" 0 "every job completes"
is "$(kong_py '(d["objects"]["services"], d["objects"]["routes"], d["objects"]["plugins"])' /__fake/stats)" "(40, 40, 120)" \
   "each object exists exactly once"

# A server restart in the middle of a sync.
fake_faults '{"latency_ms": 100}'
kq "UPDATE gateway.public_interfaces SET rate_limit_per_minute = 20" >/dev/null
kwait "SELECT count(*) > 0 FROM gateway.sync_jobs WHERE state = 'running'" t >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$KCLUSTER/data" -m fast -w restart -l "$KCLUSTER/server.log" >/dev/null
ok $? "the server restarts in the middle of a sync"
fake_faults '{"latency_ms": 0}'
is "$(kwait "$ALL_SYNCED" 0 60)" 0 "every job completes after the restart"
is "$(kong_py 'sorted(set(p["config"]["minute"] for p in d["data"] if p["name"] == "rate-limiting"))' '/plugins?size=1000')" "[20]" \
   "and Kong has the latest values"

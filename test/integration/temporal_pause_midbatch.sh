#!/usr/bin/env bash
# A reload that empties gateway.temporal_url (Temporal sync paused) while a job is in flight: the
# job's calls finish and its outcome is recorded (the endpoint it created is never left
# unrecorded, the job never stays 'running' for as long as the pause lasts); Kong-free.
set -u
source "$REPO/test/integration/lib/tap.sh"
source "$REPO/test/integration/lib/temporal.sh"
plan 6

start_temporal_fake temporal-pause
temporal_cluster temporal-pause
twait "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'" 1 >/dev/null

temporal_faults '{"latency_ms": 1500}'
c=$(connect paused-mid-job)
approve "$c"
is "$(twait "SELECT count(*) FROM gateway.sync_jobs WHERE target = 'temporal' AND state = 'running'" 1 10)" 1 \
   "the connector's job is in flight"
tq "ALTER SYSTEM SET gateway.temporal_url = ''" >/dev/null
tq "SELECT pg_reload_conf()" >/dev/null
is "$(twait "SELECT count(*) FROM gateway.sync_jobs WHERE target = 'temporal' AND state = 'running'" 0 20)" 0 \
   "paused mid-job: the job in flight still ends and is recorded"
is "$(tq "SELECT sync_state || ' ' || (nexus_endpoint_id IS NOT NULL) FROM gateway.project_connectors WHERE id = '$c'")" "synced true" \
   "the endpoint it created is recorded"
temporal_faults '{"latency_ms": 0}'
is "$(endpoint_count)" 1 "Temporal holds that one endpoint"
# Paused, the worker sleeps: no claim or reconcile wish may keep its wait at a zero timeout.
pid=$(tq "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'")
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
before=$(cpu); sleep 3; after=$(cpu)
ok $(( after - before < 50 ? 0 : 1 )) "paused, the worker sleeps ($(( after - before )) ticks of CPU in 3 s)"
tq "ALTER SYSTEM SET gateway.temporal_url = '$TEMPORAL_URL'" >/dev/null
tq "SELECT pg_reload_conf()" >/dev/null
c2=$(connect after-pause)
approve "$c2"
is "$(twait "SELECT sync_state FROM gateway.project_connectors WHERE id = '$c2'" synced 20)" synced \
   "with the URL back, the next connector syncs"

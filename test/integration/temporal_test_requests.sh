#!/usr/bin/env bash
# Connector tests a backend waits for go to the worker through shared memory. When the worker
# cannot queue them (its transaction fails: here the database is read-only for it), the requests
# are kept for its next try instead of being dropped: the caller was told its result would land.
set -u
source "$REPO/test/integration/lib/tap.sh"
source "$REPO/test/integration/lib/temporal.sh"
plan 5

start_temporal_fake temporal-test-requests
temporal_cluster temporal-test-requests
worker_pid() { tq "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'"; }
twait "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'" 1 >/dev/null
c=$(connect tested-later)
approve "$c"
twait "SELECT sync_state FROM gateway.project_connectors WHERE id = '$c'" synced 20 >/dev/null

# The worker's next incarnation cannot write.
tq "ALTER DATABASE gateway SET default_transaction_read_only = on" >/dev/null
old=$(worker_pid)
tq "SELECT pg_terminate_backend($old)" >/dev/null
twait "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker' AND pid <> $old" 1 30 >/dev/null
# The caller's own session may write (the test request is audited); only the worker's may not.
is "$(PGOPTIONS='-c default_transaction_read_only=off' tq "SELECT status FROM gateway.connector_test('$c', '2 s')")" pending \
   "the worker cannot queue the test: the caller's wait ends pending"
is "$(tq "SELECT tested_at IS NULL FROM gateway.project_connectors WHERE id = '$c'")" t "no result yet"

# From another database: every new session of this one is read-only too.
cluster_psql "$TCLUSTER" -d postgres -At -c "ALTER DATABASE gateway RESET default_transaction_read_only" >/dev/null
old=$(worker_pid)
tq "SELECT pg_terminate_backend($old)" >/dev/null
is "$(twait "SELECT test_status FROM gateway.project_connectors WHERE id = '$c'" ok 30)" ok \
   "once the worker can write again, the kept request is queued and its result lands"
is "$(tq "SELECT count(*) FROM gateway.sync_jobs WHERE target = 'temporal'")" 0 "no job is left"
is "$(grep -c "queueing connector tests failed" "$TCLUSTER/server.log")" 1 \
   "the failed queueing is logged once, not at every retry"

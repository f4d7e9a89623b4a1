#!/usr/bin/env bash
# The operator's checks on a cluster of their own: statement logging turned on with ALTER SYSTEM
# and a reload makes the worker log exactly one clear WARNING (not again at the next reload
# without change, never with a key in it) and gateway.health say so; a master key file others
# can read and an unreachable Kong show up too; gateway.audit_retention prunes old audit records
# through the worker, and records that it did.
set -u
source "$REPO/test/integration/lib/tap.sh"
plan 16

dir=$(own_cluster health)
cluster_init "$dir" "$(free_port 25950)" "gateway.usage_flush_interval = '100ms'" \
  "gateway.sync_retry_base = '100ms'" "gateway.sync_retry_max = '500ms'" >/dev/null
cluster_start "$dir"
trap 'cluster_stop "$dir"' EXIT
hq() { cluster_psql "$dir" -d gateway -At -c "$1"; }
hwait() { poll_with hq "$@"; }
log="$dir/server.log"
selfcheck() { grep -c "WARNING:  pg_gateway self-check, $1" "$log"; }
reload() { hq "SELECT pg_reload_conf()" >/dev/null; sleep "${1:-0.7}"; }

cluster_psql "$dir" -d postgres -c "CREATE DATABASE gateway" >/dev/null
hq "CREATE EXTENSION pg_gateway" >/dev/null
hq "INSERT INTO gateway.project_members (project_id, user_id, role)
    VALUES ('c9000000-0000-4000-8000-000000000001', 'a9000000-0000-4000-8000-000000000001', 'editor')" >/dev/null
key=$(hq "SELECT api_key FROM gateway.api_key_issue('a9000000-0000-4000-8000-000000000001',
          'c9000000-0000-4000-8000-000000000001', 'health')")
hwait "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker' AND datname = 'gateway'" 1 >/dev/null
# A reload with the extension in place: a clean configuration logs nothing.
reload
is "$(grep -c 'pg_gateway self-check' "$log")" 0 "a clean configuration: no self-check warning"

hq "ALTER SYSTEM SET log_statement = 'all'" >/dev/null
reload
is "$(selfcheck 'log_statement (critical): log_statement = all: every statement is logged')" 1 \
   "log_statement = 'all' and a reload: the worker logs one WARNING that says what is logged"
is "$(grep -c 'pg_gateway self-check' "$log")" 1 "and nothing else"
is "$(grep -A1 'pg_gateway self-check, log_statement' "$log" | grep -c 'HINT:  .*ALTER SYSTEM RESET')" 1 \
   "with a hint that says how to turn it off"
is "$(hq "SELECT status FROM gateway.health WHERE name = 'log_statement'")" critical "gateway.health says critical"
hq "SELECT valid FROM gateway.api_key_verify('$key')" >/dev/null
reload
is "$(grep -c 'pg_gateway self-check' "$log")" 1 "the next reload without change logs it not again"
ok $([[ $(grep -c -F "$key" "$log") -gt 0 ]]; echo $?) "the leak it warns of: with log_statement = 'all' the verified key is in the log"
is "$(grep 'self-check' "$log" | grep -c -F "$key")" 0 "while no self-check line holds the key"

hq "ALTER SYSTEM RESET log_statement" >/dev/null
reload
is "$(hq "SELECT status FROM gateway.health WHERE name = 'log_statement'")" ok "reset and reloaded: ok again"

# The master key file readable by its group: the same check the key loader makes.
as_pg chmod 640 "$dir/master.key"
reload
is "$(selfcheck 'master_key_file (critical): master key file ".*master.key" is accessible by group or others')" 1 \
   "a master key file its group can read: one WARNING naming the file (never its contents)"
is "$(hq "SELECT status FROM gateway.health WHERE name = 'master_key_file'")" critical "and critical in gateway.health"
is "$(as_pg grep -c -F -f "$dir/master.key" "$log")" 0 "the master key itself is never logged"
as_pg chmod 600 "$dir/master.key"

# Kong down: what the worker learnt from its calls (its circuit breaker), not a call of the view's.
port=$(free_port 26300)
hq "ALTER SYSTEM SET gateway.kong_admin_url = 'http://127.0.0.1:$port'" >/dev/null
reload 0.2
hq "SELECT gateway.sync_reconcile('kong')" >/dev/null
is "$(hwait "SELECT status FROM gateway.health WHERE name = 'kong'" critical 15)" critical \
   "an unreachable Kong is critical once the worker's circuit opens"
hq "ALTER SYSTEM RESET gateway.kong_admin_url" >/dev/null

# Retention: the worker prunes old records in batches and audits each one.
hq "INSERT INTO gateway.audit_log (occurred_at, action, object_type)
    SELECT now() - interval '40 days', 'test.old', 'test' FROM generate_series(1, 12000)" >/dev/null
hq "ALTER SYSTEM SET gateway.audit_retention = '30d'" >/dev/null
reload 0.2
is "$(hwait "SELECT count(*) FROM gateway.audit_log WHERE action = 'test.old'" 0 15)" 0 \
   "gateway.audit_retention = 30d: the worker deletes the records older than 30 days"
is "$(hq "SELECT count(*) || ' ' || sum((details->>'count')::int) FROM gateway.audit_log
          WHERE action = 'audit_log.pruned' AND details->>'by' = 'gateway.audit_retention'")" "2 12000" \
   "in batches (10,000 at most), each recorded in the audit log with its count"
is "$(hq "SELECT count(*) FROM gateway.audit_log WHERE action = 'api_key.issued'")" 1 "recent records are kept"

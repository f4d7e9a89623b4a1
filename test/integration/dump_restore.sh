#!/usr/bin/env bash
# pg_dump / pg_restore of a database using pg_gateway: every row comes back once, keys verify,
# credentials decrypt (nothing is encrypted twice), the audit log stays append-only, and restored
# interfaces queue their Kong sync again instead of failing the restore.
set -u
source "$REPO/test/integration/lib/tap.sh"
plan 9

user=a2000000-0000-4000-8000-000000000001
project=c2000000-0000-4000-8000-000000000001
key=$(q "SELECT api_key FROM gateway.api_key_issue('$user', '$project', 'dump-restore')")
q "INSERT INTO gateway.connectors (id, project_id, name, connector_type)
   VALUES ('e2000000-0000-4000-8000-000000000001', '$project', 'dumped', 'github')" >/dev/null
q "SELECT gateway.connector_set_credentials('e2000000-0000-4000-8000-000000000001', '{\"token\": \"ghp_dump\"}')" >/dev/null
q "INSERT INTO gateway.service_interfaces (id, project_id, workflow_id, name, interface_type, callable_name, is_public)
   VALUES ('e2000000-0000-4000-8000-000000000002', '$project', gen_random_uuid(), 'dumped', 'signal', 'dumped', true);
   INSERT INTO gateway.public_interfaces (id, service_interface_id)
   VALUES ('d2000000-0000-4000-8000-000000000001', 'e2000000-0000-4000-8000-000000000002')" >/dev/null

counts="SELECT (SELECT count(*) FROM gateway.api_keys) || ' ' || (SELECT count(*) FROM gateway.connectors)
          || ' ' || (SELECT count(*) FROM gateway.public_interfaces) || ' ' || (SELECT count(*) FROM gateway.encryption_keys)"
before=$(q "$counts")
audit_before=$(q "SELECT count(*) FROM gateway.audit_log")
sealed_before=$(q "SELECT encode(encrypted_credentials, 'hex') FROM gateway.connectors WHERE name = 'dumped'")

dump="$STAGE/gateway.dump"
as_pg "$PGBIN/pg_dump" -h "$CLUSTER" -p "$PGPORT" -U postgres -Fc -f "$dump" gateway
ok $? "pg_dump of the database succeeds"
cluster_psql "$CLUSTER" -d postgres -c "DROP DATABASE IF EXISTS gateway_restored" -c "CREATE DATABASE gateway_restored" >/dev/null
out=$(as_pg "$PGBIN/pg_restore" -h "$CLUSTER" -p "$PGPORT" -U postgres -d gateway_restored --exit-on-error "$dump" 2>&1)
ok $? "pg_restore into a new database succeeds"
[[ -n "$out" ]] && diag "$out"
rq() { cluster_psql "$CLUSTER" -d gateway_restored -At -c "$1"; }

is "$(rq "$counts")" "$before" "every key, connector, interface and encryption key comes back once"
is "$(rq "SELECT encode(encrypted_credentials, 'hex') FROM gateway.connectors WHERE name = 'dumped'")" "$sealed_before" \
   "credentials come back byte for byte (nothing encrypted twice)"
is "$(rq "SELECT gateway.decrypt_credentials(encrypted_credentials, id::text) ->> 'token' FROM gateway.connectors WHERE name = 'dumped'")" \
   ghp_dump "and still decrypt"
is "$(rq "SELECT reason FROM gateway.api_key_verify('$key')")" ok "an issued key verifies in the restored database"
is "$(rq "SELECT count(*) >= $audit_before FROM gateway.audit_log")" t "the audit log comes back"
is "$(rq "SELECT count(*) FROM gateway.sync_jobs WHERE object_id = 'd2000000-0000-4000-8000-000000000001'")" 1 \
   "the restored interface queued its Kong sync again"
out=$(cluster_psql "$CLUSTER" -d gateway_restored -At -c "DELETE FROM gateway.audit_log" 2>&1)
ok $([[ "$out" == *"append-only"* ]]; echo $?) "the restored audit log is still append-only"
cluster_psql "$CLUSTER" -d postgres -c "DROP DATABASE gateway_restored" >/dev/null

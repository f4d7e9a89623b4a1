#!/usr/bin/env bash
# The documented backup flow (docs/operations.md): pg_dump -Fc of the gateway database, then
# pg_restore into a new server with the same master key. pg_restore reports no error, every
# table comes back with the same rows (nothing audited twice, nothing encrypted twice), keys
# verify, credentials decrypt, restored interfaces queue their Kong sync again, and audited calls
# work afterwards (the audit log's sequence came along).
set -u
source "$REPO/test/integration/lib/tap.sh"
plan 15

user=a2000000-0000-4000-8000-000000000001
admin=a2000000-0000-4000-8000-000000000002
project=c2000000-0000-4000-8000-000000000001
q "INSERT INTO gateway.project_members (project_id, user_id, role)
   VALUES ('$project', '$user', 'editor'), ('$project', '$admin', 'admin')" >/dev/null
key=$(q "SELECT api_key FROM gateway.api_key_issue('$user', '$project', 'dump-restore')")
q "INSERT INTO gateway.connectors (id, project_id, name, connector_type)
   VALUES ('e2000000-0000-4000-8000-000000000001', '$project', 'dumped', 'github')" >/dev/null
q "SELECT gateway.connector_set_credentials('e2000000-0000-4000-8000-000000000001', '{\"token\": \"ghp_dump\"}')" >/dev/null
q "INSERT INTO gateway.service_interfaces (id, project_id, workflow_id, name, interface_type, callable_name, is_public)
   VALUES ('e2000000-0000-4000-8000-000000000002', '$project', gen_random_uuid(), 'dumped', 'signal', 'dumped', true);
   INSERT INTO gateway.public_interfaces (id, service_interface_id)
   VALUES ('d2000000-0000-4000-8000-000000000001', 'e2000000-0000-4000-8000-000000000002')" >/dev/null
# A project connector into another project (approved there, with workers), its auth config
# sealed, and the worker's record of its Nexus endpoint.
other=c2000000-0000-4000-8000-000000000002
q "INSERT INTO gateway.service_interfaces (id, project_id, workflow_id, name, interface_type, callable_name)
   VALUES ('e2000000-0000-4000-8000-000000000003', '$other', 'f2000000-0000-4000-8000-000000000003', 'target', 'signal', 'target');
   INSERT INTO gateway.project_workers (project_id, temporal_namespace, task_queue) VALUES ('$other', 'dump-ns', 'dump-queue');
   INSERT INTO gateway.project_connectors (id, source_project_id, target_project_id, target_service_id, target_interface_id, name, auth_config)
   VALUES ('b2000000-0000-4000-8000-000000000001', '$project', '$other', 'f2000000-0000-4000-8000-000000000003',
           'e2000000-0000-4000-8000-000000000003', 'dumped', '{\"token\": \"nexus_dump\"}');
   SELECT gateway.connector_approve('b2000000-0000-4000-8000-000000000001');
   INSERT INTO gateway.nexus_endpoints (connector_id, endpoint_id, endpoint_version, endpoint_name)
   VALUES ('b2000000-0000-4000-8000-000000000001', 'ep-dump', 3, 'dumped')" >/dev/null
q "SELECT gateway.connector_credentials('e2000000-0000-4000-8000-000000000001')" >/dev/null
# A scoped, usage-limited key with 2 of its 5 uses spent (and written by the worker).
read -r metered_id metered < <(q "SELECT key_id || ' ' || api_key FROM gateway.api_key_issue('$user', '$project', 'dump-metered',
                                    scopes => ARRAY['dump:read'], remaining => 5)")
q "SELECT gateway.api_key_verify('$metered', cost => 2)" >/dev/null
wait_for "SELECT spent FROM gateway.api_key_usage WHERE key_id = '$metered_id'" 2 >/dev/null
wait_for "SELECT count(*) > 0 FROM gateway.audit_log WHERE action = 'connector.credentials_decrypted'" t >/dev/null

# Every table the extension dumps, row for row (a digest of each table's rows in id order).
rows="SELECT string_agg(t || ':' || n, ' ' ORDER BY t) FROM (
        SELECT 'api_keys' AS t, count(*) || '/' || md5(string_agg(id::text || key_hash::text, ',' ORDER BY id)) AS n FROM gateway.api_keys
        UNION ALL SELECT 'audit_log', count(*) || '/' || md5(string_agg(id || action || coalesce(object_id::text, ''), ',' ORDER BY id)) FROM gateway.audit_log
        UNION ALL SELECT 'project_members', count(*)::text FROM gateway.project_members
        UNION ALL SELECT 'encryption_keys', count(*)::text FROM gateway.encryption_keys
        UNION ALL SELECT 'connectors', count(*) || '/' || md5(string_agg(encrypted_credentials::text, ',' ORDER BY id)) FROM gateway.connectors
        UNION ALL SELECT 'service_interfaces', count(*)::text FROM gateway.service_interfaces
        UNION ALL SELECT 'public_interfaces', count(*) || '/' || md5(string_agg(http_path, ',' ORDER BY id)) FROM gateway.public_interfaces
        UNION ALL SELECT 'project_workers', count(*) || '/' || md5(string_agg(temporal_namespace || task_queue, ',' ORDER BY project_id)) FROM gateway.project_workers
        UNION ALL SELECT 'project_connectors', count(*) || '/' || md5(string_agg(encrypted_auth_config::text || consent_state || coalesce(consent_by::text, '')
                                                                                 || nexus_endpoint_name || created_at, ',' ORDER BY id)) FROM gateway.project_connectors
        UNION ALL SELECT 'nexus_endpoints', count(*) || '/' || md5(string_agg(endpoint_id || endpoint_version, ',' ORDER BY connector_id)) FROM gateway.nexus_endpoints) AS x"
before=$(q "$rows")

# The new server: its own cluster, the same master key, pg_gateway preloaded.
restored=$(own_cluster restored)
as_pg cp "$CLUSTER/master.key" "$restored/master.key"
cluster_init "$restored" "$(free_port 25850)" "gateway.usage_flush_interval = '100ms'" >/dev/null
cluster_start "$restored"
trap 'cluster_stop "$restored"' EXIT
rq() { cluster_psql "$restored" -d gateway -At -c "$1"; }

dump="$STAGE/gateway.dump"
as_pg "$PGBIN/pg_dump" -h "$CLUSTER" -p "$PGPORT" -U postgres -Fc -f "$dump" gateway
ok $? "pg_dump -Fc of the gateway database succeeds"
cluster_psql "$restored" -d postgres -c "CREATE DATABASE gateway" >/dev/null
rport=$(sed -n 's/^port = \([0-9]*\)$/\1/p' "$restored/data/postgresql.conf" | tail -1)
out=$(as_pg "$PGBIN/pg_restore" -h "$restored" -p "$rport" -U postgres -d gateway "$dump" 2>&1)
status=$?
ok $status "pg_restore into the new server exits 0"
is "$(grep -c 'error' <<<"$out")" 0 "and reports no error (no \"errors ignored on restore\")"
[[ -n "$out" ]] && diag "$out"

is "$(rq "$rows")" "$before" "every table comes back with the same rows: no audit record written twice, nothing encrypted twice"
is "$(rq "SELECT gateway.decrypt_credentials(encrypted_credentials, id::text) ->> 'token' FROM gateway.connectors WHERE name = 'dumped'")" \
   ghp_dump "credentials still decrypt"
is "$(rq "SELECT gateway.connector_auth_config('b2000000-0000-4000-8000-000000000001') ->> 'token'")" nexus_dump \
   "a project connector's sealed auth config still decrypts (sealed once, not again on restore)"
is "$(rq "SELECT count(*) FROM gateway.sync_jobs WHERE target = 'temporal' AND object_id = 'b2000000-0000-4000-8000-000000000001'")" 1 \
   "the restored project connector queued its Temporal sync again"
is "$(rq "SELECT reason FROM gateway.api_key_verify('$key')")" ok "an issued key verifies"
is "$(rq "SELECT reason || ' ' || usage_remaining FROM gateway.api_key_verify('$metered', required_scope => 'dump:read', cost => 0)")" "ok 3" \
   "a usage-limited key keeps its scopes and the uses it had left"
is "$(rq "SELECT count(*) FROM gateway.sync_jobs WHERE object_id = 'd2000000-0000-4000-8000-000000000001'")" 1 \
   "the restored interface queued its Kong sync again"

# Audited calls work afterwards: new records take ids after the restored ones.
max_before=$(rq "SELECT max(id) FROM gateway.audit_log")
out=$(rq "SELECT count(*) FROM gateway.api_key_issue('$user', '$project', 'after-restore')" 2>&1)
is "$out" 1 "issuing a key (audited) works after the restore"
out=$(rq "INSERT INTO gateway.project_members (project_id, user_id, role) VALUES ('$project', gen_random_uuid(), 'viewer')" 2>&1)
ok $? "adding a member (audited) works after the restore"
is "$(rq "SELECT count(*) FROM gateway.audit_log WHERE id > $max_before AND action IN ('api_key.issued', 'project_member.insert')")" 2 \
   "their audit records follow the restored ones"
is "$(rq "SELECT gateway.connector_credentials('e2000000-0000-4000-8000-000000000001') ->> 'token'")" ghp_dump \
   "a decrypt (audited by the worker) works after the restore"
out=$(rq "DELETE FROM gateway.audit_log" 2>&1)
ok $([[ "$out" == *"append-only"* ]]; echo $?) "the restored audit log is still append-only"

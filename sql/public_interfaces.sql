-- Public interfaces: derived paths, collisions, validation, the outbox and its operations.
-- (The regression server has no gateway.kong_admin_url: jobs stay pending, so they can be read.)
\set SHOW_CONTEXT never
\ir helpers/fails.psql
\set proj '''c4000000-0000-4000-8000-000000000001'''
\set wf '''f4000000-0000-4000-8000-000000000001'''
INSERT INTO gateway.project_members (project_id, user_id, role) VALUES (:proj, 'a4000000-0000-4000-8000-000000000001', 'editor');
-- Earlier suites bound keys to made-up interfaces; their jobs are not this suite's business.
DELETE FROM gateway.sync_jobs;

INSERT INTO gateway.service_interfaces (id, project_id, workflow_id, name, interface_type, callable_name, is_public)
VALUES ('e4000000-0000-4000-8000-000000000001', :proj, :wf, 'approve', 'signal', 'approve', true),
       ('e4000000-0000-4000-8000-000000000002', :proj, :wf, 'status', 'query', 'status', true),
       ('e4000000-0000-4000-8000-000000000003', :proj, :wf, 'cancel', 'update', 'cancel', false);

-- The default path is a short hash of project, workflow and interface name.
INSERT INTO gateway.public_interfaces (id, service_interface_id)
VALUES ('d4000000-0000-4000-8000-000000000001', 'e4000000-0000-4000-8000-000000000001');
SELECT http_method, http_path, auth_type, project_id = :proj AS project_copied, sync_state
  FROM gateway.public_interfaces WHERE id = 'd4000000-0000-4000-8000-000000000001';

-- Collision: someone holds the path the second interface would get; it gets a longer hash.
SELECT '/i/' || left(encode(sha256(convert_to(:proj || '/' || :wf || '/status', 'UTF8')), 'hex'), 12) AS taken \gset
INSERT INTO gateway.public_interfaces (service_interface_id, http_path)
VALUES ('e4000000-0000-4000-8000-000000000003', :'taken');
INSERT INTO gateway.public_interfaces (id, service_interface_id)
VALUES ('d4000000-0000-4000-8000-000000000002', 'e4000000-0000-4000-8000-000000000002');
SELECT http_path, length(http_path) AS length, http_path LIKE :'taken' || '%' AS extends_the_short_one
  FROM gateway.public_interfaces WHERE id = 'd4000000-0000-4000-8000-000000000002';

-- Bad input changes nothing.
SELECT count(*) AS before FROM gateway.public_interfaces \gset
SELECT pg_temp.fails($$UPDATE gateway.public_interfaces SET http_path = (SELECT http_path FROM gateway.public_interfaces WHERE id = 'd4000000-0000-4000-8000-000000000001') WHERE id = 'd4000000-0000-4000-8000-000000000002'$$);
SELECT pg_temp.fails($$INSERT INTO gateway.public_interfaces (service_interface_id, http_path) VALUES ('e4000000-0000-4000-8000-000000000001', '/other')$$);
SELECT pg_temp.fails($$INSERT INTO gateway.public_interfaces (service_interface_id) VALUES ('e4000000-0000-4000-8000-00000000dead')$$);
SELECT pg_temp.fails($$UPDATE gateway.public_interfaces SET http_path = '/a//b' WHERE id = 'd4000000-0000-4000-8000-000000000001'$$);
SELECT pg_temp.fails($$UPDATE gateway.public_interfaces SET http_path = '/a?x=1' WHERE id = 'd4000000-0000-4000-8000-000000000001'$$);
SELECT pg_temp.fails($$UPDATE gateway.public_interfaces SET http_method = 'TRACE' WHERE id = 'd4000000-0000-4000-8000-000000000001'$$);
SELECT pg_temp.fails($$UPDATE gateway.public_interfaces SET rate_limit_per_minute = 0 WHERE id = 'd4000000-0000-4000-8000-000000000001'$$);
SELECT pg_temp.fails($$UPDATE gateway.public_interfaces SET auth_type = 'basic' WHERE id = 'd4000000-0000-4000-8000-000000000001'$$);
SELECT pg_temp.fails($$INSERT INTO gateway.service_interfaces (project_id, workflow_id, name, interface_type, callable_name) VALUES (gen_random_uuid(), gen_random_uuid(), '1bad name', 'signal', 'x')$$);
SELECT pg_temp.fails(format($$INSERT INTO gateway.service_interfaces (project_id, workflow_id, name, interface_type, callable_name) VALUES (%L, 'f4000000-0000-4000-8000-000000000001', 'approve', 'signal', 'x')$$, :proj));
SELECT count(*) = :before AS nothing_changed FROM gateway.public_interfaces;

-- One pending job per object, whatever the number of changes.
SELECT object_kind, state, attempts FROM gateway.sync_jobs ORDER BY object_id;
UPDATE gateway.public_interfaces SET rate_limit_per_minute = 10 WHERE id = 'd4000000-0000-4000-8000-000000000001';
UPDATE gateway.public_interfaces SET rate_limit_per_minute = 20 WHERE id = 'd4000000-0000-4000-8000-000000000001';
SELECT count(*) AS jobs_for_it FROM gateway.sync_jobs WHERE object_id = 'd4000000-0000-4000-8000-000000000001';
-- A rolled-back change queues nothing.
BEGIN;
UPDATE gateway.public_interfaces SET http_method = 'GET' WHERE id = 'd4000000-0000-4000-8000-000000000002';
ROLLBACK;
SELECT count(*) AS jobs FROM gateway.sync_jobs;
-- Changing what Kong does not see queues nothing.
UPDATE gateway.service_interfaces SET display_name = 'Approve' WHERE id = 'e4000000-0000-4000-8000-000000000001';
SELECT count(*) AS jobs FROM gateway.sync_jobs;
-- Unpublishing queues a job for its public interface.
UPDATE gateway.service_interfaces SET is_public = false WHERE id = 'e4000000-0000-4000-8000-000000000002';
SELECT count(*) AS jobs, count(*) FILTER (WHERE object_id = 'd4000000-0000-4000-8000-000000000002') AS for_it FROM gateway.sync_jobs;

-- A key bound to an interface: its job, and the key sealed for Kong (never in plaintext).
SELECT key_id, api_key FROM gateway.api_key_issue('a4000000-0000-4000-8000-000000000001', :proj, 'bound', 'd4000000-0000-4000-8000-000000000001') \gset
SELECT kong_sync_state, length(kong_key_sealed) > 70 AS sealed,
       position(convert_to(:'api_key', 'UTF8') IN kong_key_sealed) AS plaintext_position
  FROM gateway.api_keys WHERE id = :'key_id';
SELECT count(*) AS key_jobs FROM gateway.sync_jobs WHERE object_kind = 'api_key';
-- Recording a use (the worker's last_used_at write) queues nothing.
UPDATE gateway.api_keys SET last_used_at = now() WHERE id = :'key_id';
SELECT count(*) AS key_jobs FROM gateway.sync_jobs WHERE object_kind = 'api_key';
-- An unbound key is none of Kong's business.
SELECT count(*) AS issued FROM gateway.api_key_issue('a4000000-0000-4000-8000-000000000001', :proj, 'unbound');
SELECT count(*) AS key_jobs FROM gateway.sync_jobs WHERE object_kind = 'api_key';

-- Operations.
SELECT target, pending, retrying, running, dead, oldest_pending_age IS NOT NULL AS has_age FROM gateway.sync_status;
SELECT pg_temp.fails('SELECT gateway.sync_retry(NULL)');
SELECT pg_temp.fails('SELECT gateway.sync_retry(-1)');
SELECT gateway.sync_cancel(-1) AS cancelled_unknown;
SELECT id AS job FROM gateway.sync_jobs WHERE object_id = :'key_id' \gset
SELECT gateway.sync_retry(:job) AS retried;
SELECT count(*) AS key_jobs FROM gateway.sync_jobs WHERE object_kind = 'api_key';
SELECT gateway.sync_cancel(id) AS cancelled FROM gateway.sync_jobs WHERE object_kind = 'api_key';
-- No target has a URL here: a reconcile of "every target" has nothing to do.
SELECT gateway.sync_reconcile();
SELECT count(*) AS none_configured FROM gateway.sync_jobs WHERE object_kind = 'reconcile';
SELECT gateway.sync_reconcile('kong'), gateway.sync_reconcile('temporal');
SELECT target, count(*) AS reconcile_jobs FROM gateway.sync_jobs WHERE object_kind = 'reconcile' GROUP BY 1 ORDER BY 1;
SELECT gateway.sync_reconcile('kong');
SELECT target, count(*) AS still_one FROM gateway.sync_jobs WHERE object_kind = 'reconcile' GROUP BY 1 ORDER BY 1;

-- Interface changes are audited: service interfaces created and changed, public faces added,
-- changed and unpublished.
SELECT action, object_type, details ->> 'http_method' AS method FROM gateway.audit_log
 WHERE object_type IN ('public_interface', 'service_interface') AND project_id = :proj ORDER BY occurred_at, action;

-- Deleting a service interface takes its public face with it, and queues the removal.
DELETE FROM gateway.service_interfaces WHERE id = 'e4000000-0000-4000-8000-000000000003';
SELECT count(*) AS public_left FROM gateway.public_interfaces WHERE service_interface_id = 'e4000000-0000-4000-8000-000000000003';
SELECT count(*) AS removal_jobs FROM gateway.sync_jobs j
 WHERE object_kind = 'public_interface'
   AND NOT EXISTS (SELECT FROM gateway.public_interfaces p WHERE p.id = j.object_id);

-- A service interface and its public face in one statement: the trigger sees the row the CTE
-- created, as the foreign key does.
WITH s AS (
  INSERT INTO gateway.service_interfaces (id, project_id, workflow_id, name, interface_type, callable_name, is_public)
  VALUES ('e4000000-0000-4000-8000-000000000005', :proj, :wf, 'one-statement', 'signal', 'x', true)
  RETURNING id)
INSERT INTO gateway.public_interfaces (service_interface_id) SELECT id FROM s
RETURNING project_id = :proj AS project_copied, http_path LIKE '/i/%' AS path_derived, sync_state;
-- An UPDATE that names the columns Kong sees without changing them is no change: no audit
-- record (the job would coalesce anyway); a real change is one.
SELECT count(*) AS audit_before FROM gateway.audit_log \gset
UPDATE gateway.public_interfaces SET http_method = http_method, auth_config = auth_config
 WHERE service_interface_id = 'e4000000-0000-4000-8000-000000000005';
SELECT count(*) - :audit_before AS new_audit_records FROM gateway.audit_log;
UPDATE gateway.public_interfaces SET rate_limit_per_minute = 7
 WHERE service_interface_id = 'e4000000-0000-4000-8000-000000000005';
SELECT count(*) - :audit_before AS new_audit_records FROM gateway.audit_log;

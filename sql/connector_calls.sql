-- Calls through connectors (0.5.0): who may call, what is refused before anything is queued (bad
-- input by JSON Schema, a connector not approved or without an endpoint, bad timeouts), the job
-- each call queues, the claim's state, and how outcomes and completions are recorded: a final
-- state never changes. No worker is needed: the regression server does not reach Temporal, so call
-- jobs stay pending and are claimed and finished here by hand.
\set SHOW_CONTEXT never
\ir helpers/app_role.psql
\ir helpers/fails.psql
GRANT SELECT ON gateway.connector_calls, gateway.connector_call_stats TO regress_gw_user;
GRANT EXECUTE ON FUNCTION gateway.connector_call(uuid, jsonb, interval), gateway.connector_call_cancel(uuid),
  gateway.json_schema_validate(jsonb, jsonb), gateway.connector_approve(uuid) TO regress_gw_user;

\set src '''c7000000-0000-4000-8000-000000000001'''
\set tgt '''c7000000-0000-4000-8000-000000000002'''
\set editor '''a7000000-0000-4000-8000-000000000001'''
\set viewer '''a7000000-0000-4000-8000-000000000002'''
\set tgt_admin '''a7000000-0000-4000-8000-000000000003'''
\set wf '''f7000000-0000-4000-8000-000000000001'''
\set iface '''e7000000-0000-4000-8000-000000000001'''
INSERT INTO gateway.project_members (project_id, user_id, role) VALUES
  (:src, :editor, 'editor'), (:src, :viewer, 'viewer'), (:tgt, :tgt_admin, 'admin');
INSERT INTO gateway.service_interfaces (id, project_id, workflow_id, name, interface_type, callable_name, input_schema)
VALUES (:iface, :tgt, :wf, 'approve-order', 'update', 'approveOrder',
        '{"type": "object", "required": ["orderId"], "additionalProperties": false,
          "properties": {"orderId": {"type": "string", "minLength": 1},
                         "lines": {"type": "array", "items": {"type": "object", "required": ["qty"],
                                                               "properties": {"qty": {"type": "integer", "minimum": 1}}}}}}');
INSERT INTO gateway.project_connectors (id, source_project_id, target_project_id, target_service_id, target_interface_id, name)
VALUES ('b7000000-0000-4000-8000-000000000001', :src, :tgt, :wf, :iface, 'orders');
\set conn '''b7000000-0000-4000-8000-000000000001'''

\ir helpers/act_as.psql
CREATE VIEW pg_temp.call_jobs AS
  SELECT state, count(*) AS jobs FROM gateway.sync_jobs WHERE target = 'nexus' GROUP BY 1 ORDER BY 1;

------------------------------------------------------------------------------------------------
-- Refused before anything is queued
------------------------------------------------------------------------------------------------
SELECT pg_temp.as_user(:editor) \g /dev/null
-- Not approved by the target project yet.
SELECT pg_temp.fails(format($$SELECT gateway.connector_call(%L, '{"orderId": "1"}')$$, :conn));
SELECT pg_temp.as_user(:tgt_admin) \g /dev/null
SELECT gateway.connector_approve(:conn);
SELECT pg_temp.as_user(:editor) \g /dev/null
-- Approved, but the worker has not created the endpoint yet.
SELECT pg_temp.fails(format($$SELECT gateway.connector_call(%L, '{"orderId": "1"}')$$, :conn));
SELECT pg_temp.as_superuser() \g /dev/null
INSERT INTO gateway.nexus_endpoints (connector_id, endpoint_id, endpoint_version, endpoint_name)
VALUES (:conn, 'endpoint-1', 1, 'orders');
SELECT pg_temp.as_user(:editor) \g /dev/null
-- The input schema: each failure names the JSON pointer.
SELECT pg_temp.fails(format($$SELECT gateway.connector_call(%L, %L)$$, :conn, bad))
  FROM unnest(ARRAY['{}', '{"orderId": ""}', '{"orderId": 7}', '{"orderId": "1", "extra": true}',
                    '{"orderId": "1", "lines": [{"qty": 1}, {"qty": 0}]}', '{"orderId": "1", "lines": [{}]}',
                    '[]', 'null']) AS bad;
-- Timeouts out of range.
SELECT pg_temp.fails(format($$SELECT gateway.connector_call(%L, '{"orderId": "1"}', %L)$$, :conn, t))
  FROM unnest(ARRAY['0 s', '500 ms', '31 days', NULL]) AS t;
-- A viewer may not call; an unknown connector is the same denial as another project's.
SELECT pg_temp.as_user(:viewer) \g /dev/null
SELECT pg_temp.fails(format($$SELECT gateway.connector_call(%L, '{"orderId": "1"}')$$, :conn));
SELECT pg_temp.fails($$SELECT gateway.connector_call('b7000000-0000-4000-8000-0000000000ff', '{"orderId": "1"}')$$);
SELECT pg_temp.as_superuser() \g /dev/null
SELECT count(*) AS calls_queued FROM gateway.connector_calls;
SELECT * FROM pg_temp.call_jobs;

------------------------------------------------------------------------------------------------
-- A call: queued with its job, claimed (started), recorded
------------------------------------------------------------------------------------------------
SELECT pg_temp.as_user(:editor) \g /dev/null
SELECT gateway.connector_call(:conn, '{"orderId": "o-1", "lines": [{"qty": 2}]}', '10 minutes') AS call_1 \gset
SELECT state, service, operation, input, attempts, created_by = :editor AS created_by_caller,
       deadline - created_at AS timeout, source_project_id = :src AS in_source, target_project_id = :tgt AS to_target
  FROM gateway.connector_calls WHERE id = :'call_1';
SELECT pg_temp.as_user(:viewer) \g /dev/null
SELECT count(*) AS the_viewer_sees FROM gateway.connector_calls;
SELECT pg_temp.as_user(:tgt_admin) \g /dev/null
SELECT count(*) AS the_target_admin_sees FROM gateway.connector_calls;
SELECT pg_temp.as_superuser() \g /dev/null
SELECT * FROM pg_temp.call_jobs;
SELECT object_kind, object_id = :'call_1' AS this_call,
       state - 'deadline' - 'now' - 'id' - 'connector_id' - 'source_project_id' AS state,
       (state ->> 'deadline')::float8 - (state ->> 'now')::float8 BETWEEN 590 AND 600 AS deadline_ahead
  FROM gateway._sync_claim('nexus', 10, '{}');
SELECT state, attempts, started_at IS NOT NULL AS started FROM gateway.connector_calls WHERE id = :'call_1';
-- The start answered 201: running, with its token and links; the job comes back at the deadline.
SELECT gateway._sync_finish_batch(jsonb_build_array(jsonb_build_object(
  'job_id', (SELECT id FROM gateway.sync_jobs WHERE object_id = :'call_1'), 'outcome', 'done',
  'next_change', extract(epoch FROM (SELECT deadline FROM gateway.connector_calls WHERE id = :'call_1')),
  'synced', '{"state": "running", "token": "tok-1", "links": [{"url": "temporal:///ns/x", "type": "workflow"}], "endpoint_id": "endpoint-1"}'::jsonb)));
SELECT state, operation_token, links, endpoint_id, finished_at IS NULL AS open FROM gateway.connector_calls WHERE id = :'call_1';
SELECT state, run_after = (SELECT deadline FROM gateway.connector_calls WHERE id = :'call_1') AS at_deadline
  FROM gateway.sync_jobs WHERE object_id = :'call_1';
-- The completion arrives: accepted once; a repeat or a late one is 'finished', an unknown call 'unknown'.
SELECT gateway._connector_call_complete(:'call_1', 'succeeded', '{"approved": true}', NULL, NULL, 'tok-1', NULL, NULL);
SELECT gateway._connector_call_complete(:'call_1', 'failed', NULL, '{"message": "late"}', NULL, 'tok-1', NULL, NULL);
SELECT gateway._connector_call_complete('b7000000-0000-4000-8000-0000000000ff', 'succeeded', '{}', NULL, NULL, NULL, NULL, NULL);
SELECT pg_temp.fails($$SELECT gateway._connector_call_complete('b7000000-0000-4000-8000-0000000000ff', 'running', '{}', NULL, NULL, NULL, NULL, NULL)$$);
SELECT state, result, failure, finished_at IS NOT NULL AS finished FROM gateway.connector_calls WHERE id = :'call_1';
-- The deadline job finds it final: an outcome saying otherwise changes nothing.
UPDATE gateway.sync_jobs SET run_after = now() WHERE object_id = :'call_1';
SELECT count(*) AS claimed FROM gateway._sync_claim('nexus', 10, '{}');
SELECT gateway._sync_finish_batch(jsonb_build_array(jsonb_build_object(
  'job_id', (SELECT id FROM gateway.sync_jobs WHERE object_id = :'call_1'), 'outcome', 'done',
  'synced', '{"state": "timed_out", "failure": {"message": "the call''s deadline passed"}}'::jsonb)));
SELECT state, result FROM gateway.connector_calls WHERE id = :'call_1';
SELECT * FROM pg_temp.call_jobs;

------------------------------------------------------------------------------------------------
-- Retries and dead letters; a synchronous result
------------------------------------------------------------------------------------------------
SELECT gateway.connector_call(:conn, '{"orderId": "o-2"}') AS call_2 \gset
SELECT count(*) AS claimed FROM gateway._sync_claim('nexus', 10, '{}');
SELECT gateway._sync_finish_batch(jsonb_build_array(jsonb_build_object(
  'job_id', (SELECT id FROM gateway.sync_jobs WHERE object_id = :'call_2'), 'outcome', 'retry', 'run_after', 0,
  'error', 'no worker polls the target''s task queue (520 upstream timeout)', 'status', 520)));
SELECT state, attempts, last_error, last_status FROM gateway.connector_calls WHERE id = :'call_2';
SELECT count(*) AS claimed_again FROM gateway._sync_claim('nexus', 10, '{}');
SELECT state, attempts FROM gateway.connector_calls WHERE id = :'call_2';
SELECT gateway._sync_finish_batch(jsonb_build_array(jsonb_build_object(
  'job_id', (SELECT id FROM gateway.sync_jobs WHERE object_id = :'call_2'), 'outcome', 'done',
  'synced', '{"state": "succeeded", "result": {"approved": true}}'::jsonb)));
SELECT state, result, last_error, attempts FROM gateway.connector_calls WHERE id = :'call_2';
SELECT gateway.connector_call(:conn, '{"orderId": "o-3"}') AS call_3 \gset
SELECT count(*) AS claimed FROM gateway._sync_claim('nexus', 10, '{}');
SELECT gateway._sync_finish_batch(jsonb_build_array(jsonb_build_object(
  'job_id', (SELECT id FROM gateway.sync_jobs WHERE object_id = :'call_3'), 'outcome', 'dead',
  'error', 'Temporal refused the request: 400 bad request', 'status', 400)));
SELECT state, failure ->> 'message' AS message, finished_at IS NOT NULL AS finished FROM gateway.connector_calls WHERE id = :'call_3';
SELECT * FROM pg_temp.call_jobs;

------------------------------------------------------------------------------------------------
-- Cancel
------------------------------------------------------------------------------------------------
SELECT pg_temp.as_user(:editor) \g /dev/null
-- Queued: canceled at once, its job gone.
SELECT gateway.connector_call(:conn, '{"orderId": "o-4"}') AS call_4 \gset
SELECT gateway.connector_call_cancel(:'call_4') AS canceled, gateway.connector_call_cancel(:'call_4') AS again;
SELECT state, failure ->> 'message' AS message, canceled_by = :editor AS by_caller FROM gateway.connector_calls WHERE id = :'call_4';
SELECT pg_temp.as_superuser() \g /dev/null
SELECT * FROM pg_temp.call_jobs;
-- Running: the worker is asked to cancel at the handler (a job), and the state waits for it.
SELECT pg_temp.as_user(:editor) \g /dev/null
SELECT gateway.connector_call(:conn, '{"orderId": "o-5"}') AS call_5 \gset
SELECT pg_temp.as_superuser() \g /dev/null
SELECT count(*) AS claimed FROM gateway._sync_claim('nexus', 10, '{}');
SELECT gateway._sync_finish_batch(jsonb_build_array(jsonb_build_object(
  'job_id', (SELECT id FROM gateway.sync_jobs WHERE object_id = :'call_5'), 'outcome', 'done',
  'synced', '{"state": "running", "token": "tok-5"}'::jsonb)));
SELECT pg_temp.as_user(:editor) \g /dev/null
SELECT gateway.connector_call_cancel(:'call_5') AS cancel_requested;
SELECT state, cancel_requested_at IS NOT NULL AS requested FROM gateway.connector_calls WHERE id = :'call_5';
SELECT pg_temp.as_user(:viewer) \g /dev/null
SELECT pg_temp.fails(format($$SELECT gateway.connector_call_cancel(%L)$$, :'call_5'));
SELECT pg_temp.as_superuser() \g /dev/null
SELECT state ->> 'cancel_requested' AS cancel_requested, state ->> 'token' AS token
  FROM gateway._sync_claim('nexus', 10, '{}');
SELECT gateway._sync_finish_batch(jsonb_build_array(jsonb_build_object(
  'job_id', (SELECT id FROM gateway.sync_jobs WHERE object_id = :'call_5'), 'outcome', 'done',
  'synced', '{"state": "running", "cancel_sent": true}'::jsonb)));
SELECT state, cancel_sent_at IS NOT NULL AS cancel_sent FROM gateway.connector_calls WHERE id = :'call_5';

------------------------------------------------------------------------------------------------
-- Monitoring, the reconcile's sweep, pruning
------------------------------------------------------------------------------------------------
SELECT pg_temp.as_user(:viewer) \g /dev/null
SELECT calls, queued, in_flight, succeeded, failed, canceled, timed_out, error_rate, p50_ms IS NOT NULL AS has_latency
  FROM gateway.connector_call_stats WHERE connector_id = :conn;
SELECT pg_temp.as_superuser() \g /dev/null
-- A lost job (none in a healthy database) is found by the nexus reconcile.
DELETE FROM gateway.sync_jobs WHERE object_id = :'call_5';
SELECT gateway._connector_calls_requeue() AS requeued, gateway._connector_calls_requeue() AS then;
SELECT pg_temp.fails($$SELECT gateway.sync_reconcile('nowhere')$$);
SELECT target FROM gateway.sync_status ORDER BY 1;
SELECT gateway.connector_calls_prune('0 s') AS pruned;
SELECT state, count(*) FROM gateway.connector_calls GROUP BY 1 ORDER BY 1;
-- The connector goes: its open call stays (its completion can still arrive).
DELETE FROM gateway.project_connectors WHERE id = :conn;
SELECT state, connector_id IS NULL AS detached FROM gateway.connector_calls WHERE id = :'call_5';

------------------------------------------------------------------------------------------------
-- json_schema_validate for app code
------------------------------------------------------------------------------------------------
SELECT gateway.json_schema_validate('{"type": "integer"}', '1') AS valid,
       gateway.json_schema_validate('{"type": "object", "properties": {"a/b": {"properties": {"c~d": {"type": "string"}}}}}',
                                    '{"a/b": {"c~d": 1}}') AS escaped_pointer,
       gateway.json_schema_validate('{"$schema": "http://json-schema.org/draft-04/schema#", "type": "object", "properties": {"n": {"maximum": 3, "exclusiveMaximum": true}}}',
                                    '{"n": 3}') AS draft4;
SELECT pg_temp.fails($$SELECT gateway.json_schema_validate('{"type": 12}', '1')$$);
SELECT pg_temp.fails($$SELECT gateway.json_schema_validate('{"$ref": "http://example.com/schema.json"}', '1')$$);

DELETE FROM gateway.connector_calls;
DELETE FROM gateway.nexus_endpoints WHERE connector_id = :conn;
DELETE FROM gateway.sync_jobs WHERE target IN ('nexus', 'temporal');
DELETE FROM gateway.service_interfaces WHERE id = :iface;
DELETE FROM gateway.project_members WHERE project_id IN (:src, :tgt);
REVOKE SELECT ON gateway.connector_calls, gateway.connector_call_stats FROM regress_gw_user;
REVOKE EXECUTE ON FUNCTION gateway.connector_call(uuid, jsonb, interval), gateway.connector_call_cancel(uuid),
  gateway.json_schema_validate(jsonb, jsonb), gateway.connector_approve(uuid) FROM regress_gw_user;

-- Project connectors (0.4.0): defaults, the endpoint name rule, a target consistent by
-- construction, sealed auth config, consent, the Temporal jobs each change queues, the claim's
-- state and the recording of outcomes. No worker is needed: the regression server's worker syncs
-- Kong only, so Temporal jobs stay pending and are claimed and finished here by hand.
\set SHOW_CONTEXT never
\ir helpers/app_role.psql
\ir helpers/fails.psql
\ir helpers/wait_for.psql
-- Like fails(), with the hint.
CREATE FUNCTION pg_temp.fails_hint(statement text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  hint text;
BEGIN
  EXECUTE statement;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
  RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}', '<id>', 'g')
         || ' (hint: ' || COALESCE(hint, '') || ')';
END
$$;
-- The documented grants on connectors, for the application role.
GRANT SELECT (id, source_project_id, target_project_id, target_service_id, target_interface_id, name,
              display_name, description, nexus_endpoint_name, nexus_service_name, visibility,
              encryption_key_id, created_by, created_at, updated_at, consent_state, consent_by,
              consent_at, nexus_endpoint_id, nexus_endpoint_version, sync_state, sync_error, synced_at,
              test_status, test_detail, tested_at, test_requested_at),
      INSERT (source_project_id, target_project_id, target_service_id, target_interface_id, name,
              display_name, description, nexus_endpoint_name, nexus_service_name, visibility, auth_config),
      UPDATE (name, display_name, description, nexus_endpoint_name, nexus_service_name, visibility, auth_config),
      DELETE
   ON gateway.project_connectors TO regress_gw_user;
GRANT SELECT ON gateway.project_workers TO regress_gw_user;
GRANT EXECUTE ON FUNCTION gateway.connector_approve(uuid), gateway.connector_consent_revoke(uuid),
  gateway.connector_auth_config(uuid), gateway.connector_test(uuid, interval) TO regress_gw_user;

\set src '''c6000000-0000-4000-8000-000000000001'''
\set tgt '''c6000000-0000-4000-8000-000000000002'''
\set src_editor '''a6000000-0000-4000-8000-000000000001'''
\set src_viewer '''a6000000-0000-4000-8000-000000000002'''
\set tgt_admin '''a6000000-0000-4000-8000-000000000003'''
\set src_admin '''a6000000-0000-4000-8000-000000000004'''
\set tgt_viewer '''a6000000-0000-4000-8000-000000000005'''
\set wf '''f6000000-0000-4000-8000-000000000001'''
\set iface '''e6000000-0000-4000-8000-000000000001'''
INSERT INTO gateway.project_members (project_id, user_id, role) VALUES
  (:src, :src_editor, 'editor'), (:src, :src_viewer, 'viewer'), (:src, :src_admin, 'admin'),
  (:tgt, :tgt_admin, 'admin'), (:tgt, :tgt_viewer, 'viewer');
INSERT INTO gateway.service_interfaces (id, project_id, workflow_id, name, interface_type, callable_name)
VALUES (:iface, :tgt, :wf, 'approve', 'signal', 'approve'),
       ('e6000000-0000-4000-8000-000000000002', :src, 'f6000000-0000-4000-8000-000000000002', 'own', 'query', 'own');
DELETE FROM gateway.sync_jobs WHERE target = 'temporal';

\ir helpers/act_as.psql
-- The Temporal jobs waiting, by kind.
CREATE VIEW pg_temp.temporal_jobs AS
  SELECT object_kind, state, count(*) AS jobs FROM gateway.sync_jobs WHERE target = 'temporal'
   GROUP BY 1, 2 ORDER BY 1, 2;

------------------------------------------------------------------------------------------------
-- Defaults: an editor of the source project creates a connector to the target's interface.
------------------------------------------------------------------------------------------------
SELECT pg_temp.as_user(:src_editor) \g /dev/null
INSERT INTO gateway.project_connectors (source_project_id, target_project_id, target_service_id, target_interface_id, name)
VALUES (:src, :tgt, :wf, :iface, 'billing') RETURNING id AS conn \gset
SELECT name, nexus_service_name, visibility, consent_state, consent_by, sync_state, created_by = :src_editor AS created_by_caller,
       nexus_endpoint_name ~ '^gw-[0-9a-f]{16}$' AS endpoint_name_shape
  FROM gateway.project_connectors WHERE id = :'conn';
SELECT pg_temp.as_superuser() \g /dev/null
-- The default name is 'gw-' and 16 hex digits of sha256(system identifier:database oid:connector id).
SELECT nexus_endpoint_name = 'gw-' || left(encode(sha256(convert_to(
         format('%s:%s:%s', (SELECT system_identifier FROM pg_control_system()),
                (SELECT oid FROM pg_database WHERE datname = current_database()), id), 'UTF8')), 'hex'), 16)
       AS deterministic_name
  FROM gateway.project_connectors WHERE id = :'conn';
SELECT action, details ->> 'name' AS name, project_id = :src AS in_source_project
  FROM gateway.audit_log WHERE object_id = :'conn' ORDER BY id;
SELECT * FROM pg_temp.temporal_jobs;

-- A name taken by another connector: the default grows longer.
INSERT INTO gateway.project_connectors (id, source_project_id, target_project_id, target_service_id, target_interface_id, name, nexus_endpoint_name)
VALUES ('b6000000-0000-4000-8000-000000000009', :src, :tgt, :wf, :iface, 'squatter',
        gateway._nexus_endpoint_name('b6000000-0000-4000-8000-00000000000a', 16));
INSERT INTO gateway.project_connectors (id, source_project_id, target_project_id, target_service_id, target_interface_id, name)
VALUES ('b6000000-0000-4000-8000-00000000000a', :src, :tgt, :wf, :iface, 'collides');
SELECT name, length(nexus_endpoint_name) AS length,
       nexus_endpoint_name LIKE gateway._nexus_endpoint_name(id, 16) || '%' AS extends_the_short_one
  FROM gateway.project_connectors WHERE id = 'b6000000-0000-4000-8000-00000000000a';
DELETE FROM gateway.project_connectors WHERE name IN ('squatter', 'collides');

------------------------------------------------------------------------------------------------
-- The endpoint name rule, and other bad input
------------------------------------------------------------------------------------------------
SELECT pg_temp.as_user(:src_editor) \g /dev/null
SELECT pg_temp.fails_hint(format($$UPDATE gateway.project_connectors SET nexus_endpoint_name = %L WHERE id = %L$$, bad, :'conn'))
  FROM unnest(ARRAY['1starts-with-digit', 'ends-with-hyphen-', 'has_underscore', 'x', repeat('a', 201)]) AS bad;
UPDATE gateway.project_connectors SET nexus_endpoint_name = 'billing-' || repeat('a', 192) WHERE id = :'conn';
SELECT length(nexus_endpoint_name) FROM gateway.project_connectors WHERE id = :'conn';
UPDATE gateway.project_connectors SET nexus_endpoint_name = 'billing-endpoint' WHERE id = :'conn';
-- NULL gives the generated name back.
UPDATE gateway.project_connectors SET nexus_endpoint_name = NULL WHERE id = :'conn';
SELECT nexus_endpoint_name ~ '^gw-[0-9a-f]{16}$' AS generated_again FROM gateway.project_connectors WHERE id = :'conn';
UPDATE gateway.project_connectors SET nexus_endpoint_name = 'billing-endpoint' WHERE id = :'conn';
SELECT pg_temp.fails(format($$INSERT INTO gateway.project_connectors (source_project_id, target_project_id, target_service_id, target_interface_id, name, nexus_endpoint_name)
                              VALUES (%L, %L, %L, %L, 'other', 'billing-endpoint')$$, :src, :tgt, :wf, :iface));
SELECT pg_temp.fails(format($$INSERT INTO gateway.project_connectors (source_project_id, target_project_id, target_service_id, target_interface_id, name)
                              VALUES (%L, %L, %L, %L, 'billing')$$, :src, :tgt, :wf, :iface));
SELECT pg_temp.fails(format($$UPDATE gateway.project_connectors SET visibility = 'everyone' WHERE id = %L$$, :'conn'));

------------------------------------------------------------------------------------------------
-- The target is consistent by construction, and fixed
------------------------------------------------------------------------------------------------
-- An editor naming an interface with another project's id, or another workflow: one denial.
SELECT pg_temp.fails(format($$INSERT INTO gateway.project_connectors (source_project_id, target_project_id, target_service_id, target_interface_id, name)
                              VALUES (%L, %L, %L, %L, 'mixed')$$, :src, :src, :wf, :iface));
SELECT pg_temp.fails(format($$INSERT INTO gateway.project_connectors (source_project_id, target_project_id, target_service_id, target_interface_id, name)
                              VALUES (%L, %L, gen_random_uuid(), %L, 'mixed')$$, :src, :tgt, :iface));
SELECT pg_temp.fails(format($$INSERT INTO gateway.project_connectors (source_project_id, target_project_id, target_service_id, target_interface_id, name)
                              VALUES (%L, %L, %L, '00000000-0000-4000-8000-00000000dead', 'mixed')$$, :src, :tgt, :wf));
-- Not an editor of the source project.
SELECT pg_temp.as_user(:tgt_admin) \g /dev/null
SELECT pg_temp.fails(format($$INSERT INTO gateway.project_connectors (source_project_id, target_project_id, target_service_id, target_interface_id, name)
                              VALUES (%L, %L, %L, %L, 'intruder')$$, :src, :tgt, :wf, :iface));
-- The target columns cannot be written after insert (no privilege, and a trigger for anybody).
SELECT pg_temp.as_user(:src_editor) \g /dev/null
SELECT pg_temp.fails(format($$UPDATE gateway.project_connectors SET target_project_id = %L WHERE id = %L$$, :src, :'conn'));
SELECT pg_temp.as_superuser() \g /dev/null
SELECT pg_temp.fails_hint(format($$UPDATE gateway.project_connectors SET target_interface_id = 'e6000000-0000-4000-8000-000000000002',
                                     target_project_id = %L, target_service_id = 'f6000000-0000-4000-8000-000000000002' WHERE id = %L$$, :src, :'conn'));
SELECT pg_temp.fails(format($$UPDATE gateway.project_connectors SET source_project_id = %L WHERE id = %L$$, :tgt, :'conn'));
-- A trusted caller gets the foreign key's answer; and the composite foreign key itself holds
-- with the trigger out of the way.
SELECT pg_temp.fails(format($$INSERT INTO gateway.project_connectors (source_project_id, target_project_id, target_service_id, target_interface_id, name)
                              VALUES (%L, %L, %L, %L, 'mixed')$$, :src, :src, :wf, :iface));
ALTER TABLE gateway.project_connectors DISABLE TRIGGER project_connectors_prepare;
SELECT pg_temp.fails(format($$INSERT INTO gateway.project_connectors (source_project_id, target_project_id, target_service_id, target_interface_id, name, nexus_endpoint_name, nexus_service_name)
                              VALUES (%L, %L, %L, %L, 'mixed', 'mixed', 'mixed')$$, :src, :src, :wf, :iface));
ALTER TABLE gateway.project_connectors ENABLE TRIGGER project_connectors_prepare;

------------------------------------------------------------------------------------------------
-- auth_config is sealed before it is stored
------------------------------------------------------------------------------------------------
SELECT pg_temp.as_user(:src_editor) \g /dev/null
UPDATE gateway.project_connectors SET auth_config = '{"token": "nexus_regress_secret"}' WHERE id = :'conn';
INSERT INTO gateway.project_connectors (source_project_id, target_project_id, target_service_id, target_interface_id, name, auth_config)
VALUES (:src, :tgt, :wf, :iface, 'second', '{"token": "second_regress_secret"}') RETURNING id AS conn2 \gset
SELECT pg_temp.fails(format('SELECT encrypted_auth_config FROM gateway.project_connectors WHERE id = %L', :'conn'));
SELECT pg_temp.fails(format('SELECT gateway.connector_auth_config(%L)', :'conn'));
SELECT pg_temp.as_superuser() \g /dev/null
SELECT name, auth_config IS NULL AS nothing_in_auth_config, encrypted_auth_config IS NOT NULL AS sealed,
       encryption_key_id IS NOT NULL AS key_recorded,
       position('regress_secret' in encode(encrypted_auth_config, 'escape')) AS plaintext_position
  FROM gateway.project_connectors WHERE id IN (:'conn', :'conn2') ORDER BY name;
SELECT count(*) AS rows_with_plaintext FROM gateway.project_connectors AS c WHERE c::text LIKE '%regress_secret%';
SELECT pg_temp.as_user(:src_admin) \g /dev/null
SELECT gateway.connector_auth_config(:'conn');
SELECT pg_temp.as_superuser() \g /dev/null
SELECT gateway.connector_auth_config(:'conn2');
-- Each decryption is audited (by the worker, as for connector_credentials).
SELECT pg_temp.wait_for(format($$SELECT count(*) FROM gateway.audit_log WHERE object_id IN (%L, %L) AND action = 'connector.credentials_decrypted'$$, :'conn', :'conn2'), '2') AS decrypts_audited;
SELECT details -> 'changed' AS changed FROM gateway.audit_log
 WHERE object_id = :'conn' AND action = 'project_connector.updated' ORDER BY id DESC LIMIT 1;
-- Its ciphertext moved to another connector does not open there.
UPDATE gateway.project_connectors SET encrypted_auth_config = (SELECT encrypted_auth_config FROM gateway.project_connectors WHERE id = :'conn')
 WHERE id = :'conn2';
SELECT pg_temp.fails(format('SELECT gateway.connector_auth_config(%L)', :'conn2'));
-- JSON null removes it.
UPDATE gateway.project_connectors SET auth_config = 'null' WHERE id = :'conn2';
SELECT encrypted_auth_config IS NULL AS removed, gateway.connector_auth_config(id) IS NULL AS nothing_to_read
  FROM gateway.project_connectors WHERE id = :'conn2';
-- The column never holds a value, even written around the trigger.
ALTER TABLE gateway.project_connectors DISABLE TRIGGER project_connectors_prepare;
SELECT pg_temp.fails(format($$UPDATE gateway.project_connectors SET auth_config = '{}' WHERE id = %L$$, :'conn2'));
ALTER TABLE gateway.project_connectors ENABLE TRIGGER project_connectors_prepare;

------------------------------------------------------------------------------------------------
-- Who sees what
------------------------------------------------------------------------------------------------
CREATE FUNCTION pg_temp.sees(uid uuid, connector uuid) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  n bigint;
BEGIN
  PERFORM pg_temp.as_user(uid);
  SELECT count(*) INTO n FROM gateway.project_connectors WHERE id = connector;
  PERFORM pg_temp.as_superuser();
  RETURN n;
END
$$;
SELECT who, pg_temp.sees(uid, :'conn') AS sees
  FROM (VALUES ('source viewer', :src_viewer::uuid), ('target admin', :tgt_admin::uuid),
               ('target viewer', :tgt_viewer::uuid), ('outsider', 'a6000000-0000-4000-8000-0000000000ff'::uuid)) AS w (who, uid);
SELECT pg_temp.as_superuser() \g /dev/null

------------------------------------------------------------------------------------------------
-- Consent, workers and the claim's `present`
------------------------------------------------------------------------------------------------
DELETE FROM gateway.sync_jobs WHERE target = 'temporal';
CREATE FUNCTION pg_temp.claim_state(connector uuid) RETURNS TABLE (object_kind text, present boolean, endpoint_name text,
                                                                    namespace text, task_queue text, endpoint_id text, endpoint_version text)
LANGUAGE sql AS $$
  SELECT c.object_kind, (c.state ->> 'present')::boolean, c.state ->> 'endpoint_name', c.state ->> 'namespace',
         c.state ->> 'task_queue', c.state ->> 'endpoint_id', c.state ->> 'endpoint_version'
    FROM gateway._sync_claim('temporal', 100, '{}') AS c
   WHERE c.object_id = connector AND c.object_kind = 'project_connector'
$$;
-- Claims, then puts the connector's job back (as a worker restart would).
CREATE FUNCTION pg_temp.present(connector uuid) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  p boolean;
BEGIN
  PERFORM gateway._sync_repair('project_connector', connector);
  SELECT s.present INTO p FROM pg_temp.claim_state(connector) AS s;
  PERFORM gateway._sync_recover('temporal');
  RETURN p;
END
$$;
SELECT pg_temp.present(:'conn') AS requested_no_workers;
-- Only trusted roles write workers; their values are validated.
SELECT pg_temp.as_user(:tgt_admin) \g /dev/null
SELECT pg_temp.fails(format($$INSERT INTO gateway.project_workers (project_id, temporal_namespace, task_queue) VALUES (%L, 'ns', 'q')$$, :tgt));
SELECT pg_temp.as_superuser() \g /dev/null
SELECT pg_temp.fails_hint(format($$INSERT INTO gateway.project_workers (project_id, temporal_namespace, task_queue) VALUES (%L, '', 'q')$$, :tgt));
SELECT pg_temp.fails(format($$INSERT INTO gateway.project_workers (project_id, temporal_namespace, task_queue) VALUES (%L, 'ns', E'q\n')$$, :tgt));
SELECT pg_temp.fails(format($$INSERT INTO gateway.project_workers (project_id, temporal_namespace, task_queue) VALUES (%L, %L, 'q')$$, :tgt, repeat('n', 256)));
DELETE FROM gateway.sync_jobs WHERE target = 'temporal';
INSERT INTO gateway.project_workers (project_id, temporal_namespace, task_queue) VALUES (:tgt, 'billing-ns', 'billing-queue');
-- Workers appearing queue the job of every connector targeting the project.
SELECT * FROM pg_temp.temporal_jobs;
SELECT pg_temp.present(:'conn') AS requested_with_workers;
-- Consent is given by the target project's admins only, and never written directly.
SELECT pg_temp.as_user(:src_admin) \g /dev/null
SELECT pg_temp.fails(format('SELECT gateway.connector_approve(%L)', :'conn'));
SELECT pg_temp.fails(format($$UPDATE gateway.project_connectors SET consent_state = 'approved' WHERE id = %L$$, :'conn'));
SELECT pg_temp.as_user(:tgt_viewer) \g /dev/null
SELECT pg_temp.fails(format('SELECT gateway.connector_approve(%L)', :'conn'));
SELECT pg_temp.as_superuser() \g /dev/null
SELECT pg_temp.fails_hint(format($$UPDATE gateway.project_connectors SET consent_state = 'approved' WHERE id = %L$$, :'conn'));
SELECT pg_temp.fails(format($$INSERT INTO gateway.project_connectors (source_project_id, target_project_id, target_service_id, target_interface_id, name, consent_state)
                              VALUES (%L, %L, %L, %L, 'preapproved', 'approved')$$, :src, :tgt, :wf, :iface));
DELETE FROM gateway.sync_jobs WHERE target = 'temporal';
SELECT pg_temp.as_user(:tgt_admin) \g /dev/null
SELECT gateway.connector_approve(:'conn') AS approved, gateway.connector_approve(:'conn') AS again;
SELECT consent_state, consent_by = :tgt_admin AS by_target_admin, consent_at IS NOT NULL AS dated, sync_state
  FROM gateway.project_connectors WHERE id = :'conn';
SELECT pg_temp.as_superuser() \g /dev/null
SELECT * FROM pg_temp.temporal_jobs;
SELECT action, project_id = :tgt AS in_target_project, details ->> 'source_project_id' = :src AS names_source,
       details ? 'auth_config' AS shows_auth_config
  FROM gateway.audit_log WHERE object_id = :'conn' AND action = 'project_connector.approved';
SELECT * FROM pg_temp.claim_state(:'conn');
SELECT gateway._sync_recover('temporal');
-- Editing keeps consent (the target cannot change), and queues the job when the endpoint shows it.
DELETE FROM gateway.sync_jobs WHERE target = 'temporal';
SELECT pg_temp.as_user(:src_editor) \g /dev/null
UPDATE gateway.project_connectors SET display_name = 'Billing', visibility = 'public' WHERE id = :'conn';
SELECT pg_temp.as_superuser() \g /dev/null
SELECT * FROM pg_temp.temporal_jobs;
SELECT pg_temp.as_user(:src_editor) \g /dev/null
UPDATE gateway.project_connectors SET description = 'Charges customers' WHERE id = :'conn';
SELECT consent_state, sync_state FROM gateway.project_connectors WHERE id = :'conn';
SELECT pg_temp.as_superuser() \g /dev/null
SELECT * FROM pg_temp.temporal_jobs;
-- Workers gone: no endpoint, consent or not.
DELETE FROM gateway.project_workers WHERE project_id = :tgt;
SELECT pg_temp.present(:'conn') AS approved_no_workers;
INSERT INTO gateway.project_workers (project_id, temporal_namespace, task_queue) VALUES (:tgt, 'billing-ns', 'billing-queue');
SELECT action FROM gateway.audit_log WHERE project_id = :tgt AND object_type = 'project_workers' ORDER BY id;
-- Revoking removes the endpoint.
SELECT pg_temp.as_user(:tgt_admin) \g /dev/null
SELECT gateway.connector_consent_revoke(:'conn') AS revoked;
SELECT pg_temp.as_superuser() \g /dev/null
SELECT pg_temp.present(:'conn') AS revoked_with_workers;
SELECT action FROM gateway.audit_log WHERE object_id = :'conn' AND action LIKE 'project_connector.%' AND action NOT LIKE '%updated' ORDER BY id;
SELECT gateway.connector_approve(:'conn') AS approved_again_by_service;

------------------------------------------------------------------------------------------------
-- Connector tests: Temporal sync is paused here, so one waiting for the worker ends pending and
-- one without a timeout is queued
------------------------------------------------------------------------------------------------
DELETE FROM gateway.sync_jobs WHERE target = 'temporal';
SELECT pg_temp.as_user(:src_editor) \g /dev/null
SELECT status, detail LIKE 'The worker runs the test after this transaction commits%' AS says_where, tested_at
  FROM gateway.connector_test(:'conn');
SELECT status FROM gateway.connector_test(:'conn', '1 s');
SELECT pg_temp.fails(format($$SELECT * FROM gateway.connector_test(%L, '-1 s')$$, :'conn'));
SELECT pg_temp.as_user(:src_viewer) \g /dev/null
SELECT pg_temp.fails(format('SELECT * FROM gateway.connector_test(%L)', :'conn'));
SELECT pg_temp.as_user(:tgt_admin) \g /dev/null
SELECT status FROM gateway.connector_test(:'conn');
SELECT pg_temp.as_superuser() \g /dev/null
SELECT test_requested_at IS NOT NULL AS requested, test_status FROM gateway.project_connectors WHERE id = :'conn';
SELECT * FROM pg_temp.temporal_jobs;

------------------------------------------------------------------------------------------------
-- Outcomes, as the worker records them
------------------------------------------------------------------------------------------------
SELECT gateway._sync_repair('project_connector', :'conn');
CREATE TEMP TABLE claimed AS SELECT * FROM gateway._sync_claim('temporal', 100, '{}');
SELECT object_kind, state - 'id' - 'description' AS state FROM claimed ORDER BY object_kind;
SELECT (state ->> 'id') = :'conn' AS state_names_the_connector, state ->> 'description' AS description FROM claimed ORDER BY object_kind;
SELECT gateway._sync_finish_batch(jsonb_agg(CASE object_kind
         WHEN 'project_connector' THEN jsonb_build_object('job_id', job_id, 'outcome', 'done',
           'synced', jsonb_build_object('endpoint_id', 'ep-1', 'endpoint_version', '1', 'endpoint_name', 'billing-endpoint'))
         ELSE jsonb_build_object('job_id', job_id, 'outcome', 'done',
           'synced', jsonb_build_object('test_status', 'ok', 'test_detail', 'endpoint ep-1 found; namespace billing-ns registered')) END))
  FROM claimed;
SELECT sync_state, sync_error, synced_at IS NOT NULL AS synced, nexus_endpoint_id, nexus_endpoint_version,
       test_status, test_detail, tested_at IS NOT NULL AS tested
  FROM gateway.project_connectors WHERE id = :'conn';
SELECT connector_id = :'conn' AS the_connector, endpoint_id, endpoint_version, endpoint_name FROM gateway.nexus_endpoints;
SELECT * FROM pg_temp.temporal_jobs;
-- A retry that learnt a new version records it; the state says failed.
UPDATE gateway.project_connectors SET description = 'Charges customers monthly' WHERE id = :'conn';
DROP TABLE claimed;
CREATE TEMP TABLE claimed AS SELECT * FROM gateway._sync_claim('temporal', 100, '{}');
SELECT state ->> 'endpoint_id' AS endpoint_id, state ->> 'endpoint_version' AS endpoint_version FROM claimed;
SELECT gateway._sync_finish_batch(jsonb_build_array(jsonb_build_object('job_id', job_id, 'outcome', 'retry',
         'run_after', extract(epoch FROM now() + interval '1 hour'), 'error', 'Temporal did not answer the confirming GET',
         'status', 504, 'synced', jsonb_build_object('endpoint_id', 'ep-1', 'endpoint_version', '2', 'endpoint_name', 'billing-endpoint'))))
  FROM claimed;
SELECT sync_state, sync_error, nexus_endpoint_id, nexus_endpoint_version FROM gateway.project_connectors WHERE id = :'conn';
SELECT endpoint_version FROM gateway.nexus_endpoints WHERE connector_id = :'conn';
SELECT object_kind, state, attempts, last_error, last_status FROM gateway.sync_jobs WHERE target = 'temporal';
-- A dead letter, with and without what it learnt.
UPDATE gateway.sync_jobs SET run_after = now() WHERE target = 'temporal';
DROP TABLE claimed;
CREATE TEMP TABLE claimed AS SELECT * FROM gateway._sync_claim('temporal', 100, '{}');
SELECT gateway._sync_finish_batch(jsonb_build_array(jsonb_build_object('job_id', job_id, 'outcome', 'dead',
         'error', 'namespace not found', 'status', 400)))
  FROM claimed;
SELECT sync_state, sync_error, nexus_endpoint_version FROM gateway.project_connectors WHERE id = :'conn';
SELECT * FROM pg_temp.temporal_jobs;
-- Retried by the operator, then done with no endpoint (revoked meanwhile): absent, and the
-- recorded endpoint is forgotten.
SELECT gateway.sync_retry(id) FROM gateway.sync_jobs WHERE target = 'temporal' AND state = 'dead';
SELECT gateway.connector_consent_revoke(:'conn');
DROP TABLE claimed;
CREATE TEMP TABLE claimed AS SELECT * FROM gateway._sync_claim('temporal', 100, '{}');
SELECT object_kind, (state ->> 'present')::boolean AS present, state ->> 'endpoint_id' AS endpoint_id FROM claimed;
SELECT gateway._sync_finish_batch(jsonb_agg(jsonb_build_object('job_id', job_id, 'outcome', 'done', 'synced', NULL))) FROM claimed;
SELECT sync_state, sync_error, nexus_endpoint_id, nexus_endpoint_version FROM gateway.project_connectors WHERE id = :'conn';
SELECT count(*) AS recorded_endpoints FROM gateway.nexus_endpoints;
SELECT * FROM pg_temp.temporal_jobs;
-- A failed connector test, and a dead one.
SELECT gateway.connector_test(:'conn') \g /dev/null
DROP TABLE claimed;
CREATE TEMP TABLE claimed AS SELECT * FROM gateway._sync_claim('temporal', 100, '{}');
SELECT object_kind, state ->> 'exists' AS exists, state ->> 'present' AS present, state ->> 'sync_state' AS sync_state FROM claimed;
SELECT gateway._sync_finish(job_id, 'done', NULL, NULL, NULL, NULL, NULL,
                            '{"test_status": "failed", "test_detail": "Temporal did not answer: timeout"}') FROM claimed;
SELECT test_status, test_detail FROM gateway.project_connectors WHERE id = :'conn';
SELECT gateway.connector_test(:'conn') \g /dev/null
DROP TABLE claimed;
CREATE TEMP TABLE claimed AS SELECT * FROM gateway._sync_claim('temporal', 100, '{}');
SELECT gateway._sync_finish(job_id, 'dead', NULL, 'the worker could not build the request', NULL, NULL, NULL, NULL) FROM claimed;
SELECT test_status, test_detail FROM gateway.project_connectors WHERE id = :'conn';
DELETE FROM gateway.sync_jobs WHERE target = 'temporal';

------------------------------------------------------------------------------------------------
-- The endpoint record outlives its connector
------------------------------------------------------------------------------------------------
SELECT gateway.connector_approve(:'conn') \g /dev/null
DROP TABLE claimed;
CREATE TEMP TABLE claimed AS SELECT * FROM gateway._sync_claim('temporal', 100, '{}');
SELECT gateway._sync_finish_batch(jsonb_agg(jsonb_build_object('job_id', job_id, 'outcome', 'done',
         'synced', jsonb_build_object('endpoint_id', 'ep-2', 'endpoint_version', '1', 'endpoint_name', 'billing-endpoint'))))
  FROM claimed;
SELECT sync_state, nexus_endpoint_id FROM gateway.project_connectors WHERE id = :'conn';
SELECT jsonb_array_length(jsonb_agg(d)) AS desired, bool_and((d ->> 'present')::boolean) AS all_present,
       max(d ->> 'endpoint_id') AS endpoint_id, max(d ->> 'namespace') AS namespace
  FROM gateway._sync_desired_connectors() AS d;
SELECT pg_temp.as_user(:src_editor) \g /dev/null
DELETE FROM gateway.project_connectors WHERE id = :'conn';
SELECT pg_temp.as_superuser() \g /dev/null
SELECT * FROM pg_temp.temporal_jobs;
SELECT endpoint_id, endpoint_version FROM gateway.nexus_endpoints WHERE connector_id = :'conn';
SELECT k ->> 'endpoint_id' AS endpoint_id, k ->> 'endpoint_version' AS endpoint_version, k ->> 'endpoint_name' AS endpoint_name
  FROM gateway._sync_known_endpoints() AS k;
SELECT count(*) AS desired FROM gateway._sync_desired_connectors();
DROP TABLE claimed;
CREATE TEMP TABLE claimed AS SELECT * FROM gateway._sync_claim('temporal', 100, '{}');
SELECT state - 'id' AS state FROM claimed;
SELECT gateway._sync_finish_batch(jsonb_agg(jsonb_build_object('job_id', job_id, 'outcome', 'done'))) FROM claimed;
SELECT count(*) AS recorded_endpoints FROM gateway.nexus_endpoints;
SELECT action FROM gateway.audit_log WHERE object_id = :'conn' ORDER BY id DESC LIMIT 1;

-- Deleting the target interface removes the connectors coming in (audited, and their jobs queued).
SELECT pg_temp.as_user(:src_editor) \g /dev/null
INSERT INTO gateway.project_connectors (source_project_id, target_project_id, target_service_id, target_interface_id, name)
VALUES (:src, :tgt, :wf, :iface, 'third') RETURNING id AS conn3 \gset
SELECT pg_temp.as_superuser() \g /dev/null
DELETE FROM gateway.sync_jobs WHERE target = 'temporal';
DELETE FROM gateway.service_interfaces WHERE id = :iface;
SELECT count(*) AS connectors_left FROM gateway.project_connectors;
SELECT action FROM gateway.audit_log WHERE object_id = :'conn3' ORDER BY id;
SELECT * FROM pg_temp.temporal_jobs;

------------------------------------------------------------------------------------------------
-- Operations: both targets
------------------------------------------------------------------------------------------------
-- One row per target (Kong's counts hold earlier suites' jobs).
SELECT target FROM gateway.sync_status ORDER BY target;
SELECT pending, running, dead FROM gateway.sync_status WHERE target = 'temporal';
SELECT gateway.sync_reconcile('temporal');
SELECT target, object_kind FROM gateway.sync_jobs WHERE object_kind = 'reconcile' ORDER BY 1;
SELECT pg_temp.fails_hint($$SELECT gateway.sync_reconcile('nats')$$);
SELECT pg_temp.fails($$INSERT INTO gateway.sync_jobs (target, object_kind, object_id) VALUES ('temporal', 'api_key', gen_random_uuid())$$);
-- Recovering one target leaves the other's running jobs alone.
INSERT INTO gateway.sync_jobs (target, object_kind, object_id, state)
VALUES ('kong', 'public_interface', 'd6000000-0000-4000-8000-000000000001', 'running');
SELECT count(*) AS claimed FROM gateway._sync_claim('temporal', 100, '{}');
SELECT gateway._sync_recover('temporal') AS temporal_recovered;
SELECT target, state, count(*) FROM gateway.sync_jobs WHERE object_id = 'd6000000-0000-4000-8000-000000000001' OR target = 'temporal' GROUP BY 1, 2 ORDER BY 1, 2;
DELETE FROM gateway.sync_jobs WHERE object_id = 'd6000000-0000-4000-8000-000000000001';
SELECT pg_temp.fails($$SELECT gateway._sync_recover('nats')$$);
DELETE FROM gateway.sync_jobs WHERE target = 'temporal';

-- Key rotation: re-encryption moves auth configs to the active key too, and only then does the
-- old key retire.
INSERT INTO gateway.service_interfaces (id, project_id, workflow_id, name, interface_type, callable_name)
VALUES (:iface, :tgt, :wf, 'approve', 'signal', 'approve');
INSERT INTO gateway.project_connectors (id, source_project_id, target_project_id, target_service_id, target_interface_id, name, auth_config)
VALUES ('b6000000-0000-4000-8000-00000000000b', :src, :tgt, :wf, :iface, 'rotated', '{"token": "rotate_me"}');
SELECT encryption_key_id AS old_key FROM gateway.project_connectors WHERE id = 'b6000000-0000-4000-8000-00000000000b' \gset
SELECT gateway.rotate_encryption_key() > :old_key AS rotated;
SELECT left(pg_temp.fails(format('SELECT gateway.retire_encryption_key(%s)', :old_key)), 5) AS old_key_in_use;
SET client_min_messages = error;  -- earlier suites leave ciphertexts that do not open (warned about)
CALL gateway.reencrypt_credentials();
RESET client_min_messages;
SELECT encryption_key_id = (SELECT id FROM gateway.encryption_keys WHERE state = 'active') AS on_active_key,
       gateway.connector_auth_config(id) FROM gateway.project_connectors WHERE id = 'b6000000-0000-4000-8000-00000000000b';
DELETE FROM gateway.service_interfaces WHERE id = :iface;
DELETE FROM gateway.sync_jobs WHERE target = 'temporal';
DELETE FROM gateway.project_workers;
DELETE FROM gateway.nexus_endpoints;
DELETE FROM gateway.sync_jobs WHERE target = 'temporal';
REVOKE ALL ON gateway.project_connectors, gateway.project_workers FROM regress_gw_user;
REVOKE ALL ON FUNCTION gateway.connector_approve(uuid), gateway.connector_consent_revoke(uuid),
  gateway.connector_auth_config(uuid), gateway.connector_test(uuid, interval) FROM regress_gw_user;

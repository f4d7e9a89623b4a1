-- The upgrade chain: a 0.1.0 database with data, updated step by step to the current version,
-- keeps its keys working and takes part in each version's features. (Runs last: it recreates
-- the extension.)
\set SHOW_CONTEXT never
DROP EXTENSION pg_gateway CASCADE;
CREATE EXTENSION pg_gateway VERSION '0.1.0';
SELECT extversion FROM pg_extension WHERE extname = 'pg_gateway';
SELECT key_id AS old_key_id, api_key AS old_key
  FROM gateway.api_key_issue('a3000000-0000-4000-8000-000000000001', 'c3000000-0000-4000-8000-000000000001', 'before-upgrade') \gset
SELECT to_regclass('gateway.sync_jobs') IS NULL AS no_outbox_yet;

-- 0.2.0: public interfaces and the outbox.
ALTER EXTENSION pg_gateway UPDATE TO '0.2.0';
SELECT extversion FROM pg_extension WHERE extname = 'pg_gateway';
SELECT valid, reason, key_id = :'old_key_id' AS same_key FROM gateway.api_key_verify(:'old_key');
SELECT to_regclass('gateway.sync_jobs') IS NOT NULL AS outbox, to_regclass('gateway.public_interfaces') IS NOT NULL AS interfaces;
-- Data from before the update takes part in the new features (the trigger of 0.2.0's interfaces
-- is the current library's, which 0.2.0's schema can run).
INSERT INTO gateway.service_interfaces (id, project_id, workflow_id, name, interface_type, callable_name, is_public)
VALUES ('e3000000-0000-4000-8000-000000000001', 'c3000000-0000-4000-8000-000000000001', gen_random_uuid(), 'after', 'signal', 'after', true),
       ('e3000000-0000-4000-8000-000000000002', 'c3000000-0000-4000-8000-000000000099', gen_random_uuid(), 'elsewhere', 'signal', 'elsewhere', true);
INSERT INTO gateway.public_interfaces (id, service_interface_id)
VALUES ('d3000000-0000-4000-8000-000000000001', 'e3000000-0000-4000-8000-000000000001'),
       ('d3000000-0000-4000-8000-000000000002', 'e3000000-0000-4000-8000-000000000002');
UPDATE gateway.api_keys SET public_interface_id = 'd3000000-0000-4000-8000-000000000001' WHERE id = :'old_key_id';
SELECT object_kind, count(*) FROM gateway.sync_jobs GROUP BY 1 ORDER BY 1;
SELECT valid, reason FROM gateway.api_key_verify(:'old_key', 'd3000000-0000-4000-8000-000000000001');
-- 0.2.0 allowed what 0.3.0 forbids: a key bound to another project's interface.
INSERT INTO gateway.project_members (project_id, user_id, role)
VALUES ('c3000000-0000-4000-8000-000000000001', 'a3000000-0000-4000-8000-000000000002', 'editor');
SELECT key_id AS crossed_id, api_key AS crossed_key
  FROM gateway.api_key_issue('a3000000-0000-4000-8000-000000000002', 'c3000000-0000-4000-8000-000000000001', 'crossed',
                             'd3000000-0000-4000-8000-000000000002') \gset
SELECT reason FROM gateway.api_key_verify(:'crossed_key', 'd3000000-0000-4000-8000-000000000002');

-- 0.3.0: the tenant boundary. The old key still verifies where it belongs; the crossed key is
-- revoked, unbound and audited; new keys need membership.
ALTER EXTENSION pg_gateway UPDATE TO '0.3.0';
SELECT extversion FROM pg_extension WHERE extname = 'pg_gateway';
SELECT valid, reason FROM gateway.api_key_verify(:'old_key', 'd3000000-0000-4000-8000-000000000001');
SELECT reason FROM gateway.api_key_verify(:'crossed_key', 'd3000000-0000-4000-8000-000000000002');
SELECT is_active, public_interface_id FROM gateway.api_keys WHERE id = :'crossed_id';
SELECT action, details ->> 'reason' AS reason FROM gateway.audit_log WHERE object_id = :'crossed_id' ORDER BY id;
SELECT * FROM gateway.api_key_issue('a3000000-0000-4000-8000-000000000009', 'c3000000-0000-4000-8000-000000000001', 'not-a-member');
\echo :LAST_ERROR_SQLSTATE

-- 0.4.0: Temporal as a second target. The Kong jobs waiting from before stay Kong's; a project
-- connector to an interface made before the update gets its Nexus endpoint job, and its endpoint
-- is wanted once the target project approves it and has workers.
SELECT target, object_kind, count(*) FROM gateway.sync_jobs GROUP BY 1, 2 ORDER BY 1, 2;
ALTER EXTENSION pg_gateway UPDATE TO '0.4.0';
SELECT extversion FROM pg_extension WHERE extname = 'pg_gateway';
SELECT target, object_kind, count(*) FROM gateway.sync_jobs GROUP BY 1, 2 ORDER BY 1, 2;
SELECT target, pending FROM gateway.sync_status ORDER BY 1;
SELECT valid, reason FROM gateway.api_key_verify(:'old_key', 'd3000000-0000-4000-8000-000000000001');
INSERT INTO gateway.project_members (project_id, user_id, role)
VALUES ('c3000000-0000-4000-8000-000000000099', 'a3000000-0000-4000-8000-000000000003', 'admin');
INSERT INTO gateway.project_connectors (id, source_project_id, target_project_id, target_service_id, target_interface_id, name, auth_config)
SELECT 'b3000000-0000-4000-8000-000000000001', 'c3000000-0000-4000-8000-000000000099', s.project_id, s.workflow_id, s.id,
       'upgraded', '{"token": "upgrade"}'
  FROM gateway.service_interfaces AS s WHERE s.id = 'e3000000-0000-4000-8000-000000000001';
INSERT INTO gateway.project_workers (project_id, temporal_namespace, task_queue)
VALUES ('c3000000-0000-4000-8000-000000000001', 'upgrade-ns', 'upgrade-queue');
SELECT gateway.connector_approve('b3000000-0000-4000-8000-000000000001');
SELECT object_kind, (state ->> 'present')::boolean AS present, state ->> 'namespace' AS namespace, state ->> 'task_queue' AS task_queue
  FROM gateway._sync_claim('temporal', 10, '{}');
SELECT gateway._sync_recover() AS kong_recovered, gateway._sync_recover('temporal') AS temporal_recovered;
SELECT gateway.connector_auth_config('b3000000-0000-4000-8000-000000000001');
SELECT encrypted_auth_config IS NOT NULL AS sealed, auth_config IS NULL AS no_plaintext, consent_state, nexus_service_name
  FROM gateway.project_connectors;

-- 0.5.0: calls through connectors. The connector made under 0.4.0 (approved, its endpoint
-- recorded) takes calls; the outbox's third target appears in sync_status.
ALTER EXTENSION pg_gateway UPDATE TO '0.5.0';
SELECT extversion FROM pg_extension WHERE extname = 'pg_gateway';
SELECT target, pending FROM gateway.sync_status ORDER BY 1;
INSERT INTO gateway.nexus_endpoints (connector_id, endpoint_id, endpoint_version, endpoint_name)
VALUES ('b3000000-0000-4000-8000-000000000001', 'upgrade-endpoint', 1, 'upgraded');
SELECT gateway.connector_call('b3000000-0000-4000-8000-000000000001', '{"from": "0.4.0"}') IS NOT NULL AS queued;
SELECT object_kind, state ->> 'endpoint_id' AS endpoint_id, state ->> 'service' AS service, state ->> 'state' AS state
  FROM gateway._sync_claim('nexus', 10, '{}');
SELECT gateway._sync_recover('nexus') AS nexus_recovered;

-- 0.6.0: keys across master-key rotations, scopes and usage limits, health, the verify cache.
-- A role granted the old verify and issue keeps them across the signature change.
CREATE ROLE regress_gw_upgrade_app NOLOGIN;
GRANT EXECUTE ON FUNCTION gateway.api_key_verify(text, uuid) TO regress_gw_upgrade_app;
GRANT EXECUTE ON FUNCTION gateway.api_key_issue(uuid, uuid, text, uuid, timestamptz, integer) TO regress_gw_upgrade_app;
ALTER EXTENSION pg_gateway UPDATE TO '0.6.0';
SELECT extversion FROM pg_extension WHERE extname = 'pg_gateway';
SELECT has_function_privilege('regress_gw_upgrade_app', 'gateway.api_key_verify(text, uuid, text, integer)', 'EXECUTE') AS verify_kept,
       has_function_privilege('regress_gw_upgrade_app', 'gateway.api_key_issue(uuid, uuid, text, uuid, timestamptz, integer, text[], bigint, bigint, interval)', 'EXECUTE') AS issue_kept,
       has_function_privilege('public', 'gateway.api_key_verify(text, uuid, text, integer)', 'EXECUTE') AS public_verify;
DROP OWNED BY regress_gw_upgrade_app;
DROP ROLE regress_gw_upgrade_app;
-- The key issued under 0.1.0: old-style calls (positional and named) still answer, it has no
-- scopes and no usage limit, so a required scope is refused and any cost is free.
SELECT valid, reason, usage_remaining FROM gateway.api_key_verify(:'old_key', 'd3000000-0000-4000-8000-000000000001');
SELECT valid, reason FROM gateway.api_key_verify(api_key => :'old_key', public_interface_id => 'd3000000-0000-4000-8000-000000000001');
SELECT reason FROM gateway.api_key_verify(:'old_key', 'd3000000-0000-4000-8000-000000000001', 'orders:read');
SELECT reason, usage_remaining FROM gateway.api_key_verify(:'old_key', 'd3000000-0000-4000-8000-000000000001', cost => 5);
SELECT scopes, usage_limit, usage_remaining FROM gateway.api_keys_list WHERE id = :'old_key_id';

-- Health reads the upgraded schema; the audit records written since 0.1.0 stay append-only, and
-- a prune keeps the recent ones (and records itself).
SELECT count(*) > 10 AS health_checks, count(*) FILTER (WHERE status <> 'ok' AND (name LIKE 'log%' OR name LIKE 'master_key%')) AS problems FROM gateway.health;
DELETE FROM gateway.audit_log WHERE object_id = :'crossed_id';
SELECT gateway.audit_prune('1 day') AS pruned;
SELECT count(*) > 0 AS records_from_0_1_0_kept FROM gateway.audit_log WHERE object_id = :'crossed_id';

-- The key issued under 0.1.0 (no master key marker) verifies under the current master key, and a
-- verify since the update has the worker record that master key for it. (Whether it is still
-- unmarked at a given line races the worker, which may already have moved it: a request queued
-- before the update is written once the update commits. master_key_rotation_keys.sh tests
-- unmarked keys.)
SELECT valid, reason FROM gateway.api_key_verify(:'old_key', 'd3000000-0000-4000-8000-000000000001');
\ir helpers/wait_for.psql
-- (Each try verifies again: a backend asks once per two flush intervals, and the request made
-- before the update failed, since the column did not exist yet.)
SELECT pg_temp.wait_for(format('SELECT (SELECT valid FROM gateway.api_key_verify(%L, %L)) AND master_fingerprint = gateway._master_key_fingerprint() FROM gateway.api_keys WHERE id = %L',
                               :'old_key', 'd3000000-0000-4000-8000-000000000001', :'old_key_id'), 'true') AS marked;
SELECT valid, reason FROM gateway.api_key_verify(:'old_key', 'd3000000-0000-4000-8000-000000000001');

-- The verify cache: the key issued under 0.1.0 is answered from it, and a change to it is the
-- answer of the very next verify.
SELECT hits AS hits_before FROM gateway.verify_cache \gset
SELECT reason FROM gateway.api_key_verify(:'old_key', 'd3000000-0000-4000-8000-000000000001');
SELECT reason FROM gateway.api_key_verify(:'old_key', 'd3000000-0000-4000-8000-000000000001');
SELECT hits > :hits_before AS answered_from_cache FROM gateway.verify_cache;
UPDATE gateway.api_keys SET expires_at = now() - interval '1 second' WHERE id = :'old_key_id';
SELECT reason FROM gateway.api_key_verify(:'old_key', 'd3000000-0000-4000-8000-000000000001');

-- 0.7.0: api_key_verify returns the named composite type gateway.api_key_verification instead
-- of a record described by OUT parameters: same columns, names, order and types. Grants move over
-- (a role granted EXECUTE keeps it, with its grant option; PUBLIC gets nothing), and every call
-- form answers as before. A key with a scope and a usage limit is made under 0.6.0.
CREATE ROLE regress_gw_upgrade_app NOLOGIN;
CREATE ROLE regress_gw_upgrade_admin NOLOGIN;
GRANT EXECUTE ON FUNCTION gateway.api_key_verify(text, uuid, text, integer) TO regress_gw_upgrade_app;
GRANT EXECUTE ON FUNCTION gateway.api_key_verify(text, uuid, text, integer) TO regress_gw_upgrade_admin WITH GRANT OPTION;
SELECT key_id AS scoped_id, api_key AS scoped_key
  FROM gateway.api_key_issue('a3000000-0000-4000-8000-000000000002', 'c3000000-0000-4000-8000-000000000001', 'scoped-0.6.0',
                             scopes => ARRAY['orders:read'], remaining => 5) \gset
SELECT prorettype::regtype AS returns_before, pg_get_function_result(oid) AS result_before
  FROM pg_proc WHERE oid = 'gateway.api_key_verify(text, uuid, text, integer)'::regprocedure;
-- (What pg_dump takes for the extension's own privileges on verify: entries of existing roles.)
CREATE FUNCTION pg_temp.verify_initprivs() RETURNS text LANGUAGE sql AS $$
  SELECT string_agg(coalesce(r.rolname, 'PUBLIC') || ' ' || a.privilege_type || ' ' || a.is_grantable || ' by ' || g.rolname, ', '
                    ORDER BY 1)
    FROM pg_init_privs AS i, aclexplode(i.initprivs) AS a
    LEFT JOIN pg_roles AS r ON r.oid = a.grantee JOIN pg_roles AS g ON g.oid = a.grantor
   WHERE i.objoid = 'gateway.api_key_verify(text, uuid, text, integer)'::regprocedure AND i.classoid = 'pg_proc'::regclass
     AND (a.grantee = 0 OR r.oid IS NOT NULL)
$$;
SELECT pg_temp.verify_initprivs() AS initprivs_before \gset
CREATE TEMP TABLE verify_0_6_0 AS SELECT * FROM gateway.api_key_verify(:'scoped_key', required_scope => 'orders:read', cost => 0);
SELECT valid, reason, usage_remaining FROM gateway.api_key_verify(:'scoped_key', NULL, 'orders:read', 2);
-- Statements prepared before the update (as a pool's connections hold them).
PREPARE verify_columns(text) AS SELECT valid, reason FROM gateway.api_key_verify($1, required_scope => 'orders:read', cost => 0);
PREPARE verify_star(text) AS SELECT * FROM gateway.api_key_verify($1, cost => 0);
PREPARE verify_whole_row(text) AS SELECT gateway.api_key_verify($1, cost => 0) AS answer;
ALTER EXTENSION pg_gateway UPDATE TO '0.7.0';
SELECT extversion FROM pg_extension WHERE extname = 'pg_gateway';
SELECT prorettype::regtype AS returns_after, pg_get_function_result(oid) AS result_after,
       pg_get_function_arguments(oid) AS arguments, prosecdef AS security_definer, provolatile, prosrc,
       obj_description(oid, 'pg_proc') = 'Checks an API key: reason is ok, malformed, unknown, revoked, expired, wrong_interface, insufficient_scope, usage_exceeded or rate_limited. With required_scope the key must hold that scope; cost uses are spent from a usage-limited key (0: only check). Never raises for a bad key and never writes, so it works on read-only transactions and hot standbys.' AS same_comment
  FROM pg_proc WHERE oid = 'gateway.api_key_verify(text, uuid, text, integer)'::regprocedure;
SELECT attname, format_type(atttypid, atttypmod) AS type FROM pg_attribute
 WHERE attrelid = 'gateway.api_key_verification'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum;
SELECT has_function_privilege('regress_gw_upgrade_app', 'gateway.api_key_verify(text, uuid, text, integer)', 'EXECUTE') AS app_kept,
       has_function_privilege('regress_gw_upgrade_admin', 'gateway.api_key_verify(text, uuid, text, integer)', 'EXECUTE WITH GRANT OPTION') AS admin_kept_grant_option,
       has_function_privilege('regress_gw_upgrade_app', 'gateway.api_key_verify(text, uuid, text, integer)', 'EXECUTE WITH GRANT OPTION') AS app_got_grant_option,
       has_function_privilege('public', 'gateway.api_key_verify(text, uuid, text, integer)', 'EXECUTE') AS public_verify;
-- The grants carried over are not recorded as the extension's own (pg_init_privs), or pg_dump
-- would leave them out: the initial privileges are the old function's, less entries of dropped
-- roles (this chain dropped one at 0.6.0, whose entry PostgreSQL 15 leaves behind).
SELECT pg_temp.verify_initprivs() = :'initprivs_before' AS same_initial_privileges,
       i.initprivs::text NOT LIKE '%regress_gw_upgrade%' AS carried_grants_dumped,
       i.initprivs::text !~ '[{,][0-9]+=' AS no_dropped_role
  FROM pg_init_privs AS i
 WHERE i.objoid = 'gateway.api_key_verify(text, uuid, text, integer)'::regprocedure AND i.classoid = 'pg_proc'::regclass;
-- The result of SELECT * has the columns, names, types and values of 0.6.0's (the uses left are
-- 3 after the 2 spent above).
CREATE TEMP TABLE verify_0_7_0 AS SELECT * FROM gateway.api_key_verify(:'scoped_key', required_scope => 'orders:read', cost => 0);
SELECT (SELECT array_agg(attname || ' ' || format_type(atttypid, atttypmod) ORDER BY attnum) FROM pg_attribute
         WHERE attrelid = 'verify_0_6_0'::regclass AND attnum > 0) =
       (SELECT array_agg(attname || ' ' || format_type(atttypid, atttypmod) ORDER BY attnum) FROM pg_attribute
         WHERE attrelid = 'verify_0_7_0'::regclass AND attnum > 0) AS same_columns,
       (SELECT usage_remaining FROM verify_0_6_0) AS usage_before, (SELECT usage_remaining FROM verify_0_7_0) AS usage_after,
       (SELECT (valid, reason, key_id, user_id, project_id, rate_limit_remaining, retry_after_seconds) FROM verify_0_6_0)::text =
       (SELECT (valid, reason, key_id, user_id, project_id, rate_limit_remaining, retry_after_seconds) FROM verify_0_7_0)::text AS same_answer;
DROP TABLE verify_0_6_0, verify_0_7_0;
-- Prepared before the update: a column list and SELECT * run on; the whole row as one column
-- changed type (record -> gateway.api_key_verification), so that statement must be prepared again
-- (docs/operations.md#upgrades).
EXECUTE verify_columns(:'scoped_key');
CREATE TEMP TABLE verify_star_after AS EXECUTE verify_star(:'scoped_key');
SELECT valid, reason, usage_remaining FROM verify_star_after;
DROP TABLE verify_star_after;
EXECUTE verify_whole_row('pgw_not_a_key');
DEALLOCATE verify_whole_row;
PREPARE verify_whole_row(text) AS SELECT gateway.api_key_verify($1, cost => 0) AS answer;
EXECUTE verify_whole_row('pgw_not_a_key');
DEALLOCATE ALL;
-- Every call form: one to four arguments, positional and named, a column list, the function in
-- the select list with a field taken from it, and the whole row.
SELECT valid, reason, key_id = :'scoped_id' AS same_key, usage_remaining FROM gateway.api_key_verify(:'scoped_key');
SELECT valid, reason, usage_remaining FROM gateway.api_key_verify(:'scoped_key', NULL);
SELECT valid, reason, usage_remaining FROM gateway.api_key_verify(:'scoped_key', NULL, 'orders:write');
SELECT valid, reason, usage_remaining FROM gateway.api_key_verify(:'scoped_key', NULL, 'orders:read', 0);
SELECT valid, reason, usage_remaining FROM gateway.api_key_verify(api_key => :'scoped_key', required_scope => 'orders:read', cost => 2);
SELECT reason, usage_remaining FROM gateway.api_key_verify(:'scoped_key', cost => 1);
SELECT (gateway.api_key_verify(:'scoped_key', cost => 0)).valid, (gateway.api_key_verify(:'scoped_key', cost => 0)).reason;
SELECT valid, reason, key_id = :'old_key_id' AS same_key FROM (SELECT (gateway.api_key_verify(:'old_key', 'd3000000-0000-4000-8000-000000000001')).*) AS expanded;
SELECT gateway.api_key_verify('pgw_not_a_key') AS whole_row;
SELECT pg_typeof(gateway.api_key_verify('pgw_not_a_key')) AS row_type;
-- The role granted EXECUTE calls it (it holds no other right on the schema's tables).
GRANT USAGE ON SCHEMA gateway TO regress_gw_upgrade_app;
SET ROLE regress_gw_upgrade_app;
SELECT valid, reason FROM gateway.api_key_verify(:'scoped_key', required_scope => 'orders:read', cost => 0);
RESET ROLE;
-- (The worker has written the uses spent before the extension is dropped below; a flush running
-- into DROP EXTENSION gives way to it: test/integration/worker_ddl.sh.)
SELECT pg_temp.wait_for(format('SELECT usage_remaining FROM gateway.api_keys_list WHERE id = %L', :'scoped_id'), '0') AS uses_left_written;
DROP OWNED BY regress_gw_upgrade_app;
DROP OWNED BY regress_gw_upgrade_admin;
DROP ROLE regress_gw_upgrade_app, regress_gw_upgrade_admin;

-- A fresh install runs the same chain (there is no separate install script per version), so the
-- two paths cannot drift apart. Leave a fresh extension for whatever runs next.
DROP EXTENSION pg_gateway CASCADE;
CREATE EXTENSION pg_gateway;
SELECT extversion FROM pg_extension WHERE extname = 'pg_gateway';
-- This session read the old extension's encryption keys: the new table has none of them, so
-- sealing must create and use a key of the new table (not a cached id of the dropped one).
SELECT length(gateway.encrypt_credentials('{"after": "re-create"}', 'upgrade')) > 0 AS sealed_after_recreate;
SELECT gateway.decrypt_credentials(gateway.encrypt_credentials('{"after": "re-create"}', 'upgrade'), 'upgrade');

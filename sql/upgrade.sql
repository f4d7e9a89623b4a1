-- The upgrade chain: a 0.1.0 database with data, updated in place, keeps its keys working and
-- takes part in the new features. (Runs last: it recreates the extension.)
\set SHOW_CONTEXT never
DROP EXTENSION pg_gateway CASCADE;
CREATE EXTENSION pg_gateway VERSION '0.1.0';
SELECT extversion FROM pg_extension WHERE extname = 'pg_gateway';
SELECT key_id AS old_key_id, api_key AS old_key
  FROM gateway.api_key_issue('a3000000-0000-4000-8000-000000000001', 'c3000000-0000-4000-8000-000000000001', 'before-upgrade') \gset
SELECT to_regclass('gateway.sync_jobs') IS NULL AS no_outbox_yet;

ALTER EXTENSION pg_gateway UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'pg_gateway';
SELECT valid, reason, key_id = :'old_key_id' AS same_key FROM gateway.api_key_verify(:'old_key');
SELECT to_regclass('gateway.sync_jobs') IS NOT NULL AS outbox, to_regclass('gateway.public_interfaces') IS NOT NULL AS interfaces;

-- Data from before the update takes part in the new features.
INSERT INTO gateway.service_interfaces (id, project_id, workflow_id, name, interface_type, callable_name, is_public)
VALUES ('e3000000-0000-4000-8000-000000000001', 'c3000000-0000-4000-8000-000000000001', gen_random_uuid(), 'after', 'signal', 'after', true);
INSERT INTO gateway.public_interfaces (id, service_interface_id)
VALUES ('d3000000-0000-4000-8000-000000000001', 'e3000000-0000-4000-8000-000000000001');
UPDATE gateway.api_keys SET public_interface_id = 'd3000000-0000-4000-8000-000000000001' WHERE id = :'old_key_id';
SELECT object_kind, count(*) FROM gateway.sync_jobs GROUP BY 1 ORDER BY 1;
SELECT valid, reason FROM gateway.api_key_verify(:'old_key', 'd3000000-0000-4000-8000-000000000001');

-- A fresh install runs the same chain (there is no separate 0.2.0 install script), so the two
-- paths cannot drift apart. Leave a fresh extension for whatever runs next.
DROP EXTENSION pg_gateway CASCADE;
CREATE EXTENSION pg_gateway;
SELECT extversion FROM pg_extension WHERE extname = 'pg_gateway';

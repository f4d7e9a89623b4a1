-- Nothing is usable by PUBLIC; granting is explicit; SECURITY DEFINER functions pin search_path.
\set SHOW_CONTEXT never
SELECT p.proname, has_function_privilege('public', p.oid, 'EXECUTE') AS public_can_execute
  FROM pg_proc p WHERE p.pronamespace = 'gateway'::regnamespace ORDER BY 1;
SELECT c.relname, has_table_privilege('public', c.oid, 'SELECT') AS public_can_select
  FROM pg_class c WHERE c.relnamespace = 'gateway'::regnamespace AND c.relkind IN ('r', 'v') ORDER BY 1;
SELECT p.proname, p.proconfig
  FROM pg_proc p WHERE p.pronamespace = 'gateway'::regnamespace AND p.prosecdef ORDER BY 1;
SELECT relname, relrowsecurity, relforcerowsecurity
  FROM pg_class WHERE relnamespace = 'gateway'::regnamespace AND relkind = 'r' ORDER BY 1;

-- An application role with only the documented grants can verify but not read hashes.
INSERT INTO gateway.project_members (project_id, user_id, role)
VALUES ('c5000000-0000-4000-8000-000000000003', 'a5000000-0000-4000-8000-000000000001', 'editor');
CREATE ROLE regress_gw_app NOLOGIN;
GRANT USAGE ON SCHEMA gateway TO regress_gw_app;
GRANT EXECUTE ON FUNCTION gateway.api_key_verify(text, uuid, text, integer) TO regress_gw_app;
SELECT api_key AS s FROM gateway.api_key_issue('a5000000-0000-4000-8000-000000000001', 'c5000000-0000-4000-8000-000000000003', 'priv') \gset
SET ROLE regress_gw_app;
SELECT valid, reason FROM gateway.api_key_verify(:'s');
SELECT key_hash FROM gateway.api_keys LIMIT 1;
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM gateway.api_key_issue('a5000000-0000-4000-8000-000000000001', 'c5000000-0000-4000-8000-000000000003', 'nope');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM gateway._api_key_generate();
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP OWNED BY regress_gw_app;
DROP ROLE regress_gw_app;

-- The master key and pepper settings are hidden from non-superusers.
CREATE ROLE regress_gw_peek NOLOGIN;
SET ROLE regress_gw_peek;
SELECT count(*) AS visible_secret_settings FROM pg_settings WHERE name IN ('gateway.master_key_file', 'gateway.api_key_pepper_version');
SHOW gateway.master_key_file;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP ROLE regress_gw_peek;
SELECT name, context FROM pg_settings WHERE name LIKE 'gateway.%' ORDER BY 1;

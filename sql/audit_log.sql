-- The audit log is append-only, even for its owner.
\set SHOW_CONTEXT never
SELECT count(*) > 0 AS has_rows FROM gateway.audit_log;
UPDATE gateway.audit_log SET action = 'tampered';
\echo :LAST_ERROR_SQLSTATE
DELETE FROM gateway.audit_log;
\echo :LAST_ERROR_SQLSTATE
TRUNCATE gateway.audit_log;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS tampered FROM gateway.audit_log WHERE action = 'tampered';
-- Rows carry who acted: the JWT subject when there is one.
INSERT INTO gateway.project_members (project_id, user_id, role)
VALUES ('c4000000-0000-4000-8000-000000000003', 'a4000000-0000-4000-8000-000000000001', 'editor');
BEGIN;
SELECT set_config('request.jwt.claims', '{"sub":"a4000000-0000-4000-8000-000000000001","role":"authenticated"}', true) IS NOT NULL AS claims_set;
SELECT api_key IS NOT NULL AS issued
  FROM gateway.api_key_issue('a4000000-0000-4000-8000-000000000001', 'c4000000-0000-4000-8000-000000000003', 'audited');
-- (The issue's own record: the worker may write verify failures of earlier suites meanwhile.)
SELECT actor_user_id, action FROM gateway.audit_log WHERE details->>'name' = 'audited' ORDER BY id DESC LIMIT 1;
ROLLBACK;
-- current_user_id() reads both Supabase claim styles, and NULL when absent.
SELECT gateway.current_user_id() IS NULL AS no_claims;
BEGIN;
SELECT set_config('request.jwt.claim.sub', 'a4000000-0000-4000-8000-000000000002', true) IS NOT NULL AS legacy_claim;
SELECT gateway.current_user_id();
ROLLBACK;
-- A sub that is not a uuid, or claims that are not a JSON object, are 28000, never a cast error
-- and never "nobody".
BEGIN;
SELECT set_config('request.jwt.claims', '{"sub":"alice"}', true) IS NOT NULL AS bad_sub;
SELECT gateway.current_user_id();
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SELECT set_config('request.jwt.claims', 'not json', true) IS NOT NULL AS bad_claims;
SELECT gateway.current_user_id();
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;

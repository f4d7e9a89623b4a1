-- Row level security, role by role: anon, authenticated users holding each project role, a
-- non-member, and service_role, against every gateway table and operation, with the grants
-- documented in docs/security.md.
BEGIN;
SELECT plan(52);

\ir include/supabase_roles.psql

-- Exactly the grants from docs/security.md, read from it at test time (scripts/doc-grants.sh).
\ir include/doc_grants.psql

-- A helper every role may call: rows affected by a statement (RLS filters silently on UPDATE/DELETE).
CREATE SCHEMA rls_tap;
GRANT USAGE ON SCHEMA rls_tap TO PUBLIC;
CREATE FUNCTION rls_tap.affected(statement text) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE n integer;
BEGIN
  EXECUTE statement;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END $$;
CREATE FUNCTION rls_tap.claims(sub text) RETURNS void LANGUAGE sql AS $$
  SELECT set_config('request.jwt.claims', CASE WHEN sub IS NULL THEN '' ELSE json_build_object('sub', sub)::text END, true)
$$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA rls_tap TO PUBLIC;

-- Project P has one member per role; project Q only its owner.
INSERT INTO gateway.project_members (project_id, user_id, role) VALUES
  ('cc000000-0000-4000-8000-000000000001', 'aa000000-0000-4000-8000-000000000001', 'owner'),
  ('cc000000-0000-4000-8000-000000000001', 'aa000000-0000-4000-8000-000000000002', 'admin'),
  ('cc000000-0000-4000-8000-000000000001', 'aa000000-0000-4000-8000-000000000003', 'editor'),
  ('cc000000-0000-4000-8000-000000000001', 'aa000000-0000-4000-8000-000000000004', 'viewer'),
  ('cc000000-0000-4000-8000-000000000002', 'aa000000-0000-4000-8000-000000000006', 'owner');
INSERT INTO gateway.connectors (id, project_id, name, connector_type) VALUES
  ('ee000000-0000-4000-8000-000000000001', 'cc000000-0000-4000-8000-000000000001', 'p-conn', 'http'),
  ('ee000000-0000-4000-8000-000000000002', 'cc000000-0000-4000-8000-000000000002', 'q-conn', 'http');
SELECT gateway.connector_set_credentials('ee000000-0000-4000-8000-000000000001', '{"token": "p-secret"}');
SELECT gateway.connector_set_credentials('ee000000-0000-4000-8000-000000000002', '{"token": "q-secret"}');
SELECT count(*) FROM gateway.api_key_issue('aa000000-0000-4000-8000-000000000003', 'cc000000-0000-4000-8000-000000000001', 'rls-editor-key');
SELECT count(*) FROM gateway.api_key_issue('aa000000-0000-4000-8000-000000000006', 'cc000000-0000-4000-8000-000000000002', 'rls-q-key');

\set P '''cc000000-0000-4000-8000-000000000001'''
\set Q '''cc000000-0000-4000-8000-000000000002'''
\set PCONN '''ee000000-0000-4000-8000-000000000001'''
\set QCONN '''ee000000-0000-4000-8000-000000000002'''

-- anon: nothing at all.
SET LOCAL ROLE anon;
SELECT throws_ok('SELECT * FROM gateway.connectors', '42501', NULL, 'anon: connectors');
SELECT throws_ok('SELECT * FROM gateway.project_members', '42501', NULL, 'anon: project_members');
SELECT throws_ok('SELECT * FROM gateway.audit_log', '42501', NULL, 'anon: audit_log');
SELECT throws_ok('SELECT id FROM gateway.api_keys', '42501', NULL, 'anon: api_keys');
SELECT throws_ok('SELECT * FROM gateway.encryption_keys', '42501', NULL, 'anon: encryption_keys');
RESET ROLE;

-- viewer of P: reads P's metadata, changes nothing, never sees secrets.
SET LOCAL ROLE authenticated;
SELECT rls_tap.claims('aa000000-0000-4000-8000-000000000004');
SELECT is((SELECT count(*)::int FROM gateway.connectors), 1, 'viewer: sees only P''s connector');
SELECT throws_ok(format($$INSERT INTO gateway.connectors (project_id, name, connector_type) VALUES (%L, 'v', 'http')$$, :P),
                 '42501', NULL, 'viewer: cannot add a connector');
SELECT is(rls_tap.affected(format($$UPDATE gateway.connectors SET config = '{"x":1}' WHERE id = %L$$, :PCONN)), 0, 'viewer: cannot change a connector');
SELECT is(rls_tap.affected(format('DELETE FROM gateway.connectors WHERE id = %L', :PCONN)), 0, 'viewer: cannot delete a connector');
SELECT is((SELECT count(*)::int FROM gateway.project_members), 4, 'viewer: sees P''s members');
SELECT throws_ok(format($$INSERT INTO gateway.project_members VALUES (%L, 'aa000000-0000-4000-8000-000000000009', 'viewer')$$, :P),
                 '42501', NULL, 'viewer: cannot add members');
SELECT is((SELECT count(*)::int FROM gateway.audit_log), 0, 'viewer: reads no audit records');
SELECT throws_ok('SELECT * FROM gateway.encryption_keys', '42501', NULL, 'viewer: no encryption key metadata');
SELECT throws_ok('SELECT encrypted_credentials FROM gateway.connectors', '42501', NULL, 'viewer: no ciphertext column');
SELECT throws_ok(format('SELECT gateway.connector_credentials(%L)', :PCONN), '42501', NULL, 'viewer: cannot decrypt');
SELECT is((SELECT count(*)::int FROM gateway.api_keys), 0, 'viewer: sees no one else''s keys');

-- editor of P: manages P's connectors and reads their credentials, nothing in Q.
SELECT rls_tap.claims('aa000000-0000-4000-8000-000000000003');
SELECT is((SELECT count(*)::int FROM gateway.connectors), 1, 'editor: sees only P''s connector');
SELECT lives_ok(format($$INSERT INTO gateway.connectors (project_id, name, connector_type) VALUES (%L, 'e', 'http')$$, :P), 'editor: adds a connector to P');
SELECT throws_ok(format($$INSERT INTO gateway.connectors (project_id, name, connector_type) VALUES (%L, 'e', 'http')$$, :Q),
                 '42501', NULL, 'editor: cannot add a connector to Q');
SELECT is(rls_tap.affected(format($$UPDATE gateway.connectors SET config = '{"x":1}' WHERE id = %L$$, :PCONN)), 1, 'editor: changes P''s connector');
SELECT is(rls_tap.affected(format($$UPDATE gateway.connectors SET config = '{"x":1}' WHERE id = %L$$, :QCONN)), 0, 'editor: cannot change Q''s connector');
SELECT is(gateway.connector_credentials(:PCONN) ->> 'token', 'p-secret', 'editor: decrypts P''s credentials');
SELECT throws_ok(format('SELECT gateway.connector_credentials(%L)', :QCONN), '42501', NULL, 'editor: cannot decrypt Q''s');
SELECT throws_ok(format($$INSERT INTO gateway.project_members VALUES (%L, 'aa000000-0000-4000-8000-000000000009', 'viewer')$$, :P),
                 '42501', NULL, 'editor: cannot add members');
SELECT is((SELECT count(*)::int FROM gateway.audit_log), 0, 'editor: reads no audit records');
SELECT is((SELECT count(*)::int FROM gateway.api_keys), 1, 'editor: sees their own key');

-- admin of P: manages members (not owners), reads P's audit log and keys.
SELECT rls_tap.claims('aa000000-0000-4000-8000-000000000002');
SELECT lives_ok(format($$INSERT INTO gateway.project_members VALUES (%L, 'aa000000-0000-4000-8000-000000000009', 'editor')$$, :P), 'admin: adds an editor');
SELECT throws_ok(format($$INSERT INTO gateway.project_members VALUES (%L, 'aa000000-0000-4000-8000-000000000010', 'owner')$$, :P),
                 '42501', NULL, 'admin: cannot make owners');
SELECT ok((SELECT count(*) FROM gateway.audit_log) > 0, 'admin: reads P''s audit records');
SELECT is((SELECT count(*)::int FROM gateway.audit_log WHERE project_id IS DISTINCT FROM :P), 0, 'admin: and only P''s');
SELECT is((SELECT count(*)::int FROM gateway.api_keys), 1, 'admin: sees the keys of P');
SELECT is(rls_tap.affected(format($$UPDATE gateway.project_members SET role = 'editor' WHERE project_id = %L AND user_id = 'aa000000-0000-4000-8000-000000000004'$$, :P)), 1, 'admin: changes a role');
SELECT is(rls_tap.affected(format('DELETE FROM gateway.project_members WHERE project_id = %L', :Q)), 0, 'admin: cannot touch Q''s members');

-- owner of P: may make owners.
SELECT rls_tap.claims('aa000000-0000-4000-8000-000000000001');
SELECT lives_ok(format($$INSERT INTO gateway.project_members VALUES (%L, 'aa000000-0000-4000-8000-000000000010', 'owner')$$, :P), 'owner: makes an owner');
SELECT ok((SELECT count(*) FROM gateway.audit_log) > 0, 'owner: reads P''s audit records');

-- a signed-in user in no project sees nothing.
SELECT rls_tap.claims('aa000000-0000-4000-8000-000000000005');
SELECT is((SELECT count(*)::int FROM gateway.connectors), 0, 'outsider: no connectors');
SELECT is((SELECT count(*)::int FROM gateway.project_members), 0, 'outsider: no members');
SELECT is((SELECT count(*)::int FROM gateway.audit_log), 0, 'outsider: no audit records');
SELECT is(gateway.has_project_role(:P), false, 'outsider: has no role in P');
SELECT throws_ok(format('SELECT gateway.connector_credentials(%L)', :PCONN), '42501', NULL, 'outsider: cannot decrypt');

-- owner of Q sees Q only.
SELECT rls_tap.claims('aa000000-0000-4000-8000-000000000006');
SELECT results_eq('SELECT name FROM gateway.connectors', ARRAY['q-conn'], 'Q owner: sees only Q''s connector');
SELECT is((SELECT count(*)::int FROM gateway.api_keys), 1, 'Q owner: sees Q''s key only');
SELECT rls_tap.claims(NULL);
RESET ROLE;

-- service_role (BYPASSRLS, no JWT): the trusted server side sees everything.
SET LOCAL ROLE service_role;
SELECT ok((SELECT count(*) FROM gateway.connectors) >= 3, 'service_role: every connector');
SELECT ok((SELECT count(*) FROM gateway.project_members) >= 5, 'service_role: every member');
SELECT ok((SELECT count(*) FROM gateway.audit_log) > 0, 'service_role: the audit log');
SELECT lives_ok('SELECT * FROM gateway.encryption_keys', 'service_role: encryption key metadata');
SELECT is(gateway.connector_credentials(:QCONN) ->> 'token', 'q-secret', 'service_role: decrypts');
SELECT throws_ok('UPDATE gateway.audit_log SET action = action', '42501', NULL, 'service_role: cannot change the audit log');
RESET ROLE;

-- Not even the owner can rewrite history; every table has forced RLS.
SELECT throws_ok('UPDATE gateway.audit_log SET action = action', '42501', NULL, 'superuser: UPDATE of the audit log refused');
SELECT throws_ok('DELETE FROM gateway.audit_log', '42501', NULL, 'superuser: DELETE refused');
SELECT throws_ok('TRUNCATE gateway.audit_log', '42501', NULL, 'superuser: TRUNCATE refused');
SELECT is((SELECT count(*)::int FROM pg_class WHERE relnamespace = 'gateway'::regnamespace AND relkind = 'r'
             AND NOT (relrowsecurity AND relforcerowsecurity)), 0, 'every gateway table has forced RLS');

SELECT * FROM finish();
ROLLBACK;

-- The grants documented in docs/security.md, applied to Supabase's roles, give each role what it
-- should have and nothing more.
BEGIN;
SELECT plan(18);

\ir include/supabase_roles.psql

-- Exactly the grants from docs/security.md, read from it at test time (scripts/doc-grants.sh).
\ir include/doc_grants.psql
-- Keys are issued to editors (and above) of their project.
INSERT INTO gateway.project_members (project_id, user_id, role)
VALUES ('c7000000-0000-4000-8000-000000000001', 'a7000000-0000-4000-8000-00000000000a', 'editor'),
       ('c7000000-0000-4000-8000-000000000001', 'a7000000-0000-4000-8000-00000000000b', 'editor');

CREATE TEMP TABLE issued AS
SELECT 'alice'::text AS who, * FROM gateway.api_key_issue(
  'a7000000-0000-4000-8000-00000000000a', 'c7000000-0000-4000-8000-000000000001', 'alice-key');
INSERT INTO issued SELECT 'bob', * FROM gateway.api_key_issue(
  'a7000000-0000-4000-8000-00000000000b', 'c7000000-0000-4000-8000-000000000001', 'bob-key');
GRANT SELECT ON issued TO anon, authenticated, service_role;

-- anon: nothing.
SET LOCAL ROLE anon;
SELECT throws_ok($$SELECT * FROM gateway.api_keys_list$$, '42501', NULL, 'anon cannot list keys');
SELECT throws_ok($$SELECT * FROM gateway.api_key_issue('a7000000-0000-4000-8000-00000000000a', 'c7000000-0000-4000-8000-000000000001', 'x')$$,
                 '42501', NULL, 'anon cannot issue keys');
SELECT throws_ok($$SELECT * FROM gateway.api_key_verify('x')$$, '42501', NULL, 'anon cannot call verify');
RESET ROLE;

-- authenticated as alice: her keys only, never a hash, only her own key operations.
SET LOCAL ROLE authenticated;
SET LOCAL request.jwt.claims = '{"sub":"a7000000-0000-4000-8000-00000000000a","role":"authenticated"}';
SELECT results_eq($$SELECT name FROM gateway.api_keys_list WHERE name IN ('alice-key', 'bob-key')$$,
                  ARRAY['alice-key'], 'alice lists her own keys only');
SELECT is((SELECT count(*)::int FROM gateway.api_keys WHERE name = 'bob-key'), 0, 'bob''s row is invisible to alice');
SELECT throws_ok($$SELECT key_hash FROM gateway.api_keys$$, '42501', NULL, 'alice cannot read hashes');
SELECT throws_ok($$UPDATE gateway.api_keys SET is_active = true$$, '42501', NULL, 'alice cannot update key rows directly');
SELECT throws_ok($$DELETE FROM gateway.api_keys$$, '42501', NULL, 'alice cannot delete key rows directly');
SELECT is((SELECT count(*)::int FROM gateway.audit_log), 0, 'alice, an editor, reads no audit record (admins of the project do)');
SELECT lives_ok($$SELECT * FROM gateway.api_key_issue('a7000000-0000-4000-8000-00000000000a', 'c7000000-0000-4000-8000-000000000001', 'alice-2')$$,
                'alice issues a key for herself');
SELECT throws_ok($$SELECT * FROM gateway.api_key_issue('a7000000-0000-4000-8000-00000000000b', 'c7000000-0000-4000-8000-000000000001', 'for-bob')$$,
                 '42501', NULL, 'alice cannot issue a key for bob');
SELECT throws_ok(format('SELECT gateway.api_key_revoke(%L)', (SELECT key_id FROM issued WHERE who = 'bob')),
                 '42501', NULL, 'alice cannot revoke bob''s key');
SELECT lives_ok(format('SELECT gateway.api_key_revoke(%L)', (SELECT key_id FROM issued WHERE who = 'alice')),
                'alice revokes her own key');
SELECT throws_ok($$SELECT * FROM gateway.api_key_verify('x')$$, '42501', NULL,
                 'verify is for the server, not for browsers');
RESET ROLE;
SET LOCAL request.jwt.claims = '';

-- service_role (BYPASSRLS): the server side sees and verifies everything.
SET LOCAL ROLE service_role;
SELECT is((SELECT count(*)::int FROM gateway.api_keys_list WHERE name IN ('alice-key', 'bob-key')), 2,
          'service_role lists every key');
SELECT is((SELECT reason FROM issued, gateway.api_key_verify(issued.api_key) WHERE who = 'bob'), 'ok',
          'service_role verifies keys');
SELECT is((SELECT reason FROM issued, gateway.api_key_verify(issued.api_key) WHERE who = 'alice'), 'revoked',
          'alice''s revocation is effective at once');
SELECT throws_ok($$SELECT key_hash FROM gateway.api_keys$$, '42501', NULL, 'not even service_role reads hashes');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;

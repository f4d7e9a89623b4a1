-- gateway.master_key_status: trusted roles read it, application roles do not, even when someone
-- granted it to them; it counts usable keys by the master key their hash is under.
BEGIN;
SELECT plan(11);

\ir include/supabase_roles.psql
\ir include/doc_grants.psql

INSERT INTO gateway.project_members (project_id, user_id, role)
VALUES ('cd000000-0000-4000-8000-000000000001', 'ad000000-0000-4000-8000-00000000000a', 'editor');
CREATE TEMP TABLE issued AS
SELECT g, k.* FROM generate_series(1, 4) AS g,
       LATERAL gateway.api_key_issue('ad000000-0000-4000-8000-00000000000a',
                                     'cd000000-0000-4000-8000-000000000001', 'mks-' || g) AS k;
-- 1: on the current master key; 2: unmarked (issued before 0.6.0); 3: under some other master
-- key; 4: revoked (counted nowhere).
UPDATE gateway.api_keys SET master_fingerprint = NULL WHERE id = (SELECT key_id FROM issued WHERE g = 2);
UPDATE gateway.api_keys SET master_fingerprint = '00000000deadbeef' WHERE id = (SELECT key_id FROM issued WHERE g = 3);
SELECT gateway.api_key_revoke((SELECT key_id FROM issued WHERE g = 4));
CREATE TEMP TABLE before AS SELECT * FROM gateway.master_key_status;
GRANT SELECT ON issued TO anon, authenticated, service_role;

SELECT is((SELECT master_fingerprint FROM gateway.api_keys WHERE id = (SELECT key_id FROM issued WHERE g = 1)),
          gateway._master_key_fingerprint(), 'a new key records the master key its hash was made under');
SELECT throws_ok($$UPDATE gateway.api_keys SET master_fingerprint = 'not hex' WHERE name = 'mks-1'$$,
                 '23514', NULL, 'the marker is a fingerprint (16 hex characters) or NULL');
SELECT results_eq(
  $$SELECT current_fingerprint = gateway._master_key_fingerprint(), previous_fingerprint IS NULL,
           previous_key_removable FROM gateway.master_key_status$$,
  $$VALUES (true, true, false)$$, 'the superuser reads it: current master key, no previous one');

SELECT ok((SELECT api_keys_unmarked >= 1 AND api_keys_other >= 1 AND api_keys_previous = 0 FROM before),
          'unmarked keys and keys under an unknown master key are counted apart');

-- The unmarked key verifies under the current master key; an unknown master key's does not.
SELECT is((SELECT reason FROM gateway.api_key_verify((SELECT api_key FROM issued WHERE g = 2))), 'ok',
          'an unmarked key verifies under the current master key');
SELECT is((SELECT reason FROM gateway.api_key_verify((SELECT api_key FROM issued WHERE g = 3))), 'unknown',
          'a key under a master key the server does not have is unknown');

SET LOCAL ROLE service_role;
SELECT lives_ok($$SELECT * FROM gateway.master_key_status$$, 'service_role reads it with the documented grant');
RESET ROLE;

SET LOCAL ROLE authenticated;
SET LOCAL request.jwt.claims = '{"sub":"ad000000-0000-4000-8000-00000000000a","role":"authenticated"}';
SELECT throws_ok($$SELECT * FROM gateway.master_key_status$$, '42501', NULL, 'authenticated cannot read it');
RESET ROLE;
SET LOCAL ROLE anon;
SELECT throws_ok($$SELECT * FROM gateway.master_key_status$$, '42501', NULL, 'anon cannot read it');
RESET ROLE;

-- Granted by mistake (view and function), it still refuses: the check is on the caller, not on the grant.
GRANT SELECT ON gateway.master_key_status TO authenticated;
GRANT EXECUTE ON FUNCTION gateway._master_key_status() TO authenticated;
SET LOCAL ROLE authenticated;
SELECT throws_ok($$SELECT * FROM gateway.master_key_status$$, '42501',
                 'permission denied for gateway.master_key_status', 'a grant to authenticated does not open it');
SELECT throws_ok($$SELECT gateway._previous_master_key_fingerprint()$$, '42501', NULL,
                 'the previous master key''s fingerprint is not for application roles');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;

-- api_key_issue: the key is returned once, only its hash is kept; bad input changes nothing.
\set SHOW_CONTEXT never
\ir helpers/app_role.psql
\set alice '''a1000000-0000-4000-8000-000000000001'''
\set bob   '''b1000000-0000-4000-8000-000000000002'''
\set proj  '''c1000000-0000-4000-8000-000000000003'''
-- Keys are issued to editors (and above) of their project.
INSERT INTO gateway.project_members (project_id, user_id, role) VALUES (:proj, :alice, 'editor'), (:proj, :bob, 'owner');
INSERT INTO gateway.service_interfaces (id, project_id, workflow_id, name, interface_type, callable_name)
VALUES ('e1000000-0000-4000-8000-000000000004', :proj, gen_random_uuid(), 'issued', 'signal', 'issued');
INSERT INTO gateway.public_interfaces (id, service_interface_id, project_id)
VALUES ('d1000000-0000-4000-8000-000000000004', 'e1000000-0000-4000-8000-000000000004', :proj);

SELECT key_id AS k1, api_key AS s1
  FROM gateway.api_key_issue(:alice, :proj, 'production', rate_limit_per_minute => 100) \gset
SELECT :'s1' ~ '^gw_[0-9A-Za-z]{12}_[0-9A-Za-z]{49}$' AS well_formed, length(:'s1') AS length;

-- The row holds the public prefix and a 32-byte hash, never the secret part.
SELECT name, key_prefix = substr(:'s1', 4, 12) AS prefix_matches, length(key_hash) AS hash_bytes,
       hash_version, is_active, revoked_at, expires_at, rate_limit_per_minute, last_used_at
  FROM gateway.api_keys WHERE id = :'k1';
SELECT count(*) AS rows_containing_secret
  FROM (SELECT k::text AS t FROM gateway.api_keys k UNION ALL SELECT a::text FROM gateway.audit_log a) s
 WHERE t LIKE '%' || substr(:'s1', 17) || '%';

-- The listing has no hash column and a status.
SELECT name, status, key_prefix = substr(:'s1', 4, 12) AS prefix_shown
  FROM gateway.api_keys_list WHERE id = :'k1';
SELECT count(*) AS hash_columns FROM information_schema.columns
 WHERE table_schema = 'gateway' AND table_name = 'api_keys_list' AND column_name LIKE '%hash%';

-- Issuing is audited, without the key.
SELECT action, object_type, project_id = :proj AS project, subject_user_id = :alice AS owner, details
  FROM gateway.audit_log WHERE object_id = :'k1';

-- Names are unique per user, not across users.
SELECT api_key IS NOT NULL AS issued FROM gateway.api_key_issue(:bob, :proj, 'production');
SELECT * FROM gateway.api_key_issue(:alice, :proj, 'production');
\echo :LAST_ERROR_SQLSTATE

-- Bound to an interface, with an expiry: both kept.
SELECT key_id AS k2 FROM gateway.api_key_issue(:alice, :proj, 'bound',
    public_interface_id => 'd1000000-0000-4000-8000-000000000004',
    expires_at => now() + interval '30 days') \gset
SELECT public_interface_id, expires_at > now() AS expires_later FROM gateway.api_keys WHERE id = :'k2';

-- Bad input: a clear error, a SQLSTATE, nothing written.
SELECT count(*) AS keys_before FROM gateway.api_keys \gset
SELECT * FROM gateway.api_key_issue(NULL, :proj, 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM gateway.api_key_issue(:alice, NULL, 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM gateway.api_key_issue(:alice, :proj, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM gateway.api_key_issue(:alice, :proj, '   ');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM gateway.api_key_issue(:alice, :proj, repeat('n', 10 * 1024 * 1024));
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM gateway.api_key_issue(:alice, :proj, 'past', expires_at => '2000-01-01');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM gateway.api_key_issue(:alice, :proj, 'zero', rate_limit_per_minute => 0);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM gateway.api_key_issue(:alice, :proj, 'badtype', rate_limit_per_minute => 'many');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM gateway.api_key_issue('not-a-uuid', :proj, 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) = :keys_before AS nothing_written FROM gateway.api_keys;

-- A caller authenticated as another user (Supabase JWT claims) cannot issue for alice.
BEGIN;
SET LOCAL ROLE regress_gw_user;
SELECT set_config('request.jwt.claims', json_build_object('sub', :bob)::text, true) IS NOT NULL AS as_bob;
SELECT * FROM gateway.api_key_issue(:alice, :proj, 'stolen');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL ROLE regress_gw_user;
SELECT set_config('request.jwt.claims', json_build_object('sub', :alice)::text, true) IS NOT NULL AS as_alice;
SELECT api_key IS NOT NULL AS issued FROM gateway.api_key_issue(:alice, :proj, 'own');
ROLLBACK;

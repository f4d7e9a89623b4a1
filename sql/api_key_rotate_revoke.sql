-- api_key_revoke and api_key_rotate: effects, inheritance, audit, and errors.
\set SHOW_CONTEXT never
\ir helpers/app_role.psql
\set dave '''a3000000-0000-4000-8000-000000000001'''
\set erin '''b3000000-0000-4000-8000-000000000002'''
\set proj '''c3000000-0000-4000-8000-000000000003'''
\set ifa  '''d3000000-0000-4000-8000-00000000000a'''
\ir helpers/fails.psql
INSERT INTO gateway.project_members (project_id, user_id, role) VALUES (:proj, :dave, 'editor'), (:proj, :erin, 'editor');
INSERT INTO gateway.service_interfaces (id, project_id, workflow_id, name, interface_type, callable_name)
VALUES ('e3000000-0000-4000-8000-00000000000a', :proj, gen_random_uuid(), 'rotated', 'signal', 'rotated');
INSERT INTO gateway.public_interfaces (id, service_interface_id, project_id)
VALUES (:ifa, 'e3000000-0000-4000-8000-00000000000a', :proj);

SELECT key_id AS old_id, api_key AS old_key FROM gateway.api_key_issue(:dave, :proj, 'ci',
    public_interface_id => :ifa, expires_at => now() + interval '7 days',
    rate_limit_per_minute => 50) \gset

-- Rotation returns a new key once; both work during the grace period.
SELECT new_key_id AS new_id, api_key AS new_key FROM gateway.api_key_rotate(:'old_id', interval '1 hour') \gset
SELECT :'new_key' <> :'old_key' AS different_key, :'new_id' <> :'old_id' AS different_id;
SELECT reason FROM gateway.api_key_verify(:'old_key', :ifa);
SELECT reason FROM gateway.api_key_verify(:'new_key', :ifa);

-- The successor inherits every setting, expiry included; the old key points at it.
SELECT n.name = o.name AS same_name, n.user_id = o.user_id AS same_owner,
       n.project_id = o.project_id AS same_project,
       n.public_interface_id = o.public_interface_id AS same_interface,
       n.expires_at = o.expires_at AS same_expiry,
       n.rate_limit_per_minute = o.rate_limit_per_minute AS same_limit,
       n.rotated_from = o.id AS linked_back, o.replaced_by = n.id AS linked_forward,
       o.revoked_at BETWEEN now() + interval '59 minutes' AND now() + interval '61 minutes' AS grace_ends
  FROM gateway.api_keys n JOIN gateway.api_keys o ON o.id = :'old_id' WHERE n.id = :'new_id';
SELECT id = :'old_id' AS is_old, status FROM gateway.api_keys_list
 WHERE id IN (:'old_id', :'new_id') ORDER BY created_at;

-- When the grace period is over the old key is revoked.
UPDATE gateway.api_keys SET revoked_at = now() - interval '1 second' WHERE id = :'old_id';
SELECT reason FROM gateway.api_key_verify(:'old_key', :ifa);
SELECT reason FROM gateway.api_key_verify(:'new_key', :ifa);

-- A key rotates once; its successor rotates on.
SELECT pg_temp.fails(format('SELECT gateway.api_key_rotate(%L)', :'old_id'));
SELECT new_key_id AS third_id, api_key AS third_key FROM gateway.api_key_rotate(:'new_id', interval '0') \gset
SELECT reason FROM gateway.api_key_verify(:'new_key', :ifa);
SELECT reason FROM gateway.api_key_verify(:'third_key', :ifa);

-- Rotation never extends a trial key's life.
SELECT key_id AS trial_id FROM gateway.api_key_issue(:dave, :proj, 'trial', expires_at => now() + interval '1 day') \gset
SELECT new_key_id AS trial_successor FROM gateway.api_key_rotate(:'trial_id') \gset
SELECT t.expires_at = n.expires_at AS expiry_kept
  FROM gateway.api_keys n JOIN gateway.api_keys t ON t.id = :'trial_id' WHERE n.id = :'trial_successor';
SELECT pg_temp.fails(format('SELECT gateway.api_key_rotate(%L)', :'trial_id'));

-- Revocation: immediate, idempotent, and it frees the name.
SELECT key_id AS rk, api_key AS rs FROM gateway.api_key_issue(:dave, :proj, 'temp') \gset
SELECT gateway.api_key_revoke(:'rk') AS revoked;
SELECT gateway.api_key_revoke(:'rk') AS revoked_again;
SELECT reason FROM gateway.api_key_verify(:'rs');
SELECT api_key IS NOT NULL AS name_reusable FROM gateway.api_key_issue(:dave, :proj, 'temp');
SELECT pg_temp.fails(format('SELECT gateway.api_key_rotate(%L)', :'rk'));

-- Every change is audited, and never with a key.
SELECT action, details ? 'name' AS has_name
  FROM gateway.audit_log WHERE object_id IN (:'old_id', :'new_id', :'rk')
   AND action <> 'api_key.verify_failed' ORDER BY id;
SELECT count(*) AS secrets_in_audit FROM gateway.audit_log a
 WHERE a::text LIKE '%' || substr(:'new_key', 17) || '%' OR a::text LIKE '%' || substr(:'old_key', 17) || '%';

-- Errors: unknown id, NULL, negative grace, another user's key; nothing changes.
SELECT count(*) AS audit_before FROM gateway.audit_log \gset
SELECT gateway.api_key_revoke('00000000-0000-4000-8000-000000000000');
\echo :LAST_ERROR_SQLSTATE
SELECT gateway.api_key_revoke(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM gateway.api_key_rotate(:'third_id', interval '-1 hour');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM gateway.api_key_rotate(:'third_id', NULL);
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL ROLE regress_gw_user;
SELECT set_config('request.jwt.claim.sub', :erin, true) IS NOT NULL AS as_erin;
SELECT pg_temp.fails(format('SELECT gateway.api_key_revoke(%L)', :'third_id'));
ROLLBACK;
SELECT count(*) = :audit_before AS nothing_audited FROM gateway.audit_log;
SELECT reason FROM gateway.api_key_verify(:'third_key', :ifa);

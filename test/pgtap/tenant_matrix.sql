-- The tenant matrix: every SQL function and table of the product, tried by every kind of caller,
-- against a project of theirs and against another, with the grants docs/security.md shows.
-- docs/security.md ("Tenant model") is this table in words.
--
-- Callers (columns, in this order):
--   anon       Supabase's anon role, no JWT
--   outsider   authenticated, a user who is a member of no project
--   viewer, editor, admin, owner   authenticated members of project P with that role
--   owner_q    authenticated, the owner of project Q (and nothing in P)
--   nosub      authenticated with claims that carry no sub
--   service    service_role (BYPASSRLS, no JWT): trusted server code
-- Rows: an action on P's objects, then the same action on Q's objects (for P's members Q is
-- "another project"; for owner_q it is their own).
-- Outcomes: ok (ran and touched or returned a row), none (ran, RLS left no row), or the SQLSTATE.
-- Every attempt runs in a subtransaction that is rolled back, so each one starts from the same
-- fixtures.
BEGIN;
SELECT plan(62);

\ir include/supabase_roles.psql
\ir include/doc_grants.psql

\ir include/tenant_fixtures.psql

--            action                                    target   anon  outsider viewer editor admin owner owner_q nosub service
CREATE TEMP TABLE matrix (action text, target text, stmt text, expected text);
INSERT INTO matrix VALUES
-- API keys
('issue a key for oneself', 'P', $$SELECT * FROM gateway.api_key_issue({me}, {p}, 'm2')$$,
                                          '42501 42501 42501 ok ok ok 42501 28000 ok'),
('issue a key for oneself', 'Q', $$SELECT * FROM gateway.api_key_issue({me}, {p}, 'm2')$$,
                                          '42501 42501 42501 42501 42501 42501 ok 28000 ok'),
('issue a key for the keyholder', 'P', $$SELECT * FROM gateway.api_key_issue('ab000000-0000-4000-8000-000000000003', {p}, 'm3')$$,
                                          '42501 42501 42501 ok 42501 42501 42501 28000 ok'),
('issue a key bound to the project''s interface', 'P', $$SELECT * FROM gateway.api_key_issue({me}, {p}, 'm4', {pi})$$,
                                          '42501 42501 42501 ok ok ok 42501 28000 ok'),
('issue a key bound to the other project''s interface', 'P',
   $$SELECT * FROM gateway.api_key_issue({me}, {p}, 'm5', (SELECT f.pi FROM fx f JOIN proj pr ON pr.name = f.project WHERE pr.id = {q}))$$,
                                          '42501 42501 42501 42501 42501 42501 42501 28000 42501'),
('revoke the keyholder''s key', 'P', $$SELECT gateway.api_key_revoke({k})$$,
                                          '42501 42501 42501 ok ok ok 42501 28000 ok'),
('revoke the keyholder''s key', 'Q', $$SELECT gateway.api_key_revoke({k})$$,
                                          '42501 42501 42501 42501 42501 42501 ok 28000 ok'),
('revoke a key that does not exist', 'P', $$SELECT gateway.api_key_revoke('00000000-0000-4000-8000-00000000dead')$$,
                                          '42501 42501 42501 42501 42501 42501 42501 28000 P0002'),
('rotate the keyholder''s key', 'P', $$SELECT * FROM gateway.api_key_rotate({k})$$,
                                          '42501 42501 42501 ok 42501 42501 42501 28000 ok'),
('rotate the keyholder''s key', 'Q', $$SELECT * FROM gateway.api_key_rotate({k})$$,
                                          '42501 42501 42501 42501 42501 42501 ok 28000 ok'),
('verify the key on its project''s interface', 'P', $$SELECT 1 FROM gateway.api_key_verify({kp}, {pi}) WHERE reason = 'ok'$$,
                                          '42501 42501 42501 42501 42501 42501 42501 42501 ok'),
('verify the key on the other project''s interface', 'P',
   $$SELECT 1 FROM gateway.api_key_verify({kp}, (SELECT f.pi FROM fx f JOIN proj pr ON pr.name = f.project WHERE pr.id = {q})) WHERE reason = 'ok'$$,
                                          '42501 42501 42501 42501 42501 42501 42501 42501 none'),
('list the project''s keys', 'P', $$SELECT * FROM gateway.api_keys_list WHERE project_id = {p}$$,
                                          '42501 none none ok ok ok none none ok'),
('list the project''s keys', 'Q', $$SELECT * FROM gateway.api_keys_list WHERE project_id = {p}$$,
                                          '42501 none none none none none ok none ok'),
('read key hashes', 'P', $$SELECT key_hash FROM gateway.api_keys WHERE project_id = {p}$$,
                                          '42501 42501 42501 42501 42501 42501 42501 42501 42501'),
('write a key row directly', 'P', $$UPDATE gateway.api_keys SET is_active = true WHERE project_id = {p}$$,
                                          '42501 42501 42501 42501 42501 42501 42501 42501 42501'),
-- Connectors and credentials
('read the connector''s credentials', 'P', $$SELECT gateway.connector_credentials({c})$$,
                                          '42501 42501 42501 ok ok ok 42501 28000 ok'),
('read the connector''s credentials', 'Q', $$SELECT gateway.connector_credentials({c})$$,
                                          '42501 42501 42501 42501 42501 42501 ok 28000 ok'),
('read credentials of a connector that does not exist', 'P', $$SELECT gateway.connector_credentials('00000000-0000-4000-8000-00000000dead')$$,
                                          '42501 42501 42501 42501 42501 42501 42501 28000 P0002'),
('set the connector''s credentials', 'P', $$SELECT gateway.connector_set_credentials({c}, '{"token":"x"}')$$,
                                          '42501 42501 42501 ok ok ok 42501 28000 ok'),
('set the connector''s credentials', 'Q', $$SELECT gateway.connector_set_credentials({c}, '{"token":"x"}')$$,
                                          '42501 42501 42501 42501 42501 42501 ok 28000 ok'),
('read ciphertexts', 'P', $$SELECT encrypted_credentials FROM gateway.connectors WHERE project_id = {p}$$,
                                          '42501 42501 42501 42501 42501 42501 42501 42501 42501'),
('decrypt a ciphertext directly', 'P', $$SELECT gateway.decrypt_credentials('\x00', 'x')$$,
                                          '42501 42501 42501 42501 42501 42501 42501 42501 42501'),
('list connectors', 'P', $$SELECT id FROM gateway.connectors WHERE project_id = {p}$$,
                                          '42501 none ok ok ok ok none none ok'),
('create a connector', 'P', $$INSERT INTO gateway.connectors (project_id, name, connector_type) VALUES ({p}, 'new', 'slack')$$,
                                          '42501 42501 42501 ok ok ok 42501 42501 ok'),
('create a connector', 'Q', $$INSERT INTO gateway.connectors (project_id, name, connector_type) VALUES ({p}, 'new', 'slack')$$,
                                          '42501 42501 42501 42501 42501 42501 ok 42501 ok'),
('delete the connector', 'P', $$DELETE FROM gateway.connectors WHERE id = {c}$$,
                                          '42501 none none ok ok ok none none ok'),
('move the connector to the other project', 'P', $$UPDATE gateway.connectors SET project_id = {q} WHERE id = {c}$$,
                                          '42501 42501 42501 42501 42501 42501 42501 42501 42501'),
-- Members
('list members', 'P', $$SELECT * FROM gateway.project_members WHERE project_id = {p}$$,
                                          '42501 none ok ok ok ok none none ok'),
('add a viewer', 'P', $$INSERT INTO gateway.project_members (project_id, user_id, role) VALUES ({p}, gen_random_uuid(), 'viewer')$$,
                                          '42501 42501 42501 42501 ok ok 42501 42501 ok'),
('add a viewer', 'Q', $$INSERT INTO gateway.project_members (project_id, user_id, role) VALUES ({p}, gen_random_uuid(), 'viewer')$$,
                                          '42501 42501 42501 42501 42501 42501 ok 42501 ok'),
('add an owner', 'P', $$INSERT INTO gateway.project_members (project_id, user_id, role) VALUES ({p}, gen_random_uuid(), 'owner')$$,
                                          '42501 42501 42501 42501 42501 ok 42501 42501 ok'),
('demote the owner', 'P', $$UPDATE gateway.project_members SET role = 'viewer' WHERE project_id = {p} AND user_id = {owner}$$,
                                          '42501 none none none none ok none none ok'),
('remove the owner', 'P', $$DELETE FROM gateway.project_members WHERE project_id = {p} AND user_id = {owner}$$,
                                          '42501 none none none none ok none none ok'),
('promote oneself to owner', 'P', $$UPDATE gateway.project_members SET role = 'owner' WHERE project_id = {p} AND user_id = {me}$$,
                                          '42501 none none none 42501 ok none none ok'),
('remove the viewer', 'P', $$DELETE FROM gateway.project_members WHERE project_id = {p} AND role = 'viewer'$$,
                                          '42501 none none none ok ok none none ok'),
-- Interfaces
('list service interfaces', 'P', $$SELECT * FROM gateway.service_interfaces WHERE project_id = {p}$$,
                                          '42501 none ok ok ok ok none none ok'),
('create a service interface', 'P', $$INSERT INTO gateway.service_interfaces (project_id, workflow_id, name, interface_type, callable_name) VALUES ({p}, gen_random_uuid(), 'n', 'query', 'n')$$,
                                          '42501 42501 42501 ok ok ok 42501 42501 ok'),
('create a service interface', 'Q', $$INSERT INTO gateway.service_interfaces (project_id, workflow_id, name, interface_type, callable_name) VALUES ({p}, gen_random_uuid(), 'n', 'query', 'n')$$,
                                          '42501 42501 42501 42501 42501 42501 ok 42501 ok'),
('rename a service interface', 'P', $$UPDATE gateway.service_interfaces SET display_name = 'x' WHERE id = {s}$$,
                                          '42501 none none ok ok ok none none ok'),
('publish a service interface', 'P', $$UPDATE gateway.service_interfaces SET is_public = true WHERE id = {s}$$,
                                          '42501 none none 42501 ok ok none none ok'),
('create a published service interface', 'P', $$INSERT INTO gateway.service_interfaces (project_id, workflow_id, name, interface_type, callable_name, is_public) VALUES ({p}, gen_random_uuid(), 'n', 'query', 'n', true)$$,
                                          '42501 42501 42501 42501 ok ok 42501 28000 ok'),
('unpublish a service interface', 'P', $$UPDATE gateway.service_interfaces SET is_public = false WHERE id = {sp}$$,
                                          '42501 none none 42501 ok ok none none ok'),
('delete a published service interface', 'P', $$DELETE FROM gateway.service_interfaces WHERE id = {sp}$$,
                                          '42501 none none 42501 ok ok none none ok'),
('move a service interface to the other project', 'P', $$UPDATE gateway.service_interfaces SET project_id = {q} WHERE id = {sp}$$,
                                          '42501 42501 42501 42501 42501 42501 42501 42501 42501'),
('give an interface its public face', 'P', $$INSERT INTO gateway.public_interfaces (service_interface_id, project_id) VALUES ({s}, {p})$$,
                                          '42501 42501 42501 42501 ok ok 42501 28000 ok'),
('give an interface its public face', 'Q', $$INSERT INTO gateway.public_interfaces (service_interface_id, project_id) VALUES ({s}, {p})$$,
                                          '42501 42501 42501 42501 42501 42501 ok 28000 ok'),
('face another project''s interface', 'P', $$INSERT INTO gateway.public_interfaces (service_interface_id, project_id) VALUES ({s}, {q})$$,
                                          '42501 42501 42501 42501 42501 42501 42501 28000 23503'),
('change the public face''s rate limit', 'P', $$UPDATE gateway.public_interfaces SET rate_limit_per_minute = 5 WHERE id = {pi}$$,
                                          '42501 none none none ok ok none none ok'),
('mark the public face synced', 'P', $$UPDATE gateway.public_interfaces SET sync_state = 'synced' WHERE id = {pi}$$,
                                          '42501 42501 42501 42501 42501 42501 42501 42501 42501'),
('delete the public face', 'P', $$DELETE FROM gateway.public_interfaces WHERE id = {pi}$$,
                                          '42501 none none none ok ok none none ok'),
-- Audit log, operations, key material
('read the project''s audit log', 'P', $$SELECT * FROM gateway.audit_log WHERE project_id = {p}$$,
                                          '42501 none none none ok ok none none ok'),
('read the project''s audit log', 'Q', $$SELECT * FROM gateway.audit_log WHERE project_id = {p}$$,
                                          '42501 none none none none none ok none ok'),
('change the audit log', 'P', $$UPDATE gateway.audit_log SET action = 'x' WHERE project_id = {p}$$,
                                          '42501 42501 42501 42501 42501 42501 42501 42501 42501'),
('read sync status', 'P', $$SELECT * FROM gateway.sync_status$$,
                                          '42501 42501 42501 42501 42501 42501 42501 42501 ok'),
('read the outbox', 'P', $$SELECT * FROM gateway.sync_jobs$$,
                                          '42501 42501 42501 42501 42501 42501 42501 42501 42501'),
('retry or cancel sync jobs, reconcile', 'P', $$SELECT gateway.sync_reconcile()$$,
                                          '42501 42501 42501 42501 42501 42501 42501 42501 42501'),
('rotate the encryption key', 'P', $$SELECT gateway.rotate_encryption_key()$$,
                                          '42501 42501 42501 42501 42501 42501 42501 42501 42501'),
('read encryption key metadata', 'P', $$SELECT * FROM gateway.encryption_keys$$,
                                          '42501 42501 42501 42501 42501 42501 42501 42501 ok'),
('am I a member (has_project_role)', 'P', $$SELECT 1 WHERE gateway.has_project_role({p}, 'viewer')$$,
                                          '42501 none ok ok ok ok none none none'),
('who am I (current_user_id)', 'P', $$SELECT 1 WHERE gateway.current_user_id() IS NOT NULL$$,
                                          '42501 ok ok ok ok ok ok none none');

SELECT is(pg_temp.row_of(stmt, target), expected, format('%s (%s): %s', action, target, expected))
  FROM matrix ORDER BY ctid;

-- Audit records name the role the request ran as and its sub, not the login role.
SELECT set_config('request.jwt.claims', json_build_object('sub', 'ab000000-0000-4000-8000-000000000003')::text, true);
SET LOCAL ROLE authenticated;
SELECT key_id AS audited_key FROM gateway.api_key_issue('ab000000-0000-4000-8000-000000000003', 'cb000000-0000-4000-8000-00000000000a', 'audited') \gset
RESET ROLE;
SELECT set_config('request.jwt.claims', '', true);
SELECT results_eq(
  format($$SELECT actor_role, actor_user_id FROM gateway.audit_log WHERE object_id = %L AND action = 'api_key.issued'$$, :'audited_key'),
  $$VALUES ('authenticated'::text, 'ab000000-0000-4000-8000-000000000003'::uuid)$$,
  'an audit record names the request''s role (authenticated) and its sub');

SELECT * FROM finish();
ROLLBACK;

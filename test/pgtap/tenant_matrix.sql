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
SELECT plan(97);

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
-- Project connectors (P's {pc} goes to Q's published interface and is approved; Q's {pcin} comes
-- into P and waits for consent; {pcx} joins two projects none of these callers belongs to). For
-- {pc} P's members are the source and Q's owner the target; for {pcin} the other way round.
('list the project''s connectors', 'P', $$SELECT id FROM gateway.project_connectors WHERE id = {pc}$$,
                                          '42501 none ok ok ok ok ok none ok'),
('list the connectors coming in', 'P', $$SELECT id, consent_state, sync_state FROM gateway.project_connectors WHERE id = {pcin}$$,
                                          '42501 none none none ok ok ok none ok'),
('list a connector between two other projects', 'P', $$SELECT id FROM gateway.project_connectors WHERE id = {pcx}$$,
                                          '42501 none none none none none none none ok'),
('create a connector to the other project''s interface', 'P',
   $$INSERT INTO gateway.project_connectors (source_project_id, target_project_id, target_service_id, target_interface_id, name) VALUES ({p}, {q}, {qspw}, {qsp}, 'new')$$,
                                          '42501 42501 42501 ok ok ok 42501 28000 ok'),
('create a connector to the other project''s interface', 'Q',
   $$INSERT INTO gateway.project_connectors (source_project_id, target_project_id, target_service_id, target_interface_id, name) VALUES ({p}, {q}, {qspw}, {qsp}, 'new')$$,
                                          '42501 42501 42501 42501 42501 42501 ok 28000 ok'),
('create a connector whose target ids are of two projects', 'P',
   $$INSERT INTO gateway.project_connectors (source_project_id, target_project_id, target_service_id, target_interface_id, name) VALUES ({p}, {q}, {spw}, {qsp}, 'new')$$,
                                          '42501 42501 42501 42501 42501 42501 42501 28000 23503'),
('create a connector that starts approved', 'P',
   $$INSERT INTO gateway.project_connectors (source_project_id, target_project_id, target_service_id, target_interface_id, name, consent_state) VALUES ({p}, {q}, {qspw}, {qsp}, 'new', 'approved')$$,
                                          '42501 42501 42501 42501 42501 42501 42501 42501 42501'),
('change the connector''s description', 'P', $$UPDATE gateway.project_connectors SET description = 'x' WHERE id = {pc}$$,
                                          '42501 none none ok ok ok none none ok'),
('set the connector''s auth config', 'P', $$UPDATE gateway.project_connectors SET auth_config = '{"token":"y"}' WHERE id = {pc}$$,
                                          '42501 none none ok ok ok none none ok'),
('delete the connector', 'P', $$DELETE FROM gateway.project_connectors WHERE id = {pc}$$,
                                          '42501 none none ok ok ok none none ok'),
('delete a connector coming in', 'P', $$DELETE FROM gateway.project_connectors WHERE id = {pcin}$$,
                                          '42501 none none none none none ok none ok'),
('move the connector to another target', 'P', $$UPDATE gateway.project_connectors SET target_project_id = {p}, target_interface_id = {sp}, target_service_id = {spw} WHERE id = {pc}$$,
                                          '42501 42501 42501 42501 42501 42501 42501 42501 42501'),
('write consent directly', 'P', $$UPDATE gateway.project_connectors SET consent_state = 'approved' WHERE id = {pcin}$$,
                                          '42501 42501 42501 42501 42501 42501 42501 42501 42501'),
('write the connector''s sync state', 'P', $$UPDATE gateway.project_connectors SET sync_state = 'synced' WHERE id = {pc}$$,
                                          '42501 42501 42501 42501 42501 42501 42501 42501 42501'),
('approve one''s own connector into the other project', 'P', $$SELECT gateway.connector_approve({pc})$$,
                                          '42501 42501 42501 42501 42501 42501 ok 28000 ok'),
('approve a connector coming in', 'P', $$SELECT gateway.connector_approve({pcin})$$,
                                          '42501 42501 42501 42501 ok ok 42501 28000 ok'),
('revoke consent to a connector coming in', 'P', $$SELECT gateway.connector_consent_revoke({pcin})$$,
                                          '42501 42501 42501 42501 ok ok 42501 28000 ok'),
('revoke consent to one''s own connector', 'P', $$SELECT gateway.connector_consent_revoke({pc})$$,
                                          '42501 42501 42501 42501 42501 42501 ok 28000 ok'),
('approve a connector between two other projects', 'P', $$SELECT gateway.connector_approve({pcx})$$,
                                          '42501 42501 42501 42501 42501 42501 42501 28000 ok'),
('approve a connector that does not exist', 'P', $$SELECT gateway.connector_approve('00000000-0000-4000-8000-00000000dead')$$,
                                          '42501 42501 42501 42501 42501 42501 42501 28000 P0002'),
('read the connector''s auth config', 'P', $$SELECT gateway.connector_auth_config({pc})$$,
                                          '42501 42501 42501 42501 ok ok 42501 28000 ok'),
('read the auth config of a connector coming in', 'P', $$SELECT gateway.connector_auth_config({pcin})$$,
                                          '42501 42501 42501 42501 42501 42501 ok 28000 ok'),
('read connectors'' auth config ciphertexts', 'P', $$SELECT encrypted_auth_config FROM gateway.project_connectors WHERE id = {pc}$$,
                                          '42501 42501 42501 42501 42501 42501 42501 42501 42501'),
('test the connector', 'P', $$SELECT * FROM gateway.connector_test({pc})$$,
                                          '42501 42501 42501 ok ok ok ok 28000 ok'),
('test a connector coming in', 'P', $$SELECT * FROM gateway.connector_test({pcin})$$,
                                          '42501 42501 42501 42501 ok ok ok 28000 ok'),
('test a connector between two other projects', 'P', $$SELECT * FROM gateway.connector_test({pcx})$$,
                                          '42501 42501 42501 42501 42501 42501 42501 28000 ok'),
('read the recorded Nexus endpoints', 'P', $$SELECT * FROM gateway.nexus_endpoints$$,
                                          '42501 42501 42501 42501 42501 42501 42501 42501 42501'),
('read the consent tickets', 'P', $$SELECT * FROM gateway.consent_changes$$,
                                          '42501 42501 42501 42501 42501 42501 42501 42501 42501'),
('forge a consent ticket for an incoming connector', 'P', $$INSERT INTO gateway.consent_changes VALUES ({pcin}, 'approved', NULL)$$,
                                          '42501 42501 42501 42501 42501 42501 42501 42501 42501'),
('read the project''s workers', 'P', $$SELECT * FROM gateway.project_workers WHERE project_id = {p}$$,
                                          '42501 none ok ok ok ok none none ok'),
('change the project''s workers', 'P', $$UPDATE gateway.project_workers SET task_queue = 'elsewhere' WHERE project_id = {p}$$,
                                          '42501 42501 42501 42501 42501 42501 42501 42501 ok'),
('set up the project''s workers', 'P', $$INSERT INTO gateway.project_workers (project_id, temporal_namespace, task_queue) VALUES (gen_random_uuid(), 'ns', 'q')$$,
                                          '42501 42501 42501 42501 42501 42501 42501 42501 ok'),
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
('reconcile Temporal', 'P', $$SELECT gateway.sync_reconcile('temporal')$$,
                                          '42501 42501 42501 42501 42501 42501 42501 42501 42501'),
('claim Temporal jobs as the worker does', 'P', $$SELECT * FROM gateway._sync_claim('temporal', 1, '{}')$$,
                                          '42501 42501 42501 42501 42501 42501 42501 42501 42501'),
('ask the worker for a connector test directly', 'P', $$SELECT gateway._connector_test_now({pc})$$,
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

-- Connectors: credentials stored only encrypted and bound to the row; roles decide who reads.
\set SHOW_CONTEXT never
\ir helpers/app_role.psql
\ir helpers/fails.psql
\ir helpers/wait_for.psql
\set proj '''c9000000-0000-4000-8000-000000000001'''
\set owner '''a9000000-0000-4000-8000-000000000001'''
\set editor '''a9000000-0000-4000-8000-000000000002'''
\set viewer '''a9000000-0000-4000-8000-000000000003'''
\set outsider '''a9000000-0000-4000-8000-000000000004'''

INSERT INTO gateway.project_members (project_id, user_id, role) VALUES
  (:proj, :owner, 'owner'), (:proj, :editor, 'editor'), (:proj, :viewer, 'viewer');
INSERT INTO gateway.connectors (project_id, name, connector_type, config)
VALUES (:proj, 'github', 'github', '{"org": "acme"}') RETURNING id AS gh \gset
INSERT INTO gateway.connectors (project_id, name, connector_type)
VALUES (:proj, 'slack', 'slack') RETURNING id AS sl \gset
SELECT pg_temp.fails(format($$INSERT INTO gateway.connectors (project_id, name, connector_type) VALUES (%L, 'github', 'github')$$, :proj));

SELECT gateway.connector_set_credentials(:'gh', '{"token": "ghp_regress_secret"}');
SELECT encrypted_credentials IS NOT NULL AS stored, position('ghp_regress_secret' in encode(encrypted_credentials, 'escape')) AS plaintext_position
  FROM gateway.connectors WHERE id = :'gh';
SELECT gateway.connector_credentials(:'gh');
SELECT gateway.connector_credentials(:'sl') IS NULL AS no_credentials_yet;

-- A ciphertext copied to another connector does not decrypt there.
UPDATE gateway.connectors SET encrypted_credentials =
  (SELECT encrypted_credentials FROM gateway.connectors WHERE id = :'gh') WHERE id = :'sl';
SELECT pg_temp.fails(format('SELECT gateway.connector_credentials(%L)', :'sl'));

-- Roles: has_project_role for each member; editors read credentials, viewers do not.
BEGIN;
SET LOCAL ROLE regress_gw_user;
SELECT set_config('request.jwt.claims', json_build_object('sub', :editor)::text, true) IS NOT NULL AS as_editor;
SELECT gateway.has_project_role(:proj, 'viewer') AS viewer, gateway.has_project_role(:proj, 'editor') AS editor,
       gateway.has_project_role(:proj, 'admin') AS admin;
SELECT gateway.connector_credentials(:'gh') ->> 'token' AS editor_reads;
SELECT gateway.connector_set_credentials(:'gh', '{"token": "ghp_rotated"}');
ROLLBACK;
BEGIN;
SET LOCAL ROLE regress_gw_user;
SELECT set_config('request.jwt.claims', json_build_object('sub', :viewer)::text, true) IS NOT NULL AS as_viewer;
SELECT pg_temp.fails(format('SELECT gateway.connector_credentials(%L)', :'gh'));
SELECT pg_temp.fails(format($$SELECT gateway.connector_set_credentials(%L, '{}')$$, :'gh'));
ROLLBACK;
BEGIN;
SET LOCAL ROLE regress_gw_user;
SELECT set_config('request.jwt.claims', json_build_object('sub', :outsider)::text, true) IS NOT NULL AS as_outsider;
SELECT gateway.has_project_role(:proj) AS member;
-- An outsider gets the same answer for a connector of another project and for none at all, and
-- the answer names no project.
SELECT pg_temp.fails(format('SELECT gateway.connector_credentials(%L)', :'gh'));
SELECT pg_temp.fails('SELECT gateway.connector_credentials(''00000000-0000-4000-8000-000000000000'')');
SELECT pg_temp.fails(format($$SELECT gateway.connector_set_credentials(%L, '{}')$$, :'gh'));
ROLLBACK;
-- Signed in but without a sub: no trust from a missing claim.
BEGIN;
SET LOCAL ROLE regress_gw_user;
SELECT set_config('request.jwt.claims', '{"role":"authenticated"}', true) IS NOT NULL AS no_sub;
SELECT pg_temp.fails(format('SELECT gateway.connector_credentials(%L)', :'gh'));
ROLLBACK;
SELECT pg_temp.fails(format($$SELECT gateway.has_project_role(%L, 'superhero')$$, :proj));
SELECT pg_temp.fails('SELECT gateway.connector_credentials(''00000000-0000-4000-8000-000000000000'')');

-- Everything above was audited, the editor's read too although its transaction rolled back;
-- nothing in the audit log is a secret.
SELECT pg_temp.wait_for(format($$SELECT count(*) FROM gateway.audit_log WHERE action = 'connector.credentials_decrypted' AND object_id = %L$$, :'gh'), '2') AS decryptions_audited;
SELECT actor_user_id = :editor AS by_editor, actor_role FROM gateway.audit_log
 WHERE action = 'connector.credentials_decrypted' AND object_id = :'gh' AND actor_user_id IS NOT NULL;
SELECT action, count(*) FROM gateway.audit_log
 WHERE object_id = :'gh' OR (object_type = 'project_member' AND project_id = :proj)
 GROUP BY action ORDER BY action;
SELECT count(*) AS secrets_in_audit FROM gateway.audit_log WHERE details::text LIKE '%ghp_%';

-- Leave no damaged value behind for the suites that follow.
UPDATE gateway.connectors SET encrypted_credentials = NULL WHERE id = :'sl';

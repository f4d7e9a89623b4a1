-- Attacks on the tenant boundary (the outside review of 0.3.0): each test is one attempt to cross
-- it that the tenant matrix does not cover, with the fixtures of tenant_matrix.sql.
BEGIN;
SELECT plan(16);

\ir include/supabase_roles.psql
\ir include/doc_grants.psql

\ir include/tenant_fixtures.psql

-- Fixture extras: each service interface's workflow id (test fixture, readable by all).
CREATE TEMP TABLE wf AS SELECT s.id, s.workflow_id, s.name FROM gateway.service_interfaces s;
GRANT SELECT ON wf TO PUBLIC;

-- Like attempt(), but with the caller's claims and legacy request.jwt.claim.sub given, and
-- returning SQLSTATE and message (so two answers can be compared).
CREATE FUNCTION pg_temp.attempt2(role text, claims text, legacy text, stmt text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  n bigint;
BEGIN
  BEGIN
    PERFORM set_config('request.jwt.claims', COALESCE(claims, ''), true);
    PERFORM set_config('request.jwt.claim.sub', COALESCE(legacy, ''), true);
    PERFORM set_config('role', role, true);
    EXECUTE stmt;
    GET DIAGNOSTICS n = ROW_COUNT;
    RAISE EXCEPTION USING ERRCODE = 'GWTAP', MESSAGE = n::text;
  EXCEPTION WHEN OTHERS THEN
    IF SQLSTATE = 'GWTAP' THEN
      RETURN CASE WHEN SQLERRM::bigint > 0 THEN 'ok' ELSE 'none' END;
    END IF;
    RETURN SQLSTATE;
  END;
END
$$;

-- Runs stmt as `actor` (claims from `who`) with row_security = off, keeps its effects, and
-- returns how many audit records were added.
CREATE FUNCTION pg_temp.audited_with_rls_off(actor text, stmt text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  w who;
  before bigint;
  after bigint;
BEGIN
  SELECT count(*) INTO before FROM gateway.audit_log;
  SELECT * INTO w FROM who WHERE who.actor = audited_with_rls_off.actor;
  PERFORM set_config('request.jwt.claims',
                     CASE WHEN w.uid IS NOT NULL THEN json_build_object('sub', w.uid, 'role', w.role)::text ELSE '' END, true);
  PERFORM set_config('row_security', 'off', true);
  PERFORM set_config('role', w.role, true);
  BEGIN
    EXECUTE stmt;
  EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'attack statement failed: % %', SQLSTATE, SQLERRM;
    PERFORM set_config('role', 'none', true);
    PERFORM set_config('row_security', 'on', true);
    RETURN -1;
  END;
  PERFORM set_config('role', 'none', true);
  PERFORM set_config('row_security', 'on', true);
  PERFORM set_config('request.jwt.claims', '', true);
  SELECT count(*) INTO after FROM gateway.audit_log;
  RETURN after - before;
END
$$;

-- 1-4. Audit evasion: gateway._audit() skips every record when row_security = off ("a restore"),
-- but row_security is a setting any role may change (USERSET). The SECURITY DEFINER functions run
-- as the extension owner, who bypasses RLS, so they work and write nothing to the audit log.
SAVEPOINT a1;
SELECT cmp_ok(pg_temp.audited_with_rls_off('editor',
  $$SELECT * FROM gateway.api_key_issue('ab000000-0000-4000-8000-000000000003', 'cb000000-0000-4000-8000-00000000000a', 'unaudited')$$),
  '>', 0::bigint, 'an editor with row_security = off issuing a key is still audited');
ROLLBACK TO a1;
SAVEPOINT a2;
SELECT cmp_ok(pg_temp.audited_with_rls_off('admin',
  format($$SELECT gateway.api_key_revoke(%L)$$, (SELECT k FROM fx WHERE project = 'P'))),
  '>', 0::bigint, 'an admin with row_security = off revoking a member''s key is still audited');
ROLLBACK TO a2;
SAVEPOINT a3;
SELECT cmp_ok(pg_temp.audited_with_rls_off('editor',
  format($$SELECT gateway.connector_set_credentials(%L, '{"token": "replaced"}')$$, (SELECT c FROM fx WHERE project = 'P'))),
  '>', 0::bigint, 'an editor with row_security = off replacing connector credentials is still audited');
ROLLBACK TO a3;
SAVEPOINT a4;
SELECT cmp_ok(pg_temp.audited_with_rls_off('service',
  $$DELETE FROM gateway.project_members WHERE user_id = 'ab000000-0000-4000-8000-000000000004'$$),
  '>', 0::bigint, 'service_role with row_security = off removing a member is still audited');
ROLLBACK TO a4;

-- 5-7. "Exists, not yours" vs "does not exist" through public_interfaces: its BEFORE trigger
-- looks the service interface up (as the table owner) before RLS checks the row.
SELECT is(pg_temp.attempt('outsider', format($$INSERT INTO gateway.public_interfaces (service_interface_id) VALUES (%L)$$,
                                            (SELECT s FROM fx WHERE project = 'P'))),
          pg_temp.attempt('outsider', $$INSERT INTO gateway.public_interfaces (service_interface_id) VALUES ('00000000-0000-4000-8000-00000000dead')$$),
          'an outsider gets the same answer for another project''s service interface and a missing one (public_interfaces insert)');
SELECT is(pg_temp.attempt('owner_q', format($$INSERT INTO gateway.public_interfaces (service_interface_id) VALUES (%L)$$,
                                           (SELECT s FROM fx WHERE project = 'P'))),
          pg_temp.attempt('owner_q', $$INSERT INTO gateway.public_interfaces (service_interface_id) VALUES ('00000000-0000-4000-8000-00000000dead')$$),
          'the owner of Q gets the same answer for P''s service interface and a missing one (public_interfaces insert)');
SELECT is(pg_temp.attempt('owner_q', format($$INSERT INTO gateway.public_interfaces (service_interface_id, project_id) VALUES (%L, 'cb000000-0000-4000-8000-00000000000b')$$,
                                           (SELECT sp FROM fx WHERE project = 'P'))),
          pg_temp.attempt('owner_q', format($$INSERT INTO gateway.public_interfaces (service_interface_id, project_id) VALUES (%L, 'cb000000-0000-4000-8000-00000000000b')$$,
                                           (SELECT s FROM fx WHERE project = 'P'))),
          'the owner of Q cannot tell P''s published interface from P''s unpublished one');

-- 8. UNIQUE (workflow_id, name) is global, not per project: Q learns P's interface names of a
-- workflow, and can take them first.
SELECT is(pg_temp.attempt('owner_q', format($$INSERT INTO gateway.service_interfaces (project_id, workflow_id, name, interface_type, callable_name)
                                             VALUES ('cb000000-0000-4000-8000-00000000000b', %L, 'live', 'signal', 'x')$$,
                                           (SELECT workflow_id FROM wf WHERE id = (SELECT sp FROM fx WHERE project = 'P')))),
          pg_temp.attempt('owner_q', $$INSERT INTO gateway.service_interfaces (project_id, workflow_id, name, interface_type, callable_name)
                                       VALUES ('cb000000-0000-4000-8000-00000000000b', gen_random_uuid(), 'live', 'signal', 'x')$$),
          'another project''s interface names do not collide with (or show through) Q''s');

-- 9. Publishing through INSERT ... ON CONFLICT DO UPDATE is still for admins.
SELECT is(pg_temp.attempt('editor', format($$INSERT INTO gateway.service_interfaces (project_id, workflow_id, name, interface_type, callable_name)
                                            VALUES ('cb000000-0000-4000-8000-00000000000a', %L, 'draft', 'signal', 'draft')
                                            ON CONFLICT (project_id, workflow_id, name) DO UPDATE SET is_public = true$$,
                                          (SELECT workflow_id FROM wf WHERE id = (SELECT s FROM fx WHERE project = 'P')))),
          '42501', 'an editor cannot publish through INSERT ... ON CONFLICT DO UPDATE');

-- 10. Claims that are a JSON object without a sub are the request's identity: a leftover
-- request.jwt.claim.sub (the older setting) must not fill in for it.
SELECT is(pg_temp.attempt2('authenticated', '{"role":"authenticated"}', 'ab000000-0000-4000-8000-000000000003',
                           $$SELECT * FROM gateway.api_key_issue('ab000000-0000-4000-8000-000000000003', 'cb000000-0000-4000-8000-00000000000a', 'legacy')$$),
          '28000', 'claims without a sub are not completed by request.jwt.claim.sub');
SELECT is(pg_temp.attempt2('authenticated', '{"role":"authenticated","sub":null}', 'ab000000-0000-4000-8000-000000000003',
                           $$SELECT * FROM gateway.api_key_issue('ab000000-0000-4000-8000-000000000003', 'cb000000-0000-4000-8000-00000000000a', 'legacy')$$),
          '28000', 'claims with "sub": null are not completed by request.jwt.claim.sub');

-- 11. A deeply nested claim is refused (28000), not a crash.
SELECT is(pg_temp.attempt2('authenticated', repeat('[', 200000) || repeat(']', 200000), NULL,
                           $$SELECT gateway.current_user_id()$$),
          '28000', 'a 200000-deep claim is 28000');

-- 12. Ids show through unique violations: Q's owner inserts a row of Q with P's id.
SELECT is(pg_temp.attempt('owner_q', format($$INSERT INTO gateway.service_interfaces (id, project_id, workflow_id, name, interface_type, callable_name)
                                             VALUES (%L, 'cb000000-0000-4000-8000-00000000000b', gen_random_uuid(), 'probe', 'signal', 'x')$$,
                                           (SELECT s FROM fx WHERE project = 'P'))),
          pg_temp.attempt('owner_q', $$INSERT INTO gateway.service_interfaces (id, project_id, workflow_id, name, interface_type, callable_name)
                                       VALUES ('00000000-0000-4000-8000-00000000dead', 'cb000000-0000-4000-8000-00000000000b', gen_random_uuid(), 'probe', 'signal', 'x')$$),
          'the owner of Q cannot tell an id of P''s service interface from an unused id');

-- 13. An editor retargets a published interface (what its public route runs) without an admin.
SELECT is(pg_temp.attempt('editor', format($$UPDATE gateway.service_interfaces SET workflow_id = gen_random_uuid(), callable_name = 'dropAllData' WHERE id = %L$$,
                                          (SELECT sp FROM fx WHERE project = 'P'))),
          '42501', 'an editor cannot change which workflow and callable a published interface runs');

-- 14-15. Leaving the project ends the keys: a removed (or demoted to viewer) member's key no
-- longer verifies for the project.
SAVEPOINT m1;
DELETE FROM gateway.project_members WHERE user_id = 'ab000000-0000-4000-8000-000000000003';
SELECT isnt((SELECT reason FROM gateway.api_key_verify((SELECT kp FROM fx WHERE project = 'P'), (SELECT pi FROM fx WHERE project = 'P'))),
            'ok', 'a removed member''s key does not verify on the project''s interface');
ROLLBACK TO m1;
SAVEPOINT m2;
UPDATE gateway.project_members SET role = 'viewer' WHERE user_id = 'ab000000-0000-4000-8000-000000000003';
SELECT isnt((SELECT reason FROM gateway.api_key_verify((SELECT kp FROM fx WHERE project = 'P'), (SELECT pi FROM fx WHERE project = 'P'))),
            'ok', 'a member demoted to viewer: their key does not verify on the project''s interface');
ROLLBACK TO m2;

SELECT * FROM finish();
ROLLBACK;

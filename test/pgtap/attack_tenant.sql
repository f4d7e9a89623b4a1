-- Attacks on the tenant boundary (the outside review of 0.3.0): each test is one attempt to cross
-- it that the tenant matrix does not cover, with the fixtures of tenant_matrix.sql.
BEGIN;
SELECT plan(67);

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

-- 16-26. Project connectors (0.4.0): the one way across projects, and only with the target's consent.
-- The answer an actor gets: SQLSTATE and message (ids masked), or ok/none.
CREATE FUNCTION pg_temp.answer(actor text, stmt text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  w who;
  n bigint;
BEGIN
  SELECT * INTO w FROM who WHERE who.actor = answer.actor;
  BEGIN
    PERFORM set_config('request.jwt.claims',
                       CASE WHEN w.uid IS NOT NULL THEN json_build_object('sub', w.uid, 'role', w.role)::text ELSE '' END, true);
    PERFORM set_config('role', w.role, true);
    EXECUTE stmt;
    GET DIAGNOSTICS n = ROW_COUNT;
    RAISE EXCEPTION USING ERRCODE = 'GWTAP', MESSAGE = n::text;
  EXCEPTION WHEN OTHERS THEN
    IF SQLSTATE = 'GWTAP' THEN
      RETURN CASE WHEN SQLERRM::bigint > 0 THEN 'ok' ELSE 'none' END;
    END IF;
    RETURN SQLSTATE || ' ' || regexp_replace(SQLERRM, '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}', '<id>', 'g');
  END;
END
$$;
CREATE TEMP TABLE pcx AS
  SELECT (SELECT pc FROM fx WHERE project = 'P') AS p_to_q, (SELECT pc FROM fx WHERE project = 'Q') AS q_to_p,
         (SELECT sp FROM fx WHERE project = 'Q') AS q_iface, (SELECT spw FROM fx WHERE project = 'Q') AS q_wf,
         (SELECT spw FROM fx WHERE project = 'P') AS p_wf;
GRANT SELECT ON pcx TO PUBLIC;

-- A connector whose target ids belong to different projects (Q's interface with P's workflow) is
-- refused with the same answer as ids that do not exist at all.
SELECT is(pg_temp.answer('editor', format($$INSERT INTO gateway.project_connectors (source_project_id, target_project_id, target_service_id, target_interface_id, name)
                                             VALUES ('cb000000-0000-4000-8000-00000000000a', 'cb000000-0000-4000-8000-00000000000b', %L, %L, 'mixed')$$,
                                           (SELECT p_wf FROM pcx), (SELECT q_iface FROM pcx))),
          pg_temp.answer('editor', $$INSERT INTO gateway.project_connectors (source_project_id, target_project_id, target_service_id, target_interface_id, name)
                                     VALUES ('cb000000-0000-4000-8000-00000000000a', 'cb000000-0000-4000-8000-00000000000b', gen_random_uuid(), gen_random_uuid(), 'mixed')$$),
          'a connector whose target ids belong to different projects gets the answer of ids that do not exist');
SELECT is(pg_temp.answer('editor', format($$INSERT INTO gateway.project_connectors (source_project_id, target_project_id, target_service_id, target_interface_id, name)
                                             VALUES ('cb000000-0000-4000-8000-00000000000a', 'cb000000-0000-4000-8000-00000000000b', %L, %L, 'mixed')$$,
                                           (SELECT p_wf FROM pcx), (SELECT q_iface FROM pcx))),
          '42501 permission denied for service interface <id>', 'and that answer is 42501');

-- Approving one's own connector into someone else's project: refused, and nothing changes.
SAVEPOINT c1;
SELECT is(pg_temp.answer('owner_q', format('SELECT gateway.connector_approve(%L)', (SELECT q_to_p FROM pcx))),
          '42501 permission denied for project connector <id>', 'Q''s owner cannot approve Q''s connector into P');
SELECT is((SELECT consent_state FROM gateway.project_connectors WHERE id = (SELECT q_to_p FROM pcx)), 'requested',
          'the connector into P still waits for P''s consent');
ROLLBACK TO c1;

-- Reading another project's connector, or its auth config: nothing, and one answer for "not
-- yours" and "does not exist".
SELECT is(pg_temp.answer('outsider', format('SELECT id FROM gateway.project_connectors WHERE id = %L', (SELECT p_to_q FROM pcx))),
          'none', 'an outsider sees no connector of P');
SELECT is(pg_temp.answer('owner_q', format('SELECT gateway.connector_auth_config(%L)', (SELECT p_to_q FROM pcx))),
          pg_temp.answer('owner_q', $$SELECT gateway.connector_auth_config('00000000-0000-4000-8000-00000000dead')$$),
          'the target''s owner gets the same answer for the auth config of a connector coming in and a missing one');
SELECT is(pg_temp.answer('admin', format('SELECT gateway.connector_test(%L)', 'bb000000-0000-4000-8000-00000000000c')),
          pg_temp.answer('admin', $$SELECT gateway.connector_test('00000000-0000-4000-8000-00000000dead')$$),
          'an admin of another project gets the same answer for testing a connector of R and a missing one');
-- A ciphertext copied from P's connector onto Q's does not open as Q's.
SAVEPOINT c2;
UPDATE gateway.project_connectors SET encrypted_auth_config = (SELECT encrypted_auth_config FROM gateway.project_connectors WHERE id = (SELECT p_to_q FROM pcx))
 WHERE id = (SELECT q_to_p FROM pcx);
SELECT matches(pg_temp.answer('owner_q', format('SELECT gateway.connector_auth_config(%L)', (SELECT q_to_p FROM pcx))),
               '^GW00', 'P''s sealed auth config moved onto Q''s connector does not decrypt for Q');
ROLLBACK TO c2;

-- Consent columns are not written directly: not by the target's admin, not by service_role, not
-- through INSERT ... ON CONFLICT, and not by the table's owner either (the guard trigger).
SELECT is(pg_temp.answer('admin', format($$UPDATE gateway.project_connectors SET consent_state = 'approved', consent_by = %L WHERE id = %L$$,
                                        'ab000000-0000-4000-8000-000000000004', (SELECT q_to_p FROM pcx))),
          '42501 permission denied for table project_connectors', 'the target''s admin cannot write consent columns');
SELECT is(pg_temp.answer('service', format($$UPDATE gateway.project_connectors SET consent_state = 'approved' WHERE id = %L$$, (SELECT q_to_p FROM pcx))),
          '42501 permission denied for table project_connectors', 'service_role cannot write consent columns');
SELECT is(pg_temp.answer('owner_q', format($$INSERT INTO gateway.project_connectors (source_project_id, target_project_id, target_service_id, target_interface_id, name)
                                             SELECT 'cb000000-0000-4000-8000-00000000000b', target_project_id, target_service_id, target_interface_id, 'matrix'
                                               FROM gateway.project_connectors WHERE id = %L
                                             ON CONFLICT (source_project_id, name) DO UPDATE SET consent_state = 'approved'$$, (SELECT q_to_p FROM pcx))),
          '42501 permission denied for table project_connectors', 'consent cannot be written through INSERT ... ON CONFLICT DO UPDATE');
SAVEPOINT c3;
SELECT throws_ok(format($$UPDATE gateway.project_connectors SET consent_state = 'approved' WHERE id = %L$$, (SELECT q_to_p FROM pcx)),
                 '42501', NULL, 'the table''s owner cannot write consent columns directly either');
ROLLBACK TO c3;

-- Moving a connector to another target (consent was for the old one).
SELECT is(pg_temp.answer('editor', format($$UPDATE gateway.project_connectors SET target_project_id = 'cb000000-0000-4000-8000-00000000000a',
                                            target_interface_id = %L, target_service_id = %L WHERE id = %L$$,
                                          (SELECT sp FROM fx WHERE project = 'P'), (SELECT p_wf FROM pcx), (SELECT p_to_q FROM pcx))),
          '42501 permission denied for table project_connectors', 'an editor cannot move an approved connector to another target');
SAVEPOINT c4;
SELECT throws_ok(format($$UPDATE gateway.project_connectors SET target_project_id = 'cb000000-0000-4000-8000-00000000000a',
                          target_interface_id = %L, target_service_id = %L WHERE id = %L$$,
                        (SELECT sp FROM fx WHERE project = 'P'), (SELECT p_wf FROM pcx), (SELECT p_to_q FROM pcx)),
                 '0A000', NULL, 'nobody moves a connector to another target, not even the table''s owner');
ROLLBACK TO c4;

-- The recorded Nexus endpoints: no grant, and no policy behind it if one is granted by mistake.
SAVEPOINT c5;
INSERT INTO gateway.nexus_endpoints (connector_id, endpoint_id, endpoint_version) VALUES ((SELECT p_to_q FROM pcx), 'ep', 1)
  ON CONFLICT (connector_id) DO NOTHING;  -- (the 0.5.0 fixtures record P's endpoint already)
SELECT is(pg_temp.answer('admin', 'SELECT * FROM gateway.nexus_endpoints'), '42501 permission denied for table nexus_endpoints',
          'an admin cannot read the recorded Nexus endpoints');
SELECT is(pg_temp.answer('service', 'SELECT * FROM gateway.nexus_endpoints'), '42501 permission denied for table nexus_endpoints',
          'service_role cannot read the recorded Nexus endpoints');
GRANT SELECT ON gateway.nexus_endpoints TO authenticated;
SELECT is(pg_temp.answer('admin', 'SELECT * FROM gateway.nexus_endpoints'), 'none',
          'granted by mistake, the recorded Nexus endpoints still show no row');
ROLLBACK TO c5;

-- 34-36. The consent guard must not trust a setting the caller can make. Supabase's guide to
-- custom schemas grants ALL on every table of the schema to authenticated; with that, Q's owner
-- (the source) sets gateway_internal.consent_change (any role may SET a custom setting) and
-- approves Q's own connector into P, or inserts it approved, without P's admins.
SAVEPOINT g1;
GRANT ALL ON gateway.project_connectors TO authenticated;
SELECT matches(pg_temp.answer('owner_q', format($$UPDATE gateway.project_connectors SET consent_state = 'approved', consent_by = 'ab000000-0000-4000-8000-000000000004', consent_at = now()
                                                   WHERE id = %1$L AND set_config('gateway_internal.consent_change', %1$L, true) IS NOT NULL$$,
                                                 (SELECT q_to_p FROM pcx))),
               '^42501', 'with every table granted, the source cannot approve its connector into P through gateway_internal.consent_change');
SELECT matches(pg_temp.answer('owner_q', $$INSERT INTO gateway.project_connectors (id, source_project_id, target_project_id, target_service_id, target_interface_id, name, consent_state)
                                           SELECT 'ee000000-0000-4000-8000-0000000000ee', 'cb000000-0000-4000-8000-00000000000b', 'cb000000-0000-4000-8000-00000000000a', spw, sp, 'sneaky', 'approved'
                                             FROM fx WHERE project = 'P' AND set_config('gateway_internal.consent_change', 'ee000000-0000-4000-8000-0000000000ee', true) IS NOT NULL$$),
               '^42501', 'with every table granted, the source cannot insert a connector into P already approved');
-- P's admin (who may approve) does not skip the audit record by writing the columns directly.
INSERT INTO gateway.project_members (project_id, user_id, role) VALUES ('cb000000-0000-4000-8000-00000000000b', 'ab000000-0000-4000-8000-000000000004', 'editor');
SELECT matches(pg_temp.answer('admin', format($$UPDATE gateway.project_connectors SET consent_state = 'approved', consent_by = 'ab000000-0000-4000-8000-000000000004', consent_at = now()
                                                 WHERE id = %1$L AND set_config('gateway_internal.consent_change', %1$L, true) IS NOT NULL$$,
                                               (SELECT q_to_p FROM pcx))),
               '^42501', 'with every table granted, the target''s admin does not approve without connector_approve (and its audit record)');
ROLLBACK TO g1;

-- 37-38. A connector test's result and a sync error are read by every member of the source
-- project, but the target's Temporal namespace and task queue (its project_workers row) are not
-- theirs: a passing test's detail names both.
SAVEPOINT t1;
SELECT gateway._sync_finish_connector('connector_test', (SELECT p_to_q FROM pcx), 'done', 'synced', NULL,
  '{"test_status": "ok", "test_detail": "endpoint \"e1\" targets namespace \"ns-Q\", task queue \"queue-Q\""}');
SELECT gateway._sync_finish_connector('project_connector', (SELECT p_to_q FROM pcx), 'retry', 'failed',
  'namespace ns-Q: task queue queue-Q refused', NULL);
-- (What the row holds is what P's viewers read: they are granted both columns.)
SELECT ok((SELECT test_status = 'ok' AND test_detail NOT LIKE '%ns-Q%' AND test_detail NOT LIKE '%queue-Q%'
             FROM gateway.project_connectors WHERE id = (SELECT p_to_q FROM pcx)),
          'P''s members do not read Q''s namespace or task queue in a test result');
SELECT ok((SELECT sync_error IS NOT NULL AND sync_error NOT LIKE '%ns-Q%' AND sync_error NOT LIKE '%queue-Q%'
             FROM gateway.project_connectors WHERE id = (SELECT p_to_q FROM pcx)),
          'P''s members do not read Q''s namespace or task queue in a sync error');
ROLLBACK TO t1;

-- 39. A connector test is an act on the source's row (its test columns, a call to Temporal), also
-- when the target's admin asks for it: audited in the source project, naming the caller.
SAVEPOINT t2;
SELECT set_config('request.jwt.claims', '{"sub": "ab000000-0000-4000-8000-000000000006", "role": "authenticated"}', true) \g /dev/null
SET LOCAL ROLE authenticated;
SELECT * FROM gateway.connector_test((SELECT p_to_q FROM pcx)) \g /dev/null
RESET ROLE;
SELECT is((SELECT count(*)::int FROM gateway.audit_log
            WHERE object_id = (SELECT p_to_q FROM pcx) AND action = 'project_connector.test_requested'
              AND project_id = 'cb000000-0000-4000-8000-00000000000a'
              AND actor_user_id = 'ab000000-0000-4000-8000-000000000006'), 1,
          'the target''s owner testing P''s connector leaves an audit record in P naming them');
ROLLBACK TO t2;

-- 40-64. Calls through connectors (0.5.0). P's call {call} goes through P's approved connector
-- into Q: Q (its target) and outsiders must not read, cancel or even detect it.
CREATE TEMP TABLE calls AS
  SELECT (SELECT call FROM fx WHERE project = 'P') AS p_call, (SELECT call FROM fx WHERE project = 'Q') AS q_call;
GRANT SELECT ON calls TO PUBLIC;

-- 40-43. One answer for "exists, not yours" and "does not exist" (cancel and call look the row up
-- with FOR UPDATE before they check the caller; PERFORM resets FOUND in between).
SELECT is(pg_temp.answer('outsider', format('SELECT gateway.connector_call_cancel(%L)', (SELECT p_call FROM calls))),
          pg_temp.answer('outsider', $$SELECT gateway.connector_call_cancel('00000000-0000-4000-8000-00000000dead')$$),
          'an outsider gets the same answer for cancelling P''s call and a missing one');
SELECT is(pg_temp.answer('owner_q', format('SELECT gateway.connector_call_cancel(%L)', (SELECT p_call FROM calls))),
          '42501 permission denied for connector call <id>',
          'the target''s owner cannot cancel a call coming in (42501)');
SELECT is(pg_temp.answer('owner_q', $$SELECT gateway.connector_call_cancel('00000000-0000-4000-8000-00000000dead')$$),
          '42501 permission denied for connector call <id>',
          'and gets that answer for a missing call too');
SELECT is(pg_temp.answer('owner_q', format($$SELECT gateway.connector_call(%L, '{}')$$, (SELECT p_to_q FROM pcx))),
          pg_temp.answer('owner_q', $$SELECT gateway.connector_call('00000000-0000-4000-8000-00000000dead', '{}')$$),
          'the target''s owner gets the same answer for calling through a connector coming in and a missing one');

-- 44-46. The target project sees nothing of the calls coming in: not the rows (inputs, results),
-- not the per-connector stats (a security_invoker view), not their count.
SELECT is(pg_temp.answer('owner_q', format('SELECT input, result FROM gateway.connector_calls WHERE id = %L', (SELECT p_call FROM calls))),
          'none', 'the target''s owner reads no call coming in');
SELECT is(pg_temp.answer('owner_q', format('SELECT * FROM gateway.connector_call_stats WHERE connector_id = %L', (SELECT p_to_q FROM pcx))),
          'none', 'the target''s owner reads no stats of the connector coming in');
SELECT is(pg_temp.answer('outsider', 'SELECT * FROM gateway.connector_call_stats'), 'none',
          'an outsider reads no stats at all');

-- 47-50. Writing a call's state: no grant; and with every table granted (Supabase's guide to
-- custom schemas) row level security still has no write policy, for P's own editor too.
SELECT is(pg_temp.answer('editor', format($$UPDATE gateway.connector_calls SET state = 'succeeded', finished_at = now(), result = '{"forged": true}' WHERE id = %L$$, (SELECT p_call FROM calls))),
          '42501 permission denied for table connector_calls', 'P''s editor cannot write its call''s result');
SAVEPOINT w1;
GRANT ALL ON gateway.connector_calls TO authenticated;
SELECT is(pg_temp.answer('editor', format($$UPDATE gateway.connector_calls SET state = 'succeeded', finished_at = now(), result = '{"forged": true}' WHERE id = %L$$, (SELECT p_call FROM calls))),
          'none', 'with every table granted, P''s editor still writes no call''s result');
SELECT is(pg_temp.answer('owner_q', format($$DELETE FROM gateway.connector_calls WHERE id = %L$$, (SELECT p_call FROM calls))),
          'none', 'with every table granted, the target''s owner deletes no call coming in');
SELECT matches(pg_temp.answer('editor', format($$INSERT INTO gateway.connector_calls (connector_id, source_project_id, target_project_id, service, operation, deadline)
                                                 VALUES (%L, 'cb000000-0000-4000-8000-00000000000a', 'cb000000-0000-4000-8000-00000000000b', 'anything', 'anything', now() + interval '1 hour')$$,
                                               (SELECT p_to_q FROM pcx))),
               '^42501', 'with every table granted, P''s editor cannot queue a call of its own choosing (service, operation) directly');
ROLLBACK TO w1;

-- 51-52. The worker's and the listener's functions are nobody's: not even service_role's.
SELECT is(ARRAY[pg_temp.answer('service', format($$SELECT gateway._connector_call_complete(%L, 'succeeded', '{}', NULL, NULL, NULL, NULL, NULL)$$, (SELECT p_call FROM calls))),
                pg_temp.answer('service', format($$SELECT gateway._connector_call_claim(%L)$$, (SELECT p_call FROM calls))),
                pg_temp.answer('service', $$SELECT gateway._connector_calls_record('[]')$$),
                pg_temp.answer('service', format($$SELECT gateway._connector_call_failed_attempt(%L, 'dead', 'x', 500)$$, (SELECT p_call FROM calls))),
                pg_temp.answer('service', $$SELECT * FROM gateway._sync_claim('nexus', 10, '{}')$$),
                pg_temp.answer('service', $$SELECT gateway._connector_calls_requeue()$$),
                pg_temp.answer('service', format($$SELECT gateway._connector_call_for(%L, 'viewer')$$, (SELECT p_call FROM calls))),
                pg_temp.answer('service', format($$SELECT gateway._callback_token(%L)$$, (SELECT p_call FROM calls)))],
          ARRAY['42501 permission denied for function _connector_call_complete', '42501 permission denied for function _connector_call_claim',
                '42501 permission denied for function _connector_calls_record', '42501 permission denied for function _connector_call_failed_attempt',
                '42501 permission denied for function _sync_claim', '42501 permission denied for function _connector_calls_requeue',
                '42501 permission denied for function _connector_call_for', '42501 permission denied for function _callback_token'],
          'service_role runs none of the worker''s and listener''s call functions');
SELECT is(ARRAY[pg_temp.answer('editor', format($$SELECT gateway._connector_call_complete(%L, 'succeeded', '{}', NULL, NULL, NULL, NULL, NULL)$$, (SELECT p_call FROM calls))),
                pg_temp.answer('editor', format($$SELECT gateway._connector_call_failed_attempt(%L, 'dead', 'x', 500)$$, (SELECT p_call FROM calls))),
                pg_temp.answer('owner', 'SELECT gateway.connector_calls_prune(''0 s'')')],
          ARRAY['42501 permission denied for function _connector_call_complete', '42501 permission denied for function _connector_call_failed_attempt',
                '42501 permission denied for function connector_calls_prune'],
          'P''s editor completes or fails no call of its own, and P''s owner prunes nothing');

-- 53-54. Consent is checked at every call: a revoked connector calls nothing.
SAVEPOINT r1;
SELECT gateway.connector_consent_revoke((SELECT p_to_q FROM pcx)) \g /dev/null
SELECT matches(pg_temp.answer('editor', format($$SELECT gateway.connector_call(%L, '{}')$$, (SELECT p_to_q FROM pcx))),
               '^55000 connector <id> is not approved', 'P''s editor cannot call through a revoked connector');
SELECT ok((gateway._connector_call_claim((SELECT p_call FROM calls)) ->> 'endpoint_id') IS NULL,
          'a call queued before the revocation gets no endpoint from the claim');
ROLLBACK TO r1;

-- 55-59. The Nexus service a call names is the connector's nexus_service_name, which P's editors
-- may change: after Q approved service "live", P pointed its calls at any other service Q's workers
-- register on that task queue. A new service name needs Q's consent again.
SAVEPOINT s1;
SELECT is(pg_temp.answer('editor', format($$UPDATE gateway.project_connectors SET display_name = 'renamed' WHERE id = %L$$, (SELECT p_to_q FROM pcx))),
          'ok', 'P''s editor edits its approved connector');
UPDATE gateway.project_connectors SET display_name = 'renamed' WHERE id = (SELECT p_to_q FROM pcx);
SELECT is((SELECT consent_state FROM gateway.project_connectors WHERE id = (SELECT p_to_q FROM pcx)), 'approved',
          'a display name change keeps the consent');
SELECT set_config('request.jwt.claims', '{"sub": "ab000000-0000-4000-8000-000000000003", "role": "authenticated"}', true) \g /dev/null
SET LOCAL ROLE authenticated;
UPDATE gateway.project_connectors SET nexus_service_name = 'admin' WHERE id = (SELECT p_to_q FROM pcx);
RESET ROLE;
SELECT is((SELECT consent_state || ' ' || coalesce(consent_by::text, '-') FROM gateway.project_connectors WHERE id = (SELECT p_to_q FROM pcx)),
          'requested -', 'a new nexus_service_name on an approved connector asks the target''s consent again');
SELECT matches(pg_temp.answer('editor', format($$SELECT gateway.connector_call(%L, '{}')$$, (SELECT p_to_q FROM pcx))),
               '^55000', 'and calls through it are refused until the target approves');
SELECT is((SELECT count(*)::int FROM gateway.audit_log
            WHERE object_id = (SELECT p_to_q FROM pcx) AND action = 'project_connector.consent_reset'
              AND project_id = 'cb000000-0000-4000-8000-00000000000b' AND details ->> 'service' = 'admin'), 1,
          'the target''s audit log says its consent was reset, naming the new service');
ROLLBACK TO s1;

-- 60-62. The target's input_schema runs in every caller's backend, inside std::regex, which no
-- statement_timeout, cancel or terminate interrupts: Q's owner must not be able to make P's calls
-- hang with a backtracking pattern.
SAVEPOINT x1;
SELECT is(pg_temp.answer('owner_q', format($$UPDATE gateway.service_interfaces SET input_schema = '{"properties": {"x": {"pattern": "(a|a)*b"}}}' WHERE id = %L$$,
                                          (SELECT q_iface FROM pcx))),
          'ok', 'Q''s owner sets an exponential pattern in the input_schema of Q''s interface');
UPDATE gateway.service_interfaces SET input_schema = '{"properties": {"x": {"pattern": "(a|a)*b"}}}' WHERE id = (SELECT q_iface FROM pcx);
SELECT matches(pg_temp.answer('editor', format($$SELECT gateway.connector_call(%L, jsonb_build_object('x', repeat('a', 1000) || '!'))$$, (SELECT p_to_q FROM pcx))),
               '^22023 the target interface''s input_schema is not a valid JSON Schema: .*exponential',
               'P''s call is refused at once (22023), not stuck for ever in std::regex');
UPDATE gateway.service_interfaces SET input_schema = '{"properties": {"x": {"pattern": ".*.*.*x"}}}' WHERE id = (SELECT q_iface FROM pcx);
SELECT matches(pg_temp.answer('editor', format($$SELECT gateway.connector_call(%L, jsonb_build_object('x', repeat('a', 1000) || '!'))$$, (SELECT p_to_q FROM pcx))),
               '^22023 input does not match .* at /x: the string is longer than [0-9]+ bytes',
               'a polynomial pattern bounds the strings it is matched against (.*.*.*x took hours at 1000 bytes)');
ROLLBACK TO x1;
-- 63-64. json_schema_validate is any signed-in user's: no file or URL behind a $ref, no hang.
SELECT matches(pg_temp.answer('outsider', $$SELECT gateway.json_schema_validate('{"pattern": "^(\\w|\\d)+$"}', to_jsonb(repeat('a', 1000) || '!'))$$),
               '^22023 .*exponential', 'a signed-in user''s own exponential pattern is refused, not run');
SELECT is(ARRAY[pg_temp.answer('outsider', $$SELECT gateway.json_schema_validate('{"$ref": "file:///etc/passwd"}', '1')$$) ~ '^22023 .*nothing is fetched',
                pg_temp.answer('outsider', $$SELECT gateway.json_schema_validate('{"properties": {"a": {"$ref": "http://127.0.0.1:9/s.json"}}}', '{"a": 1}')$$) ~ '^22023 .*nothing is fetched'],
          ARRAY[true, true], 'a $ref to a file or a URL is refused, never read or fetched');

-- 65-67. Refilling a usage-limited key: audited even with row_security = off; another project's
-- owner gets one answer for P's key and a missing one, and refilling spends none of the
-- counters it cannot see.
SAVEPOINT r1;
SELECT cmp_ok(pg_temp.audited_with_rls_off('admin',
  format($$SELECT gateway.api_key_refill(%L, 5)$$, (SELECT k FROM fx WHERE project = 'P'))),
  '>', 0::bigint, 'an admin with row_security = off refilling a member''s key is still audited');
ROLLBACK TO r1;
SELECT is(pg_temp.answer('owner_q', format($$SELECT gateway.api_key_refill(%L, 5)$$, (SELECT k FROM fx WHERE project = 'P'))),
          pg_temp.answer('owner_q', $$SELECT gateway.api_key_refill('00000000-0000-4000-8000-00000000dead', 5)$$),
          'the owner of Q gets the same answer refilling P''s key and a missing one');
SELECT is(pg_temp.answer('owner_q', format($$SELECT usage_remaining FROM gateway.api_keys_list WHERE id = %L$$,
                                          (SELECT k FROM fx WHERE project = 'P'))),
          pg_temp.answer('owner_q', $$SELECT usage_remaining FROM gateway.api_keys_list WHERE id = '00000000-0000-4000-8000-00000000dead'$$),
          'the owner of Q cannot see how many uses P''s key has left');

SELECT * FROM finish();
ROLLBACK;

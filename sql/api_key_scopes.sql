-- Scopes: issued with a key, checked by api_key_verify(required_scope => ...), kept by rotation.
\set SHOW_CONTEXT never
\ir helpers/app_role.psql
\ir helpers/fails_hint.psql
\ir helpers/act_as.psql
\set sam '''ad000000-0000-4000-8000-000000000001'''
\set proj '''cd000000-0000-4000-8000-000000000001'''
INSERT INTO gateway.project_members (project_id, user_id, role) VALUES (:proj, :sam, 'editor');

-- Stored sorted, without duplicates; shown in the listing.
SELECT key_id AS sk, api_key AS s FROM gateway.api_key_issue(:sam, :proj, 'scoped',
  scopes => ARRAY['orders:write', 'orders:read', 'orders:read']) \gset
SELECT scopes FROM gateway.api_keys_list WHERE id = :'sk';
SELECT key_id AS pk, api_key AS p FROM gateway.api_key_issue(:sam, :proj, 'plain', scopes => '{}') \gset
SELECT scopes IS NULL AS no_scopes FROM gateway.api_keys_list WHERE id = :'pk';

-- Held scope: ok; another one, or a case variant: insufficient_scope (not valid, but the key is
-- named: its secret matched). No scope asked: ok. An unscoped key holds no scope.
SELECT valid, reason FROM gateway.api_key_verify(:'s', required_scope => 'orders:read');
SELECT valid, reason, key_id = :'sk' AS named FROM gateway.api_key_verify(:'s', NULL, 'orders:delete');
SELECT reason FROM gateway.api_key_verify(:'s', NULL, 'ORDERS:READ');
SELECT reason FROM gateway.api_key_verify(:'s');
SELECT reason FROM gateway.api_key_verify(:'p', required_scope => 'orders:read');
SELECT reason FROM gateway.api_key_verify(:'p', required_scope => '');
-- A scope is never checked before the key itself.
SELECT reason FROM gateway.api_key_verify('gw_x', NULL, 'orders:read');

-- Limits: charset, length, count, NULL elements, dimensions.
SELECT pg_temp.fails_hint(format('SELECT gateway.api_key_issue(%L, %L, %L, scopes => %L)', :sam, :proj, 'bad1', ARRAY['orders read']));
SELECT pg_temp.fails_hint(format('SELECT gateway.api_key_issue(%L, %L, %L, scopes => %L)', :sam, :proj, 'bad2', ARRAY[repeat('a', 65)]));
SELECT pg_temp.fails_hint(format('SELECT gateway.api_key_issue(%L, %L, %L, scopes => %L)', :sam, :proj, 'bad3', ARRAY[NULL::text]));
SELECT pg_temp.fails_hint(format('SELECT gateway.api_key_issue(%L, %L, %L, scopes => %L)', :sam, :proj, 'bad4', ARRAY(SELECT 's' || g FROM generate_series(1, 33) g)));
SELECT pg_temp.fails_hint(format('SELECT gateway.api_key_issue(%L, %L, %L, scopes => %L)', :sam, :proj, 'bad5', '{{a},{b}}'::text[]));
SELECT pg_temp.fails_hint(format('SELECT gateway.api_key_issue(%L, %L, %L, scopes => %L)', :sam, :proj, 'bad6', ARRAY['-leading']));
SELECT count(*) AS rejected_keys_stored FROM gateway.api_keys WHERE name LIKE 'bad_';
-- 32 scopes of 64 characters are fine, and the last one is checked like the first.
SELECT key_id AS mk, api_key AS m FROM gateway.api_key_issue(:sam, :proj, 'many',
  scopes => ARRAY(SELECT lpad(g::text, 64, 'x') FROM generate_series(1, 32) g)) \gset
SELECT reason FROM gateway.api_key_verify(:'m', NULL, lpad('32', 64, 'x'));
SELECT reason FROM gateway.api_key_verify(:'m', NULL, lpad('33', 64, 'x'));
-- Again, now answered from the verify cache (which copies only the scopes a key holds): the first
-- and the last scope still pass, one it does not hold still fails.
SELECT g AS scope_number, reason FROM generate_series(1, 33) AS g,
       gateway.api_key_verify(:'m', NULL, lpad(g::text, 64, 'x')) WHERE g IN (1, 31, 32, 33);

-- Rotation keeps the scopes; the issue is audited with them.
SELECT new_key_id AS rk, api_key AS r FROM gateway.api_key_rotate(:'sk', interval '0') \gset
SELECT scopes FROM gateway.api_keys_list WHERE id = :'rk';
SELECT reason FROM gateway.api_key_verify(:'r', required_scope => 'orders:write');
SELECT reason FROM gateway.api_key_verify(:'s', required_scope => 'orders:write');
SELECT details->'scopes' AS audited FROM gateway.audit_log WHERE action = 'api_key.issued' AND object_id = :'sk';

-- A member issues scoped keys for itself through the same function.
SELECT pg_temp.as_user(:sam);
SELECT key_id IS NOT NULL AS issued FROM gateway.api_key_issue(:sam, :proj, 'mine', scopes => ARRAY['a']);
SELECT pg_temp.as_superuser();

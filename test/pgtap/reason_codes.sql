-- api_key_verify's reason codes as a client sees them, and that it never raises or writes.
BEGIN;
SELECT plan(27);

INSERT INTO gateway.project_members (project_id, user_id, role)
VALUES ('c6000000-0000-4000-8000-000000000001', 'a6000000-0000-4000-8000-000000000001', 'editor');
INSERT INTO gateway.service_interfaces (id, project_id, workflow_id, name, interface_type, callable_name)
VALUES ('e6000000-0000-4000-8000-00000000000a', 'c6000000-0000-4000-8000-000000000001', gen_random_uuid(), 'tap_a', 'signal', 'tap_a'),
       ('e6000000-0000-4000-8000-00000000000b', 'c6000000-0000-4000-8000-000000000001', gen_random_uuid(), 'tap_b', 'signal', 'tap_b');
INSERT INTO gateway.public_interfaces (id, service_interface_id, project_id)
VALUES ('d6000000-0000-4000-8000-00000000000a', 'e6000000-0000-4000-8000-00000000000a', 'c6000000-0000-4000-8000-000000000001'),
       ('d6000000-0000-4000-8000-00000000000b', 'e6000000-0000-4000-8000-00000000000b', 'c6000000-0000-4000-8000-000000000001');

CREATE TEMP TABLE k AS
SELECT 'plain'::text AS label, * FROM gateway.api_key_issue(
  'a6000000-0000-4000-8000-000000000001', 'c6000000-0000-4000-8000-000000000001', 'tap-plain');
INSERT INTO k SELECT 'bound', * FROM gateway.api_key_issue(
  'a6000000-0000-4000-8000-000000000001', 'c6000000-0000-4000-8000-000000000001', 'tap-bound',
  public_interface_id => 'd6000000-0000-4000-8000-00000000000a');
INSERT INTO k SELECT 'limited', * FROM gateway.api_key_issue(
  'a6000000-0000-4000-8000-000000000001', 'c6000000-0000-4000-8000-000000000001', 'tap-limited',
  rate_limit_per_minute => 1);
INSERT INTO k SELECT 'revoked', * FROM gateway.api_key_issue(
  'a6000000-0000-4000-8000-000000000001', 'c6000000-0000-4000-8000-000000000001', 'tap-revoked');
INSERT INTO k SELECT 'expired', * FROM gateway.api_key_issue(
  'a6000000-0000-4000-8000-000000000001', 'c6000000-0000-4000-8000-000000000001', 'tap-expired',
  expires_at => now() + interval '1 minute');
INSERT INTO k SELECT 'scoped', * FROM gateway.api_key_issue(
  'a6000000-0000-4000-8000-000000000001', 'c6000000-0000-4000-8000-000000000001', 'tap-scoped',
  scopes => ARRAY['tap:read']);
INSERT INTO k SELECT 'metered', * FROM gateway.api_key_issue(
  'a6000000-0000-4000-8000-000000000001', 'c6000000-0000-4000-8000-000000000001', 'tap-metered',
  remaining => 2);
DO $$ BEGIN PERFORM gateway.api_key_revoke(key_id) FROM k WHERE label = 'revoked'; END $$;
UPDATE gateway.api_keys SET expires_at = now() - interval '1 minute'
 WHERE id = (SELECT key_id FROM k WHERE label = 'expired');

CREATE FUNCTION pg_temp.reason(label text, interface uuid DEFAULT NULL) RETURNS text
LANGUAGE sql AS $$
  SELECT v.reason FROM k, gateway.api_key_verify(k.api_key, interface) v WHERE k.label = $1
$$;

SELECT is(pg_temp.reason('plain'), 'ok', 'a valid key is ok');
SELECT is((SELECT valid FROM k, gateway.api_key_verify(k.api_key) WHERE label = 'plain'), true, 'ok means valid');
SELECT is(pg_temp.reason('bound', 'd6000000-0000-4000-8000-00000000000a'), 'ok', 'a bound key is ok on its interface');
SELECT is(pg_temp.reason('bound', 'd6000000-0000-4000-8000-00000000000b'), 'wrong_interface', 'and wrong_interface elsewhere');
SELECT is(pg_temp.reason('bound'), 'wrong_interface', 'and wrong_interface when no interface is named');
SELECT is(pg_temp.reason('revoked'), 'revoked', 'a revoked key is revoked');
SELECT is(pg_temp.reason('expired'), 'expired', 'an expired key is expired');
SELECT is(pg_temp.reason('limited'), 'ok', 'the first request within the limit is ok');
SELECT is(pg_temp.reason('limited'), 'rate_limited', 'the next one is rate_limited');
SELECT ok((SELECT retry_after_seconds BETWEEN 1 AND 60 FROM k, gateway.api_key_verify(k.api_key) WHERE label = 'limited'),
          'a rate-limited answer says when to retry');
SELECT is((SELECT reason FROM k, gateway.api_key_verify(k.api_key, required_scope => 'tap:read') v WHERE label = 'scoped'), 'ok', 'a held scope is ok');
SELECT is((SELECT reason FROM k, gateway.api_key_verify(k.api_key, required_scope => 'tap:write') v WHERE label = 'scoped'), 'insufficient_scope', 'a missing scope is insufficient_scope');
SELECT is((SELECT reason FROM k, gateway.api_key_verify(k.api_key, required_scope => 'tap:read') v WHERE label = 'revoked'), 'revoked', 'revocation is checked before scopes');
SELECT is((SELECT reason FROM k, gateway.api_key_verify(k.api_key, cost => 3) v WHERE label = 'metered'), 'usage_exceeded', 'a cost above what remains is usage_exceeded');
SELECT is((SELECT row(reason, usage_remaining)::text FROM k, gateway.api_key_verify(k.api_key, cost => 2) v WHERE label = 'metered'), '(ok,0)', 'spending what remains is ok and leaves 0');
SELECT is((SELECT reason FROM gateway.api_key_verify('gw_000000000000_' || repeat('A', 49))), 'malformed', 'a bad checksum is malformed');
SELECT is((SELECT reason FROM gateway.api_key_verify(NULL)), 'malformed', 'NULL is malformed');
SELECT is((SELECT reason FROM gateway.api_key_verify(repeat('x', 10 * 1024 * 1024))), 'malformed', '10 MB is malformed');
SELECT is((SELECT valid FROM gateway.api_key_verify(repeat('x', 100))), false, 'malformed is not valid');
SELECT is((SELECT key_id FROM gateway.api_key_verify('garbage')), NULL, 'malformed returns no key id');

DELETE FROM gateway.api_keys WHERE id = (SELECT key_id FROM k WHERE label = 'plain');
SELECT is(pg_temp.reason('plain'), 'unknown', 'a key without a row is unknown');
SELECT is((SELECT user_id FROM k, gateway.api_key_verify(k.api_key) WHERE label = 'plain'), NULL, 'unknown returns no owner');

SELECT lives_ok($$SELECT * FROM gateway.api_key_verify(E'gw_\\x01\\x02', NULL)$$, 'binary junk does not raise');

CREATE TEMP TABLE writes_before AS
SELECT n_tup_ins + n_tup_upd + n_tup_del AS writes
  FROM pg_stat_xact_user_tables WHERE relid IN ('gateway.api_keys'::regclass);
SET LOCAL transaction_read_only = on;
SELECT is(pg_temp.reason('bound', 'd6000000-0000-4000-8000-00000000000a'), 'ok', 'verify works in a read-only transaction');
SELECT is((SELECT count(*)::int FROM k, gateway.api_key_verify(k.api_key) v), 7, 'every kind of key answers in a read-only transaction');
SELECT is((SELECT reason FROM k, gateway.api_key_verify(k.api_key, cost => 0) v WHERE label = 'metered'), 'ok', 'a usage-limited key is checked in a read-only transaction');
SELECT is((SELECT n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_xact_user_tables
            WHERE relid = 'gateway.api_keys'::regclass),
          (SELECT writes FROM writes_before), 'verify wrote no key row');

SELECT * FROM finish();
ROLLBACK;

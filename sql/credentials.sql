-- encrypt_credentials / decrypt_credentials: round trip, tampering, context binding, key rotation.
\set SHOW_CONTEXT never
\ir helpers/fails.psql
\ir helpers/wait_for.psql

SELECT gateway.encrypt_credentials('{"token": "sk_live_regress", "n": 1}', 'ctx-1') AS c1 \gset
-- The first encryption creates key 1, bound to the current master key.
SELECT id, state, master_fingerprint = gateway._master_key_fingerprint() AS current_master
  FROM gateway.encryption_keys;
SELECT length(:'c1'::bytea) - length('{"n": 1, "token": "sk_live_regress"}') AS overhead_bytes,
       get_byte(:'c1'::bytea, 0) AS format_version, gateway._envelope_key_id(:'c1'::bytea) AS key_id,
       position('sk_live_regress' in encode(:'c1'::bytea, 'escape')) AS plaintext_position;
SELECT gateway.decrypt_credentials(:'c1', 'ctx-1');
-- Two encryptions of the same value differ (random nonce).
SELECT gateway.encrypt_credentials('{"a": 1}', 'x') <> gateway.encrypt_credentials('{"a": 1}', 'x') AS fresh_nonce;

-- Another context (a ciphertext copied to another row), a flipped bit, a cut, junk: all refused.
SELECT pg_temp.fails(format('SELECT gateway.decrypt_credentials(%L, %L)', :'c1', 'ctx-2'));
SELECT pg_temp.fails(format('SELECT gateway.decrypt_credentials(%L, %L)',
  set_byte(:'c1'::bytea, 40, get_byte(:'c1'::bytea, 40) # 1), 'ctx-1'));
SELECT pg_temp.fails(format('SELECT gateway.decrypt_credentials(%L, %L)',
  substring(:'c1'::bytea from 1 for length(:'c1'::bytea) - 1), 'ctx-1'));
SELECT pg_temp.fails($$SELECT gateway.decrypt_credentials('\x0102', 'ctx-1')$$);
SELECT pg_temp.fails($$SELECT gateway.decrypt_credentials(NULL, 'ctx-1')$$);
SELECT pg_temp.fails($$SELECT gateway.encrypt_credentials('{}', NULL)$$);
-- Every byte position: a flipped bit anywhere is detected.
-- (In the key id bytes it is reported as an unknown key, GW002.)
SELECT left(r, 5) AS sqlstate, count(*) AS positions, min(i) AS first_byte, max(i) AS last_byte
  FROM generate_series(0, length(:'c1'::bytea) - 1) AS i,
       LATERAL pg_temp.fails(format('SELECT gateway.decrypt_credentials(%L, %L)',
         set_byte(:'c1'::bytea, i, get_byte(:'c1'::bytea, i) # 128), 'ctx-1')) AS r
 GROUP BY 1 ORDER BY 1;

-- Rotation: a new active key; the old one still decrypts.
SELECT gateway.rotate_encryption_key() AS new_key;
SELECT id, state FROM gateway.encryption_keys ORDER BY id;
SELECT gateway._envelope_key_id(gateway.encrypt_credentials('{}', 'x')) AS encrypts_with;
SELECT gateway.decrypt_credentials(:'c1', 'ctx-1') ->> 'token' AS old_still_decrypts;
-- A key id that does not exist.
SELECT pg_temp.fails(format('SELECT gateway.decrypt_credentials(%L, %L)',
  overlay(:'c1'::bytea placing '\x00000063'::bytea from 2 for 4), 'ctx-1'));

-- Every decryption is audited (by the worker, so a rollback cannot erase it), with its context,
-- never the plaintext.
BEGIN;
SELECT gateway.decrypt_credentials(:'c1', 'ctx-1') IS NOT NULL AS decrypted_then_rolled_back;
ROLLBACK;
SELECT gateway.decrypt_credentials(:'c1', 'ctx-1') IS NOT NULL AS decrypted;
-- (Identical events of one worker batch are one record with a count.)
SELECT pg_temp.wait_for($$SELECT sum(coalesce((details->>'count')::int, 1)) FROM gateway.audit_log WHERE action = 'credentials.decrypted' AND details->>'context' = 'ctx-1' AND details->>'key_id' = '1'$$, '4') AS audited_ctx_1;
SELECT count(*) AS plaintext_in_audit FROM gateway.audit_log WHERE details::text LIKE '%sk_live_regress%';

-- Retiring: refused while a connector uses the key, possible after re-encryption; a retired key
-- never decrypts again.
SELECT gateway.rotate_encryption_key() AS third_key;
INSERT INTO gateway.connectors (project_id, name, connector_type)
VALUES ('c8000000-0000-4000-8000-000000000001', 'stripe', 'stripe') RETURNING id AS conn \gset
SELECT gateway.connector_set_credentials(:'conn', '{"api_key": "sk_live_connector"}');
SELECT encryption_key_id FROM gateway.connectors WHERE id = :'conn';
SELECT pg_temp.fails('SELECT gateway.retire_encryption_key(3)');
SELECT gateway.rotate_encryption_key() AS fourth_key;
SELECT pg_temp.fails('SELECT gateway.retire_encryption_key(3)');
-- A damaged value (another connector's ciphertext) is reported and skipped, never a blocker.
INSERT INTO gateway.connectors (project_id, name, connector_type, encrypted_credentials)
SELECT project_id, 'damaged', 'stripe', encrypted_credentials FROM gateway.connectors WHERE id = :'conn';
CALL gateway.reencrypt_credentials(10);
DELETE FROM gateway.connectors WHERE name = 'damaged';
SELECT encryption_key_id FROM gateway.connectors WHERE id = :'conn';
SELECT gateway.connector_credentials(:'conn');
SELECT gateway.retire_encryption_key(3);
SELECT gateway.retire_encryption_key(1);
SELECT pg_temp.fails(format('SELECT gateway.decrypt_credentials(%L, %L)', :'c1', 'ctx-1'));
SELECT id, state, retired_at IS NOT NULL AS retired FROM gateway.encryption_keys ORDER BY id;

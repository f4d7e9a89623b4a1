-- Benchmark data for bench/crypto: stored ciphertexts of a ~300-byte credential document, made
-- by encrypt_credentials and by pgcrypto, and :nrows connectors for the re-encryption run.
\set ON_ERROR_STOP on
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE SCHEMA bench;
CREATE TABLE bench.sealed (n int PRIMARY KEY, ours bytea NOT NULL, pgp bytea NOT NULL);
INSERT INTO bench.sealed
SELECT g, gateway.encrypt_credentials('{"api_key": "sk_live_51HqLyjWDarjtT1zdp7dcXkQa3cYrkQCHMq3sTQWRbNQ5Fv2nlA8RTsIbK2QAzAJS4RGk", "client_id": "cid_8f3a2b1c9d4e5f60718293a4b5c6d7e8", "client_secret": "cs_Qx9Vb7Nm3Lk5Jh2Gf8Dd6Sa4Pp1Oo0Ii", "refresh_token": "rt_1a2b3c4d5e6f7g8h9i0j1k2l3m4n5o6p", "region": "eu-west-1"}', 'bench'), pgp_sym_encrypt('{"api_key": "sk_live_51HqLyjWDarjtT1zdp7dcXkQa3cYrkQCHMq3sTQWRbNQ5Fv2nlA8RTsIbK2QAzAJS4RGk", "client_id": "cid_8f3a2b1c9d4e5f60718293a4b5c6d7e8", "client_secret": "cs_Qx9Vb7Nm3Lk5Jh2Gf8Dd6Sa4Pp1Oo0Ii", "refresh_token": "rt_1a2b3c4d5e6f7g8h9i0j1k2l3m4n5o6p", "region": "eu-west-1"}', 'bench-passphrase')
  FROM generate_series(1, 1000) AS g;
INSERT INTO gateway.connectors (project_id, name, connector_type, encrypted_credentials)
SELECT 'c0000000-0000-4000-8000-000000000001', 'c' || g, 'http', NULL FROM generate_series(1, :nrows) AS g;
UPDATE gateway.connectors SET encrypted_credentials = gateway.encrypt_credentials('{"api_key": "sk_live_51HqLyjWDarjtT1zdp7dcXkQa3cYrkQCHMq3sTQWRbNQ5Fv2nlA8RTsIbK2QAzAJS4RGk", "client_id": "cid_8f3a2b1c9d4e5f60718293a4b5c6d7e8", "client_secret": "cs_Qx9Vb7Nm3Lk5Jh2Gf8Dd6Sa4Pp1Oo0Ii", "refresh_token": "rt_1a2b3c4d5e6f7g8h9i0j1k2l3m4n5o6p", "region": "eu-west-1"}', id::text);
VACUUM ANALYZE bench.sealed;
VACUUM ANALYZE gateway.connectors;

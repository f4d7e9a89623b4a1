-- Benchmark data: :nkeys API keys issued through the real api_key_issue, their plaintext kept in
-- a bench-only table (bench/sql_driver reads them once and presents them as parameters), and the
-- baselines' extra columns.
\set ON_ERROR_STOP on
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE SCHEMA bench;
CREATE TABLE bench.keys (n int PRIMARY KEY, key_id uuid NOT NULL, api_key text NOT NULL);

-- Keys go to editors of their project.
INSERT INTO gateway.project_members (project_id, user_id, role)
SELECT 'c0000000-0000-4000-8000-000000000001', ('a0000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, 'editor'
  FROM generate_series(0, 1000) AS g ON CONFLICT DO NOTHING;
INSERT INTO gateway.project_members (project_id, user_id, role)
VALUES ('c0000000-0000-4000-8000-000000000001', 'a0000000-0000-4000-8000-0000000000ff', 'editor') ON CONFLICT DO NOTHING;

-- Two populations of the same size: keys n <= :nkeys / 2 without a rate limit, the others limited
-- to 1,000,000 a minute (the bucket path runs on every call and never refuses), so rate limiting on
-- and off are measured side by side in each round, on rows of the same shape.
INSERT INTO bench.keys
SELECT g, k.key_id, k.api_key
  FROM generate_series(1, :nkeys) AS g,
       LATERAL gateway.api_key_issue(
         ('a0000000-0000-4000-8000-' || lpad(to_hex(g % 1000), 12, '0'))::uuid,
         'c0000000-0000-4000-8000-000000000001', 'bench-' || g,
         rate_limit_per_minute => CASE WHEN g > :nkeys / 2 THEN 1000000 END) AS k;

-- Baseline 1: the floor any design pays, a bare indexed lookup of the same table by a SHA-256
-- digest of the key.
ALTER TABLE gateway.api_keys ADD COLUMN bench_sha256 bytea;
UPDATE gateway.api_keys AS a SET bench_sha256 = sha256(convert_to(b.api_key, 'UTF8'))
  FROM bench.keys AS b WHERE b.key_id = a.id;
CREATE UNIQUE INDEX ON gateway.api_keys (bench_sha256);

-- Baseline 2: what the original plan suggested, bcrypt (cost 10), on a small sample.
CREATE TABLE bench.bcrypt_keys (n int PRIMARY KEY, api_key text NOT NULL UNIQUE, bcrypt_hash text NOT NULL);
INSERT INTO bench.bcrypt_keys
SELECT n, api_key, crypt(api_key, gen_salt('bf', 10)) FROM bench.keys WHERE n <= 200;

-- Unknown keys: well formed (valid checksum) but without a row.
CREATE TABLE bench.unknown_keys (n int PRIMARY KEY, api_key text NOT NULL);
INSERT INTO bench.unknown_keys
SELECT g, k.api_key FROM generate_series(1, 10000) AS g,
       LATERAL gateway.api_key_issue('a0000000-0000-4000-8000-0000000000ff',
                                     'c0000000-0000-4000-8000-000000000001', 'gone-' || g) AS k;
DELETE FROM gateway.api_keys WHERE name LIKE 'gone-%';

-- A public interface of the keys' project: an unbound key verified for it also looks up the
-- interface's project (0.3.0: an unbound key is valid only within its own project).
INSERT INTO gateway.service_interfaces (id, project_id, workflow_id, name, interface_type, callable_name)
VALUES ('eb000000-0000-4000-8000-000000000001', 'c0000000-0000-4000-8000-000000000001', gen_random_uuid(), 'bench', 'signal', 'bench');
INSERT INTO gateway.public_interfaces (id, service_interface_id)
VALUES ('db000000-0000-4000-8000-000000000001', 'eb000000-0000-4000-8000-000000000001');
DELETE FROM gateway.sync_jobs;

-- Every index of the table as compact as the baseline's: the UPDATE above wrote a second version
-- of every row (not HOT: the pages were full), which left the key prefix index twice its size
-- while the baseline's index, built afterwards, had one entry per key.
REINDEX TABLE gateway.api_keys;
VACUUM ANALYZE gateway.api_keys;
VACUUM ANALYZE bench.keys;
VACUUM ANALYZE bench.unknown_keys;

-- The floor (floor_row.c): any C function answering with verify's row, called the same way.
CREATE FUNCTION bench.floor_row(text) RETURNS gateway.api_key_verification
  AS :'floor_library', 'floor_row' LANGUAGE C VOLATILE;

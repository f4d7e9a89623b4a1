-- pg_gateway 0.5.0 -> 0.6.0: running it for real. API keys survive a master-key rotation (rehashed
-- by the worker on their next verify), keys carry scopes and usage limits, the operator gets a
-- health view and audit retention, and verify answers hot keys from a shared-memory cache that a
-- commit invalidates.
\echo Use "ALTER EXTENSION pg_gateway UPDATE TO '0.6.0'" to load this file. \quit

------------------------------------------------------------------------------------------------
-- API keys across a master-key rotation
------------------------------------------------------------------------------------------------

------------------------------------------------------------------------------------------------
-- Scopes and usage-limited keys
------------------------------------------------------------------------------------------------

------------------------------------------------------------------------------------------------
-- The operator's checks: health, audit retention
------------------------------------------------------------------------------------------------

------------------------------------------------------------------------------------------------
-- The verify cache
------------------------------------------------------------------------------------------------

-- Marks the cache sets of the rows a transaction writes until it ends (src/pg/verify_cache.cpp);
-- ENABLE ALWAYS so it also fires under session_replication_role = replica (logical apply,
-- restores). Verify bypasses the cache while either trigger is missing or not ALWAYS.
CREATE FUNCTION gateway._verify_cache_invalidate() RETURNS trigger
AS 'MODULE_PATHNAME', 'gateway_verify_cache_invalidate'
LANGUAGE C;
COMMENT ON FUNCTION gateway._verify_cache_invalidate() IS
  'Trigger on gateway.api_keys: invalidates the verify cache entries of changed keys when the change commits or rolls back.';
CREATE TRIGGER zz_verify_cache
  BEFORE INSERT OR UPDATE OR DELETE ON gateway.api_keys
  FOR EACH ROW EXECUTE FUNCTION gateway._verify_cache_invalidate();
CREATE TRIGGER zz_verify_cache_truncate
  BEFORE TRUNCATE ON gateway.api_keys
  FOR EACH STATEMENT EXECUTE FUNCTION gateway._verify_cache_invalidate();
ALTER TABLE gateway.api_keys ENABLE ALWAYS TRIGGER zz_verify_cache;
ALTER TABLE gateway.api_keys ENABLE ALWAYS TRIGGER zz_verify_cache_truncate;

CREATE FUNCTION gateway._verify_cache_stats(
  OUT size bigint, OUT used bigint, OUT hits bigint, OUT misses bigint, OUT evictions bigint,
  OUT invalidations bigint, OUT memory_bytes bigint)
AS 'MODULE_PATHNAME', 'gateway_verify_cache_stats'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION gateway._verify_cache_stats() IS
  'The verify cache''s size and counters since the server started (cluster-wide); read through gateway.verify_cache.';

CREATE VIEW gateway.verify_cache AS SELECT * FROM gateway._verify_cache_stats();
COMMENT ON VIEW gateway.verify_cache IS
  'The verify cache: size (entries, gateway.verify_cache_size), used, hits, misses, evictions, invalidations (entries dropped by a committed or rolled-back change), memory_bytes. Cluster-wide, since the server started.';

REVOKE ALL ON FUNCTION gateway._verify_cache_invalidate() FROM PUBLIC;
REVOKE ALL ON FUNCTION gateway._verify_cache_stats() FROM PUBLIC;
REVOKE ALL ON gateway.verify_cache FROM PUBLIC;

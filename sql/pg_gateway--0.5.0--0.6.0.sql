-- pg_gateway 0.5.0 -> 0.6.0: running it for real. API keys survive a master-key rotation (rehashed
-- by the worker on their next verify), keys carry scopes and usage limits, the operator gets a
-- health view and audit retention, and verify answers hot keys from a shared-memory cache that a
-- commit invalidates.
\echo Use "ALTER EXTENSION pg_gateway UPDATE TO '0.6.0'" to load this file. \quit

------------------------------------------------------------------------------------------------
-- API keys across a master-key rotation
------------------------------------------------------------------------------------------------

-- Which master key each key's hash was made under. New keys get the issuing backend's (the key
-- _api_key_generate hashed with); the worker sets it when it moves a key to the current master
-- key. Rows from before 0.6.0 stay NULL ("unmarked"): verify tries the current master key, then
-- the previous one, and marks them on their next successful verify (docs/api-keys.md).
ALTER TABLE gateway.api_keys ADD COLUMN master_fingerprint text
  CONSTRAINT api_keys_master_fingerprint_check CHECK (master_fingerprint ~ '^[0-9a-f]{16}$');
ALTER TABLE gateway.api_keys ALTER COLUMN master_fingerprint SET DEFAULT gateway._master_key_fingerprint();
COMMENT ON COLUMN gateway.api_keys.master_fingerprint IS
  'Fingerprint of the master key whose pepper made key_hash; NULL for keys issued before 0.6.0 until their next verify.';

-- Superuser-only (no grant): the fingerprint of gateway.previous_master_key_file, NULL when unset.
CREATE FUNCTION gateway._previous_master_key_fingerprint() RETURNS text
AS 'MODULE_PATHNAME', 'gateway_previous_master_key_fingerprint'
LANGUAGE C STABLE;
COMMENT ON FUNCTION gateway._previous_master_key_fingerprint() IS
  'Fingerprint of gateway.previous_master_key_file during a master-key rotation, NULL when it is not set.';

CREATE FUNCTION gateway._master_key_status(
    OUT current_fingerprint text, OUT previous_fingerprint text,
    OUT api_keys_current bigint, OUT api_keys_previous bigint, OUT api_keys_unmarked bigint,
    OUT api_keys_other bigint, OUT credentials_old_master bigint,
    OUT encryption_keys_old_master bigint, OUT previous_key_removable boolean)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF NOT gateway._caller_is_trusted() THEN
    RAISE EXCEPTION 'permission denied for gateway.master_key_status'
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'Read it as service_role, a superuser or the extension''s owner.';
  END IF;
  current_fingerprint := gateway._master_key_fingerprint();
  previous_fingerprint := gateway._previous_master_key_fingerprint();
  -- Only keys that can still verify count: a revoked or expired key needs no master key.
  SELECT count(*) FILTER (WHERE k.master_fingerprint = current_fingerprint),
         count(*) FILTER (WHERE k.master_fingerprint = previous_fingerprint),
         count(*) FILTER (WHERE k.master_fingerprint IS NULL),
         count(*) FILTER (WHERE k.master_fingerprint <> current_fingerprint
                            AND k.master_fingerprint IS DISTINCT FROM previous_fingerprint)
    INTO api_keys_current, api_keys_previous, api_keys_unmarked, api_keys_other
    FROM gateway.api_keys AS k
   WHERE k.is_active AND (k.revoked_at IS NULL OR k.revoked_at > now())
     AND (k.expires_at IS NULL OR k.expires_at > now());
  SELECT (SELECT count(*) FROM gateway.connectors AS c
            JOIN gateway.encryption_keys AS e ON e.id = c.encryption_key_id
           WHERE e.master_fingerprint <> current_fingerprint)
       + (SELECT count(*) FROM gateway.project_connectors AS c
            JOIN gateway.encryption_keys AS e ON e.id = c.encryption_key_id
           WHERE e.master_fingerprint <> current_fingerprint)
    INTO credentials_old_master;
  SELECT count(*) INTO encryption_keys_old_master
    FROM gateway.encryption_keys AS e
   WHERE e.master_fingerprint <> current_fingerprint AND e.state <> 'retired';
  previous_key_removable := previous_fingerprint IS NOT NULL AND api_keys_previous = 0
                            AND api_keys_unmarked = 0 AND credentials_old_master = 0
                            AND encryption_keys_old_master = 0;
  RETURN;
END
$$;
COMMENT ON FUNCTION gateway._master_key_status() IS
  'Behind gateway.master_key_status (trusted roles only).';

CREATE VIEW gateway.master_key_status AS SELECT * FROM gateway._master_key_status();
COMMENT ON VIEW gateway.master_key_status IS
  'Master-key rotation progress (trusted roles only): the current and previous master key fingerprints, usable API keys by the master key their hash is under, credentials and encryption keys still under an old master key, and whether the previous key file can be removed.';

REVOKE ALL ON FUNCTION gateway._previous_master_key_fingerprint() FROM PUBLIC;
REVOKE ALL ON FUNCTION gateway._master_key_status() FROM PUBLIC;
REVOKE ALL ON gateway.master_key_status FROM PUBLIC;

------------------------------------------------------------------------------------------------
-- Scopes and usage-limited keys
------------------------------------------------------------------------------------------------

------------------------------------------------------------------------------------------------
-- The operator's checks: health, audit retention
------------------------------------------------------------------------------------------------

------------------------------------------------------------------------------------------------
-- The verify cache
------------------------------------------------------------------------------------------------

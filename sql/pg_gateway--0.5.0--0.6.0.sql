-- pg_gateway 0.5.0 -> 0.6.0: running it for real. API keys survive a master-key rotation (rehashed
-- by the worker on their next verify), keys carry scopes and usage limits, the operator gets a
-- health view and audit retention, and verify answers hot keys from a shared-memory cache that a
-- commit invalidates.
\echo Use "ALTER EXTENSION pg_gateway UPDATE TO '0.6.0'" to load this file. \quit

-- The tables this script alters, locked up front in the order the worker's usage flush takes them
-- (api_keys, then audit_log): altering audit_log first deadlocked with a flush that had updated
-- api_keys and then waited to insert its audit records.
LOCK TABLE gateway.api_keys, gateway.audit_log IN ACCESS EXCLUSIVE MODE;

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

-- Scopes are stored as given (verify hashes them when it reads the row); the usage limit is the
-- key's configuration, its counters live in gateway.api_key_usage so that the worker's writes
-- of spent uses never touch an api_keys row.
ALTER TABLE gateway.api_keys
  ADD COLUMN scopes          text[] COLLATE "C"
    CONSTRAINT api_keys_scopes_check CHECK (cardinality(scopes) BETWEEN 1 AND 32),
  ADD COLUMN usage_limit     bigint CONSTRAINT api_keys_usage_limit_check CHECK (usage_limit >= 0),
  ADD COLUMN refill_amount   bigint CONSTRAINT api_keys_refill_amount_check CHECK (refill_amount > 0),
  ADD COLUMN refill_interval interval,
  ADD CONSTRAINT api_keys_refill_complete CHECK ((refill_amount IS NULL) = (refill_interval IS NULL)
                                                AND (refill_amount IS NULL OR usage_limit IS NOT NULL));
COMMENT ON COLUMN gateway.api_keys.scopes IS
  'Permission strings the key holds; api_key_verify(required_scope => ...) checks one. NULL: none.';
COMMENT ON COLUMN gateway.api_keys.usage_limit IS
  'Uses granted when the key was issued; NULL: no usage limit. What remains is in gateway.api_key_usage.';
COMMENT ON COLUMN gateway.api_keys.refill_amount IS
  'Uses the key has again at the start of every refill_interval (counted from created_at).';

CREATE TABLE gateway.api_key_usage (
  key_id     uuid PRIMARY KEY REFERENCES gateway.api_keys (id) ON DELETE CASCADE,
  period     bigint NOT NULL DEFAULT 0 CHECK (period >= 0),
  granted    bigint NOT NULL CHECK (granted >= 0),
  spent      bigint NOT NULL DEFAULT 0 CHECK (spent >= 0),
  updated_at timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 50);  -- rewritten by the worker after every batch of uses: keep it HOT
COMMENT ON TABLE gateway.api_key_usage IS
  'Counters of usage-limited keys in their current refill period, as last written by the worker (gateway.usage_flush_interval); verify counts in shared memory.';
-- Dumped with the keys, so a restore keeps what each key has left (as last written).
SELECT pg_catalog.pg_extension_config_dump('gateway.api_key_usage', '');
ALTER TABLE gateway.api_key_usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE gateway.api_key_usage FORCE ROW LEVEL SECURITY;
-- Visible exactly when the caller may see the key itself (api_keys' own policies decide).
CREATE POLICY api_key_usage_with_key ON gateway.api_key_usage FOR SELECT
  USING (EXISTS (SELECT FROM gateway.api_keys AS k WHERE k.id = key_id));

-- The refill period `at` falls in, as src/core/usage_limit.cpp computes it. (Columns, not the
-- row: the listing view calls it for roles that may not read every column.)
CREATE FUNCTION gateway._usage_period(anchor timestamptz, every interval, at timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE
AS $$
  SELECT CASE WHEN every IS NULL OR at <= anchor THEN 0
              ELSE div(((extract(epoch FROM at) - extract(epoch FROM anchor)) * 1000000)::numeric,
                       (extract(epoch FROM every) * 1000000)::numeric)::bigint END
$$;

CREATE FUNCTION gateway._check_key_limits(scopes text[], usage_limit bigint, refill_amount bigint,
                                          refill_interval interval) RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
  bad text;
BEGIN
  IF scopes IS NOT NULL THEN
    IF array_ndims(scopes) > 1 THEN
      RAISE EXCEPTION 'API key scopes must be a one-dimensional array'
        USING ERRCODE = 'invalid_parameter_value',
              HINT = 'Pass a text[] such as ARRAY[''orders:read'', ''orders:write''].';
    END IF;
    IF cardinality(scopes) > 32 THEN
      RAISE EXCEPTION 'an API key holds at most 32 scopes'
        USING ERRCODE = 'invalid_parameter_value',
              DETAIL = format('%s were given.', cardinality(scopes)),
              HINT = 'Pass a one-dimensional text[] of up to 32 scopes, e.g. ARRAY[''orders:read''].';
    END IF;
    SELECT s INTO bad FROM unnest(scopes) AS s
     WHERE s IS NULL OR s !~ '^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}$' LIMIT 1;
    IF FOUND THEN
      RAISE EXCEPTION 'invalid API key scope %', coalesce(quote_literal(bad), 'NULL')
        USING ERRCODE = 'invalid_parameter_value',
              HINT = 'A scope is 1 to 64 characters: letters, digits and _ . : / -, starting with a letter or digit.';
    END IF;
  END IF;
  IF usage_limit IS NOT NULL AND (usage_limit < 0 OR usage_limit > 1000000000000000) THEN
    RAISE EXCEPTION 'API key usage limit must be between 0 and 10^15'
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('remaining is %s.', usage_limit),
            HINT = 'Pass how many uses the key has, or NULL for no usage limit.';
  END IF;
  IF (refill_amount IS NULL) <> (refill_interval IS NULL) THEN
    RAISE EXCEPTION 'API key refill needs both an amount and an interval'
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Pass refill_amount and refill_interval together (e.g. 1000 and ''1 day''), or neither; gateway.api_key_refill() adds uses by hand.';
  END IF;
  IF refill_amount IS NOT NULL AND (refill_amount <= 0 OR refill_amount > 1000000000000000) THEN
    RAISE EXCEPTION 'API key refill amount must be between 1 and 10^15'
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('refill_amount is %s.', refill_amount),
            HINT = 'Pass how many uses the key gets back at each interval.';
  END IF;
  IF refill_interval IS NOT NULL
     AND (extract(month FROM refill_interval) <> 0 OR extract(year FROM refill_interval) <> 0
          OR refill_interval < interval '1 minute') THEN
    RAISE EXCEPTION 'API key refill interval must be at least a minute and given in days, hours or minutes'
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('refill_interval is %s.', refill_interval),
            HINT = 'Pass e.g. interval ''1 day'' or ''30 days''; months vary in length and are not accepted.';
  END IF;
END
$$;

-- A rotated key inherits its predecessor's scopes and limits (rotate copies every setting).
CREATE FUNCTION gateway._api_keys_inherit_limits() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF gateway._restoring() THEN
    RETURN NEW;  -- a restore stores rows as dumped
  END IF;
  SELECT k.scopes, k.usage_limit, k.refill_amount, k.refill_interval
    INTO NEW.scopes, NEW.usage_limit, NEW.refill_amount, NEW.refill_interval
    FROM gateway.api_keys AS k WHERE k.id = NEW.rotated_from;
  RETURN NEW;
END
$$;
CREATE TRIGGER api_keys_inherit_limits BEFORE INSERT ON gateway.api_keys
  FOR EACH ROW WHEN (NEW.rotated_from IS NOT NULL) EXECUTE FUNCTION gateway._api_keys_inherit_limits();

-- Every usage-limited key has its counters row. A rotated key starts with what its predecessor
-- had left when it was rotated (as last written by the worker), so rotating never adds uses.
CREATE FUNCTION gateway._api_keys_usage_row() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  old_key gateway.api_keys;
  left_over bigint;
BEGIN
  IF NEW.usage_limit IS NULL OR gateway._restoring() THEN
    RETURN NULL;  -- (a restore brings the counters rows from the dump)
  END IF;
  left_over := NEW.usage_limit;
  IF NEW.rotated_from IS NOT NULL THEN
    SELECT * INTO old_key FROM gateway.api_keys AS k WHERE k.id = NEW.rotated_from;
    SELECT CASE WHEN u.period < gateway._usage_period(old_key.created_at, old_key.refill_interval, now()) THEN old_key.refill_amount
                ELSE GREATEST(u.granted - u.spent, 0) END
      INTO left_over FROM gateway.api_key_usage AS u WHERE u.key_id = NEW.rotated_from;
  END IF;
  INSERT INTO gateway.api_key_usage (key_id, granted) VALUES (NEW.id, coalesce(left_over, 0))
  ON CONFLICT (key_id) DO NOTHING;
  RETURN NULL;
END
$$;
CREATE TRIGGER api_keys_usage_row AFTER INSERT OR UPDATE OF usage_limit ON gateway.api_keys
  FOR EACH ROW EXECUTE FUNCTION gateway._api_keys_usage_row();

-- The new trailing parameters change the signature: the old function goes, its grants move over.
-- (The old ACL waits in a transaction-local setting: no helper object to clean up.)
SELECT set_config('pg_gateway.upgrade_acl_issue', coalesce(p.proacl::text, ''), true)
  FROM pg_proc AS p WHERE p.oid = 'gateway.api_key_issue(uuid, uuid, text, uuid, timestamptz, integer)'::regprocedure;
DROP FUNCTION gateway.api_key_issue(uuid, uuid, text, uuid, timestamptz, integer);

CREATE FUNCTION gateway.api_key_issue(user_id uuid, project_id uuid, name text,
                                      public_interface_id uuid DEFAULT NULL,
                                      expires_at timestamptz DEFAULT NULL,
                                      rate_limit_per_minute integer DEFAULT NULL,
                                      scopes text[] DEFAULT NULL,
                                      remaining bigint DEFAULT NULL,
                                      refill_amount bigint DEFAULT NULL,
                                      refill_interval interval DEFAULT NULL)
RETURNS TABLE (key_id uuid, api_key text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  kept_scopes text[];
  initial bigint := coalesce($8, $9);  -- a refilling key without `remaining` starts full
BEGIN
  IF NOT gateway._caller_is_trusted() AND gateway._require_user() IS DISTINCT FROM $1 THEN
    RAISE EXCEPTION 'permission denied to issue API keys for another user'
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'Issue keys only for the signed-in user, or call from a trusted server role.';
  END IF;
  IF $1 IS NULL OR $2 IS NULL THEN
    RAISE EXCEPTION 'API key % must not be null', CASE WHEN $1 IS NULL THEN 'user_id' ELSE 'project_id' END
      USING ERRCODE = 'null_value_not_allowed',
            HINT = 'Pass the owning user and the project the key belongs to.';
  END IF;
  IF NOT gateway._user_has_project_role($2, $1, 'editor') THEN
    RAISE EXCEPTION 'permission denied to issue API keys in this project'
      USING ERRCODE = 'insufficient_privilege',
            DETAIL = 'The key''s user must be an editor, admin or owner of the project.',
            HINT = 'Ask an owner or admin of the project for the editor role.';
  END IF;
  PERFORM gateway._check_key_settings($3, $5, $6);
  PERFORM gateway._check_key_limits($7, $8, $9, $10);
  IF $4 IS NOT NULL AND NOT EXISTS (SELECT FROM gateway.public_interfaces AS p
                                     WHERE p.id = $4 AND p.project_id = $2) THEN
    PERFORM gateway._deny('public interface', $4, 'editor');
  END IF;
  -- Sorted and without duplicates, so listings compare; no scopes is NULL, not '{}'.
  SELECT array_agg(DISTINCT s ORDER BY s) INTO kept_scopes FROM unnest($7) AS s;

  key_id := gen_random_uuid();
  api_key := gateway._api_key_insert(key_id, $1, $2, $3, $4, $5, $6, NULL);
  IF kept_scopes IS NOT NULL OR initial IS NOT NULL THEN
    UPDATE gateway.api_keys AS k
       SET scopes = kept_scopes, usage_limit = initial, refill_amount = $9, refill_interval = $10
     WHERE k.id = key_id;
  END IF;
  PERFORM gateway._audit('api_key.issued', 'api_key', key_id, $2, $1,
    jsonb_build_object('name', $3, 'public_interface_id', $4, 'expires_at', $5,
                       'rate_limit_per_minute', $6, 'scopes', kept_scopes, 'remaining', initial,
                       'refill_amount', $9, 'refill_interval', $10));
  RETURN NEXT;
END
$$;
COMMENT ON FUNCTION gateway.api_key_issue(uuid, uuid, text, uuid, timestamptz, integer, text[], bigint, bigint, interval) IS
  'Issues an API key for a user who is editor, admin or owner of the project, optionally with scopes and a usage limit (remaining, refilled to refill_amount every refill_interval), and returns it once; only its keyed hash is stored.';
REVOKE ALL ON FUNCTION gateway.api_key_issue(uuid, uuid, text, uuid, timestamptz, integer, text[], bigint, bigint, interval) FROM PUBLIC;
DO $$
DECLARE
  g oid;
BEGIN
  FOR g IN SELECT DISTINCT a.grantee
             FROM aclexplode(nullif(current_setting('pg_gateway.upgrade_acl_issue'), '')::aclitem[]) AS a
            WHERE a.privilege_type = 'EXECUTE'
              AND a.grantee <> (SELECT proowner FROM pg_proc WHERE oid = 'gateway.api_key_issue(uuid, uuid, text, uuid, timestamptz, integer, text[], bigint, bigint, interval)'::regprocedure) LOOP
    EXECUTE format('GRANT EXECUTE ON FUNCTION gateway.api_key_issue(uuid, uuid, text, uuid, timestamptz, integer, text[], bigint, bigint, interval) TO %s',
                   CASE WHEN g = 0 THEN 'PUBLIC' ELSE g::regrole::text END);
  END LOOP;
END
$$;

CREATE FUNCTION gateway._usage_refilled() RETURNS void
AS 'MODULE_PATHNAME', 'gateway_usage_refilled'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION gateway._usage_refilled() IS
  'Tells verifying backends, when the current transaction commits, to read refilled counters again.';

-- Adds uses to a usage-limited key, in its current refill period. Whoever may revoke the key may
-- refill it (its owner, an admin or owner of its project, a trusted role); outsiders get one
-- denial for "not yours" and "does not exist".
CREATE FUNCTION gateway.api_key_refill(key_id uuid, amount bigint) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  k gateway.api_keys := gateway._api_key_for_change($1, true);
  u gateway.api_key_usage;
  current_period bigint;
BEGIN
  IF amount IS NULL OR amount <= 0 OR amount > 1000000000000000 THEN
    RAISE EXCEPTION 'refill amount must be between 1 and 10^15'
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Pass how many uses to add to the key.';
  END IF;
  IF k.usage_limit IS NULL THEN
    RAISE EXCEPTION 'API key % has no usage limit', k.id
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Only keys issued with remaining => ... count uses; this key is unlimited.';
  END IF;
  current_period := gateway._usage_period(k.created_at, k.refill_interval, now());
  SELECT * INTO u FROM gateway.api_key_usage AS x WHERE x.key_id = k.id FOR UPDATE;
  IF NOT FOUND THEN
    INSERT INTO gateway.api_key_usage (key_id, period, granted) VALUES (k.id, current_period, amount);
  ELSIF u.period < current_period THEN
    -- The period's own refill has not been written yet: it comes first, then the addition.
    UPDATE gateway.api_key_usage AS x
       SET period = current_period, granted = k.refill_amount + amount, spent = 0, updated_at = now()
     WHERE x.key_id = k.id;
  ELSE
    UPDATE gateway.api_key_usage AS x SET granted = x.granted + amount, updated_at = now()
     WHERE x.key_id = k.id;
  END IF;
  PERFORM gateway._usage_refilled();
  PERFORM gateway._audit('api_key.refilled', 'api_key', k.id, k.project_id, k.user_id,
                         jsonb_build_object('name', k.name, 'key_prefix', k.key_prefix, 'amount', amount));
END
$$;
COMMENT ON FUNCTION gateway.api_key_refill(uuid, bigint) IS
  'Adds uses to a usage-limited key (its owner, an admin or owner of its project, or a trusted role); verify sees them from the next statement after commit.';

-- Verify gains required_scope, cost and usage_remaining: a new signature, so the old function
-- goes and its grants move over. Positional and named calls with the first two arguments work
-- unchanged.
-- (The old ACL waits in a transaction-local setting: no helper object to clean up.)
SELECT set_config('pg_gateway.upgrade_acl_verify', coalesce(p.proacl::text, ''), true)
  FROM pg_proc AS p WHERE p.oid = 'gateway.api_key_verify(text, uuid)'::regprocedure;
DROP FUNCTION gateway.api_key_verify(text, uuid);
CREATE FUNCTION gateway.api_key_verify(api_key text, public_interface_id uuid DEFAULT NULL,
                                       required_scope text DEFAULT NULL, cost integer DEFAULT 1,
                                       OUT valid boolean, OUT reason text, OUT key_id uuid,
                                       OUT user_id uuid, OUT project_id uuid,
                                       OUT rate_limit_remaining integer,
                                       OUT retry_after_seconds integer,
                                       OUT usage_remaining bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'gateway_api_key_verify'
-- Not SECURITY DEFINER: it reads gateway.api_keys through its index directly in C, parses no SQL
-- and so depends on no search_path; EXECUTE on it is the only gate (see src/pg/key_lookup.hpp).
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION gateway.api_key_verify(text, uuid, text, integer) IS
  'Checks an API key: reason is ok, malformed, unknown, revoked, expired, wrong_interface, insufficient_scope, usage_exceeded or rate_limited. With required_scope the key must hold that scope; cost uses are spent from a usage-limited key (0: only check). Never raises for a bad key and never writes, so it works on read-only transactions and hot standbys.';
REVOKE ALL ON FUNCTION gateway.api_key_verify(text, uuid, text, integer) FROM PUBLIC;
DO $$
DECLARE
  g oid;
BEGIN
  FOR g IN SELECT DISTINCT a.grantee
             FROM aclexplode(nullif(current_setting('pg_gateway.upgrade_acl_verify'), '')::aclitem[]) AS a
            WHERE a.privilege_type = 'EXECUTE'
              AND a.grantee <> (SELECT proowner FROM pg_proc WHERE oid = 'gateway.api_key_verify(text, uuid, text, integer)'::regprocedure) LOOP
    EXECUTE format('GRANT EXECUTE ON FUNCTION gateway.api_key_verify(text, uuid, text, integer) TO %s',
                   CASE WHEN g = 0 THEN 'PUBLIC' ELSE g::regrole::text END);
  END LOOP;
END
$$;

-- Listings show scopes and limits, and the uses left as last written by the worker.
CREATE OR REPLACE VIEW gateway.api_keys_list WITH (security_invoker = true) AS
SELECT k.id, k.user_id, k.project_id, k.public_interface_id, k.name, k.key_prefix,
       CASE WHEN NOT k.is_active OR k.revoked_at <= now() THEN 'revoked'
            WHEN k.expires_at <= now() THEN 'expired'
            WHEN k.replaced_by IS NOT NULL THEN 'rotating'
            ELSE 'active' END AS status,
       k.is_active, k.expires_at, k.revoked_at, k.rate_limit_per_minute,
       k.rotated_from, k.replaced_by, k.last_used_at, k.created_at,
       k.scopes, k.usage_limit, k.refill_amount, k.refill_interval,
       (SELECT CASE WHEN u.period < gateway._usage_period(k.created_at, k.refill_interval, now()) THEN k.refill_amount
                    ELSE GREATEST(u.granted - u.spent, 0) END
          FROM gateway.api_key_usage AS u WHERE u.key_id = k.id) AS usage_remaining
  FROM gateway.api_keys AS k;

-- Roles that may read keys' columns read the new ones and the counters too, or the view would
-- stop working for them.
DO $$
DECLARE
  g oid;
BEGIN
  FOR g IN
    SELECT a.grantee FROM pg_attribute AS att, aclexplode(att.attacl) AS a
     WHERE att.attrelid = 'gateway.api_keys'::regclass AND att.attname = 'key_prefix'
       AND a.privilege_type = 'SELECT'
    UNION
    SELECT a.grantee FROM pg_class AS c, aclexplode(c.relacl) AS a
     WHERE c.oid = 'gateway.api_keys'::regclass AND a.privilege_type = 'SELECT' AND a.grantee <> c.relowner
  LOOP
    EXECUTE format('GRANT SELECT (scopes, usage_limit, refill_amount, refill_interval) ON gateway.api_keys TO %1$s;'
                   'GRANT SELECT ON gateway.api_key_usage TO %1$s',
                   CASE WHEN g = 0 THEN 'PUBLIC' ELSE g::regrole::text END);
  END LOOP;
END
$$;
REVOKE ALL ON gateway.api_key_usage FROM PUBLIC;
-- A pure computation the listing view calls as the caller.
GRANT EXECUTE ON FUNCTION gateway._usage_period(timestamptz, interval, timestamptz) TO PUBLIC;
REVOKE ALL ON FUNCTION gateway._check_key_limits(text[], bigint, bigint, interval),
  gateway._api_keys_inherit_limits(), gateway._api_keys_usage_row(), gateway._usage_refilled(),
  gateway.api_key_refill(uuid, bigint) FROM PUBLIC;

------------------------------------------------------------------------------------------------
-- The operator's checks: health, audit retention
------------------------------------------------------------------------------------------------

-- What only C can see: the master key files' owner and mode (checked by the code that loads
-- them, without reading the key), whether the worker runs, and what the worker last learnt of
-- each target (its circuit breaker, last answer, last failure; backends never call a target).
CREATE FUNCTION gateway._health_internal(OUT name text, OUT status text, OUT detail text,
                                         OUT hint text, OUT problem text) RETURNS SETOF record
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'gateway_health_internal';
COMMENT ON FUNCTION gateway._health_internal() IS
  'Internal to gateway.health: master key file owner and mode, the worker, and each sync target''s reachability as the worker last saw it.';

-- Whether one logging setting, as a role or database override (pg_db_role_setting) gives it,
-- writes statements, their arguments or their parse trees to the server log: NULL when not,
-- else 'critical' or 'warning' and why. Durations are judged by their sign (-1 is off).
CREATE FUNCTION gateway._log_setting_risk(setting text, value text, OUT status text, OUT why text)
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE
           WHEN $1 = 'log_statement' AND lower(btrim($2)) = 'all' THEN 'critical'
           WHEN $1 = 'log_statement' AND lower(btrim($2)) = 'mod' THEN 'warning'
           WHEN $1 IN ('log_min_duration_statement', 'auto_explain.log_min_duration')
                AND $2 ~ '^\s*0+\s*[a-z]*\s*$' THEN 'critical'
           WHEN $1 IN ('log_min_duration_statement', 'auto_explain.log_min_duration', 'log_min_duration_sample')
                AND $2 !~ '^\s*-' THEN 'warning'
           WHEN $1 = 'log_transaction_sample_rate' AND $2 ~ '^\s*[0-9.e+-]+\s*$' AND $2::float8 > 0 THEN 'warning'
           WHEN $1 = 'log_min_error_statement'
                AND lower(btrim($2)) IN ('debug5', 'debug4', 'debug3', 'debug2', 'debug1', 'debug', 'info', 'notice', 'warning') THEN 'warning'
           WHEN $1 = 'log_parameter_max_length_on_error' AND $2 !~ '^\s*0+\s*[a-z]*\s*$' THEN 'warning'
           WHEN $1 IN ('debug_print_parse', 'debug_print_rewritten', 'debug_print_plan')
                AND lower(btrim($2)) IN ('on', 'true', 'yes', '1') THEN 'warning'
         END,
         CASE
           WHEN $1 = 'log_statement' THEN
             CASE lower(btrim($2))
               WHEN 'all' THEN 'every statement is logged, with the API keys and credentials passed to gateway functions'
               ELSE 'every data-changing statement is logged, including those that pass credentials to gateway functions' END
           WHEN $1 IN ('log_min_duration_statement', 'auto_explain.log_min_duration') AND $2 ~ '^\s*0+\s*[a-z]*\s*$' THEN
             'every statement is logged with its text and bind parameters, API keys and credentials included'
           WHEN $1 IN ('log_min_duration_statement', 'auto_explain.log_min_duration', 'log_min_duration_sample') THEN
             'statements slower than ' || btrim($2) || CASE WHEN $2 ~ '^\s*[0-9]+\s*$' THEN ' ms' ELSE '' END
             || ' are logged with their text and bind parameters: a verify or encryption slowed down by load leaks its secret'
           WHEN $1 = 'log_transaction_sample_rate' THEN
             'every statement of a sample of transactions is logged with its arguments'
           WHEN $1 = 'log_min_error_statement' THEN
             'a statement that raises even a ' || lower(btrim($2)) || ' is logged with its text'
           WHEN $1 = 'log_parameter_max_length_on_error' THEN
             'the bind parameters of a failing statement are logged (an API key, credentials)'
           ELSE 'parse trees, with the constants of each statement, are logged'
         END
$$;
COMMENT ON FUNCTION gateway._log_setting_risk(text, text) IS
  'Internal to gateway.health: whether a logging setting''s value writes secrets passed as SQL arguments to the server log.';

-- Every check, one row each. The values judged are what a new session gets (pg_settings.reset_val:
-- the configuration file, ALTER SYSTEM, the command line): a session's own SET changes only that
-- session, and a SET by a caller of the key functions is visible to nobody else. Role and
-- database overrides, which a new session of those roles does get, are the role_settings row.
-- Trusted callers only (superuser, BYPASSRLS such as service_role, the extension's owner);
-- anyone else gets no row, even if granted the view.
CREATE FUNCTION gateway._health_checks() RETURNS TABLE (name text, status text, detail text, hint text, problem text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  logging_hint constant text :=
    'Secrets are passed to gateway functions as arguments: keep statement logging off in the server configuration '
    '(ALTER SYSTEM RESET <setting>; SELECT pg_reload_conf()), and treat the log written so far as holding secrets.';
  statements_logged boolean;
BEGIN
  IF NOT gateway._caller_is_trusted() THEN
    RETURN;
  END IF;
  statements_logged := EXISTS (
    SELECT FROM pg_catalog.pg_settings AS s, gateway._log_setting_risk(s.name, s.reset_val) AS r
     WHERE s.name IN ('log_statement', 'log_min_duration_statement', 'log_transaction_sample_rate')
       AND r.status IS NOT NULL);

  RETURN QUERY
  WITH v AS (
    SELECT s.name, s.reset_val AS value FROM pg_catalog.pg_settings AS s
     WHERE s.name IN ('log_statement', 'log_min_duration_statement', 'log_min_duration_sample',
                      'log_statement_sample_rate', 'log_transaction_sample_rate', 'log_min_error_statement',
                      'log_parameter_max_length', 'log_parameter_max_length_on_error',
                      'debug_print_parse', 'debug_print_rewritten', 'debug_print_plan',
                      'auto_explain.log_min_duration', 'shared_preload_libraries',
                      'session_preload_libraries', 'local_preload_libraries')
  ),
  logging AS (
    SELECT 1 AS ord, v.name, r.status, r.why, v.value
      FROM v, gateway._log_setting_risk(v.name, v.value) AS r
     WHERE v.name IN ('log_statement', 'log_min_duration_statement', 'log_min_error_statement',
                      'log_parameter_max_length_on_error')
  ),
  found AS (
    SELECT l.ord, l.name, COALESCE(l.status, 'ok'),
           CASE WHEN l.status IS NULL THEN format('%s = %s', l.name, l.value)
                         || CASE WHEN l.name = 'log_min_error_statement'
                                 THEN ': a failing statement is logged with its text; pass secrets as bind parameters ($1), not literals'
                                 ELSE '' END
                ELSE format('%s = %s: %s', l.name, l.value, l.why) END,
           CASE WHEN l.status IS NULL THEN NULL ELSE logging_hint END,
           CASE WHEN l.status IS NULL THEN NULL ELSE l.name || '=' || l.value END
      FROM logging AS l
    UNION ALL
    -- Sampled statement logging and parse-tree dumps, one row.
    SELECT 2, 'log_sampling_and_debug',
           COALESCE(max(r.status), 'ok'),
           COALESCE(string_agg(format('%s = %s: %s', v.name, v.value, r.why), '; ' ORDER BY v.name)
                      FILTER (WHERE r.status IS NOT NULL),
                    'no sampled statement logging, no parse-tree dumps'),
           CASE WHEN max(r.status) IS NULL THEN NULL ELSE logging_hint END,
           string_agg(v.name || '=' || v.value, ',' ORDER BY v.name) FILTER (WHERE r.status IS NOT NULL)
      FROM v, gateway._log_setting_risk(v.name, v.value) AS r
     WHERE v.name IN ('log_min_duration_sample', 'log_transaction_sample_rate', 'debug_print_parse',
                      'debug_print_rewritten', 'debug_print_plan')
       AND (v.name <> 'log_min_duration_sample'
            OR (SELECT x.value FROM v AS x WHERE x.name = 'log_statement_sample_rate')::float8 > 0)
    UNION ALL
    -- Bind parameters of statements that statement logging writes: not a problem of its own
    -- (turning statement logging off is the fix), but what a leak would contain.
    SELECT 3, 'log_parameter_max_length', 'ok',
           CASE WHEN v.value = '0' THEN 'log_parameter_max_length = 0: statements that are logged are written without their bind parameters (literals in their text still are)'
                ELSE format('log_parameter_max_length = %s: statements that are logged are written with their bind parameters%s%s',
                            v.value, CASE WHEN v.value = '-1' THEN ' in full' ELSE ' (up to ' || v.value || ' bytes each)' END,
                            CASE WHEN statements_logged THEN ' (see the rows above)' ELSE '; none is logged by kind or duration' END) END,
           NULL::text, NULL::text
      FROM v WHERE v.name = 'log_parameter_max_length'
    UNION ALL
    -- auto_explain logs the text of every statement it explains (PostgreSQL 16 adds its
    -- parameters, auto_explain.log_parameter_max_length).
    SELECT 4, 'auto_explain',
           CASE WHEN ae.value IS NOT NULL THEN COALESCE(r.status, 'ok')
                WHEN preload THEN 'warning' ELSE 'ok' END,
           CASE WHEN ae.value IS NOT NULL AND r.status IS NOT NULL
                  THEN format('auto_explain.log_min_duration = %s: %s (auto_explain logs the query text)', ae.value, r.why)
                WHEN ae.value IS NOT NULL THEN 'auto_explain is loaded but logs nothing (auto_explain.log_min_duration = -1)'
                WHEN preload THEN 'auto_explain is preloaded for sessions, but its settings cannot be read here'
                ELSE 'auto_explain is not loaded' END,
           CASE WHEN (ae.value IS NOT NULL AND r.status IS NOT NULL) OR (ae.value IS NULL AND preload)
                THEN 'auto_explain logs the text of the statements it explains: set auto_explain.log_min_duration = -1, or do not load it where keys are verified.' END,
           CASE WHEN ae.value IS NOT NULL AND r.status IS NOT NULL THEN 'log_min_duration=' || ae.value
                WHEN ae.value IS NULL AND preload THEN 'preloaded' END
      FROM (SELECT (SELECT v.value FROM v WHERE v.name = 'auto_explain.log_min_duration') AS value,
                   EXISTS (SELECT FROM v WHERE v.name LIKE '%preload_libraries' AND v.value ~ 'auto_explain') AS preload) AS ae
      LEFT JOIN LATERAL gateway._log_setting_risk('auto_explain.log_min_duration', ae.value) AS r ON true
    UNION ALL
    -- ALTER ROLE / ALTER DATABASE overrides that turn any of it on for some sessions.
    SELECT 5, 'role_settings',
           COALESCE(max(o.status), 'ok'),
           COALESCE(string_agg(o.text, '; ' ORDER BY o.text), 'no role or database override turns statement logging on'),
           CASE WHEN max(o.status) IS NOT NULL
                THEN 'Remove the override (ALTER ROLE ... RESET <setting>, ALTER DATABASE ... RESET <setting>): sessions of that role or database log the secrets they pass.' END,
           string_agg(o.text, ';' ORDER BY o.text)
      FROM (SELECT r.status,
                   format('%s%s: %s', COALESCE('role ' || quote_ident(a.rolname), 'every role'),
                          COALESCE(' in database ' || quote_ident(d.datname), ''), c.setting) AS text
              FROM pg_catalog.pg_db_role_setting AS s
              LEFT JOIN pg_catalog.pg_roles AS a ON a.oid = s.setrole
              LEFT JOIN pg_catalog.pg_database AS d ON d.oid = s.setdatabase,
                   unnest(s.setconfig) AS c(setting),
                   gateway._log_setting_risk(split_part(c.setting, '=', 1), substr(c.setting, strpos(c.setting, '=') + 1)) AS r
             WHERE s.setdatabase IN (0, (SELECT x.oid FROM pg_catalog.pg_database AS x WHERE x.datname = current_database()))
               AND r.status IS NOT NULL) AS o
    UNION ALL
    SELECT 6, i.name, i.status, i.detail, i.hint, i.problem FROM gateway._health_internal() AS i
    UNION ALL
    -- Jobs that gave up: a remote object that does not match the tables.
    SELECT 7, 'dead_jobs',
           CASE WHEN count(*) > 0 THEN 'warning' ELSE 'ok' END,
           CASE WHEN count(*) = 0 THEN 'no dead jobs'
                ELSE format('%s dead job(s): %s', count(*), string_agg(format('%s %s', d.n, d.target), ', ' ORDER BY d.target)) END,
           CASE WHEN count(*) > 0 THEN 'See last_error in gateway.sync_jobs (state = ''dead''); fix the cause, then gateway.sync_retry(job id), or gateway.sync_cancel(job id).' END,
           CASE WHEN count(*) > 0 THEN 'dead' END
      FROM (SELECT j.target, count(*) AS n FROM gateway.sync_jobs AS j WHERE j.state = 'dead' GROUP BY j.target) AS d
    UNION ALL
    -- Jobs normally run within seconds and retry with backoff up to gateway.sync_retry_max
    -- (5 min by default): 15 minutes of waiting is a warning, an hour critical.
    SELECT 8, 'oldest_pending_job',
           CASE WHEN p.age > interval '1 hour' THEN 'critical' WHEN p.age > interval '15 minutes' THEN 'warning' ELSE 'ok' END,
           CASE WHEN p.age IS NULL THEN 'no pending jobs'
                ELSE format('the oldest pending job (%s) has waited %s minutes', p.target, floor(extract(epoch FROM p.age) / 60)) END,
           CASE WHEN p.age > interval '15 minutes'
                THEN 'See gateway.sync_status and the kong, temporal and nexus rows here: is the target configured, reachable, the worker running?' END,
           CASE WHEN p.age > interval '1 hour' THEN 'over 1 hour' WHEN p.age > interval '15 minutes' THEN 'over 15 minutes' END
      FROM (SELECT now() - j.created_at AS age, j.target FROM gateway.sync_jobs AS j
             WHERE j.state = 'pending' ORDER BY j.created_at LIMIT 1) AS p
      RIGHT JOIN (SELECT) AS one ON true
    UNION ALL
    -- The verify cache follows key changes through two triggers that must fire always. A restore
    -- with --disable-triggers re-enables them for origin sessions only; verify then stays correct
    -- by skipping the cache, and nothing else would say so.
    SELECT 9, 'verify_cache',
           CASE WHEN c.size = 0 OR c.n = 2 THEN 'ok' ELSE 'warning' END,
           CASE WHEN c.size = 0 THEN 'the verify cache is off (gateway.verify_cache_size = 0)'
                WHEN c.n = 2 THEN 'hot keys are answered from the verify cache (both of its triggers fire always)'
                ELSE 'a verify cache trigger on gateway.api_keys is missing or not ENABLE ALWAYS: every verify probes the index (answers stay correct)' END,
           CASE WHEN c.size <> 0 AND c.n <> 2
                THEN 'ALTER TABLE gateway.api_keys ENABLE ALWAYS TRIGGER zz_verify_cache; ALTER TABLE gateway.api_keys ENABLE ALWAYS TRIGGER zz_verify_cache_truncate;' END,
           CASE WHEN c.size <> 0 AND c.n <> 2 THEN 'triggers' END
      FROM (SELECT pg_catalog.current_setting('gateway.verify_cache_size')::int AS size,
                   (SELECT count(*) FROM pg_catalog.pg_trigger AS g
                     WHERE g.tgrelid OPERATOR(pg_catalog.=) 'gateway.api_keys'::pg_catalog.regclass
                       AND g.tgname IN ('zz_verify_cache', 'zz_verify_cache_truncate')
                       AND g.tgenabled OPERATOR(pg_catalog.=) 'A') AS n) AS c
  )
  SELECT x.name, x.status, x.detail, x.hint, x.problem FROM found AS x (ord, name, status, detail, hint, problem)
   ORDER BY x.ord, x.name;
END
$$;
COMMENT ON FUNCTION gateway._health_checks() IS
  'The checks behind gateway.health, with a stable problem key per finding (the worker logs each problem once). Trusted roles only: others get no row.';

CREATE VIEW gateway.health AS
  SELECT h.name, h.status, h.detail, h.hint FROM gateway._health_checks() AS h;
COMMENT ON VIEW gateway.health IS
  'The operator''s checks, one row each (status ok, warning or critical, with a detail and a hint): logging settings that would write secrets passed as arguments to the server log, the master key file''s owner and mode, the worker, Kong and Temporal reachability as the worker last saw it, dead jobs, the oldest pending job. Trusted roles only (superuser, service_role, the extension''s owner).';

REVOKE ALL ON FUNCTION gateway._health_internal() FROM PUBLIC;
REVOKE ALL ON FUNCTION gateway._log_setting_risk(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION gateway._health_checks() FROM PUBLIC;
REVOKE ALL ON gateway.health FROM PUBLIC;

-- Audit pruning. The log stays append-only for everyone: a DELETE passes its guard only in the
-- transaction of gateway._audit_prune, which announces its cutoff in gateway.audit_prunes (a
-- table only the extension's owner writes, unlike a custom setting any role may SET), and row
-- level security lets that DELETE reach only records older than the announced cutoff.
CREATE TABLE gateway.audit_prunes (
  xid    xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),  -- assigns one: a prune writes anyway
  cutoff timestamptz NOT NULL
);
COMMENT ON TABLE gateway.audit_prunes IS
  'Internal: the cutoff of the audit prune running in this transaction (empty outside it). Nobody else reads or writes it.';
ALTER TABLE gateway.audit_prunes ENABLE ROW LEVEL SECURITY;
ALTER TABLE gateway.audit_prunes FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_prunes_own_transaction ON gateway.audit_prunes
  USING (xid OPERATOR(pg_catalog.=) pg_catalog.pg_current_xact_id_if_assigned())
  WITH CHECK (xid OPERATOR(pg_catalog.=) pg_catalog.pg_current_xact_id());
REVOKE ALL ON gateway.audit_prunes FROM PUBLIC;

-- Both policies apply to the extension's owner only (the role running this script): no other
-- role may read gateway.audit_prunes, and none should evaluate a subquery on it. The _if_assigned
-- form never assigns a transaction id (an owner reading the log on a hot standby would fail).
CREATE POLICY audit_log_prune ON gateway.audit_log FOR DELETE TO CURRENT_USER
  USING (occurred_at OPERATOR(pg_catalog.<)
         (SELECT pg_catalog.max(t.cutoff) FROM gateway.audit_prunes AS t
           WHERE t.xid OPERATOR(pg_catalog.=) pg_catalog.pg_current_xact_id_if_assigned()));

-- The prune's own statements must see what they delete, whatever the project (row level security
-- is forced on the owner too).
CREATE POLICY audit_log_prune_read ON gateway.audit_log FOR SELECT TO CURRENT_USER
  USING (occurred_at OPERATOR(pg_catalog.<)
         (SELECT pg_catalog.max(t.cutoff) FROM gateway.audit_prunes AS t
           WHERE t.xid OPERATOR(pg_catalog.=) pg_catalog.pg_current_xact_id_if_assigned()));

CREATE OR REPLACE FUNCTION gateway._audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- The one way through: gateway._audit_prune's DELETE, in its own transaction, run as the
  -- extension's owner or a superuser. A BYPASSRLS role granted the two tables (service_role under
  -- a grant-everything setup) could write the announcement itself and sees past the policies.
  IF TG_OP = 'DELETE'
     AND pg_has_role(current_user, (SELECT n.nspowner FROM pg_namespace AS n WHERE n.nspname = 'gateway'), 'USAGE')
     AND EXISTS (SELECT FROM gateway.audit_prunes AS t WHERE t.xid = pg_current_xact_id_if_assigned()) THEN
    RETURN NULL;
  END IF;
  RAISE EXCEPTION 'gateway.audit_log is append-only'
    USING ERRCODE = 'insufficient_privilege',
          DETAIL = format('%s on the audit log is not allowed.', TG_OP),
          HINT = 'Audit records are kept as written; query them, do not change them.';
END
$$;

CREATE INDEX audit_log_occurred_idx ON gateway.audit_log (occurred_at);

-- Deletes up to `max_rows` records (NULL: all) older than `cutoff`, oldest first, and records
-- that it did (the record is newer than the cutoff, so no prune in this transaction deletes it).
-- For audit_prune and the worker's retention; not callable by anyone else.
CREATE FUNCTION gateway._audit_prune(cutoff timestamptz, max_rows integer, origin text) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  n bigint;
BEGIN
  INSERT INTO gateway.audit_prunes (cutoff) VALUES ($1);
  DELETE FROM gateway.audit_log AS a
   WHERE a.id IN (SELECT o.id FROM gateway.audit_log AS o WHERE o.occurred_at < $1
                   ORDER BY o.occurred_at LIMIT $2);
  GET DIAGNOSTICS n = ROW_COUNT;
  DELETE FROM gateway.audit_prunes AS t WHERE t.xid = pg_current_xact_id_if_assigned();
  IF n > 0 OR $3 = 'audit_prune' THEN
    PERFORM gateway._audit('audit_log.pruned', 'audit_log', NULL, NULL, NULL,
                           jsonb_build_object('cutoff', $1, 'count', n, 'by', $3));
  END IF;
  RETURN n;
END
$$;
COMMENT ON FUNCTION gateway._audit_prune(timestamptz, integer, text) IS
  'Internal: deletes up to max_rows audit records older than cutoff (NULL: all) and audits it. Used by gateway.audit_prune and the worker''s gateway.audit_retention.';

-- For the extension's owner (and superusers) only: not service_role, not project owners. The
-- audit log is the record of what the app's own keys did; a leaked service_role key must not be
-- able to erase it.
CREATE FUNCTION gateway.audit_prune(older_than interval) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF NOT pg_has_role(gateway._request_role(),
                     (SELECT n.nspowner FROM pg_namespace AS n WHERE n.nspname = 'gateway'), 'USAGE') THEN
    RAISE EXCEPTION 'permission denied to prune the audit log'
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'Only the extension''s owner or a superuser prunes the audit log (service_role and project owners cannot); or set gateway.audit_retention.';
  END IF;
  -- Judged by the cutoff it gives, not by interval comparison (a month counts 30 days there:
  -- '-120 months 3652 days' compares as 52 days, yet its cutoff is now).
  IF older_than IS NULL OR now() - older_than > now() - interval '1 day' THEN
    RAISE EXCEPTION 'older_than must be at least 1 day, not %', COALESCE(older_than::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Give the age of the oldest records to keep, e.g. gateway.audit_prune(''90 days'').';
  END IF;
  RETURN gateway._audit_prune(now() - older_than, NULL, 'audit_prune');
END
$$;
COMMENT ON FUNCTION gateway.audit_prune(interval) IS
  'Deletes audit records older than older_than (at least 1 day) and returns how many; records the prune (cutoff, count) in the audit log. The extension''s owner and superusers only.';

REVOKE ALL ON FUNCTION gateway._audit_prune(timestamptz, integer, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION gateway.audit_prune(interval) FROM PUBLIC;

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

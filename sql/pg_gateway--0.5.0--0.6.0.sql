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
                   CASE WHEN g = 0 THEN 'PUBLIC' ELSE quote_ident(g::regrole::text) END);
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
                   CASE WHEN g = 0 THEN 'PUBLIC' ELSE quote_ident(g::regrole::text) END);
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
                   CASE WHEN g = 0 THEN 'PUBLIC' ELSE quote_ident(g::regrole::text) END);
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

------------------------------------------------------------------------------------------------
-- The verify cache
------------------------------------------------------------------------------------------------

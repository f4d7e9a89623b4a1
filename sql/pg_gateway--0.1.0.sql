-- pg_gateway 0.1.0: API keys, the audit log, and the helpers they need.
\echo Use "CREATE EXTENSION pg_gateway" to load this file. \quit

-- Nothing here is usable by PUBLIC: grants are the DBA's decision (see docs/api-keys.md).
-- Functions named _* are internal: granted to nobody and called only from the SECURITY DEFINER
-- entry points, which pin search_path for everything they call.
REVOKE ALL ON SCHEMA gateway FROM PUBLIC;

------------------------------------------------------------------------------------------------
-- Caller identity
------------------------------------------------------------------------------------------------

-- The platform user on whose behalf the current statement runs, the way Supabase/PostgREST sets
-- it: request.jwt.claims ->> 'sub', or the older request.jwt.claim.sub. NULL when neither is set
-- (a trusted server-side role, psql, the worker).
-- A plain (invoker) SQL function without SET, so the planner can inline it into RLS policies;
-- every name in it is schema-qualified, so the caller's search_path cannot redirect it.
CREATE FUNCTION gateway.current_user_id() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT CAST(COALESCE(
           CAST(NULLIF(pg_catalog.current_setting('request.jwt.claims', true), '') AS pg_catalog.jsonb)
             OPERATOR(pg_catalog.->>) 'sub',
           NULLIF(pg_catalog.current_setting('request.jwt.claim.sub', true), '')
         ) AS pg_catalog.uuid)
$$;
COMMENT ON FUNCTION gateway.current_user_id() IS
  'The caller''s platform user id from request.jwt.claims (sub) or request.jwt.claim.sub; NULL when absent.';

-- Refuses to act on another user's keys when the caller is identified by a JWT. Callers without
-- a JWT are trusted server-side roles that were granted EXECUTE explicitly.
CREATE FUNCTION gateway._require_key_owner(owner uuid) RETURNS void
LANGUAGE plpgsql STABLE
AS $$
DECLARE
  caller uuid := gateway.current_user_id();
BEGIN
  IF caller IS NOT NULL AND caller IS DISTINCT FROM owner THEN
    RAISE EXCEPTION 'permission denied for API keys of another user'
      USING ERRCODE = 'insufficient_privilege',
            DETAIL = 'The request is authenticated as a different user than the key''s owner.',
            HINT = 'Issue and manage keys only for the authenticated user, or call from a trusted server role.';
  END IF;
END
$$;

------------------------------------------------------------------------------------------------
-- Audit log: append-only, never holds a secret
------------------------------------------------------------------------------------------------

CREATE TABLE gateway.audit_log (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  occurred_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
  actor_user_id   uuid DEFAULT gateway.current_user_id(),
  actor_role      text NOT NULL DEFAULT session_user,
  action          text NOT NULL,
  object_type     text NOT NULL,
  object_id       uuid,
  project_id      uuid,
  subject_user_id uuid,
  details         jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_object_idx ON gateway.audit_log (object_id, occurred_at);
CREATE INDEX audit_log_project_idx ON gateway.audit_log (project_id, occurred_at);
COMMENT ON TABLE gateway.audit_log IS
  'Append-only record of security-relevant events (key issue/revoke/rotate, verify failures). Never holds a secret.';

CREATE FUNCTION gateway._audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RAISE EXCEPTION 'gateway.audit_log is append-only'
    USING ERRCODE = 'insufficient_privilege',
          DETAIL = format('%s on the audit log is not allowed.', TG_OP),
          HINT = 'Audit records are kept as written; query them, do not change them.';
END
$$;
CREATE TRIGGER audit_log_append_only
  BEFORE UPDATE OR DELETE OR TRUNCATE ON gateway.audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION gateway._audit_log_append_only();

CREATE FUNCTION gateway._audit(action text, object_type text, object_id uuid, project_id uuid,
                               subject_user_id uuid, details jsonb) RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
  INSERT INTO gateway.audit_log (action, object_type, object_id, project_id, subject_user_id, details)
  VALUES ($1, $2, $3, $4, $5, pg_catalog.jsonb_strip_nulls(COALESCE($6, '{}')));
END
$$;

------------------------------------------------------------------------------------------------
-- API keys
------------------------------------------------------------------------------------------------

CREATE TABLE gateway.api_keys (
  id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id               uuid NOT NULL,
  project_id            uuid NOT NULL,
  public_interface_id   uuid,
  name                  text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  key_prefix            text COLLATE "C" NOT NULL CHECK (key_prefix ~ '^[0-9A-Za-z]{12}$'),
  key_hash              bytea NOT NULL CHECK (length(key_hash) = 32),
  hash_version          smallint NOT NULL CHECK (hash_version > 0),
  is_active             boolean NOT NULL DEFAULT true,
  revoked_at            timestamptz,
  expires_at            timestamptz,
  rate_limit_per_minute integer CHECK (rate_limit_per_minute > 0),
  rotated_from          uuid REFERENCES gateway.api_keys (id) ON DELETE SET NULL,
  replaced_by           uuid REFERENCES gateway.api_keys (id) ON DELETE SET NULL
                        DEFERRABLE INITIALLY DEFERRED,
  last_used_at          timestamptz,
  created_at            timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT api_keys_key_prefix_key UNIQUE (key_prefix),
  CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash),
  CONSTRAINT api_keys_revoked_has_time CHECK (is_active OR revoked_at IS NOT NULL)
) WITH (fillfactor = 90);  -- room on each page for HOT updates of last_used_at
-- A name is unique among a user's current keys; a revoked key or the old half of a rotation
-- gives its name up, so "production" can be rotated or re-issued without inventing new names.
CREATE UNIQUE INDEX api_keys_user_name_key ON gateway.api_keys (user_id, name)
  WHERE is_active AND replaced_by IS NULL;
CREATE INDEX api_keys_project_idx ON gateway.api_keys (project_id);
-- The rotation links are self-references: without these, deleting a key scans the table twice.
CREATE INDEX api_keys_rotated_from_idx ON gateway.api_keys (rotated_from) WHERE rotated_from IS NOT NULL;
CREATE INDEX api_keys_replaced_by_idx ON gateway.api_keys (replaced_by) WHERE replaced_by IS NOT NULL;
CREATE INDEX api_keys_interface_idx ON gateway.api_keys (public_interface_id)
  WHERE public_interface_id IS NOT NULL;
COMMENT ON TABLE gateway.api_keys IS
  'API keys: only a keyed BLAKE2b hash of each key is stored; the key itself is shown once by api_key_issue/api_key_rotate.';
COMMENT ON COLUMN gateway.api_keys.key_prefix IS 'Public lookup handle (12 base62 characters), shown in listings.';
COMMENT ON COLUMN gateway.api_keys.hash_version IS 'Pepper version the key was hashed with (gateway.api_key_pepper_version at issue).';
COMMENT ON COLUMN gateway.api_keys.revoked_at IS 'When the key stops verifying; in the future while a rotation grace period runs.';
COMMENT ON COLUMN gateway.api_keys.last_used_at IS 'Last successful verify, written in batches by the worker (gateway.usage_flush_interval).';

ALTER TABLE gateway.api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE gateway.api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY api_keys_owner_read ON gateway.api_keys FOR SELECT
  USING (user_id = gateway.current_user_id());

ALTER TABLE gateway.audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE gateway.audit_log FORCE ROW LEVEL SECURITY;

CREATE VIEW gateway.api_keys_list WITH (security_invoker = true) AS
SELECT k.id, k.user_id, k.project_id, k.public_interface_id, k.name, k.key_prefix,
       CASE WHEN NOT k.is_active OR k.revoked_at <= now() THEN 'revoked'
            WHEN k.expires_at <= now() THEN 'expired'
            WHEN k.replaced_by IS NOT NULL THEN 'rotating'
            ELSE 'active' END AS status,
       k.is_active, k.expires_at, k.revoked_at, k.rate_limit_per_minute,
       k.rotated_from, k.replaced_by, k.last_used_at, k.created_at
  FROM gateway.api_keys AS k;
COMMENT ON VIEW gateway.api_keys_list IS
  'API keys without their hashes, with a computed status (active, rotating, expired, revoked). Rows are filtered by the caller''s RLS.';

CREATE FUNCTION gateway._api_key_generate(OUT api_key text, OUT key_prefix text,
                                          OUT key_hash bytea, OUT hash_version smallint)
RETURNS record
AS 'MODULE_PATHNAME', 'gateway_api_key_generate'
LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION gateway._check_key_settings(name text, expires_at timestamptz,
                                            rate_limit_per_minute integer) RETURNS void
LANGUAGE plpgsql STABLE
AS $$
BEGIN
  IF name IS NULL OR btrim(name) = '' THEN
    RAISE EXCEPTION 'API key name must not be empty'
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Give the key a name that says where it is used, e.g. ''production''.';
  END IF;
  IF length(name) > 200 THEN
    RAISE EXCEPTION 'API key name is too long'
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('The name has %s characters; at most 200 are allowed.', length(name)),
            HINT = 'Use a shorter name.';
  END IF;
  IF expires_at IS NOT NULL AND expires_at <= now() THEN
    RAISE EXCEPTION 'API key expiry must be in the future'
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('expires_at is %s.', expires_at),
            HINT = 'Pass a later expires_at, or NULL for a key that does not expire.';
  END IF;
  IF rate_limit_per_minute IS NOT NULL AND rate_limit_per_minute <= 0 THEN
    RAISE EXCEPTION 'API key rate limit must be positive'
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('rate_limit_per_minute is %s.', rate_limit_per_minute),
            HINT = 'Pass a number of requests per minute above zero, or NULL for no limit.';
  END IF;
END
$$;

-- Inserts the row of a freshly generated key and returns the key itself. Shared by issue and
-- rotate. ON CONFLICT instead of an exception block: no subtransaction per key, so issuing many
-- keys in one transaction stays fast. A clash of the random prefix (about 1 in 10^21 per pair of
-- keys) is retried; a clash of the name is the caller's error.
CREATE FUNCTION gateway._api_key_insert(id uuid, user_id uuid, project_id uuid, name text,
                                        public_interface_id uuid, expires_at timestamptz,
                                        rate_limit_per_minute integer, rotated_from uuid)
RETURNS text
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  generated record;
BEGIN
  FOR attempt IN 1..3 LOOP
    SELECT * INTO generated FROM gateway._api_key_generate();
    INSERT INTO gateway.api_keys
           (id, user_id, project_id, name, public_interface_id, key_prefix, key_hash,
            hash_version, expires_at, rate_limit_per_minute, rotated_from)
    VALUES ($1, $2, $3, $4, $5, generated.key_prefix, generated.key_hash,
            generated.hash_version, $6, $7, $8)
    ON CONFLICT DO NOTHING;
    IF FOUND THEN
      RETURN generated.api_key;
    END IF;
    IF EXISTS (SELECT FROM gateway.api_keys AS k
                WHERE k.user_id = $2 AND k.name = $4 AND k.is_active AND k.replaced_by IS NULL) THEN
      RAISE EXCEPTION 'an API key named "%" already exists for this user', $4
        USING ERRCODE = 'unique_violation',
              HINT = 'Choose another name, or revoke or rotate the existing key.';
    END IF;
    IF EXISTS (SELECT FROM gateway.api_keys AS k WHERE k.id = $1) THEN
      RAISE EXCEPTION 'API key id % is already taken', $1 USING ERRCODE = 'unique_violation';
    END IF;
  END LOOP;
  RAISE EXCEPTION 'could not generate a unique API key' USING ERRCODE = 'internal_error';
END
$$;

CREATE FUNCTION gateway.api_key_issue(user_id uuid, project_id uuid, name text,
                                      public_interface_id uuid DEFAULT NULL,
                                      expires_at timestamptz DEFAULT NULL,
                                      rate_limit_per_minute integer DEFAULT NULL)
RETURNS TABLE (key_id uuid, api_key text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF $1 IS NULL OR $2 IS NULL THEN
    RAISE EXCEPTION 'API key % must not be null', CASE WHEN $1 IS NULL THEN 'user_id' ELSE 'project_id' END
      USING ERRCODE = 'null_value_not_allowed',
            HINT = 'Pass the owning user and the project the key belongs to.';
  END IF;
  PERFORM gateway._require_key_owner($1);
  PERFORM gateway._check_key_settings($3, $5, $6);

  key_id := gen_random_uuid();
  api_key := gateway._api_key_insert(key_id, $1, $2, $3, $4, $5, $6, NULL);
  PERFORM gateway._audit('api_key.issued', 'api_key', key_id, $2, $1,
    jsonb_build_object('name', $3, 'public_interface_id', $4, 'expires_at', $5,
                       'rate_limit_per_minute', $6));
  RETURN NEXT;
END
$$;
COMMENT ON FUNCTION gateway.api_key_issue(uuid, uuid, text, uuid, timestamptz, integer) IS
  'Issues an API key and returns it once; only its keyed hash is stored.';

-- Locks and returns a key row for a change, or raises no_data_found.
CREATE FUNCTION gateway._api_key_for_update(key_id uuid) RETURNS gateway.api_keys
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  locked gateway.api_keys;
BEGIN
  IF $1 IS NULL THEN
    RAISE EXCEPTION 'API key id must not be null' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  SELECT * INTO locked FROM gateway.api_keys AS k WHERE k.id = $1 FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'API key % does not exist', $1
      USING ERRCODE = 'no_data_found',
            HINT = 'List existing keys with: SELECT * FROM gateway.api_keys_list;';
  END IF;
  PERFORM gateway._require_key_owner(locked.user_id);
  RETURN locked;
END
$$;

CREATE FUNCTION gateway.api_key_revoke(key_id uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  k gateway.api_keys := gateway._api_key_for_update($1);
BEGIN
  IF NOT k.is_active THEN
    RETURN false;
  END IF;
  UPDATE gateway.api_keys AS t
     SET is_active = false, revoked_at = LEAST(COALESCE(t.revoked_at, 'infinity'), now())
   WHERE t.id = k.id;
  PERFORM gateway._audit('api_key.revoked', 'api_key', k.id, k.project_id, k.user_id,
                         jsonb_build_object('name', k.name, 'key_prefix', k.key_prefix));
  RETURN true;
END
$$;
COMMENT ON FUNCTION gateway.api_key_revoke(uuid) IS
  'Revokes a key; it fails verification from the next statement after commit. Returns false if it was already revoked.';

CREATE FUNCTION gateway.api_key_rotate(key_id uuid, grace interval DEFAULT '24 hours')
RETURNS TABLE (new_key_id uuid, api_key text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  old gateway.api_keys := gateway._api_key_for_update($1);
BEGIN
  IF grace IS NULL OR grace < interval '0' THEN
    RAISE EXCEPTION 'rotation grace period must be zero or positive'
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Pass how long the old key keeps working, e.g. interval ''24 hours'', or ''0'' to end it now.';
  END IF;
  IF NOT old.is_active OR old.revoked_at <= now() THEN
    RAISE EXCEPTION 'API key % is revoked and cannot be rotated', old.id
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Issue a new key with gateway.api_key_issue().';
  END IF;
  IF old.replaced_by IS NOT NULL THEN
    RAISE EXCEPTION 'API key % was already rotated', old.id
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = format('Rotate its replacement, key %s, instead.', old.replaced_by);
  END IF;
  IF old.expires_at <= now() THEN
    RAISE EXCEPTION 'API key % has expired and cannot be rotated', old.id
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Issue a new key with gateway.api_key_issue().';
  END IF;

  -- The old key steps aside first (frees its name), then its successor inherits every setting,
  -- expiry included, so rotating never extends a key's life.
  -- (replaced_by's foreign key is checked at commit, when the successor exists.)
  new_key_id := gen_random_uuid();
  UPDATE gateway.api_keys AS t SET replaced_by = new_key_id, revoked_at = now() + grace
   WHERE t.id = old.id;
  api_key := gateway._api_key_insert(new_key_id, old.user_id, old.project_id, old.name,
                                     old.public_interface_id, old.expires_at,
                                     old.rate_limit_per_minute, old.id);

  PERFORM gateway._audit('api_key.rotated', 'api_key', old.id, old.project_id, old.user_id,
    jsonb_build_object('name', old.name, 'key_prefix', old.key_prefix,
                       'replaced_by', new_key_id, 'old_key_valid_until', now() + grace));
  RETURN NEXT;
END
$$;
COMMENT ON FUNCTION gateway.api_key_rotate(uuid, interval) IS
  'Replaces a key with a new one that inherits all its settings; the old key keeps working for the grace period. Returns the new key once.';

CREATE FUNCTION gateway.api_key_verify(api_key text, public_interface_id uuid DEFAULT NULL,
                                       OUT valid boolean, OUT reason text, OUT key_id uuid,
                                       OUT user_id uuid, OUT project_id uuid,
                                       OUT rate_limit_remaining integer,
                                       OUT retry_after_seconds integer)
RETURNS record
AS 'MODULE_PATHNAME', 'gateway_api_key_verify'
-- Not SECURITY DEFINER: it reads gateway.api_keys through its index directly in C, parses no SQL
-- and so depends on no search_path; EXECUTE on it is the only gate (see src/pg/key_lookup.hpp).
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION gateway.api_key_verify(text, uuid) IS
  'Checks an API key: reason is ok, malformed, unknown, revoked, expired, wrong_interface or rate_limited. Never raises for a bad key and never writes, so it works on read-only transactions and hot standbys.';

------------------------------------------------------------------------------------------------
-- Projects and roles
------------------------------------------------------------------------------------------------

CREATE TABLE gateway.project_members (
  project_id uuid NOT NULL,
  user_id    uuid NOT NULL,
  role       text NOT NULL CHECK (role IN ('owner', 'admin', 'editor', 'viewer')),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_members_user_idx ON gateway.project_members (user_id);
COMMENT ON TABLE gateway.project_members IS
  'Who belongs to which project, with a role: owner > admin > editor > viewer.';

CREATE FUNCTION gateway._role_rank(role text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT CASE $1 WHEN 'owner' THEN 4 WHEN 'admin' THEN 3 WHEN 'editor' THEN 2 WHEN 'viewer' THEN 1 END
$$;

-- SECURITY DEFINER so that policies on project_members itself can call it without recursing
-- through RLS; it only ever answers for the calling user.
CREATE FUNCTION gateway.has_project_role(project_id uuid, min_role text DEFAULT 'viewer')
RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF gateway._role_rank(min_role) IS NULL THEN
    RAISE EXCEPTION 'unknown project role "%"', min_role
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Roles are owner, admin, editor and viewer.';
  END IF;
  RETURN EXISTS (
    SELECT FROM gateway.project_members AS m
     WHERE m.project_id = has_project_role.project_id
       AND m.user_id = gateway.current_user_id()
       AND gateway._role_rank(m.role) >= gateway._role_rank(min_role));
END
$$;
COMMENT ON FUNCTION gateway.has_project_role(uuid, text) IS
  'True when the calling user (gateway.current_user_id()) is a member of the project with at least min_role. Safe in RLS policies.';

-- Trusted server roles (no JWT) may act; a JWT-identified caller needs the role in the project.
CREATE FUNCTION gateway._require_project_role(project_id uuid, min_role text) RETURNS void
LANGUAGE plpgsql STABLE
AS $$
BEGIN
  IF gateway.current_user_id() IS NOT NULL AND NOT gateway.has_project_role(project_id, min_role) THEN
    RAISE EXCEPTION 'permission denied: % role required in project %', min_role, project_id
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'Ask a project owner or admin to give you that role.';
  END IF;
END
$$;

-- SECURITY DEFINER: whoever may change members (an admin under RLS) gets the change audited.
CREATE FUNCTION gateway._audit_project_members() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r gateway.project_members := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
BEGIN
  PERFORM gateway._audit('project_member.' || lower(TG_OP), 'project_member', NULL, r.project_id,
    r.user_id, jsonb_build_object('role', r.role,
                                  'previous_role', CASE WHEN TG_OP = 'UPDATE' THEN OLD.role END));
  RETURN NULL;
END
$$;
CREATE TRIGGER project_members_audit AFTER INSERT OR UPDATE OR DELETE ON gateway.project_members
  FOR EACH ROW EXECUTE FUNCTION gateway._audit_project_members();

------------------------------------------------------------------------------------------------
-- Credential encryption
------------------------------------------------------------------------------------------------

-- Key ids and their state; never key material (every key is derived from the master key).
CREATE TABLE gateway.encryption_keys (
  id                 integer PRIMARY KEY CHECK (id > 0),
  master_fingerprint text NOT NULL,
  state              text NOT NULL DEFAULT 'active'
                     CHECK (state IN ('active', 'decrypt_only', 'retired')),
  created_at         timestamptz NOT NULL DEFAULT now(),
  retired_at         timestamptz
);
CREATE UNIQUE INDEX encryption_keys_one_active ON gateway.encryption_keys ((true))
  WHERE state = 'active';
COMMENT ON TABLE gateway.encryption_keys IS
  'Credential encryption key ids: active (encrypts), decrypt_only, retired. Holds no key material; keys are derived from the master key whose fingerprint is recorded.';

-- Tells every backend's cached copy of this table (src/pg/encryption_keys.cpp) that it changed.
CREATE FUNCTION gateway._encryption_keys_changed() RETURNS trigger
AS 'MODULE_PATHNAME', 'gateway_encryption_keys_changed'
LANGUAGE C;
CREATE TRIGGER encryption_keys_changed
  AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON gateway.encryption_keys
  FOR EACH STATEMENT EXECUTE FUNCTION gateway._encryption_keys_changed();

CREATE FUNCTION gateway._master_key_fingerprint() RETURNS text
AS 'MODULE_PATHNAME', 'gateway_master_key_fingerprint'
LANGUAGE C STABLE STRICT;

CREATE FUNCTION gateway.rotate_encryption_key() RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  new_id integer;
BEGIN
  LOCK TABLE gateway.encryption_keys IN EXCLUSIVE MODE;
  UPDATE gateway.encryption_keys SET state = 'decrypt_only' WHERE state = 'active';
  SELECT COALESCE(max(id), 0) + 1 INTO new_id FROM gateway.encryption_keys;
  INSERT INTO gateway.encryption_keys (id, master_fingerprint)
  VALUES (new_id, gateway._master_key_fingerprint());
  PERFORM gateway._audit('encryption_key.rotated', 'encryption_key', NULL, NULL, NULL,
                         jsonb_build_object('key_id', new_id));
  RETURN new_id;
END
$$;
COMMENT ON FUNCTION gateway.rotate_encryption_key() IS
  'Makes a new active credential encryption key (derived from the current master key); older keys keep decrypting. Returns its id.';

CREATE FUNCTION gateway.retire_encryption_key(key_id integer) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  k gateway.encryption_keys;
  in_use bigint;
BEGIN
  SELECT * INTO k FROM gateway.encryption_keys AS e WHERE e.id = $1 FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'encryption key % does not exist', $1 USING ERRCODE = 'no_data_found';
  END IF;
  IF k.state = 'active' THEN
    RAISE EXCEPTION 'encryption key % is the active key', $1
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Rotate first: SELECT gateway.rotate_encryption_key();';
  END IF;
  SELECT count(*) INTO in_use FROM gateway.connectors AS c WHERE c.encryption_key_id = $1;
  IF in_use > 0 THEN
    RAISE EXCEPTION 'encryption key % still protects % credentials', $1, in_use
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Move them to the active key first: CALL gateway.reencrypt_credentials();';
  END IF;
  UPDATE gateway.encryption_keys AS e SET state = 'retired', retired_at = now() WHERE e.id = $1;
  PERFORM gateway._audit('encryption_key.retired', 'encryption_key', NULL, NULL, NULL,
                         jsonb_build_object('key_id', $1));
END
$$;
COMMENT ON FUNCTION gateway.retire_encryption_key(integer) IS
  'Retires a key no credential uses any more; retired keys never decrypt again.';

-- Not SECURITY DEFINER: the C code reads the key directory as the table's owner itself and runs
-- no other SQL (src/pg/encryption_keys.cpp); EXECUTE is the gate.
CREATE FUNCTION gateway.encrypt_credentials(credentials jsonb, context text) RETURNS bytea
AS 'MODULE_PATHNAME', 'gateway_encrypt_credentials'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION gateway.encrypt_credentials(jsonb, text) IS
  'Encrypts JSON with XChaCha20-Poly1305 under the active key; context (e.g. the row id) is bound as associated data.';

CREATE FUNCTION gateway.decrypt_credentials(ciphertext bytea, context text) RETURNS jsonb
AS 'MODULE_PATHNAME', 'gateway_decrypt_credentials'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION gateway.decrypt_credentials(bytea, text) IS
  'Decrypts what encrypt_credentials made for the same context, or fails (SQLSTATE GW001-GW004). Every call is audited.';

-- decrypt_credentials for connector_credentials: audited as a connector decryption.
CREATE FUNCTION gateway._decrypt_connector(ciphertext bytea, context text, connector_id uuid,
                                           project_id uuid, actor uuid) RETURNS jsonb
AS 'MODULE_PATHNAME', 'gateway_decrypt_connector'
LANGUAGE C VOLATILE;

-- The value re-sealed under the active key, or NULL when it cannot be opened.
CREATE FUNCTION gateway._reencrypt(ciphertext bytea, context text) RETURNS bytea
AS 'MODULE_PATHNAME', 'gateway_reencrypt'
LANGUAGE C VOLATILE;

CREATE FUNCTION gateway._envelope_key_id(ciphertext bytea) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
  SELECT ((get_byte($1, 1)::bigint << 24) | (get_byte($1, 2) << 16) | (get_byte($1, 3) << 8)
          | get_byte($1, 4))::integer
$$;

------------------------------------------------------------------------------------------------
-- Connectors
------------------------------------------------------------------------------------------------

CREATE TABLE gateway.connectors (
  id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id            uuid NOT NULL,
  name                  text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  connector_type        text NOT NULL CHECK (length(connector_type) BETWEEN 1 AND 100),
  config                jsonb NOT NULL DEFAULT '{}',
  encrypted_credentials bytea,
  -- Read from the envelope itself, so it can never disagree with the ciphertext.
  encryption_key_id     integer GENERATED ALWAYS AS (gateway._envelope_key_id(encrypted_credentials)) STORED
                        REFERENCES gateway.encryption_keys (id),
  created_by            uuid DEFAULT gateway.current_user_id(),
  created_at            timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT connectors_project_name_key UNIQUE (project_id, name)
);
CREATE INDEX connectors_key_idx ON gateway.connectors (encryption_key_id);
COMMENT ON TABLE gateway.connectors IS
  'Project connectors; credentials are stored only encrypted, bound to the connector id.';
COMMENT ON COLUMN gateway.connectors.config IS 'Non-secret settings. Secrets belong in credentials.';

CREATE FUNCTION gateway.connector_set_credentials(connector_id uuid, credentials jsonb) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  c gateway.connectors;
  sealed bytea;
BEGIN
  IF connector_id IS NULL OR credentials IS NULL THEN
    RAISE EXCEPTION 'connector_id and credentials must not be null' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  SELECT * INTO c FROM gateway.connectors AS x WHERE x.id = connector_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'connector % does not exist', connector_id USING ERRCODE = 'no_data_found';
  END IF;
  PERFORM gateway._require_project_role(c.project_id, 'editor');
  -- Sealed before it touches the row: the plaintext never reaches a table, a trigger or the WAL.
  sealed := gateway.encrypt_credentials(credentials, connector_id::text);
  UPDATE gateway.connectors AS x SET encrypted_credentials = sealed, updated_at = now()
   WHERE x.id = connector_id;
  PERFORM gateway._audit('connector.credentials_set', 'connector', c.id, c.project_id, NULL,
                         jsonb_build_object('name', c.name));
END
$$;
COMMENT ON FUNCTION gateway.connector_set_credentials(uuid, jsonb) IS
  'Encrypts and stores a connector''s credentials (editor role or a trusted server role). Audited.';

CREATE FUNCTION gateway.connector_credentials(connector_id uuid) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  c gateway.connectors;
BEGIN
  SELECT * INTO c FROM gateway.connectors AS x WHERE x.id = connector_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'connector % does not exist', connector_id USING ERRCODE = 'no_data_found';
  END IF;
  PERFORM gateway._require_project_role(c.project_id, 'editor');
  IF c.encrypted_credentials IS NULL THEN
    RETURN NULL;
  END IF;
  -- Audited by the worker, so the record stays even if this transaction rolls back.
  RETURN gateway._decrypt_connector(c.encrypted_credentials, c.id::text, c.id, c.project_id,
                                    gateway.current_user_id());
END
$$;
COMMENT ON FUNCTION gateway.connector_credentials(uuid) IS
  'Decrypts a connector''s credentials for editors and above (or a trusted server role). Every call is audited.';

-- Moves every stored ciphertext to the active key, committing each batch, so it can be stopped
-- and run again at any time. A value that cannot be opened (damaged, or its key unavailable) is
-- left as it is and reported; it never blocks the others. A procedure (CALL), since it commits;
-- for superusers.
CREATE PROCEDURE gateway.reencrypt_credentials(batch_size integer DEFAULT 1000)
LANGUAGE plpgsql
AS $$
DECLARE
  active integer;
  ids uuid[];
  last_id uuid := '00000000-0000-0000-0000-000000000000';
  moved bigint := 0;
  failed bigint := 0;
  n bigint;
BEGIN
  IF batch_size IS NULL OR batch_size < 1 THEN
    RAISE EXCEPTION 'batch_size must be positive' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM gateway._master_key_fingerprint();
  SELECT e.id INTO active FROM gateway.encryption_keys AS e WHERE e.state = 'active';
  IF active IS NULL THEN
    RAISE NOTICE 'no active encryption key: nothing is encrypted yet';
    RETURN;
  END IF;
  LOOP
    -- Keyset pagination: every row is visited once, also the ones that cannot be moved.
    SELECT pg_catalog.array_agg(x.id ORDER BY x.id) INTO ids
      FROM (SELECT c.id FROM gateway.connectors AS c
             WHERE c.encryption_key_id OPERATOR(pg_catalog.<>) active
               AND c.id OPERATOR(pg_catalog.>) last_id
             ORDER BY c.id LIMIT batch_size) AS x;
    EXIT WHEN ids IS NULL;
    last_id := ids[pg_catalog.array_upper(ids, 1)];
    UPDATE gateway.connectors AS c
       SET encrypted_credentials = COALESCE(gateway._reencrypt(c.encrypted_credentials, c.id::text),
                                            c.encrypted_credentials),
           updated_at = pg_catalog.now()
     WHERE c.id OPERATOR(pg_catalog.=) ANY (ids);
    SELECT pg_catalog.count(*) INTO n FROM gateway.connectors AS c
     WHERE c.id OPERATOR(pg_catalog.=) ANY (ids) AND c.encryption_key_id OPERATOR(pg_catalog.=) active;
    moved := moved + n;
    IF n < pg_catalog.cardinality(ids) THEN
      failed := failed + pg_catalog.cardinality(ids) - n;
      RAISE WARNING '% credentials could not be decrypted and were left as they are', pg_catalog.cardinality(ids) - n
        USING HINT = 'List them with: SELECT id FROM gateway.connectors WHERE encryption_key_id <> (SELECT id FROM gateway.encryption_keys WHERE state = ''active'');';
    END IF;
    PERFORM gateway._audit('credentials.reencrypted', 'encryption_key', NULL, NULL, NULL,
                           pg_catalog.jsonb_build_object('key_id', active, 'rows', n));
    COMMIT;
    RAISE NOTICE 're-encrypted % credentials (% so far)', n, moved;
  END LOOP;
  RAISE NOTICE 're-encryption complete: % credentials on key %, % left as they were', moved, active, failed;
END
$$;
COMMENT ON PROCEDURE gateway.reencrypt_credentials(integer) IS
  'Re-encrypts every stored credential under the active key, batch by batch (each batch commits; safe to interrupt and run again).';

------------------------------------------------------------------------------------------------
-- Row level security on every gateway table
------------------------------------------------------------------------------------------------

ALTER TABLE gateway.project_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE gateway.project_members FORCE ROW LEVEL SECURITY;
CREATE POLICY project_members_read ON gateway.project_members FOR SELECT
  USING (gateway.has_project_role(project_id, 'viewer'));
CREATE POLICY project_members_admin_insert ON gateway.project_members FOR INSERT
  WITH CHECK (gateway.has_project_role(project_id, 'admin')
              AND (role <> 'owner' OR gateway.has_project_role(project_id, 'owner')));
CREATE POLICY project_members_admin_update ON gateway.project_members FOR UPDATE
  USING (gateway.has_project_role(project_id, 'admin'))
  WITH CHECK (gateway.has_project_role(project_id, 'admin')
              AND (role <> 'owner' OR gateway.has_project_role(project_id, 'owner')));
CREATE POLICY project_members_admin_delete ON gateway.project_members FOR DELETE
  USING (gateway.has_project_role(project_id, 'admin'));

ALTER TABLE gateway.connectors ENABLE ROW LEVEL SECURITY;
ALTER TABLE gateway.connectors FORCE ROW LEVEL SECURITY;
CREATE POLICY connectors_member_read ON gateway.connectors FOR SELECT
  USING (gateway.has_project_role(project_id, 'viewer'));
CREATE POLICY connectors_editor_insert ON gateway.connectors FOR INSERT
  WITH CHECK (gateway.has_project_role(project_id, 'editor'));
CREATE POLICY connectors_editor_update ON gateway.connectors FOR UPDATE
  USING (gateway.has_project_role(project_id, 'editor'))
  WITH CHECK (gateway.has_project_role(project_id, 'editor'));
CREATE POLICY connectors_editor_delete ON gateway.connectors FOR DELETE
  USING (gateway.has_project_role(project_id, 'editor'));

ALTER TABLE gateway.encryption_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE gateway.encryption_keys FORCE ROW LEVEL SECURITY;

CREATE POLICY api_keys_project_admin_read ON gateway.api_keys FOR SELECT
  USING (gateway.has_project_role(project_id, 'admin'));

CREATE POLICY audit_log_admin_read ON gateway.audit_log FOR SELECT
  USING (project_id IS NOT NULL AND gateway.has_project_role(project_id, 'admin'));

------------------------------------------------------------------------------------------------
-- Privileges: nothing for PUBLIC. See docs/api-keys.md for the grants to give application roles.
------------------------------------------------------------------------------------------------
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA gateway FROM PUBLIC;
REVOKE ALL ON ALL PROCEDURES IN SCHEMA gateway FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA gateway FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA gateway FROM PUBLIC;
-- The one exception: RLS policies call current_user_id() with the querying role's privileges,
-- and it only reads the caller's own request settings.
GRANT EXECUTE ON FUNCTION gateway.current_user_id() TO PUBLIC;
GRANT EXECUTE ON FUNCTION gateway.has_project_role(uuid, text) TO PUBLIC;
-- Computes connectors.encryption_key_id (a generated column) for whoever writes a row.
GRANT EXECUTE ON FUNCTION gateway._envelope_key_id(bytea) TO PUBLIC;

-- Keys and the audit log are user data: pg_dump includes their rows.
SELECT pg_catalog.pg_extension_config_dump('gateway.api_keys', '');
SELECT pg_catalog.pg_extension_config_dump('gateway.audit_log', '');
SELECT pg_catalog.pg_extension_config_dump('gateway.project_members', '');
SELECT pg_catalog.pg_extension_config_dump('gateway.encryption_keys', '');
SELECT pg_catalog.pg_extension_config_dump('gateway.connectors', '');

-- pg_gateway 0.2.0 -> 0.3.0: the tenant boundary holds (membership for every project-scoped act,
-- keys bound only within their project, trust from the role and never from a missing claim),
-- every change is audited, and the sync engine survives hostile answers.
\echo Use "ALTER EXTENSION pg_gateway UPDATE TO '0.3.0'" to load this file. \quit

------------------------------------------------------------------------------------------------
-- Tenant boundary
------------------------------------------------------------------------------------------------

-- Refuse to live anywhere the worker does not serve: its decrypt audits would never be written and
-- its interfaces never synced (the worker connects to gateway.database only).
DO $$
BEGIN
  IF pg_catalog.current_setting('gateway.database', true) IS NULL THEN
    RAISE EXCEPTION 'pg_gateway must be loaded through shared_preload_libraries'
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Add pg_gateway to shared_preload_libraries in postgresql.conf and restart the server.';
  END IF;
  IF pg_catalog.current_database() OPERATOR(pg_catalog.<>) pg_catalog.current_setting('gateway.database') THEN
    RAISE EXCEPTION 'pg_gateway can only be installed in database "%"', pg_catalog.current_setting('gateway.database')
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = pg_catalog.format('This is database "%s"; the pg_gateway worker serves only gateway.database.',
                                       pg_catalog.current_database()),
            HINT = 'Create the extension in that database, or set gateway.database to this one and restart the server.';
  END IF;
END
$$;

-- Who is asking. current_user_id() is C now: a claim that is not a JSON object, or a sub that is
-- not a uuid, is an error (28000), never "nobody" (src/pg/request_identity.cpp).
CREATE OR REPLACE FUNCTION gateway.current_user_id() RETURNS uuid
AS 'MODULE_PATHNAME', 'gateway_current_user_id'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION gateway.current_user_id() IS
  'The caller''s platform user id (the uuid sub of request.jwt.claims, or request.jwt.claim.sub); NULL when absent; raises 28000 for a sub that is not a uuid.';

-- The role the request runs as (SET ROLE, or the login role), even inside SECURITY DEFINER code.
CREATE FUNCTION gateway._request_role() RETURNS text
AS 'MODULE_PATHNAME', 'gateway_request_role'
LANGUAGE C STABLE PARALLEL SAFE;

-- Trust comes from that role: a superuser, a BYPASSRLS role (Supabase's service_role), or one
-- with the privileges of the extension's owner. Never from a missing claim.
CREATE FUNCTION gateway._caller_is_trusted() RETURNS boolean
AS 'MODULE_PATHNAME', 'gateway_caller_is_trusted'
LANGUAGE C STABLE PARALLEL SAFE;

-- The platform user of an untrusted request, or 28000.
CREATE FUNCTION gateway._require_user() RETURNS uuid
LANGUAGE plpgsql STABLE
AS $$
DECLARE
  caller uuid := gateway.current_user_id();
BEGIN
  IF caller IS NULL THEN
    RAISE EXCEPTION 'no platform user in this request'
      USING ERRCODE = 'invalid_authorization_specification',
            DETAIL = pg_catalog.format('The request runs as role %s, which is not a trusted server role, and its JWT claims carry no sub.',
                                       gateway._request_role()),
            HINT = 'Call as the signed-in user (request.jwt.claims with the user''s uuid as sub), or from a trusted server role such as service_role.';
  END IF;
  RETURN caller;
END
$$;

-- Whether a given user (not necessarily the caller) holds at least min_role in a project.
CREATE FUNCTION gateway._user_has_project_role(project_id uuid, user_id uuid, min_role text)
RETURNS boolean
LANGUAGE sql STABLE
AS $$
  SELECT EXISTS (SELECT FROM gateway.project_members AS m
                  WHERE m.project_id OPERATOR(pg_catalog.=) $1 AND m.user_id OPERATOR(pg_catalog.=) $2
                    AND gateway._role_rank(m.role) OPERATOR(pg_catalog.>=) gateway._role_rank($3))
$$;

-- The one denial an untrusted caller gets for an object that is not theirs or does not exist:
-- the same SQLSTATE, message and hint either way, and never a project id.
CREATE FUNCTION gateway._deny(object_type text, object_id uuid, min_role text) RETURNS void
LANGUAGE plpgsql STABLE
AS $$
BEGIN
  RAISE EXCEPTION 'permission denied for % %', object_type, object_id
    USING ERRCODE = 'insufficient_privilege',
          DETAIL = CASE WHEN min_role IS NULL THEN 'It does not exist, or it is not yours.'
                        ELSE pg_catalog.format('It does not exist, or you do not hold the %s role in its project.', min_role) END,
          HINT = 'Check the id, or ask an owner or admin of the project for that role.';
END
$$;

-- Whether the caller may act on an object it looked up (`present`: whether the lookup found it;
-- not called "found", which would be PL/pgSQL's own variable): trusted roles always (an unknown
-- id is P0002 for them); anybody else needs a user, and min_role in the object's project or to be
-- owner_id, and gets _deny's one answer for "not yours" and "does not exist".
CREATE FUNCTION gateway._authorize(object_type text, object_id uuid, present boolean, project_id uuid,
                                   min_role text, owner_id uuid DEFAULT NULL) RETURNS void
LANGUAGE plpgsql STABLE
AS $$
DECLARE
  caller uuid;
  allowed boolean := false;  -- never NULL: a NULL here would let the caller through
BEGIN
  IF gateway._caller_is_trusted() THEN
    IF NOT present THEN
      RAISE EXCEPTION '% % does not exist', object_type, object_id USING ERRCODE = 'no_data_found';
    END IF;
    RETURN;
  END IF;
  caller := gateway._require_user();
  IF present THEN
    allowed := owner_id IS NOT NULL AND caller = owner_id;
    IF NOT allowed AND min_role IS NOT NULL THEN
      allowed := gateway.has_project_role(project_id, min_role);
    END IF;
  END IF;
  IF allowed IS NOT TRUE THEN
    PERFORM gateway._deny(object_type, object_id, min_role);
  END IF;
END
$$;

-- Trusted roles may act anywhere; anybody else needs a user and min_role in the project.
CREATE OR REPLACE FUNCTION gateway._require_project_role(project_id uuid, min_role text) RETURNS void
LANGUAGE plpgsql STABLE
AS $$
BEGIN
  IF gateway._caller_is_trusted() THEN
    RETURN;
  END IF;
  PERFORM gateway._require_user();
  IF NOT gateway.has_project_role(project_id, min_role) THEN
    RAISE EXCEPTION 'permission denied: the % role is required in this project', min_role
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'Ask an owner or admin of the project for that role.';
  END IF;
END
$$;

-- Nothing moves between projects: a row's project decides who may see and change it, and a move
-- would carry a published interface (and its keys' acl) into another tenant.
CREATE FUNCTION gateway._project_id_immutable() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF NEW.project_id IS DISTINCT FROM OLD.project_id THEN
    RAISE EXCEPTION 'a row of % cannot move to another project', TG_TABLE_NAME
      USING ERRCODE = 'feature_not_supported',
            HINT = 'Create it anew in the other project and delete this one.';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER project_id_immutable BEFORE UPDATE OF project_id ON gateway.api_keys
  FOR EACH ROW EXECUTE FUNCTION gateway._project_id_immutable();
CREATE TRIGGER project_id_immutable BEFORE UPDATE OF project_id ON gateway.connectors
  FOR EACH ROW EXECUTE FUNCTION gateway._project_id_immutable();
CREATE TRIGGER project_id_immutable BEFORE UPDATE OF project_id ON gateway.service_interfaces
  FOR EACH ROW EXECUTE FUNCTION gateway._project_id_immutable();
CREATE TRIGGER project_id_immutable BEFORE UPDATE OF project_id ON gateway.public_interfaces
  FOR EACH ROW EXECUTE FUNCTION gateway._project_id_immutable();
CREATE TRIGGER project_id_immutable BEFORE UPDATE OF project_id ON gateway.project_members
  FOR EACH ROW EXECUTE FUNCTION gateway._project_id_immutable();

-- Role order: an admin manages editors and viewers and other admins, never an owner; only an
-- owner makes, changes or removes owners.
DROP POLICY project_members_admin_insert ON gateway.project_members;
DROP POLICY project_members_admin_update ON gateway.project_members;
DROP POLICY project_members_admin_delete ON gateway.project_members;
CREATE POLICY project_members_admin_insert ON gateway.project_members FOR INSERT
  WITH CHECK (gateway.has_project_role(project_id, 'admin')
              AND (role <> 'owner' OR gateway.has_project_role(project_id, 'owner')));
CREATE POLICY project_members_admin_update ON gateway.project_members FOR UPDATE
  USING (gateway.has_project_role(project_id, 'admin')
         AND (role <> 'owner' OR gateway.has_project_role(project_id, 'owner')))
  WITH CHECK (gateway.has_project_role(project_id, 'admin')
              AND (role <> 'owner' OR gateway.has_project_role(project_id, 'owner')));
CREATE POLICY project_members_admin_delete ON gateway.project_members FOR DELETE
  USING (gateway.has_project_role(project_id, 'admin')
         AND (role <> 'owner' OR gateway.has_project_role(project_id, 'owner')));

-- Publishing is for admins: is_public may be set, cleared, or a published (or publishable)
-- interface deleted only by an admin or owner; editors keep the rest of the row.
CREATE FUNCTION gateway._service_interfaces_guard() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF TG_OP = 'INSERT' AND NEW.is_public
     OR TG_OP = 'UPDATE' AND NEW.is_public IS DISTINCT FROM OLD.is_public
     -- What a published interface runs is part of publishing it.
     OR TG_OP = 'UPDATE' AND OLD.is_public
        AND (NEW.workflow_id, NEW.name, NEW.interface_type, NEW.callable_name, NEW.input_schema)
            IS DISTINCT FROM (OLD.workflow_id, OLD.name, OLD.interface_type, OLD.callable_name, OLD.input_schema)
     OR TG_OP = 'DELETE' AND (OLD.is_public OR EXISTS (SELECT FROM gateway.public_interfaces AS p
                                                        WHERE p.service_interface_id = OLD.id)) THEN
    PERFORM gateway._require_project_role(CASE WHEN TG_OP = 'DELETE' THEN OLD.project_id ELSE NEW.project_id END,
                                          'admin');
  END IF;
  RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$$;
CREATE TRIGGER service_interfaces_guard
  BEFORE INSERT OR DELETE
      OR UPDATE OF is_public, workflow_id, name, interface_type, callable_name, input_schema
  ON gateway.service_interfaces FOR EACH ROW EXECUTE FUNCTION gateway._service_interfaces_guard();

-- Interface names are unique within a project's workflow: a name taken in one project tells
-- another project nothing, and cannot be taken first by it.
ALTER TABLE gateway.service_interfaces DROP CONSTRAINT service_interfaces_workflow_name_key;
ALTER TABLE gateway.service_interfaces
  ADD CONSTRAINT service_interfaces_project_workflow_name_key UNIQUE (project_id, workflow_id, name);

-- A member who leaves a project, or drops below editor, loses the keys they hold there: keys are
-- issued to editors and above, and a removed member must not keep calling the project's API.
CREATE FUNCTION gateway._project_members_revoke_keys() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND gateway._role_rank(NEW.role) >= gateway._role_rank('editor') THEN
    RETURN NULL;
  END IF;
  PERFORM gateway._revoke_keys(ARRAY(SELECT k.id FROM gateway.api_keys AS k
                                      WHERE k.project_id = OLD.project_id AND k.user_id = OLD.user_id),
                               CASE TG_OP WHEN 'DELETE' THEN 'its user left the project'
                                          ELSE 'its user is no longer an editor of the project' END);
  RETURN NULL;
END
$$;
CREATE TRIGGER project_members_revoke_keys AFTER DELETE OR UPDATE OF role ON gateway.project_members
  FOR EACH ROW EXECUTE FUNCTION gateway._project_members_revoke_keys();

-- An untrusted caller may give a service interface its public face only as an admin of the
-- interface's project, and learns nothing else: checked before the interface trigger looks the
-- service interface up as the table owner, so a foreign interface and a missing one get the same
-- 42501 (not 42501 for one and 23503 or 23505 for the other).
CREATE FUNCTION gateway._public_interfaces_authorize() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  owner_project uuid;
BEGIN
  IF gateway._caller_is_trusted() THEN
    RETURN NEW;
  END IF;
  SELECT s.project_id INTO owner_project FROM gateway.service_interfaces AS s WHERE s.id = NEW.service_interface_id;
  PERFORM gateway._authorize('service interface', NEW.service_interface_id, owner_project IS NOT NULL,
                             owner_project, 'admin');
  IF NEW.project_id IS NOT NULL AND NEW.project_id IS DISTINCT FROM owner_project THEN
    PERFORM gateway._deny('service interface', NEW.service_interface_id, 'admin');
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER public_interfaces_authorize BEFORE INSERT OR UPDATE OF service_interface_id
  ON gateway.public_interfaces FOR EACH ROW EXECUTE FUNCTION gateway._public_interfaces_authorize();

-- A key can be bound only to a public interface of its own project: a composite foreign key, so
-- no function, trigger or direct write can bind across tenants. Keys already bound elsewhere (only
-- possible before this version) are revoked and unbound, with an audit record each.
-- Revokes the active keys among `keys`, with one audit record each saying why: what leaving a
-- project, losing an interface, or the 0.3.0 upgrade does to keys that may no longer work.
CREATE FUNCTION gateway._revoke_keys(keys uuid[], reason text) RETURNS void
LANGUAGE sql
AS $$
  WITH revoked AS (
    UPDATE gateway.api_keys AS t
       SET is_active = false, revoked_at = LEAST(COALESCE(t.revoked_at, 'infinity'), pg_catalog.now())
     WHERE t.id OPERATOR(pg_catalog.=) ANY ($1) AND t.is_active
    RETURNING t.id, t.project_id, t.user_id, t.name)
  SELECT gateway._audit('api_key.revoked', 'api_key', r.id, r.project_id, r.user_id,
                        pg_catalog.jsonb_build_object('name', r.name, 'reason', $2))
    FROM revoked AS r
$$;

ALTER TABLE gateway.public_interfaces
  ADD CONSTRAINT public_interfaces_id_project_key UNIQUE (id, project_id);
SELECT gateway._revoke_keys(ARRAY(
  SELECT k.id FROM gateway.api_keys AS k
   WHERE k.public_interface_id IS NOT NULL
     AND NOT EXISTS (SELECT FROM gateway.public_interfaces AS p
                      WHERE p.id = k.public_interface_id AND p.project_id = k.project_id)),
  'bound to an interface of another project (upgrade to 0.3.0)');
UPDATE gateway.api_keys AS k SET public_interface_id = NULL
 WHERE k.public_interface_id IS NOT NULL
   AND NOT EXISTS (SELECT FROM gateway.public_interfaces AS p
                    WHERE p.id = k.public_interface_id AND p.project_id = k.project_id);
ALTER TABLE gateway.api_keys
  ADD CONSTRAINT api_keys_public_interface_fkey FOREIGN KEY (public_interface_id, project_id)
    REFERENCES gateway.public_interfaces (id, project_id) ON DELETE SET NULL (public_interface_id);

-- Deleting a public interface revokes the keys bound to it first: unbinding alone would turn
-- them into keys valid for every interface of the project.
CREATE FUNCTION gateway._public_interfaces_revoke_keys() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM gateway._revoke_keys(ARRAY(SELECT k.id FROM gateway.api_keys AS k WHERE k.public_interface_id = OLD.id),
                               'its public interface was deleted');
  RETURN OLD;
END
$$;
CREATE TRIGGER public_interfaces_revoke_keys BEFORE DELETE ON gateway.public_interfaces
  FOR EACH ROW EXECUTE FUNCTION gateway._public_interfaces_revoke_keys();

-- Issuing needs membership: the key's user must hold editor, admin or owner in the project
-- (viewers read, they do not call the API on the project's behalf), whoever calls. An untrusted
-- caller may issue only for itself.
CREATE OR REPLACE FUNCTION gateway.api_key_issue(user_id uuid, project_id uuid, name text,
                                                 public_interface_id uuid DEFAULT NULL,
                                                 expires_at timestamptz DEFAULT NULL,
                                                 rate_limit_per_minute integer DEFAULT NULL)
RETURNS TABLE (key_id uuid, api_key text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
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
  IF $4 IS NOT NULL AND NOT EXISTS (SELECT FROM gateway.public_interfaces AS p
                                     WHERE p.id = $4 AND p.project_id = $2) THEN
    PERFORM gateway._deny('public interface', $4, 'editor');
  END IF;

  key_id := gen_random_uuid();
  api_key := gateway._api_key_insert(key_id, $1, $2, $3, $4, $5, $6, NULL);
  PERFORM gateway._audit('api_key.issued', 'api_key', key_id, $2, $1,
    jsonb_build_object('name', $3, 'public_interface_id', $4, 'expires_at', $5,
                       'rate_limit_per_minute', $6));
  RETURN NEXT;
END
$$;
COMMENT ON FUNCTION gateway.api_key_issue(uuid, uuid, text, uuid, timestamptz, integer) IS
  'Issues an API key for a user who is editor, admin or owner of the project, and returns it once; only its keyed hash is stored.';

-- Locks a key for a change by the caller: its owner, or (when admin_may) an admin or owner of
-- its project; trusted roles always. Untrusted callers get one denial for "not yours" and
-- "does not exist".
CREATE FUNCTION gateway._api_key_for_change(key_id uuid, admin_may boolean) RETURNS gateway.api_keys
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  locked gateway.api_keys;
BEGIN
  IF $1 IS NULL THEN
    RAISE EXCEPTION 'API key id must not be null' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  SELECT * INTO locked FROM gateway.api_keys AS k WHERE k.id = $1 FOR UPDATE;
  PERFORM gateway._authorize('API key', $1, FOUND, locked.project_id,
                             CASE WHEN admin_may THEN 'admin' END, locked.user_id);
  RETURN locked;
END
$$;

-- A leaked key of a member must be stoppable: the owner or any admin of its project revokes it.
CREATE OR REPLACE FUNCTION gateway.api_key_revoke(key_id uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  k gateway.api_keys := gateway._api_key_for_change($1, true);
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
  'Revokes a key (its owner, an admin or owner of its project, or a trusted role); it fails verification from the next statement after commit. Returns false if it was already revoked.';

-- Rotating hands out a new key: only its owner, who must still be editor or above.
CREATE OR REPLACE FUNCTION gateway.api_key_rotate(key_id uuid, grace interval DEFAULT '24 hours')
RETURNS TABLE (new_key_id uuid, api_key text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  old gateway.api_keys := gateway._api_key_for_change($1, false);
BEGIN
  IF NOT gateway._user_has_project_role(old.project_id, old.user_id, 'editor') THEN
    RAISE EXCEPTION 'permission denied to rotate API keys in this project'
      USING ERRCODE = 'insufficient_privilege',
            DETAIL = 'The key''s user is no longer an editor, admin or owner of its project.',
            HINT = 'Revoke the key instead, or ask an owner or admin of the project for the editor role.';
  END IF;
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
  'Replaces a key (its owner only) with a new one that inherits all its settings; the old key keeps working for the grace period. Returns the new key once.';

DROP FUNCTION gateway._api_key_for_update(uuid);
DROP FUNCTION gateway._require_key_owner(uuid);

-- Connector credentials: editors and above of the connector's project, or a trusted role. An
-- outsider cannot tell a foreign connector from a missing one.
CREATE FUNCTION gateway._connector_for(connector_id uuid, lock boolean) RETURNS gateway.connectors
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  c gateway.connectors;
BEGIN
  IF $1 IS NULL THEN
    RAISE EXCEPTION 'connector_id must not be null' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF lock THEN
    SELECT * INTO c FROM gateway.connectors AS x WHERE x.id = $1 FOR UPDATE;
  ELSE
    SELECT * INTO c FROM gateway.connectors AS x WHERE x.id = $1;
  END IF;
  PERFORM gateway._authorize('connector', $1, FOUND, c.project_id, 'editor');
  RETURN c;
END
$$;

CREATE OR REPLACE FUNCTION gateway.connector_set_credentials(connector_id uuid, credentials jsonb) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  c gateway.connectors := gateway._connector_for(connector_id, true);
  sealed bytea;
BEGIN
  IF credentials IS NULL THEN
    RAISE EXCEPTION 'credentials must not be null' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  -- Sealed before it touches the row: the plaintext never reaches a table, a trigger or the WAL.
  sealed := gateway.encrypt_credentials(credentials, connector_id::text);
  UPDATE gateway.connectors AS x SET encrypted_credentials = sealed, updated_at = now()
   WHERE x.id = connector_id;
  PERFORM gateway._audit('connector.credentials_set', 'connector', c.id, c.project_id, NULL,
                         jsonb_build_object('name', c.name));
END
$$;

CREATE OR REPLACE FUNCTION gateway.connector_credentials(connector_id uuid) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  c gateway.connectors := gateway._connector_for(connector_id, false);
BEGIN
  IF c.encrypted_credentials IS NULL THEN
    RETURN NULL;
  END IF;
  -- Audited by the worker, so the record stays even if this transaction rolls back.
  RETURN gateway._decrypt_connector(c.encrypted_credentials, c.id::text, c.id, c.project_id,
                                    gateway.current_user_id());
END
$$;

------------------------------------------------------------------------------------------------
-- Audit and data safety
------------------------------------------------------------------------------------------------

-- Audit records name the role the request ran as (SET ROLE authenticated, not the pooler's login
-- role), as the worker's records of queued events always did, and the request's sub.
ALTER TABLE gateway.audit_log
  ALTER COLUMN actor_role SET DEFAULT COALESCE(gateway._request_role(), session_user);

-- pg_dump/pg_restore: the audit log's id sequence comes along (restored rows and new ones never
-- collide), and changes replayed by a restore are not audited a second time: the restored audit
-- log already holds their records. A restore is a superuser session with row_security = off (as
-- pg_dump and pg_restore always set it); row_security alone would let any role silence the log.
SELECT pg_catalog.pg_extension_config_dump('gateway.audit_log_id_seq', '');

CREATE FUNCTION gateway._restoring() RETURNS boolean
AS 'MODULE_PATHNAME', 'gateway_restoring'
LANGUAGE C STABLE;

CREATE OR REPLACE FUNCTION gateway._audit(action text, object_type text, object_id uuid, project_id uuid,
                                          subject_user_id uuid, details jsonb) RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
  IF gateway._restoring() THEN
    RETURN;
  END IF;
  INSERT INTO gateway.audit_log (action, object_type, object_id, project_id, subject_user_id, details)
  VALUES ($1, $2, $3, $4, $5, pg_catalog.jsonb_strip_nulls(COALESCE($6, '{}')));
END
$$;

-- Connector and service-interface changes are audited (never credentials or schemas' contents).
CREATE FUNCTION gateway._audit_row_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r record := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
  kind text := CASE TG_TABLE_NAME WHEN 'connectors' THEN 'connector' ELSE 'service_interface' END;
  changed text[];
BEGIN
  IF TG_OP = 'UPDATE' THEN
    SELECT array_agg(n.key ORDER BY n.key) INTO changed
      FROM jsonb_each(to_jsonb(NEW)) AS n
      JOIN jsonb_each(to_jsonb(OLD)) AS o USING (key)
     WHERE n.value IS DISTINCT FROM o.value
       AND n.key NOT IN ('updated_at', 'encrypted_credentials', 'encryption_key_id', 'is_public');
    IF changed IS NULL THEN
      RETURN NULL;
    END IF;
  END IF;
  PERFORM gateway._audit(kind || '.' || CASE TG_OP WHEN 'INSERT' THEN 'created'
                                                   WHEN 'UPDATE' THEN 'updated' ELSE 'deleted' END,
                         kind, r.id, r.project_id, NULL,
                         jsonb_build_object('name', r.name, 'changed', changed));
  RETURN NULL;
END
$$;
CREATE TRIGGER connectors_audit AFTER INSERT OR DELETE OR UPDATE ON gateway.connectors
  FOR EACH ROW EXECUTE FUNCTION gateway._audit_row_change();
CREATE TRIGGER service_interfaces_audit AFTER INSERT OR DELETE OR UPDATE ON gateway.service_interfaces
  FOR EACH ROW EXECUTE FUNCTION gateway._audit_row_change();

------------------------------------------------------------------------------------------------
-- Sync engine
------------------------------------------------------------------------------------------------

------------------------------------------------------------------------------------------------
-- Keys in Kong
------------------------------------------------------------------------------------------------

-- A valid key keeps its Kong consumer, key-auth credential and acl group whether or not its
-- interface is published at the moment (src/core/kong_mapping.cpp): unpublishing removes the
-- service, route and plugins, so the consumer grants nothing meanwhile, and republishing needs no
-- plaintext. Reconciliation wants exactly these keys.
CREATE OR REPLACE FUNCTION gateway._sync_desired_keys()
RETURNS SETOF jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT jsonb_build_object(
           'id', k.id, 'public_interface_id', k.public_interface_id, 'is_active', k.is_active,
           'revoked_at', extract(epoch FROM k.revoked_at),
           'expires_at', extract(epoch FROM k.expires_at))
    FROM gateway.api_keys AS k
   WHERE k.public_interface_id IS NOT NULL AND k.is_active
     AND (k.revoked_at IS NULL OR k.revoked_at > now())
     AND (k.expires_at IS NULL OR k.expires_at > now())
$$;

-- Every public interface row, published or not: reconciliation attributes the Kong objects an
-- unpublished interface should not have to that row, and leaves their deletion to the row's job.
CREATE OR REPLACE FUNCTION gateway._sync_desired_interfaces()
RETURNS SETOF jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT jsonb_build_object(
           'id', p.id, 'project_id', p.project_id, 'workflow_id', s.workflow_id, 'name', s.name,
           'is_public', s.is_public, 'http_method', p.http_method, 'http_path', p.http_path,
           'auth_type', p.auth_type, 'rate_limit_per_minute', p.rate_limit_per_minute)
    FROM gateway.public_interfaces AS p
    JOIN gateway.service_interfaces AS s ON s.id = p.service_interface_id
$$;

------------------------------------------------------------------------------------------------
-- Credentials and decrypt audits
------------------------------------------------------------------------------------------------

------------------------------------------------------------------------------------------------
-- Privileges: nothing for PUBLIC but what RLS policies and generated columns run as the caller.
------------------------------------------------------------------------------------------------
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA gateway FROM PUBLIC;
REVOKE ALL ON ALL PROCEDURES IN SCHEMA gateway FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA gateway FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA gateway FROM PUBLIC;
GRANT EXECUTE ON FUNCTION gateway.current_user_id() TO PUBLIC;
GRANT EXECUTE ON FUNCTION gateway.has_project_role(uuid, text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION gateway._envelope_key_id(bytea) TO PUBLIC;
-- The generated Kong id columns run this as whoever writes the row (an admin publishing): it
-- computes a name-based uuid and reads nothing.
GRANT EXECUTE ON FUNCTION gateway._kong_object_id(text, uuid) TO PUBLIC;

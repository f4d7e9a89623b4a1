-- pg_gateway 0.3.0 -> 0.4.0: Temporal as the sync engine's second target. Project connectors let
-- one project call into another through a Temporal Nexus endpoint that exists only while the
-- target project agrees (consent), kept in sync by the worker through the same outbox as Kong.
\echo Use "ALTER EXTENSION pg_gateway UPDATE TO '0.4.0'" to load this file. \quit

------------------------------------------------------------------------------------------------
-- The outbox has two targets
------------------------------------------------------------------------------------------------

ALTER TABLE gateway.sync_jobs DROP CONSTRAINT sync_jobs_target_check;
ALTER TABLE gateway.sync_jobs DROP CONSTRAINT sync_jobs_object_kind_check;
ALTER TABLE gateway.sync_jobs
  ADD CONSTRAINT sync_jobs_target_check CHECK (target IN ('kong', 'temporal')),
  ADD CONSTRAINT sync_jobs_object_kind_check
    CHECK (object_kind IN ('public_interface', 'api_key', 'reconcile', 'project_connector', 'connector_test')),
  -- Each kind belongs to one target (reconcile to both).
  ADD CONSTRAINT sync_jobs_kind_target_check
    CHECK (object_kind = 'reconcile'
           OR target = 'kong' AND object_kind IN ('public_interface', 'api_key')
           OR target = 'temporal' AND object_kind IN ('project_connector', 'connector_test'));

------------------------------------------------------------------------------------------------
-- Where a project's workflows run
------------------------------------------------------------------------------------------------

-- A Temporal namespace or task queue name: what Temporal accepts and a log line can show.
CREATE FUNCTION gateway._check_worker_name(what text, value text) RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
  IF value IS NULL OR value OPERATOR(pg_catalog.=) '' OR pg_catalog.length(value) OPERATOR(pg_catalog.>) 255
     OR value OPERATOR(pg_catalog.~) '[\u0001-\u001f\u007f-\u009f]' THEN
    RAISE EXCEPTION 'invalid %', what
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = pg_catalog.format('A %s must be 1 to 255 characters without control characters.', what),
            HINT = pg_catalog.format('Give the %s exactly as the project''s Temporal workers use it.', what);
  END IF;
END
$$;

CREATE TABLE gateway.project_workers (
  project_id         uuid PRIMARY KEY,
  temporal_namespace text NOT NULL
                     CHECK (temporal_namespace <> '' AND length(temporal_namespace) <= 255
                            AND temporal_namespace !~ '[\u0001-\u001f\u007f-\u009f]'),
  task_queue         text NOT NULL
                     CHECK (task_queue <> '' AND length(task_queue) <= 255
                            AND task_queue !~ '[\u0001-\u001f\u007f-\u009f]'),
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE gateway.project_workers IS
  'The Temporal namespace and task queue a project''s workers poll (filled by the platform, trusted roles only). The Nexus endpoints of connectors targeting the project point here; without a row they have none.';

CREATE FUNCTION gateway._project_workers_check() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM gateway._check_worker_name('Temporal namespace', NEW.temporal_namespace);
  PERFORM gateway._check_worker_name('task queue', NEW.task_queue);
  IF TG_OP = 'UPDATE' THEN
    NEW.updated_at := now();
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER project_workers_check BEFORE INSERT OR UPDATE ON gateway.project_workers
  FOR EACH ROW EXECUTE FUNCTION gateway._project_workers_check();
CREATE TRIGGER project_id_immutable BEFORE UPDATE OF project_id ON gateway.project_workers
  FOR EACH ROW EXECUTE FUNCTION gateway._project_id_immutable();

------------------------------------------------------------------------------------------------
-- Project connectors
------------------------------------------------------------------------------------------------

-- A connector names its target by interface, project and workflow together, and the three must
-- belong together (composite foreign key).
ALTER TABLE gateway.service_interfaces
  ADD CONSTRAINT service_interfaces_id_project_workflow_key UNIQUE (id, project_id, workflow_id);

CREATE TABLE gateway.project_connectors (
  id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  source_project_id      uuid NOT NULL,
  target_project_id      uuid NOT NULL,
  target_service_id      uuid NOT NULL,
  target_interface_id    uuid NOT NULL,
  name                   text NOT NULL CHECK (btrim(name) <> '' AND length(name) <= 200),
  display_name           text CHECK (length(display_name) <= 200),
  description            text CHECK (length(description) <= 4000),
  -- Filled by project_connectors_prepare when not given: 'gw-' and a hash of this database and row.
  nexus_endpoint_name    text NOT NULL
                         CHECK (nexus_endpoint_name ~ '^[a-zA-Z][a-zA-Z0-9-]*[a-zA-Z0-9]$'
                                AND length(nexus_endpoint_name) <= 200),
  nexus_service_name     text NOT NULL CHECK (btrim(nexus_service_name) <> '' AND length(nexus_service_name) <= 200),
  visibility             text NOT NULL DEFAULT 'private' CHECK (visibility IN ('private', 'public')),
  -- Write-only: a value written here is sealed into encrypted_auth_config before the row is
  -- stored, and the column is NULL on disk.
  auth_config            jsonb CONSTRAINT project_connectors_auth_config_sealed CHECK (auth_config IS NULL),
  encrypted_auth_config  bytea,
  encryption_key_id      integer GENERATED ALWAYS AS (gateway._envelope_key_id(encrypted_auth_config)) STORED
                         REFERENCES gateway.encryption_keys (id),
  created_by             uuid,
  created_at             timestamptz NOT NULL DEFAULT now(),
  updated_at             timestamptz NOT NULL DEFAULT now(),
  consent_state          text NOT NULL DEFAULT 'requested'
                         CHECK (consent_state IN ('requested', 'approved', 'revoked')),
  consent_by             uuid,
  consent_at             timestamptz,
  -- Sync state, written by the worker.
  nexus_endpoint_id      text,
  nexus_endpoint_version bigint,
  sync_state             text NOT NULL DEFAULT 'pending'
                         CHECK (sync_state IN ('pending', 'synced', 'failed', 'dead', 'absent')),
  sync_error             text,
  synced_at              timestamptz,
  -- The last connector test, written by the worker.
  test_status            text CHECK (test_status IN ('ok', 'failed')),
  test_detail            text,
  tested_at              timestamptz,
  test_requested_at      timestamptz,
  CONSTRAINT project_connectors_source_name_key UNIQUE (source_project_id, name),
  CONSTRAINT project_connectors_endpoint_name_key UNIQUE (nexus_endpoint_name),
  CONSTRAINT project_connectors_target_fkey
    FOREIGN KEY (target_interface_id, target_project_id, target_service_id)
    REFERENCES gateway.service_interfaces (id, project_id, workflow_id) ON DELETE CASCADE
);
CREATE INDEX project_connectors_target_idx ON gateway.project_connectors (target_project_id);
CREATE INDEX project_connectors_interface_idx ON gateway.project_connectors (target_interface_id);
CREATE INDEX project_connectors_key_idx ON gateway.project_connectors (encryption_key_id);
COMMENT ON TABLE gateway.project_connectors IS
  'A connector from a source project to a service interface of a target project, served as a Temporal Nexus endpoint on the target''s workers. The endpoint exists only while the target project has approved the connector (connector_approve) and has a gateway.project_workers row. Editing a connector keeps its consent: its target can never change.';
COMMENT ON COLUMN gateway.project_connectors.visibility IS
  'Catalog metadata for the app (whether the connector is listed to other projects). Grants nothing: who sees and uses a connector is decided by project membership and consent only.';
COMMENT ON COLUMN gateway.project_connectors.auth_config IS
  'Write-only: a value written here is sealed into encrypted_auth_config (bound to this connector) and never stored; JSON null removes the stored one. Read it back with gateway.connector_auth_config().';
COMMENT ON COLUMN gateway.project_connectors.nexus_endpoint_name IS
  'The Nexus endpoint''s name, unique in the Temporal cluster: ^[a-zA-Z][a-zA-Z0-9-]*[a-zA-Z0-9]$, at most 200 characters. Default: gw- and a hash of this database and connector.';
COMMENT ON COLUMN gateway.project_connectors.consent_state IS
  'requested, approved or revoked: changed only by connector_approve / connector_consent_revoke (admins of the target project).';
COMMENT ON COLUMN gateway.project_connectors.sync_state IS
  'pending: a job waits; synced: the endpoint matches; absent: no endpoint, as wanted; failed: retrying; dead: Temporal refused (see sync_error).';

-- What the worker last recorded Temporal holds for a connector: outlives the connector row (no
-- foreign key), so a deleted connector's endpoint can still be found and deleted.
CREATE TABLE gateway.nexus_endpoints (
  connector_id     uuid PRIMARY KEY,
  endpoint_id      text NOT NULL,
  endpoint_version bigint NOT NULL,
  endpoint_name    text,
  updated_at       timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE gateway.nexus_endpoints IS
  'Worker-owned: the Nexus endpoint id and version Temporal holds for each connector, kept after the connector is deleted until its endpoint is. Nobody else reads or writes it.';

-- A consent change under way: written by gateway._connector_consent just before its UPDATE and
-- deleted right after, so no row outlives (or is ever seen outside) that transaction. The
-- connector trigger accepts a change of the consent columns only if it matches a row here. Only
-- the extension's owner writes this table: unlike a custom setting (gateway_internal.*, which
-- any role may SET), a caller cannot forge it, whatever grants it holds on project_connectors.
CREATE TABLE gateway.consent_changes (
  connector_id  uuid NOT NULL,
  consent_state text NOT NULL,
  consent_by    uuid
);
COMMENT ON TABLE gateway.consent_changes IS
  'Internal: the consent change gateway.connector_approve / connector_consent_revoke is making in this transaction (empty outside it). Nobody else reads or writes it.';

-- The default endpoint name of a connector: 'gw-' and `len` hex digits of
-- sha256(system identifier:database oid:connector id).
CREATE FUNCTION gateway._nexus_endpoint_name(connector_id uuid, len integer) RETURNS text
LANGUAGE sql STABLE
AS $$
  SELECT 'gw-' OPERATOR(pg_catalog.||) pg_catalog.substr(pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(
           pg_catalog.format('%s:%s:%s', s.system_identifier, d.oid, $1), 'UTF8')), 'hex'), 1, $2)
    FROM pg_catalog.pg_control_system() AS s, pg_catalog.pg_database AS d
   WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()
$$;

-- Everything a write to a connector needs before it is stored: who may write it (an untrusted
-- caller learns nothing about a target it may not use: one 42501), the target's consistency, the
-- defaults (endpoint name, service name, creator), the sealing of auth_config, and the
-- immutable and consent columns. Runs as the table owner: it reads the target interface and
-- seals with the credential key. A restore (gateway._restoring()) stores rows as dumped.
CREATE FUNCTION gateway._project_connectors_prepare() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  target_name text;
  len integer := 16;
  consent_changed boolean;
  worker_columns text[] := ARRAY['updated_at', 'nexus_endpoint_id', 'nexus_endpoint_version', 'sync_state',
                                 'sync_error', 'synced_at', 'test_status', 'test_detail', 'tested_at',
                                 'test_requested_at'];
BEGIN
  IF gateway._restoring() THEN
    NEW.auth_config := NULL;
    RETURN NEW;
  END IF;

  IF TG_OP = 'INSERT' THEN
    IF NOT gateway._caller_is_trusted() THEN
      PERFORM gateway._require_user();
      IF NOT gateway.has_project_role(NEW.source_project_id, 'editor') THEN
        RAISE EXCEPTION 'permission denied to create connectors in this project'
          USING ERRCODE = 'insufficient_privilege',
                HINT = 'Ask an owner or admin of the project for the editor role.';
      END IF;
    END IF;
    SELECT s.name INTO target_name FROM gateway.service_interfaces AS s
     WHERE s.id = NEW.target_interface_id AND s.project_id = NEW.target_project_id
       AND s.workflow_id = NEW.target_service_id;
    IF NOT FOUND THEN
      IF NOT gateway._caller_is_trusted() THEN
        -- Not "does not exist" and not "is not yours": the one denial either way.
        PERFORM gateway._deny('service interface', NEW.target_interface_id, NULL);
      END IF;
      RAISE EXCEPTION 'the connector''s target interface, project and workflow do not belong together'
        USING ERRCODE = 'foreign_key_violation',
              DETAIL = pg_catalog.format('No service interface %s of workflow %s in project %s.',
                                         NEW.target_interface_id, NEW.target_service_id, NEW.target_project_id),
              HINT = 'Name the target by the interface''s id, project_id and workflow_id as gateway.service_interfaces has them.';
    END IF;
    NEW.nexus_service_name := COALESCE(NEW.nexus_service_name, target_name);
    IF NOT gateway._caller_is_trusted() OR NEW.created_by IS NULL THEN
      NEW.created_by := gateway.current_user_id();
    END IF;
    -- No way around this (a restore returned above): consent comes after the row exists.
    IF (NEW.consent_state, NEW.consent_by, NEW.consent_at) IS DISTINCT FROM ('requested', NULL::uuid, NULL::timestamptz) THEN
      RAISE EXCEPTION 'a connector starts with consent requested'
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Create it, then an admin of the target project approves it with gateway.connector_approve().';
    END IF;
    NEW.created_at := now();
    NEW.updated_at := now();
  ELSE
    IF (NEW.id, NEW.source_project_id, NEW.target_project_id, NEW.target_service_id, NEW.target_interface_id)
       IS DISTINCT FROM (OLD.id, OLD.source_project_id, OLD.target_project_id, OLD.target_service_id, OLD.target_interface_id) THEN
      RAISE EXCEPTION 'a connector''s projects and target cannot change'
        USING ERRCODE = 'feature_not_supported',
              DETAIL = 'Consent is given for one target.',
              HINT = 'Create a new connector for the other target (its admins approve it) and delete this one.';
    END IF;
    consent_changed := (NEW.consent_state, NEW.consent_by, NEW.consent_at)
                       IS DISTINCT FROM (OLD.consent_state, OLD.consent_by, OLD.consent_at);
    -- Only the change gateway._connector_consent announced, exactly as announced.
    IF consent_changed
       AND NOT EXISTS (SELECT FROM gateway.consent_changes AS x
                        WHERE x.connector_id = NEW.id AND x.consent_state = NEW.consent_state
                          AND x.consent_by IS NOT DISTINCT FROM NEW.consent_by
                          AND NEW.consent_at IS NOT DISTINCT FROM now()) THEN
      RAISE EXCEPTION 'consent is given and withdrawn only by the target project'
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'An admin of the target project calls gateway.connector_approve() or gateway.connector_consent_revoke().';
    END IF;
    -- Anything that changes the endpoint: its job will make Temporal match.
    IF consent_changed OR (NEW.name, NEW.description, NEW.nexus_endpoint_name)
                          IS DISTINCT FROM (OLD.name, OLD.description, OLD.nexus_endpoint_name) THEN
      NEW.sync_state := 'pending';
    END IF;
    -- updated_at: when anything but the worker's columns changes.
    IF (to_jsonb(NEW) - worker_columns) IS DISTINCT FROM (to_jsonb(OLD) - worker_columns) THEN
      NEW.updated_at := now();
    END IF;
  END IF;

  -- The endpoint name: the caller's, if it is one Temporal accepts, or a deterministic default,
  -- lengthened while another connector has it.
  IF NEW.nexus_endpoint_name IS NULL THEN
    LOOP
      NEW.nexus_endpoint_name := gateway._nexus_endpoint_name(NEW.id, len);
      EXIT WHEN len >= 64 OR NOT EXISTS (SELECT FROM gateway.project_connectors AS o
                                          WHERE o.nexus_endpoint_name = NEW.nexus_endpoint_name
                                            AND o.id <> NEW.id);
      len := len + 4;
    END LOOP;
  ELSIF TG_OP = 'INSERT' OR NEW.nexus_endpoint_name IS DISTINCT FROM OLD.nexus_endpoint_name THEN
    IF NEW.nexus_endpoint_name !~ '^[a-zA-Z][a-zA-Z0-9-]*[a-zA-Z0-9]$' OR length(NEW.nexus_endpoint_name) > 200 THEN
      RAISE EXCEPTION 'invalid Nexus endpoint name "%"', left(NEW.nexus_endpoint_name, 200)
        USING ERRCODE = 'invalid_parameter_value',
              DETAIL = 'Temporal accepts ^[a-zA-Z][a-zA-Z0-9-]*[a-zA-Z0-9]$, at most 200 characters.',
              HINT = 'Use letters, digits and hyphens, starting with a letter and not ending with a hyphen; or leave it NULL for a generated name.';
    END IF;
  END IF;

  -- Sealed before the row is stored: the plaintext never reaches the table or the WAL.
  IF NEW.auth_config IS NOT NULL THEN
    NEW.encrypted_auth_config := CASE WHEN jsonb_typeof(NEW.auth_config) = 'null' THEN NULL
                                      ELSE gateway.encrypt_credentials(NEW.auth_config, 'project_connector:' || NEW.id) END;
    NEW.auth_config := NULL;
  END IF;
  RETURN NEW;
END
$$;
-- A trigger function for INSERT and for UPDATE of any column (auth_config, consent, target).
-- Not for the worker's updates, which set only sync and test columns: they need no check, and a
-- trigger per recorded outcome would slow draining a backlog.
CREATE TRIGGER project_connectors_prepare BEFORE INSERT OR UPDATE OF
  id, source_project_id, target_project_id, target_service_id, target_interface_id, name,
  display_name, description, nexus_endpoint_name, nexus_service_name, visibility, auth_config,
  encrypted_auth_config, encryption_key_id, created_by, created_at, updated_at, consent_state,
  consent_by, consent_at
  ON gateway.project_connectors FOR EACH ROW EXECUTE FUNCTION gateway._project_connectors_prepare();

-- Queues the Temporal job of each connector and marks it pending (the worker's outcome says
-- otherwise later).
CREATE FUNCTION gateway._project_connectors_enqueue_ids(ids uuid[]) RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
  PERFORM gateway._sync_enqueue('temporal', 'project_connector', x.id)
     FROM pg_catalog.unnest(ids) AS x (id);
  UPDATE gateway.project_connectors AS c SET sync_state = 'pending'
   WHERE c.id OPERATOR(pg_catalog.=) ANY (ids) AND c.sync_state OPERATOR(pg_catalog.<>) 'pending';
END
$$;

-- After a connector is created, changed in what the endpoint shows, approved or revoked, or
-- deleted (also by the cascade from its target interface): its job, and the audit record.
CREATE FUNCTION gateway._project_connectors_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r gateway.project_connectors := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
  changed text[];
BEGIN
  IF TG_OP = 'UPDATE' THEN
    SELECT array_agg(CASE n.key WHEN 'encrypted_auth_config' THEN 'auth_config' ELSE n.key END ORDER BY n.key)
      INTO changed
      FROM jsonb_each(to_jsonb(NEW)) AS n
      JOIN jsonb_each(to_jsonb(OLD)) AS o USING (key)
     WHERE n.value IS DISTINCT FROM o.value
       AND n.key NOT IN ('updated_at', 'encryption_key_id', 'nexus_endpoint_id', 'nexus_endpoint_version',
                         'sync_state', 'sync_error', 'synced_at', 'test_status', 'test_detail', 'tested_at',
                         'test_requested_at');
    IF changed IS NULL THEN
      RETURN NULL;  -- the worker recording its outcome
    END IF;
    IF (NEW.name, NEW.description, NEW.nexus_endpoint_name, NEW.consent_state)
       IS DISTINCT FROM (OLD.name, OLD.description, OLD.nexus_endpoint_name, OLD.consent_state) THEN
      PERFORM gateway._sync_enqueue('temporal', 'project_connector', NEW.id);
    END IF;
  ELSE
    PERFORM gateway._sync_enqueue('temporal', 'project_connector', r.id);
  END IF;
  PERFORM gateway._audit('project_connector.' || CASE TG_OP WHEN 'INSERT' THEN 'created'
                                                            WHEN 'UPDATE' THEN 'updated' ELSE 'deleted' END,
                         'project_connector', r.id, r.source_project_id, NULL,
                         jsonb_build_object('name', r.name, 'target_project_id', r.target_project_id,
                                            'target_interface_id', r.target_interface_id, 'changed', changed));
  RETURN NULL;
END
$$;
CREATE TRIGGER project_connectors_change AFTER INSERT OR DELETE OR UPDATE OF
  id, source_project_id, target_project_id, target_service_id, target_interface_id, name,
  display_name, description, nexus_endpoint_name, nexus_service_name, visibility, auth_config,
  encrypted_auth_config, encryption_key_id, created_by, created_at, updated_at, consent_state,
  consent_by, consent_at
  ON gateway.project_connectors FOR EACH ROW EXECUTE FUNCTION gateway._project_connectors_change();

-- A project's workers appear, move or go: every endpoint targeting the project follows.
CREATE FUNCTION gateway._project_workers_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r gateway.project_workers := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
BEGIN
  IF TG_OP = 'UPDATE' AND (NEW.temporal_namespace, NEW.task_queue) IS NOT DISTINCT FROM (OLD.temporal_namespace, OLD.task_queue) THEN
    RETURN NULL;
  END IF;
  PERFORM gateway._project_connectors_enqueue_ids(ARRAY(
    SELECT c.id FROM gateway.project_connectors AS c WHERE c.target_project_id = r.project_id));
  PERFORM gateway._audit('project_workers.' || CASE TG_OP WHEN 'INSERT' THEN 'created'
                                                          WHEN 'UPDATE' THEN 'updated' ELSE 'deleted' END,
                         'project_workers', NULL, r.project_id, NULL,
                         jsonb_build_object('temporal_namespace', r.temporal_namespace, 'task_queue', r.task_queue,
                                            'previous_temporal_namespace', CASE WHEN TG_OP = 'UPDATE' THEN OLD.temporal_namespace END,
                                            'previous_task_queue', CASE WHEN TG_OP = 'UPDATE' THEN OLD.task_queue END));
  RETURN NULL;
END
$$;
CREATE TRIGGER project_workers_change AFTER INSERT OR UPDATE OR DELETE ON gateway.project_workers
  FOR EACH ROW EXECUTE FUNCTION gateway._project_workers_change();

-- Looks a connector up for an act by the caller: trusted roles always (P0002 for an unknown id);
-- anybody else needs source_role in its source project or target_role in its target project
-- (NULL: not enough), and gets _deny's one answer for "not yours" and "does not exist".
CREATE FUNCTION gateway._project_connector_for(connector_id uuid, lock boolean, source_role text,
                                               target_role text) RETURNS gateway.project_connectors
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  c gateway.project_connectors;
  present boolean;
  allowed boolean := false;
BEGIN
  IF $1 IS NULL THEN
    RAISE EXCEPTION 'connector_id must not be null' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF lock THEN
    SELECT * INTO c FROM gateway.project_connectors AS x WHERE x.id = $1 FOR UPDATE;
  ELSE
    SELECT * INTO c FROM gateway.project_connectors AS x WHERE x.id = $1;
  END IF;
  present := FOUND;
  IF gateway._caller_is_trusted() THEN
    IF NOT present THEN
      RAISE EXCEPTION 'project connector % does not exist', $1 USING ERRCODE = 'no_data_found';
    END IF;
    RETURN c;
  END IF;
  PERFORM gateway._require_user();
  IF present THEN
    allowed := source_role IS NOT NULL AND gateway.has_project_role(c.source_project_id, source_role)
               OR target_role IS NOT NULL AND gateway.has_project_role(c.target_project_id, target_role);
  END IF;
  IF allowed IS NOT TRUE THEN
    PERFORM gateway._deny('project connector', $1, NULL);
  END IF;
  RETURN c;
END
$$;

-- Consent: set only here, by an admin or owner of the target project (or a trusted role).
CREATE FUNCTION gateway._connector_consent(connector_id uuid, new_state text) RETURNS boolean
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  c gateway.project_connectors := gateway._project_connector_for($1, true, NULL, 'admin');
BEGIN
  IF c.consent_state OPERATOR(pg_catalog.=) new_state THEN
    RETURN false;
  END IF;
  INSERT INTO gateway.consent_changes (connector_id, consent_state, consent_by)
  VALUES (c.id, new_state, gateway.current_user_id());
  UPDATE gateway.project_connectors AS x
     SET consent_state = new_state, consent_by = gateway.current_user_id(), consent_at = pg_catalog.now()
   WHERE x.id OPERATOR(pg_catalog.=) c.id;
  DELETE FROM gateway.consent_changes AS x WHERE x.connector_id OPERATOR(pg_catalog.=) c.id;
  PERFORM gateway._audit(CASE new_state WHEN 'approved' THEN 'project_connector.approved'
                                        ELSE 'project_connector.consent_revoked' END,
                         'project_connector', c.id, c.target_project_id, NULL,
                         pg_catalog.jsonb_build_object('name', c.name, 'source_project_id', c.source_project_id,
                                                       'target_project_id', c.target_project_id,
                                                       'target_interface_id', c.target_interface_id,
                                                       'previous_state', c.consent_state));
  RETURN true;
END
$$;

CREATE FUNCTION gateway.connector_approve(connector_id uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN gateway._connector_consent($1, 'approved');
END
$$;
COMMENT ON FUNCTION gateway.connector_approve(uuid) IS
  'The target project agrees to a connector (its admins and owners, or a trusted role): its Nexus endpoint is created once the project has workers. Returns false if it was already approved. Audited.';

CREATE FUNCTION gateway.connector_consent_revoke(connector_id uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN gateway._connector_consent($1, 'revoked');
END
$$;
COMMENT ON FUNCTION gateway.connector_consent_revoke(uuid) IS
  'The target project withdraws (or refuses) its consent to a connector (its admins and owners, or a trusted role): its Nexus endpoint is deleted. Returns false if it was already revoked. Audited.';

CREATE FUNCTION gateway.connector_auth_config(connector_id uuid) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  c gateway.project_connectors := gateway._project_connector_for($1, false, 'admin', NULL);
BEGIN
  IF c.encrypted_auth_config IS NULL THEN
    RETURN NULL;
  END IF;
  -- connector_credentials' path: audited by the worker, so the record stays even if this
  -- transaction rolls back.
  RETURN gateway._decrypt_connector(c.encrypted_auth_config, 'project_connector:' || c.id, c.id,
                                    c.source_project_id, gateway.current_user_id());
END
$$;
COMMENT ON FUNCTION gateway.connector_auth_config(uuid) IS
  'Decrypts a project connector''s auth config for admins and owners of its source project (or a trusted role). Every call is audited.';

-- Whether the worker runs a connector test at once (a shared-memory request), so that
-- connector_test may wait for its result.
CREATE FUNCTION gateway._connector_test_now(connector_id uuid) RETURNS boolean
AS 'MODULE_PATHNAME', 'pg_gateway_connector_test_now'
LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION gateway.connector_test(connector_id uuid, timeout interval DEFAULT '0 s')
RETURNS TABLE (status text, detail text, tested_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  started timestamptz := clock_timestamp();
  c gateway.project_connectors := gateway._project_connector_for($1, false, 'editor', 'admin');
  seen record;
BEGIN
  IF timeout IS NULL OR timeout < interval '0' THEN
    RAISE EXCEPTION 'timeout must be zero or positive'
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Pass how long to wait for the result, e.g. interval ''5 s'', or ''0'' to queue the test.';
  END IF;
  -- Waiting is possible only where the worker's result becomes visible: a transaction that has
  -- written nothing yet, in read committed (each statement sees newly committed rows). Every way
  -- out writes the audit record (in the source project, naming the caller, who may be an admin of
  -- the target): after the wait, which needs that nothing was written before.
  IF timeout > interval '0' AND pg_current_xact_id_if_assigned() IS NULL
     AND current_setting('transaction_isolation') = 'read committed'
     AND gateway._connector_test_now(c.id) THEN
    LOOP
      PERFORM pg_sleep(0.01);
      SELECT x.test_status, x.test_detail, x.tested_at INTO seen
        FROM gateway.project_connectors AS x WHERE x.id = c.id;
      IF seen.tested_at > started THEN
        PERFORM gateway._audit('project_connector.test_requested', 'project_connector', c.id, c.source_project_id, NULL,
                               pg_catalog.jsonb_build_object('name', c.name, 'target_project_id', c.target_project_id, 'status', seen.test_status));
        RETURN QUERY SELECT seen.test_status, seen.test_detail, seen.tested_at;
        RETURN;
      END IF;
      EXIT WHEN NOT FOUND OR clock_timestamp() - started >= timeout;
    END LOOP;
    PERFORM gateway._audit('project_connector.test_requested', 'project_connector', c.id, c.source_project_id, NULL,
                         pg_catalog.jsonb_build_object('name', c.name, 'target_project_id', c.target_project_id, 'status', 'pending'));
    RETURN QUERY SELECT 'pending'::text,
      format('The test is running; its result will land in gateway.project_connectors (test_status, test_detail, tested_at) of connector %s.', c.id),
      NULL::timestamptz;
    RETURN;
  END IF;
  PERFORM gateway._sync_enqueue('temporal', 'connector_test', c.id);
  UPDATE gateway.project_connectors AS x SET test_requested_at = now() WHERE x.id = c.id;
  PERFORM gateway._audit('project_connector.test_requested', 'project_connector', c.id, c.source_project_id, NULL,
                         pg_catalog.jsonb_build_object('name', c.name, 'target_project_id', c.target_project_id, 'status', 'queued'));
  RETURN QUERY SELECT 'queued'::text,
    format('The worker runs the test after this transaction commits; its result will land in gateway.project_connectors (test_status, test_detail, tested_at) of connector %s.', c.id),
    NULL::timestamptz;
END
$$;
COMMENT ON FUNCTION gateway.connector_test(uuid, interval) IS
  'Tests a connector''s endpoint (editors and above of its source project, admins of its target, or a trusted role): waits up to timeout for the result when the worker can run it at once, or queues it (status queued). The result lands in test_status, test_detail, tested_at.';

------------------------------------------------------------------------------------------------
-- What the worker reads and records for Temporal
------------------------------------------------------------------------------------------------

-- The state of one connector's endpoint, always an object (the connector row may be gone): what
-- it should be (present and its spec) and what was last recorded in Temporal (endpoint id and
-- version). `with_test` adds what a connector test needs.
CREATE FUNCTION gateway._connector_state(connector_id uuid, with_test boolean) RETURNS jsonb
LANGUAGE sql STABLE
AS $$
  SELECT pg_catalog.jsonb_build_object(
           'id', k.id,
           'present', c.id IS NOT NULL AND c.consent_state OPERATOR(pg_catalog.=) 'approved' AND w.project_id IS NOT NULL,
           'endpoint_name', COALESCE(c.nexus_endpoint_name, e.endpoint_name),
           'namespace', w.temporal_namespace, 'task_queue', w.task_queue, 'description', c.description,
           'endpoint_id', e.endpoint_id, 'endpoint_version', e.endpoint_version::text)
         OPERATOR(pg_catalog.||)
         CASE WHEN with_test THEN pg_catalog.jsonb_build_object('exists', c.id IS NOT NULL, 'sync_state', c.sync_state,
                                                                 'consent_approved', c.consent_state OPERATOR(pg_catalog.=) 'approved',
                                                                 'has_workers', w.project_id IS NOT NULL)
              ELSE '{}'::jsonb END
    FROM (SELECT $1 AS id) AS k
    LEFT JOIN gateway.project_connectors AS c ON c.id OPERATOR(pg_catalog.=) k.id
    LEFT JOIN gateway.project_workers AS w ON w.project_id OPERATOR(pg_catalog.=) c.target_project_id
    LEFT JOIN gateway.nexus_endpoints AS e ON e.connector_id OPERATOR(pg_catalog.=) k.id
$$;

CREATE OR REPLACE FUNCTION gateway._sync_claim(target text, batch integer, busy_objects uuid[])
RETURNS TABLE (job_id bigint, object_kind text, object_id uuid, attempts integer, state jsonb)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
-- The outbox swings from empty to a burst of thousands faster than statistics follow, and a plan
-- made for "a few rows" sorts or hashes every pending job on each claim (25 ms instead of 1 for
-- a batch out of 10,000). The claim must walk sync_jobs_due in order and stop, and read each
-- job's rows by key: said so here.
SET enable_sort = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
  WITH claimed AS (
    UPDATE gateway.sync_jobs AS j SET state = 'running', updated_at = now()
     -- The batch is picked once (an array, not a join the planner could turn inside out) and
     -- updated by primary key.
     WHERE j.id = ANY (ARRAY(
             SELECT d.id FROM gateway.sync_jobs AS d
              WHERE d.state = 'pending' AND d.target = $1 AND d.run_after <= now()
                AND d.object_id <> ALL ($3)
              ORDER BY d.run_after, d.id
              LIMIT $2
              FOR UPDATE SKIP LOCKED))
    RETURNING j.id, j.object_kind, j.object_id, j.attempts
  )
  SELECT c.id, c.object_kind, c.object_id, c.attempts,
         CASE c.object_kind
           WHEN 'public_interface' THEN (
             SELECT jsonb_build_object(
                      'id', p.id, 'project_id', p.project_id, 'workflow_id', s.workflow_id,
                      'name', s.name, 'is_public', s.is_public, 'http_method', p.http_method,
                      'http_path', p.http_path, 'auth_type', p.auth_type,
                      'rate_limit_per_minute', p.rate_limit_per_minute, 'synced', p.kong_synced)
               FROM gateway.public_interfaces AS p
               JOIN gateway.service_interfaces AS s ON s.id = p.service_interface_id
              WHERE p.id = c.object_id)
           WHEN 'api_key' THEN (
             SELECT jsonb_build_object(
                      'id', k.id, 'public_interface_id', k.public_interface_id,
                      'is_active', k.is_active,
                      'revoked_at', extract(epoch FROM k.revoked_at),
                      'expires_at', extract(epoch FROM k.expires_at),
                      'sealed_key', encode(k.kong_key_sealed, 'base64'), 'synced', k.kong_synced)
               FROM gateway.api_keys AS k
              WHERE k.id = c.object_id)
           WHEN 'project_connector' THEN gateway._connector_state(c.object_id, false)
           WHEN 'connector_test' THEN gateway._connector_state(c.object_id, true)
         END
    FROM claimed AS c
$$;

-- Every connector that should have an endpoint, for drift reconciliation (the claim's state,
-- present = true).
CREATE FUNCTION gateway._sync_desired_connectors()
RETURNS SETOF jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT jsonb_build_object(
           'id', c.id, 'present', true, 'endpoint_name', c.nexus_endpoint_name,
           'namespace', w.temporal_namespace, 'task_queue', w.task_queue, 'description', c.description,
           'endpoint_id', e.endpoint_id, 'endpoint_version', e.endpoint_version::text)
    FROM gateway.project_connectors AS c
    JOIN gateway.project_workers AS w ON w.project_id = c.target_project_id
    LEFT JOIN gateway.nexus_endpoints AS e ON e.connector_id = c.id
   WHERE c.consent_state = 'approved'
$$;

-- Every endpoint the worker recorded, whether or not its connector still exists.
CREATE FUNCTION gateway._sync_known_endpoints()
RETURNS SETOF jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT jsonb_build_object('id', e.connector_id, 'endpoint_id', e.endpoint_id,
                            'endpoint_version', e.endpoint_version::text, 'endpoint_name', e.endpoint_name)
    FROM gateway.nexus_endpoints AS e
$$;

CREATE OR REPLACE FUNCTION gateway._sync_repair(object_kind text, object_id uuid) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF $1 = 'public_interface' THEN
    UPDATE gateway.public_interfaces AS p SET kong_synced = NULL WHERE p.id = $2;
  ELSIF $1 = 'api_key' THEN
    UPDATE gateway.api_keys AS k SET kong_synced = NULL WHERE k.id = $2;
  ELSIF $1 = 'project_connector' THEN
    PERFORM gateway._project_connectors_enqueue_ids(ARRAY[$2]);
    RETURN;
  END IF;
  PERFORM gateway._sync_enqueue('kong', $1, $2);
END
$$;

-- After a worker restart (crash, failover): the target's jobs it had claimed run again. Safe
-- because jobs are level-triggered. Each target recovers its own (they restart independently).
CREATE FUNCTION gateway._sync_recover(target text) RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  n integer := 0;
  j gateway.sync_jobs;
BEGIN
  IF $1 IS NULL OR $1 NOT IN ('kong', 'temporal') THEN
    RAISE EXCEPTION 'unknown sync target "%"', $1
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Targets are kong and temporal.';
  END IF;
  FOR j IN SELECT * FROM gateway.sync_jobs AS r WHERE r.state = 'running' AND r.target = $1 FOR UPDATE LOOP
    -- It may have stopped halfway: what Kong holds for the object is unknown now. (Temporal's
    -- jobs re-read the endpoint by the id recorded in nexus_endpoints.)
    IF j.object_kind = 'public_interface' THEN
      UPDATE gateway.public_interfaces AS p SET kong_synced = NULL WHERE p.id = j.object_id;
    ELSIF j.object_kind = 'api_key' THEN
      UPDATE gateway.api_keys AS k SET kong_synced = NULL WHERE k.id = j.object_id;
    END IF;
    -- A newer pending job for the same object already covers it.
    IF EXISTS (SELECT FROM gateway.sync_jobs AS p
                WHERE p.state = 'pending' AND (p.target, p.object_kind, p.object_id)
                      = (j.target, j.object_kind, j.object_id)) THEN
      DELETE FROM gateway.sync_jobs AS d WHERE d.id = j.id;
    ELSE
      UPDATE gateway.sync_jobs AS u SET state = 'pending', run_after = now(), updated_at = now()
       WHERE u.id = j.id;
    END IF;
    n := n + 1;
  END LOOP;
  RETURN n;
END
$$;

-- 0.3.0's workers (Kong only) call it without a target.
CREATE OR REPLACE FUNCTION gateway._sync_recover() RETURNS integer
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT gateway._sync_recover('kong')
$$;

-- A worker's text about a connector (test detail, sync error) as the connector row keeps it: the
-- source project's members read it, and the target project's workers row (its Temporal namespace
-- and task queue) is not theirs to read, so both names are replaced (the longer first, should one
-- contain the other). No longer in bytes than the worker's bound (1000) or the text given.
CREATE FUNCTION gateway._connector_text(cid uuid, detail text) RETURNS text
LANGUAGE sql STABLE
AS $$
  SELECT CASE WHEN pg_catalog.octet_length(r.t) OPERATOR(pg_catalog.<=) r.bound THEN r.t
              ELSE pg_catalog.left(r.t, GREATEST(0, r.bound OPERATOR(pg_catalog.-)
                                     (pg_catalog.octet_length(r.t) OPERATOR(pg_catalog.-) pg_catalog.length(r.t)))) END
    FROM (SELECT GREATEST(1000, pg_catalog.octet_length($2)) AS bound,
                 CASE WHEN w.project_id IS NULL OR $2 IS NULL THEN $2
                      WHEN pg_catalog.length(w.task_queue) OPERATOR(pg_catalog.>) pg_catalog.length(w.temporal_namespace)
                      THEN pg_catalog.replace(pg_catalog.replace($2, w.task_queue, '<target task queue>'),
                                              w.temporal_namespace, '<target namespace>')
                      ELSE pg_catalog.replace(pg_catalog.replace($2, w.temporal_namespace, '<target namespace>'),
                                              w.task_queue, '<target task queue>') END AS t
            FROM (SELECT $1 AS id) AS k
            LEFT JOIN gateway.project_connectors AS c ON c.id OPERATOR(pg_catalog.=) k.id
            LEFT JOIN gateway.project_workers AS w ON w.project_id OPERATOR(pg_catalog.=) c.target_project_id) AS r
$$;

-- Records what a Temporal job learnt about its connector's endpoint.
-- project_connector: `synced` {"endpoint_id", "endpoint_version", "endpoint_name"} is what
-- Temporal holds now (recorded whatever the outcome: an id once learnt is never lost); on done, a
-- NULL `synced` means there is no endpoint now. connector_test: done records `synced`'s
-- test_status and test_detail; dead records a failed test with the error.
CREATE FUNCTION gateway._sync_finish_connector(object_kind text, cid uuid, outcome text,
                                               object_state text, error text, synced jsonb)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
  IF object_kind OPERATOR(pg_catalog.=) 'connector_test' THEN
    IF outcome OPERATOR(pg_catalog.=) 'done' OR outcome OPERATOR(pg_catalog.=) 'dead' THEN
      UPDATE gateway.project_connectors AS c
         SET test_status = CASE WHEN outcome OPERATOR(pg_catalog.=) 'done'
                                     AND synced OPERATOR(pg_catalog.->>) 'test_status' OPERATOR(pg_catalog.=) 'ok'
                                THEN 'ok' ELSE 'failed' END,
             test_detail = gateway._connector_text(cid, CASE WHEN outcome OPERATOR(pg_catalog.=) 'done'
                                                             THEN synced OPERATOR(pg_catalog.->>) 'test_detail'
                                                             ELSE error END),
             tested_at = pg_catalog.now()
       WHERE c.id OPERATOR(pg_catalog.=) cid;
    END IF;
    RETURN;
  END IF;

  IF pg_catalog.jsonb_typeof(synced) OPERATOR(pg_catalog.=) 'object' AND synced ? 'endpoint_id'
     AND synced OPERATOR(pg_catalog.->>) 'endpoint_id' IS NOT NULL THEN
    INSERT INTO gateway.nexus_endpoints AS e (connector_id, endpoint_id, endpoint_version, endpoint_name, updated_at)
    VALUES (cid, synced OPERATOR(pg_catalog.->>) 'endpoint_id',
            CAST(synced OPERATOR(pg_catalog.->>) 'endpoint_version' AS bigint),
            synced OPERATOR(pg_catalog.->>) 'endpoint_name', pg_catalog.now())
    ON CONFLICT ON CONSTRAINT nexus_endpoints_pkey DO UPDATE
      SET endpoint_id = EXCLUDED.endpoint_id, endpoint_version = EXCLUDED.endpoint_version,
          endpoint_name = EXCLUDED.endpoint_name, updated_at = EXCLUDED.updated_at;
  ELSIF outcome OPERATOR(pg_catalog.=) 'done' THEN
    DELETE FROM gateway.nexus_endpoints AS e WHERE e.connector_id OPERATOR(pg_catalog.=) $2;
  END IF;

  UPDATE gateway.project_connectors AS c
     SET sync_state = CASE WHEN object_state OPERATOR(pg_catalog.=) 'synced' AND e.connector_id IS NULL
                           THEN 'absent' ELSE object_state END,
         nexus_endpoint_id = e.endpoint_id, nexus_endpoint_version = e.endpoint_version,
         sync_error = CASE WHEN outcome OPERATOR(pg_catalog.=) 'done' THEN NULL ELSE gateway._connector_text($2, error) END,
         synced_at = CASE WHEN outcome OPERATOR(pg_catalog.=) 'done' THEN pg_catalog.now() ELSE c.synced_at END
    FROM (SELECT $2 AS id) AS k
    LEFT JOIN gateway.nexus_endpoints AS e ON e.connector_id OPERATOR(pg_catalog.=) k.id
   WHERE c.id OPERATOR(pg_catalog.=) k.id;
END
$$;

CREATE OR REPLACE FUNCTION gateway._sync_finish(job_id bigint, outcome text, run_after timestamptz,
                                                error text, http_status integer, next_change timestamptz,
                                                key_delivered boolean, synced jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  j gateway.sync_jobs;
  object_state text;
  newer boolean;
BEGIN
  DELETE FROM gateway.sync_jobs AS d WHERE d.id = job_id AND d.state = 'running' RETURNING * INTO j;
  IF NOT FOUND THEN
    RETURN;  -- cancelled meanwhile
  END IF;
  newer := EXISTS (SELECT FROM gateway.sync_jobs AS p
                    WHERE p.state = 'pending' AND (p.target, p.object_kind, p.object_id)
                          = (j.target, j.object_kind, j.object_id));
  IF outcome = 'retry' THEN
    -- Back to pending; a pending job that arrived meanwhile absorbs it (it is newer).
    INSERT INTO gateway.sync_jobs AS p (target, object_kind, object_id, attempts, run_after,
                                        last_error, last_status)
    VALUES (j.target, j.object_kind, j.object_id, j.attempts + 1, $3, $4, $5)
    ON CONFLICT (target, object_kind, object_id) WHERE state = 'pending'
    DO UPDATE SET attempts = EXCLUDED.attempts, last_error = EXCLUDED.last_error,
                  last_status = EXCLUDED.last_status, updated_at = now();
    object_state := 'failed';
  ELSIF outcome = 'dead' THEN
    -- One dead letter per object: the newest says what is wrong now.
    DELETE FROM gateway.sync_jobs AS d
     WHERE d.state = 'dead' AND (d.target, d.object_kind, d.object_id) = (j.target, j.object_kind, j.object_id);
    INSERT INTO gateway.sync_jobs (target, object_kind, object_id, state, attempts, last_error,
                                   last_status)
    VALUES (j.target, j.object_kind, j.object_id, 'dead', j.attempts + 1, $4, $5);
    object_state := CASE WHEN newer THEN 'pending' ELSE 'dead' END;
  ELSE
    -- The object matches now: earlier dead letters about it are obsolete.
    DELETE FROM gateway.sync_jobs AS d
     WHERE d.state = 'dead' AND (d.target, d.object_kind, d.object_id) = (j.target, j.object_kind, j.object_id);
    object_state := CASE WHEN newer THEN 'pending' ELSE 'synced' END;
    IF next_change IS NOT NULL THEN
      PERFORM gateway._sync_enqueue(j.target, j.object_kind, j.object_id, next_change);
    END IF;
  END IF;

  IF j.object_kind = 'public_interface' THEN
    UPDATE gateway.public_interfaces AS p
       SET sync_state = object_state, kong_synced = $8,
           sync_error = CASE WHEN outcome = 'done' THEN NULL ELSE $4 END,
           synced_at = CASE WHEN outcome = 'done' THEN now() ELSE p.synced_at END
     WHERE p.id = j.object_id;
  ELSIF j.object_kind = 'api_key' THEN
    UPDATE gateway.api_keys AS k
       SET kong_sync_state = object_state, kong_synced = $8,
           kong_sync_error = CASE WHEN outcome = 'done' THEN NULL ELSE $4 END,
           kong_synced_at = CASE WHEN outcome = 'done' THEN now() ELSE k.kong_synced_at END,
           -- Kong has the key now (or the key is gone): the sealed copy is no longer needed.
           kong_key_sealed = CASE WHEN key_delivered THEN NULL ELSE k.kong_key_sealed END
     WHERE k.id = j.object_id;
  ELSIF j.object_kind IN ('project_connector', 'connector_test') THEN
    PERFORM gateway._sync_finish_connector(j.object_kind, j.object_id, outcome, object_state, $4, $8);
  END IF;
END
$$;

-- As in 0.3.0, with Temporal's outcomes (few, and each touching two tables) recorded one at a
-- time through _sync_finish; Kong's successes stay set-based.
CREATE OR REPLACE FUNCTION gateway._sync_finish_batch(outcomes jsonb) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT * FROM jsonb_to_recordset(outcomes) AS x(job_id bigint, outcome text, run_after float8,
                         error text, status integer, next_change float8, key_delivered boolean, synced jsonb)
            WHERE x.outcome <> 'done'
               -- Connector tests are few and their text is masked on the way in (_sync_finish).
               OR EXISTS (SELECT FROM gateway.sync_jobs AS t
                           WHERE t.id = x.job_id AND t.object_kind = 'connector_test') LOOP
    PERFORM gateway._sync_finish(r.job_id, r.outcome, to_timestamp(r.run_after), r.error, r.status,
                                 to_timestamp(r.next_change), r.key_delivered, r.synced);
  END LOOP;

  -- As _sync_finish does for 'done': the job goes, with any dead letter of its object; a
  -- follow-up is queued for the object's next change; the row is synced unless a newer job
  -- waits. The statement's parts touch different rows, so one snapshot serves them all. (Jobs
  -- recorded above are no longer running, so they are not matched again.)
  WITH outcome AS (
    SELECT * FROM jsonb_to_recordset(outcomes)
             AS x(job_id bigint, outcome text, next_change float8, key_delivered boolean, synced jsonb)
     WHERE x.outcome = 'done'
  ), done AS (
    DELETE FROM gateway.sync_jobs AS d USING outcome AS o
     WHERE d.id = o.job_id AND d.state = 'running'  -- not cancelled meanwhile
    RETURNING d.target, d.object_kind, d.object_id, o.next_change, o.key_delivered, o.synced,
              EXISTS (SELECT FROM gateway.sync_jobs AS p
                       WHERE p.state = 'pending' AND p.target = d.target
                         AND p.object_kind = d.object_kind AND p.object_id = d.object_id) AS newer
  ), obsolete AS (
    DELETE FROM gateway.sync_jobs AS d USING done
     WHERE d.state = 'dead' AND d.object_id = done.object_id AND d.object_kind = done.object_kind
       AND d.target = done.target
  ), follow_up AS (
    INSERT INTO gateway.sync_jobs AS j (target, object_kind, object_id, run_after)
    SELECT done.target, done.object_kind, done.object_id, to_timestamp(done.next_change)
      FROM done WHERE done.next_change IS NOT NULL
    ON CONFLICT (target, object_kind, object_id) WHERE state = 'pending'
    DO UPDATE SET run_after = LEAST(j.run_after, EXCLUDED.run_after), updated_at = now()
  ), interfaces AS (
    UPDATE gateway.public_interfaces AS p
       SET sync_state = CASE WHEN done.newer THEN 'pending' ELSE 'synced' END,
           kong_synced = done.synced, sync_error = NULL, synced_at = now()
      FROM done
     WHERE done.object_kind = 'public_interface' AND p.id = done.object_id
  ), endpoint AS (
    -- A connector's job says which endpoint Temporal holds for it now (none: JSON null).
    SELECT done.object_id, done.newer, done.synced ->> 'endpoint_id' AS endpoint_id,
           (done.synced ->> 'endpoint_version')::bigint AS endpoint_version,
           done.synced ->> 'endpoint_name' AS endpoint_name
      FROM done
     WHERE done.object_kind = 'project_connector'
  ), endpoint_kept AS (
    INSERT INTO gateway.nexus_endpoints AS e (connector_id, endpoint_id, endpoint_version, endpoint_name, updated_at)
    SELECT object_id, endpoint_id, endpoint_version, endpoint_name, now()
      FROM endpoint WHERE endpoint_id IS NOT NULL
    ON CONFLICT ON CONSTRAINT nexus_endpoints_pkey DO UPDATE
      SET endpoint_id = EXCLUDED.endpoint_id, endpoint_version = EXCLUDED.endpoint_version,
          endpoint_name = EXCLUDED.endpoint_name, updated_at = EXCLUDED.updated_at
  ), endpoint_gone AS (
    DELETE FROM gateway.nexus_endpoints AS e USING endpoint
     WHERE endpoint.endpoint_id IS NULL AND e.connector_id = endpoint.object_id
  ), connectors AS (
    UPDATE gateway.project_connectors AS c
       SET sync_state = CASE WHEN endpoint.newer THEN 'pending'
                             WHEN endpoint.endpoint_id IS NULL THEN 'absent' ELSE 'synced' END,
           nexus_endpoint_id = endpoint.endpoint_id, nexus_endpoint_version = endpoint.endpoint_version,
           sync_error = NULL, synced_at = now()
      FROM endpoint
     WHERE c.id = endpoint.object_id
  )
  UPDATE gateway.api_keys AS k
     SET kong_sync_state = CASE WHEN done.newer THEN 'pending' ELSE 'synced' END,
         kong_synced = done.synced, kong_sync_error = NULL, kong_synced_at = now(),
         kong_key_sealed = CASE WHEN done.key_delivered THEN NULL ELSE k.kong_key_sealed END
    FROM done
   WHERE done.object_kind = 'api_key' AND k.id = done.object_id;
END
$$;

------------------------------------------------------------------------------------------------
-- Operations
------------------------------------------------------------------------------------------------

CREATE OR REPLACE VIEW gateway.sync_status AS
  SELECT t.target,
         count(*) FILTER (WHERE j.state = 'pending')                      AS pending,
         count(*) FILTER (WHERE j.state = 'pending' AND j.attempts > 0)   AS retrying,
         count(*) FILTER (WHERE j.state = 'running')                      AS running,
         count(*) FILTER (WHERE j.state = 'dead')                         AS dead,
         now() - min(j.created_at) FILTER (WHERE j.state = 'pending')     AS oldest_pending_age,
         (SELECT e.last_error FROM gateway.sync_jobs AS e
           WHERE e.target = t.target AND e.last_error IS NOT NULL
           ORDER BY e.updated_at DESC LIMIT 1)                            AS last_error,
         (SELECT max(e.updated_at) FROM gateway.sync_jobs AS e
           WHERE e.target = t.target AND e.last_error IS NOT NULL)        AS last_error_at
    FROM (VALUES ('kong'), ('temporal')) AS t (target)
    LEFT JOIN gateway.sync_jobs AS j ON j.target = t.target
   GROUP BY t.target;

DROP FUNCTION gateway.sync_reconcile();
CREATE FUNCTION gateway.sync_reconcile(target text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF $1 IS NOT NULL AND $1 NOT IN ('kong', 'temporal') THEN
    RAISE EXCEPTION 'unknown sync target "%"', $1
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Targets are kong and temporal; NULL reconciles both.';
  END IF;
  -- NULL: every target with a URL set. A paused target's reconcile would wait in the outbox
  -- (and in sync_status) until it is configured; it reconciles when it starts anyway.
  PERFORM gateway._sync_enqueue(t.target, 'reconcile', '00000000-0000-0000-0000-000000000000')
     FROM (VALUES ('kong', 'gateway.kong_admin_url'), ('temporal', 'gateway.temporal_url')) AS t (target, url)
    WHERE t.target = $1
       OR ($1 IS NULL AND COALESCE(current_setting(t.url, true), '') <> '');
END
$$;
COMMENT ON FUNCTION gateway.sync_reconcile(text) IS
  'Asks the worker to compare a target (kong, temporal; NULL: every target with a URL set) with the tables now and repair every difference (after commit).';

-- A key still protecting project connectors' auth configs is in use too.
CREATE OR REPLACE FUNCTION gateway.retire_encryption_key(key_id integer) RETURNS void
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
  SELECT (SELECT count(*) FROM gateway.connectors AS c WHERE c.encryption_key_id = $1)
       + (SELECT count(*) FROM gateway.project_connectors AS c WHERE c.encryption_key_id = $1)
    INTO in_use;
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

-- Re-encryption covers project connectors' auth configs too (bound to 'project_connector:<id>'),
-- so their old key can be retired.
CREATE OR REPLACE PROCEDURE gateway.reencrypt_credentials(batch_size integer DEFAULT 1000)
LANGUAGE plpgsql
AS $$
DECLARE
  active integer;
  ids uuid[];
  last_id uuid;
  moved bigint := 0;
  failed bigint := 0;
  n bigint;
  tbl text;
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
  FOREACH tbl IN ARRAY ARRAY['connectors', 'project_connectors'] LOOP
    last_id := '00000000-0000-0000-0000-000000000000';
    LOOP
      -- Keyset pagination: every row is visited once, also the ones that cannot be moved.
      IF tbl = 'connectors' THEN
        SELECT pg_catalog.array_agg(x.id ORDER BY x.id) INTO ids
          FROM (SELECT c.id FROM gateway.connectors AS c
                 WHERE c.encryption_key_id OPERATOR(pg_catalog.<>) active
                   AND c.id OPERATOR(pg_catalog.>) last_id
                 ORDER BY c.id LIMIT batch_size) AS x;
      ELSE
        SELECT pg_catalog.array_agg(x.id ORDER BY x.id) INTO ids
          FROM (SELECT c.id FROM gateway.project_connectors AS c
                 WHERE c.encryption_key_id OPERATOR(pg_catalog.<>) active
                   AND c.id OPERATOR(pg_catalog.>) last_id
                 ORDER BY c.id LIMIT batch_size) AS x;
      END IF;
      EXIT WHEN ids IS NULL;
      last_id := ids[pg_catalog.array_upper(ids, 1)];
      IF tbl = 'connectors' THEN
        UPDATE gateway.connectors AS c
           SET encrypted_credentials = COALESCE(gateway._reencrypt(c.encrypted_credentials, c.id::text),
                                                c.encrypted_credentials),
               updated_at = pg_catalog.now()
         WHERE c.id OPERATOR(pg_catalog.=) ANY (ids);
        SELECT pg_catalog.count(*) INTO n FROM gateway.connectors AS c
         WHERE c.id OPERATOR(pg_catalog.=) ANY (ids) AND c.encryption_key_id OPERATOR(pg_catalog.=) active;
      ELSE
        UPDATE gateway.project_connectors AS c
           SET encrypted_auth_config = COALESCE(gateway._reencrypt(c.encrypted_auth_config,
                                                                   'project_connector:' OPERATOR(pg_catalog.||) c.id::text),
                                                c.encrypted_auth_config)
         WHERE c.id OPERATOR(pg_catalog.=) ANY (ids);
        SELECT pg_catalog.count(*) INTO n FROM gateway.project_connectors AS c
         WHERE c.id OPERATOR(pg_catalog.=) ANY (ids) AND c.encryption_key_id OPERATOR(pg_catalog.=) active;
      END IF;
      moved := moved + n;
      IF n < pg_catalog.cardinality(ids) THEN
        failed := failed + pg_catalog.cardinality(ids) - n;
        RAISE WARNING '% credentials could not be decrypted and were left as they are', pg_catalog.cardinality(ids) - n
          USING HINT = pg_catalog.format('List them with: SELECT id FROM gateway.%s WHERE encryption_key_id <> (SELECT id FROM gateway.encryption_keys WHERE state = ''active'');', tbl);
      END IF;
      PERFORM gateway._audit('credentials.reencrypted', 'encryption_key', NULL, NULL, NULL,
                             pg_catalog.jsonb_build_object('key_id', active, 'rows', n, 'table', tbl));
      COMMIT;
      RAISE NOTICE 're-encrypted % credentials (% so far)', n, moved;
    END LOOP;
  END LOOP;
  RAISE NOTICE 're-encryption complete: % credentials on key %, % left as they were', moved, active, failed;
END
$$;

------------------------------------------------------------------------------------------------
-- Row level security, privileges, dumps
------------------------------------------------------------------------------------------------

ALTER TABLE gateway.project_workers ENABLE ROW LEVEL SECURITY;
ALTER TABLE gateway.project_workers FORCE ROW LEVEL SECURITY;
-- Members read; only trusted roles (which bypass RLS) write.
CREATE POLICY project_workers_member_read ON gateway.project_workers FOR SELECT
  USING (gateway.has_project_role(project_id, 'viewer'));

ALTER TABLE gateway.project_connectors ENABLE ROW LEVEL SECURITY;
ALTER TABLE gateway.project_connectors FORCE ROW LEVEL SECURITY;
-- Source members read their connectors; target admins read those coming in (to approve them).
CREATE POLICY project_connectors_read ON gateway.project_connectors FOR SELECT
  USING (gateway.has_project_role(source_project_id, 'viewer')
         OR gateway.has_project_role(target_project_id, 'admin'));
CREATE POLICY project_connectors_editor_insert ON gateway.project_connectors FOR INSERT
  WITH CHECK (gateway.has_project_role(source_project_id, 'editor'));
CREATE POLICY project_connectors_editor_update ON gateway.project_connectors FOR UPDATE
  USING (gateway.has_project_role(source_project_id, 'editor'))
  WITH CHECK (gateway.has_project_role(source_project_id, 'editor'));
CREATE POLICY project_connectors_editor_delete ON gateway.project_connectors FOR DELETE
  USING (gateway.has_project_role(source_project_id, 'editor'));

-- Worker-owned: no policy, so nobody without BYPASSRLS sees a row even if granted the table.
ALTER TABLE gateway.nexus_endpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE gateway.nexus_endpoints FORCE ROW LEVEL SECURITY;
-- Internal to connector_approve / connector_consent_revoke: likewise no policy.
ALTER TABLE gateway.consent_changes ENABLE ROW LEVEL SECURITY;
ALTER TABLE gateway.consent_changes FORCE ROW LEVEL SECURITY;

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA gateway FROM PUBLIC;
REVOKE ALL ON ALL PROCEDURES IN SCHEMA gateway FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA gateway FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA gateway FROM PUBLIC;
GRANT EXECUTE ON FUNCTION gateway.current_user_id() TO PUBLIC;
GRANT EXECUTE ON FUNCTION gateway.has_project_role(uuid, text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION gateway._envelope_key_id(bytea) TO PUBLIC;
GRANT EXECUTE ON FUNCTION gateway._kong_object_id(text, uuid) TO PUBLIC;

-- User data: pg_dump includes their rows. Restoring a connector stores it as dumped (sealed auth
-- config, consent, endpoint name: gateway._restoring()) and queues its job again.
SELECT pg_catalog.pg_extension_config_dump('gateway.project_workers', '');
SELECT pg_catalog.pg_extension_config_dump('gateway.project_connectors', '');
SELECT pg_catalog.pg_extension_config_dump('gateway.nexus_endpoints', '');

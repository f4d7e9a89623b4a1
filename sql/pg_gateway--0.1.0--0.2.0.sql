-- pg_gateway 0.1.0 -> 0.2.0: public interfaces published to Kong through a transactional outbox.
\echo Use "ALTER EXTENSION pg_gateway UPDATE TO '0.2.0'" to load this file. \quit

------------------------------------------------------------------------------------------------
-- Service interfaces (what a workflow exposes) and their public HTTP faces
------------------------------------------------------------------------------------------------

CREATE TABLE gateway.service_interfaces (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id      uuid NOT NULL,
  workflow_id     uuid NOT NULL,
  name            text NOT NULL CHECK (name ~ '^[A-Za-z][A-Za-z0-9_-]{0,99}$'),
  display_name    text CHECK (length(display_name) <= 200),
  interface_type  text NOT NULL CHECK (interface_type IN ('signal', 'query', 'update')),
  callable_name   text NOT NULL CHECK (length(callable_name) BETWEEN 1 AND 200),
  input_schema    jsonb,
  output_schema   jsonb,
  is_public       boolean NOT NULL DEFAULT false,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT service_interfaces_workflow_name_key UNIQUE (workflow_id, name),
  CONSTRAINT service_interfaces_id_project_key UNIQUE (id, project_id)
);
CREATE INDEX service_interfaces_project_idx ON gateway.service_interfaces (project_id);
COMMENT ON TABLE gateway.service_interfaces IS
  'Signals, queries and updates a workflow exposes. is_public together with a gateway.public_interfaces row publishes one through Kong.';

CREATE FUNCTION gateway._kong_object_id(kind text, row_id uuid) RETURNS uuid
AS 'MODULE_PATHNAME', 'gateway_kong_object_id'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION gateway._kong_object_id(text, uuid) IS
  'The id pg_gateway gives the Kong object of this kind for this row (RFC 4122 version 5).';

CREATE TABLE gateway.public_interfaces (
  id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  service_interface_id  uuid NOT NULL UNIQUE,
  project_id            uuid NOT NULL,
  http_method           text NOT NULL DEFAULT 'POST'
                        CHECK (http_method IN ('GET', 'POST', 'PUT', 'PATCH', 'DELETE')),
  -- Derived from project, workflow and interface when not given (see _public_interfaces_change).
  http_path             text NOT NULL
                        CHECK (http_path ~ '^(/[A-Za-z0-9._~-]+)+$' AND length(http_path) <= 255),
  auth_type             text NOT NULL DEFAULT 'api_key' CHECK (auth_type IN ('api_key', 'none')),
  auth_config           jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(auth_config) = 'object'),
  rate_limit_per_minute integer CHECK (rate_limit_per_minute > 0),
  -- Sync state, written by the worker: pending (a job waits), synced, failed (retrying),
  -- dead (Kong refused the change; see sync_error and gateway.sync_jobs).
  sync_state            text NOT NULL DEFAULT 'pending'
                        CHECK (sync_state IN ('pending', 'synced', 'failed', 'dead')),
  sync_error            text,
  synced_at             timestamptz,
  -- The ids of its Kong service and route: name-based UUIDs of this row's id (src/core/kong_ids).
  kong_service_id       uuid GENERATED ALWAYS AS (gateway._kong_object_id('service', id)) STORED,
  kong_route_id         uuid GENERATED ALWAYS AS (gateway._kong_object_id('route', id)) STORED,
  -- What the last successful sync sent (Kong object path -> fingerprint), so the next job sends
  -- only what changed; NULL: unknown, send everything. A new row has nothing in Kong yet ({}).
  -- Reconciliation clears it on drift.
  kong_synced           jsonb DEFAULT '{}',
  created_at            timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT public_interfaces_method_path_key UNIQUE (http_method, http_path),
  CONSTRAINT public_interfaces_service_interface_fkey FOREIGN KEY (service_interface_id, project_id)
    REFERENCES gateway.service_interfaces (id, project_id) ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX public_interfaces_project_idx ON gateway.public_interfaces (project_id);
COMMENT ON TABLE gateway.public_interfaces IS
  'The public HTTP face of a service interface: a Kong service and route with key-auth, acl and rate-limiting plugins.';
COMMENT ON COLUMN gateway.public_interfaces.sync_state IS
  'pending: a sync job waits; synced: Kong matches; failed: retrying after an error; dead: Kong refused the change (see sync_error).';


-- One BEFORE trigger does everything a change to a public interface needs, in the same
-- transaction: the project and default path, the sync job(s), the audit record, and the wake of
-- the worker at commit. It is C (src/pg/interface_trigger.cpp) because it runs on every publish
-- (bench/sync measures it against the same writes made by one statement). It runs as the table
-- owner (SECURITY DEFINER): application roles have no rights on gateway.sync_jobs. A job queued
-- here for a row that then fails a constraint rolls back with it.
--
-- The default path is a short hash of project, workflow and interface name, lengthened until no
-- other interface with the same method has it (src/pg/interface_paths.cpp); the unique
-- constraint is the final guard, so two interfaces never silently share a path.
CREATE FUNCTION gateway._public_interfaces_change() RETURNS trigger
AS 'MODULE_PATHNAME', 'gateway_public_interfaces_change'
LANGUAGE C SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
-- UPDATE OF the columns Kong sees: the worker recording sync state does not fire it.
CREATE TRIGGER public_interfaces_change
  BEFORE INSERT OR DELETE OR UPDATE OF http_method, http_path, auth_type, auth_config,
                                       rate_limit_per_minute, service_interface_id
  ON gateway.public_interfaces FOR EACH ROW EXECUTE FUNCTION gateway._public_interfaces_change();

------------------------------------------------------------------------------------------------
-- API keys: what Kong needs of a key bound to an interface
------------------------------------------------------------------------------------------------

-- The key itself must reach Kong (key-auth compares plaintext keys), so issue and rotate seal it
-- with a key derived from the master key, bound to the key id; the worker opens it, hands it to
-- Kong, and clears the column once Kong has it. It never exists unsealed in a table or the WAL.
ALTER TABLE gateway.api_keys
  ADD COLUMN kong_key_sealed bytea,
  ADD COLUMN kong_sync_state text CHECK (kong_sync_state IN ('pending', 'synced', 'failed', 'dead')),
  ADD COLUMN kong_sync_error text,
  ADD COLUMN kong_synced_at  timestamptz,
  ADD COLUMN kong_synced     jsonb;
-- Keys issued from now on have nothing in Kong yet; existing ones are unknown (NULL).
ALTER TABLE gateway.api_keys ALTER COLUMN kong_synced SET DEFAULT '{}';
COMMENT ON COLUMN gateway.api_keys.kong_key_sealed IS
  'The key sealed for hand-off to Kong (XChaCha20-Poly1305 under a master-key subkey); cleared once Kong has it.';
COMMENT ON COLUMN gateway.api_keys.kong_sync_state IS
  'For keys bound to a public interface: state of the Kong consumer and credential (as public_interfaces.sync_state).';

CREATE FUNCTION gateway._seal_key_handoff(api_key text, key_id uuid) RETURNS bytea
AS 'MODULE_PATHNAME', 'gateway_seal_key_handoff'
LANGUAGE C VOLATILE STRICT;

CREATE OR REPLACE FUNCTION gateway._api_key_insert(id uuid, user_id uuid, project_id uuid, name text,
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
            hash_version, expires_at, rate_limit_per_minute, rotated_from, kong_key_sealed,
            kong_sync_state)
    VALUES ($1, $2, $3, $4, $5, generated.key_prefix, generated.key_hash,
            generated.hash_version, $6, $7, $8,
            CASE WHEN $5 IS NOT NULL THEN gateway._seal_key_handoff(generated.api_key, $1) END,
            CASE WHEN $5 IS NOT NULL THEN 'pending' END)
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

------------------------------------------------------------------------------------------------
-- The outbox
------------------------------------------------------------------------------------------------

-- A job means "make the remote object for (target, object_kind, object_id) match the current
-- rows": level-triggered, so replaying one is harmless and pending jobs for one object coalesce.
-- Done jobs are deleted; dead ones stay until sync_retry or sync_cancel.
CREATE TABLE gateway.sync_jobs (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  target       text NOT NULL CHECK (target IN ('kong')),
  object_kind  text NOT NULL CHECK (object_kind IN ('public_interface', 'api_key', 'reconcile')),
  object_id    uuid NOT NULL,
  state        text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'running', 'dead')),
  attempts     integer NOT NULL DEFAULT 0,
  run_after    timestamptz NOT NULL DEFAULT now(),
  last_error   text,
  last_status  integer,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);
-- Object first: it serves lookups by object, never a scan of all pending jobs by target, which
-- a planner with stale statistics might otherwise pick for the claim.
CREATE UNIQUE INDEX sync_jobs_one_pending ON gateway.sync_jobs (object_id, object_kind, target)
  WHERE state = 'pending';
-- In claim order, so a claim reads the first due jobs and stops (it skips, by index probes, the
-- few whose object has a job running).
CREATE INDEX sync_jobs_due ON gateway.sync_jobs (run_after, id) WHERE state = 'pending';
-- Every job of one object, whatever its state (dead letters are looked up by object).
CREATE INDEX sync_jobs_object ON gateway.sync_jobs (object_id, object_kind, target);
COMMENT ON TABLE gateway.sync_jobs IS
  'Outbox of remote changes: one pending job per remote object, claimed by the worker with FOR UPDATE SKIP LOCKED.';

CREATE FUNCTION gateway._sync_wake() RETURNS void
AS 'MODULE_PATHNAME', 'gateway_sync_wake'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION gateway._sync_wake() IS
  'Wakes the worker when the current transaction commits (nothing happens on abort).';

CREATE FUNCTION gateway._sync_enqueue(target text, object_kind text, object_id uuid,
                                      run_after timestamptz DEFAULT now()) RETURNS void
-- No SET search_path: an internal helper, called only where it is already pinned (the cost of
-- switching it on every call is most of this function's). Every name in it is qualified.
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
BEGIN
  INSERT INTO gateway.sync_jobs AS j (target, object_kind, object_id, run_after)
  VALUES ($1, $2, $3, $4)
  ON CONFLICT (target, object_kind, object_id) WHERE state = 'pending'
  DO UPDATE SET run_after = LEAST(j.run_after, EXCLUDED.run_after), updated_at = pg_catalog.now();
  PERFORM gateway._sync_wake();
END
$$;

-- Triggers that queue jobs run as the table owner (SECURITY DEFINER), since application roles have
-- no rights on gateway.sync_jobs.

CREATE FUNCTION gateway._service_interfaces_enqueue() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- Deletes reach public_interfaces through its cascading foreign key and fire its trigger.
  IF NEW.is_public IS DISTINCT FROM OLD.is_public THEN
    PERFORM gateway._sync_enqueue('kong', 'public_interface', p.id)
       FROM gateway.public_interfaces AS p WHERE p.service_interface_id = NEW.id;
    PERFORM gateway._sync_enqueue('kong', 'api_key', k.id)
       FROM gateway.public_interfaces AS p
       JOIN gateway.api_keys AS k ON k.public_interface_id = p.id
      WHERE p.service_interface_id = NEW.id;
    UPDATE gateway.public_interfaces AS p SET sync_state = 'pending'
     WHERE p.service_interface_id = NEW.id;
    PERFORM gateway._audit(CASE WHEN NEW.is_public THEN 'service_interface.published'
                                ELSE 'service_interface.unpublished' END,
                           'service_interface', NEW.id, NEW.project_id, NULL,
                           jsonb_build_object('name', NEW.name, 'workflow_id', NEW.workflow_id));
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER service_interfaces_enqueue AFTER UPDATE OF is_public ON gateway.service_interfaces
  FOR EACH ROW EXECUTE FUNCTION gateway._service_interfaces_enqueue();

CREATE FUNCTION gateway._api_keys_enqueue() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.public_interface_id IS NOT NULL THEN
    PERFORM gateway._sync_enqueue('kong', 'api_key', OLD.id);
  ELSIF TG_OP IN ('INSERT', 'UPDATE') AND NEW.public_interface_id IS NOT NULL THEN
    PERFORM gateway._sync_enqueue('kong', 'api_key', NEW.id);
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER api_keys_enqueue
  AFTER INSERT OR DELETE OR UPDATE OF is_active, revoked_at, expires_at, public_interface_id
  ON gateway.api_keys FOR EACH ROW EXECUTE FUNCTION gateway._api_keys_enqueue();

------------------------------------------------------------------------------------------------
-- What the worker reads: the rows behind a job, as JSON for the C++ mapping
------------------------------------------------------------------------------------------------

-- Claims up to `batch` due jobs of `target` and returns each with the rows it is about, read in
-- the same snapshot. `busy_objects`: the objects whose jobs the worker has in flight; their new
-- jobs wait, so two jobs' requests for one object never interleave at the remote end. Jobs left
-- 'running' by a worker that died are reclaimed at its restart by _sync_recover().
CREATE FUNCTION gateway._sync_claim(target text, batch integer, busy_objects uuid[])
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
                      'sealed_key', encode(k.kong_key_sealed, 'base64'), 'synced', k.kong_synced,
                      'interface_published', COALESCE(s.is_public AND p.auth_type = 'api_key', false))
               FROM gateway.api_keys AS k
               LEFT JOIN gateway.public_interfaces AS p ON p.id = k.public_interface_id
               LEFT JOIN gateway.service_interfaces AS s ON s.id = p.service_interface_id
              WHERE k.id = c.object_id)
         END
    FROM claimed AS c
$$;

-- Every desired object, for drift reconciliation.
CREATE FUNCTION gateway._sync_desired_interfaces()
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
   WHERE s.is_public
$$;

CREATE FUNCTION gateway._sync_desired_keys()
RETURNS SETOF jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT jsonb_build_object(
           'id', k.id, 'public_interface_id', k.public_interface_id, 'is_active', k.is_active,
           'revoked_at', extract(epoch FROM k.revoked_at),
           'expires_at', extract(epoch FROM k.expires_at),
           'sealed_key', encode(k.kong_key_sealed, 'base64'),
           'interface_published', true)
    FROM gateway.api_keys AS k
    JOIN gateway.public_interfaces AS p ON p.id = k.public_interface_id
    JOIN gateway.service_interfaces AS s ON s.id = p.service_interface_id
   WHERE s.is_public AND p.auth_type = 'api_key' AND k.is_active
     AND (k.revoked_at IS NULL OR k.revoked_at > now())
     AND (k.expires_at IS NULL OR k.expires_at > now())
$$;

-- Reconciliation found the row's Kong objects differ from what they should be: forget what was
-- last sent (so the job sends everything again) and queue the job.
CREATE FUNCTION gateway._sync_repair(object_kind text, object_id uuid) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF $1 = 'public_interface' THEN
    UPDATE gateway.public_interfaces AS p SET kong_synced = NULL WHERE p.id = $2;
  ELSIF $1 = 'api_key' THEN
    UPDATE gateway.api_keys AS k SET kong_synced = NULL WHERE k.id = $2;
  END IF;
  PERFORM gateway._sync_enqueue('kong', $1, $2);
END
$$;

-- After a worker restart (crash, failover): jobs it had claimed run again. Safe because jobs
-- are level-triggered.
CREATE FUNCTION gateway._sync_recover() RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  n integer := 0;
  j gateway.sync_jobs;
BEGIN
  FOR j IN SELECT * FROM gateway.sync_jobs AS r WHERE r.state = 'running' FOR UPDATE LOOP
    -- It may have stopped halfway: what Kong holds for the object is unknown now.
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

-- Records the outcome of one job. outcome: done, retry (with run_after), dead.
-- `next_change` (optional) schedules a follow-up, e.g. when a rotated key's grace period ends.
CREATE FUNCTION gateway._sync_finish(job_id bigint, outcome text, run_after timestamptz,
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
  END IF;
END
$$;

-- The worker's batch of outcomes: jsonb [{job_id, outcome, run_after, error, status,
-- next_change, key_delivered, synced}] (times in epoch seconds). Successes, nearly all of them,
-- are recorded set-based in one statement; failures one at a time through _sync_finish.
CREATE FUNCTION gateway._sync_finish_batch(outcomes jsonb) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT * FROM jsonb_to_recordset(outcomes) AS x(job_id bigint, outcome text, run_after float8,
                         error text, status integer, next_change float8, key_delivered boolean, synced jsonb)
            WHERE x.outcome <> 'done' LOOP
    PERFORM gateway._sync_finish(r.job_id, r.outcome, to_timestamp(r.run_after), r.error, r.status,
                                 to_timestamp(r.next_change), r.key_delivered, r.synced);
  END LOOP;

  -- As _sync_finish does for 'done': the job goes, with any dead letter of its object; a
  -- follow-up is queued for the object's next change; the row is synced unless a newer job
  -- waits. The statement's parts touch different rows, so one snapshot serves them all.
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
  )
  UPDATE gateway.api_keys AS k
     SET kong_sync_state = CASE WHEN done.newer THEN 'pending' ELSE 'synced' END,
         kong_synced = done.synced, kong_sync_error = NULL, kong_synced_at = now(),
         kong_key_sealed = CASE WHEN done.key_delivered THEN NULL ELSE k.kong_key_sealed END
    FROM done
   WHERE done.object_kind = 'api_key' AND k.id = done.object_id;
END
$$;

-- When the worker should look again: the earliest pending job (a min() over sync_jobs_due). One
-- that waits for its object's running job is due once that job is recorded, and the worker claims
-- after every record anyway.
CREATE FUNCTION gateway._sync_next_due(target text) RETURNS timestamptz
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off  -- as in _sync_claim: the index's first entry, whatever the statistics say
AS $$
  SELECT min(d.run_after) FROM gateway.sync_jobs AS d WHERE d.state = 'pending' AND d.target = $1
$$;

------------------------------------------------------------------------------------------------
-- Operations
------------------------------------------------------------------------------------------------

CREATE VIEW gateway.sync_status AS
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
    FROM (VALUES ('kong')) AS t (target)
    LEFT JOIN gateway.sync_jobs AS j ON j.target = t.target
   GROUP BY t.target;
COMMENT ON VIEW gateway.sync_status IS
  'Per target: jobs pending, retrying, running and dead, the age of the oldest pending job, and the last error.';

CREATE FUNCTION gateway.sync_retry(job_id bigint) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  j gateway.sync_jobs;
BEGIN
  IF job_id IS NULL THEN
    RAISE EXCEPTION 'job_id must not be null' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  SELECT * INTO j FROM gateway.sync_jobs AS x WHERE x.id = job_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'sync job % does not exist', job_id
      USING ERRCODE = 'no_data_found',
            HINT = 'Done jobs are deleted; see SELECT * FROM gateway.sync_jobs;';
  END IF;
  IF j.state = 'running' THEN
    RETURN false;  -- already being worked on
  END IF;
  DELETE FROM gateway.sync_jobs AS d WHERE d.id = j.id;
  PERFORM gateway._sync_enqueue(j.target, j.object_kind, j.object_id);
  RETURN true;
END
$$;
COMMENT ON FUNCTION gateway.sync_retry(bigint) IS
  'Runs a dead or waiting job again now. Returns false when the worker is running it.';

CREATE FUNCTION gateway.sync_cancel(job_id bigint) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF job_id IS NULL THEN
    RAISE EXCEPTION 'job_id must not be null' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  DELETE FROM gateway.sync_jobs AS d WHERE d.id = job_id;
  RETURN FOUND;
END
$$;
COMMENT ON FUNCTION gateway.sync_cancel(bigint) IS
  'Drops a job (the next change to its object, or the next reconcile, brings it back). Returns false when there was no such job.';

CREATE FUNCTION gateway.sync_reconcile() RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM gateway._sync_enqueue('kong', 'reconcile', '00000000-0000-0000-0000-000000000000');
END
$$;
COMMENT ON FUNCTION gateway.sync_reconcile() IS
  'Asks the worker to compare Kong with the tables now and repair every difference (after commit).';

------------------------------------------------------------------------------------------------
-- Row level security, privileges, dumps
------------------------------------------------------------------------------------------------

ALTER TABLE gateway.service_interfaces ENABLE ROW LEVEL SECURITY;
ALTER TABLE gateway.service_interfaces FORCE ROW LEVEL SECURITY;
CREATE POLICY service_interfaces_member_read ON gateway.service_interfaces FOR SELECT
  USING (gateway.has_project_role(project_id, 'viewer'));
CREATE POLICY service_interfaces_editor_insert ON gateway.service_interfaces FOR INSERT
  WITH CHECK (gateway.has_project_role(project_id, 'editor'));
CREATE POLICY service_interfaces_editor_update ON gateway.service_interfaces FOR UPDATE
  USING (gateway.has_project_role(project_id, 'editor'))
  WITH CHECK (gateway.has_project_role(project_id, 'editor'));
CREATE POLICY service_interfaces_editor_delete ON gateway.service_interfaces FOR DELETE
  USING (gateway.has_project_role(project_id, 'editor'));

ALTER TABLE gateway.public_interfaces ENABLE ROW LEVEL SECURITY;
ALTER TABLE gateway.public_interfaces FORCE ROW LEVEL SECURITY;
CREATE POLICY public_interfaces_member_read ON gateway.public_interfaces FOR SELECT
  USING (gateway.has_project_role(project_id, 'viewer'));
CREATE POLICY public_interfaces_admin_insert ON gateway.public_interfaces FOR INSERT
  WITH CHECK (gateway.has_project_role(project_id, 'admin'));
CREATE POLICY public_interfaces_admin_update ON gateway.public_interfaces FOR UPDATE
  USING (gateway.has_project_role(project_id, 'admin'))
  WITH CHECK (gateway.has_project_role(project_id, 'admin'));
CREATE POLICY public_interfaces_admin_delete ON gateway.public_interfaces FOR DELETE
  USING (gateway.has_project_role(project_id, 'admin'));

-- The outbox is for the worker and operators only: with no policy, roles without BYPASSRLS see
-- and change nothing even if granted the table.
ALTER TABLE gateway.sync_jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE gateway.sync_jobs FORCE ROW LEVEL SECURITY;

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA gateway FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA gateway FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA gateway FROM PUBLIC;
GRANT EXECUTE ON FUNCTION gateway.current_user_id() TO PUBLIC;
GRANT EXECUTE ON FUNCTION gateway.has_project_role(uuid, text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION gateway._envelope_key_id(bytea) TO PUBLIC;

SELECT pg_catalog.pg_extension_config_dump('gateway.service_interfaces', '');
SELECT pg_catalog.pg_extension_config_dump('gateway.public_interfaces', '');
-- gateway.sync_jobs is not dumped: it is transient, and restoring the interface and key rows
-- queues their jobs again (the triggers fire on restore).

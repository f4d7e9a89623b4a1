-- pg_gateway 0.4.0 -> 0.5.0: cross-project calls through Nexus. A call is queued in the caller's
-- transaction (gateway.connector_call), validated against the target interface's input schema,
-- started exactly once by the worker (the call's id is the Nexus-Request-Id), and its outcome -
-- a synchronous result, or the completion an async operation delivers later to the worker's
-- callback listener - lands on the call's row, with NOTIFY, cancel, deadlines and monitoring.
\echo Use "ALTER EXTENSION pg_gateway UPDATE TO '0.5.0'" to load this file. \quit

------------------------------------------------------------------------------------------------
-- The outbox has a third target: calls (their own engine, so calls never wait for endpoint sync)
------------------------------------------------------------------------------------------------

ALTER TABLE gateway.sync_jobs DROP CONSTRAINT sync_jobs_target_check;
ALTER TABLE gateway.sync_jobs DROP CONSTRAINT sync_jobs_object_kind_check;
ALTER TABLE gateway.sync_jobs DROP CONSTRAINT sync_jobs_kind_target_check;
ALTER TABLE gateway.sync_jobs
  ADD CONSTRAINT sync_jobs_target_check CHECK (target IN ('kong', 'temporal', 'nexus')),
  ADD CONSTRAINT sync_jobs_object_kind_check
    CHECK (object_kind IN ('public_interface', 'api_key', 'reconcile', 'project_connector', 'connector_test',
                           'connector_call')),
  ADD CONSTRAINT sync_jobs_kind_target_check
    CHECK (object_kind = 'reconcile'
           OR target = 'kong' AND object_kind IN ('public_interface', 'api_key')
           OR target = 'temporal' AND object_kind IN ('project_connector', 'connector_test')
           OR target = 'nexus' AND object_kind = 'connector_call');

------------------------------------------------------------------------------------------------
-- Calls
------------------------------------------------------------------------------------------------

CREATE TABLE gateway.connector_calls (
  id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  -- Kept when the connector goes: a running call can still complete, and its history stays.
  connector_id        uuid REFERENCES gateway.project_connectors (id) ON DELETE SET NULL,
  source_project_id   uuid NOT NULL,
  target_project_id   uuid NOT NULL,
  service             text NOT NULL,
  operation           text NOT NULL,
  input               jsonb,
  state               text NOT NULL DEFAULT 'queued'
                      CHECK (state IN ('queued', 'started', 'running', 'succeeded', 'failed', 'canceled',
                                       'timed_out')),
  endpoint_id         text,
  operation_token     text,
  result              jsonb,
  failure             jsonb,
  links               jsonb,
  attempts            integer NOT NULL DEFAULT 0,
  last_error          text,
  last_status         integer,
  created_by          uuid,
  created_at          timestamptz NOT NULL DEFAULT now(),
  started_at          timestamptz,
  finished_at         timestamptz,
  deadline            timestamptz NOT NULL,
  cancel_requested_at timestamptz,
  canceled_by         uuid,
  cancel_sent_at      timestamptz,
  CONSTRAINT connector_calls_final_check
    CHECK ((state IN ('succeeded', 'failed', 'canceled', 'timed_out')) = (finished_at IS NOT NULL))
);
CREATE INDEX connector_calls_project_idx ON gateway.connector_calls (source_project_id, created_at);
CREATE INDEX connector_calls_connector_idx ON gateway.connector_calls (connector_id, created_at);
-- The calls not finished yet (the reconcile's sweep, cancel, monitoring).
CREATE INDEX connector_calls_open_idx ON gateway.connector_calls (deadline)
  WHERE state IN ('queued', 'started', 'running');
COMMENT ON TABLE gateway.connector_calls IS
  'Calls into another project through a connector (gateway.connector_call). Members of the source project read their calls; nobody else sees them. Written only by the extension''s functions and worker.';
COMMENT ON COLUMN gateway.connector_calls.id IS
  'The call''s id, sent as Nexus-Request-Id: a start repeated after a crash or a timeout never starts a second operation.';
COMMENT ON COLUMN gateway.connector_calls.state IS
  'queued: waits for the worker; started: the worker is starting it (attempts counts tries, last_error says why the last failed); running: the operation runs asynchronously (operation_token), its completion arrives at the callback listener; succeeded (result), failed or canceled (failure: a Nexus Failure object), timed_out (the deadline passed). The last four are final and never change.';
COMMENT ON COLUMN gateway.connector_calls.links IS
  'Nexus links the handler returned (array of {"url", "type"}), e.g. the workflow the operation started.';

-- A call, for an act by the caller: trusted roles always (P0002 for an unknown id); anybody else
-- needs `role` in the call's source project, and gets _deny's one answer otherwise.
CREATE FUNCTION gateway._connector_call_for(call_id uuid, role text) RETURNS gateway.connector_calls
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  k gateway.connector_calls;
  present boolean;
BEGIN
  IF $1 IS NULL THEN
    RAISE EXCEPTION 'call_id must not be null' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  SELECT * INTO k FROM gateway.connector_calls AS x WHERE x.id OPERATOR(pg_catalog.=) $1 FOR UPDATE;
  -- Kept now: PERFORM below sets FOUND (to true), so "NOT FOUND" after it never saw a missing call.
  present := FOUND;
  IF gateway._caller_is_trusted() THEN
    IF NOT present THEN
      RAISE EXCEPTION 'connector call % does not exist', $1 USING ERRCODE = 'no_data_found';
    END IF;
    RETURN k;
  END IF;
  PERFORM gateway._require_user();
  IF NOT present OR gateway.has_project_role(k.source_project_id, role) IS NOT TRUE THEN
    PERFORM gateway._deny('connector call', $1, NULL);
  END IF;
  RETURN k;
END
$$;

-- Validation of a call's input against the target interface's input_schema (JSON Schema drafts
-- 4, 6, 7 through valijson): 22023 naming the JSON pointer that fails.
CREATE FUNCTION gateway._input_schema_check(schema jsonb, input jsonb) RETURNS void
AS 'MODULE_PATHNAME', 'gateway_input_schema_check'
LANGUAGE C IMMUTABLE PARALLEL SAFE CALLED ON NULL INPUT;

CREATE FUNCTION gateway.json_schema_validate(schema jsonb, instance jsonb) RETURNS text
AS 'MODULE_PATHNAME', 'gateway_json_schema_validate'
LANGUAGE C IMMUTABLE PARALLEL SAFE CALLED ON NULL INPUT;
COMMENT ON FUNCTION gateway.json_schema_validate(jsonb, jsonb) IS
  'NULL when instance matches the JSON Schema (drafts 4, 6, 7; default 7), else the JSON pointer of the first failing location and why. Raises 22023 when the schema itself is not valid. Remote references are never fetched.';

CREATE FUNCTION gateway.connector_call(connector_id uuid, input jsonb DEFAULT '{}',
                                       timeout interval DEFAULT '1 hour') RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  c gateway.project_connectors := gateway._project_connector_for($1, false, 'editor', NULL);
  s gateway.service_interfaces;
  call_id uuid;
BEGIN
  IF timeout IS NULL OR timeout < interval '1 second' OR timeout > interval '30 days' THEN
    RAISE EXCEPTION 'timeout must be between 1 second and 30 days'
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'The timeout bounds the whole call: starting it, retries, and an asynchronous operation''s run.';
  END IF;
  IF pg_column_size(input) > 1048576 THEN
    RAISE EXCEPTION 'input is too large (% bytes; at most 1 MB)', pg_column_size(input)
      USING ERRCODE = 'program_limit_exceeded',
            HINT = 'Pass a reference to large data (e.g. a storage path) rather than the data itself.';
  END IF;
  IF c.consent_state <> 'approved' THEN
    RAISE EXCEPTION 'connector % is not approved by its target project (consent is %)', c.id, c.consent_state
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'An admin of the target project approves it with gateway.connector_approve().';
  END IF;
  IF NOT EXISTS (SELECT FROM gateway.nexus_endpoints AS e WHERE e.connector_id = c.id) THEN
    RAISE EXCEPTION 'connector % has no Nexus endpoint yet (sync_state is %)', c.id, c.sync_state
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = CASE WHEN c.sync_state IN ('failed', 'dead')
                        THEN 'The worker could not create it: see sync_error on the connector and gateway.sync_status.'
                        ELSE 'The worker creates it shortly after approval once the target project has workers (gateway.project_workers); see gateway.sync_status.' END;
  END IF;
  SELECT * INTO s FROM gateway.service_interfaces AS x WHERE x.id = c.target_interface_id;
  PERFORM gateway._input_schema_check(s.input_schema, input);
  INSERT INTO gateway.connector_calls (connector_id, source_project_id, target_project_id, service, operation,
                                       input, created_by, deadline)
  VALUES (c.id, c.source_project_id, c.target_project_id, c.nexus_service_name, s.name, input,
          gateway.current_user_id(), now() + timeout)
  RETURNING id INTO call_id;
  PERFORM gateway._sync_enqueue('nexus', 'connector_call', call_id);
  RETURN call_id;
END
$$;
COMMENT ON FUNCTION gateway.connector_call(uuid, jsonb, interval) IS
  'Queues a call of the connector''s target operation (editors and above of its source project, or a trusted role) and returns its id. The input must match the target interface''s input_schema (22023 names the failing JSON pointer). The worker starts it after commit, exactly once; its outcome lands in gateway.connector_calls, with a NOTIFY on channel gateway_connector_calls. timeout bounds the whole call (1 s to 30 days).';

CREATE FUNCTION gateway.connector_call_cancel(call_id uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  k gateway.connector_calls := gateway._connector_call_for($1, 'editor');
BEGIN
  IF k.state IN ('succeeded', 'failed', 'canceled', 'timed_out') OR k.cancel_requested_at IS NOT NULL THEN
    RETURN false;
  END IF;
  IF k.state = 'queued' THEN
    -- Not started: nothing exists remotely (the claim marks a call started under this row's lock).
    UPDATE gateway.connector_calls AS x
       SET state = 'canceled', finished_at = now(), cancel_requested_at = now(),
           canceled_by = gateway.current_user_id(),
           failure = jsonb_build_object('message', 'canceled before it started',
                                        'metadata', jsonb_build_object('type', 'nexus.OperationError'),
                                        'details', jsonb_build_object('state', 'canceled'))
     WHERE x.id = k.id;
    DELETE FROM gateway.sync_jobs AS j
     WHERE j.target = 'nexus' AND j.object_kind = 'connector_call' AND j.object_id = k.id AND j.state = 'pending';
    PERFORM pg_notify('gateway_connector_calls', jsonb_build_object('id', k.id, 'state', 'canceled')::text);
    RETURN true;
  END IF;
  -- Started or running: the worker asks the handler to cancel; the outcome arrives as usual.
  UPDATE gateway.connector_calls AS x
     SET cancel_requested_at = now(), canceled_by = gateway.current_user_id()
   WHERE x.id = k.id;
  PERFORM gateway._sync_enqueue('nexus', 'connector_call', k.id);
  RETURN true;
END
$$;
COMMENT ON FUNCTION gateway.connector_call_cancel(uuid) IS
  'Cancels a call (editors and above of its source project, or a trusted role). A queued call is canceled at once; a started or running one is asked to cancel at the handler, and its final state arrives as usual. Returns false when the call had already finished or a cancel was already requested.';

------------------------------------------------------------------------------------------------
-- What the worker reads and records for calls
------------------------------------------------------------------------------------------------

-- A call as its job needs it, marking it started (under the row's lock, so a cancel sees it).
-- A gone row (pruned) reads {"state": "gone"}: nothing to do.
-- No SET search_path: called only from _sync_claim, which pins it (switching it per claimed job
-- would cost more than the function).
CREATE FUNCTION gateway._connector_call_claim(call_id uuid) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  k gateway.connector_calls;
  c gateway.project_connectors;
  s gateway.service_interfaces;
  e gateway.nexus_endpoints;
  starting boolean;
BEGIN
  SELECT * INTO k FROM gateway.connector_calls AS x WHERE x.id = $1 FOR UPDATE;
  IF NOT FOUND THEN
    RETURN jsonb_build_object('id', $1, 'state', 'gone');
  END IF;
  starting := k.state IN ('queued', 'started') AND k.deadline > now();
  IF starting THEN
    UPDATE gateway.connector_calls AS x
       SET state = 'started', started_at = COALESCE(x.started_at, now()), attempts = x.attempts + 1
     WHERE x.id = k.id
    RETURNING * INTO k;
  END IF;
  SELECT * INTO c FROM gateway.project_connectors AS x WHERE x.id = k.connector_id;
  SELECT * INTO s FROM gateway.service_interfaces AS x WHERE x.id = c.target_interface_id;
  SELECT * INTO e FROM gateway.nexus_endpoints AS x WHERE x.connector_id = k.connector_id;
  RETURN jsonb_build_object(
    'id', k.id, 'state', k.state, 'connector_id', k.connector_id,
    -- Only while the connector is approved: a revoked one's endpoint is on its way out.
    'endpoint_id', CASE WHEN c.consent_state = 'approved' THEN e.endpoint_id END,
    'service', k.service, 'operation', k.operation,
    'interface_type', s.interface_type, 'callable_name', s.callable_name,
    'source_project_id', k.source_project_id, 'input', k.input, 'token', k.operation_token,
    'cancel_requested', k.cancel_requested_at IS NOT NULL, 'cancel_sent', k.cancel_sent_at IS NOT NULL,
    'deadline', extract(epoch FROM k.deadline), 'now', extract(epoch FROM now()),
    'auth_config_sealed', encode(c.encrypted_auth_config, 'base64'), 'attempts', k.attempts);
END
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
           WHEN 'connector_call' THEN gateway._connector_call_claim(c.object_id)
         END
    FROM claimed AS c
$$;

-- The outcomes of finished call jobs ('done': `synced` is the call's new state, see
-- src/core/nexus_call_job.hpp), recorded before the jobs are deleted. A final state never
-- changes: a completion that arrived first wins. Final states are announced with NOTIFY.
CREATE FUNCTION gateway._connector_calls_record(outcomes jsonb) RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
  WITH o AS (
    SELECT j.object_id AS id, x.synced AS s, x.synced ->> 'state' AS new_state
      FROM jsonb_to_recordset(outcomes) AS x(job_id bigint, outcome text, synced jsonb)
      JOIN gateway.sync_jobs AS j ON j.id = x.job_id AND j.state = 'running' AND j.object_kind = 'connector_call'
     WHERE x.outcome = 'done' AND jsonb_typeof(x.synced) = 'object'
       AND x.synced ->> 'state' IN ('running', 'succeeded', 'failed', 'canceled', 'timed_out')
  ), changed AS (
    UPDATE gateway.connector_calls AS k
       SET state = o.new_state,
           operation_token = COALESCE(o.s ->> 'token', k.operation_token),
           result = CASE WHEN o.new_state = 'succeeded' THEN o.s -> 'result' ELSE k.result END,
           failure = CASE WHEN o.new_state IN ('failed', 'canceled', 'timed_out') THEN o.s -> 'failure' ELSE k.failure END,
           links = COALESCE(o.s -> 'links', k.links),
           endpoint_id = COALESCE(o.s ->> 'endpoint_id', k.endpoint_id),
           cancel_sent_at = CASE WHEN (o.s ->> 'cancel_sent')::boolean THEN now() ELSE k.cancel_sent_at END,
           finished_at = CASE WHEN o.new_state <> 'running' THEN now() END,
           last_error = NULL, last_status = NULL
      FROM o
     WHERE k.id = o.id AND k.state IN ('queued', 'started', 'running')
    RETURNING k.id, k.state
  )
  SELECT count(pg_notify('gateway_connector_calls', jsonb_build_object('id', changed.id, 'state', changed.state)::text))
    FROM changed WHERE changed.state <> 'running'
$$;

-- A call job that will be retried (what went wrong stays on the row) or that cannot succeed
-- (dead: the call failed with the worker's message).
CREATE FUNCTION gateway._connector_call_failed_attempt(call_id uuid, outcome text, error text, http_status integer)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF outcome = 'dead' THEN
    UPDATE gateway.connector_calls AS k
       SET state = 'failed', finished_at = now(), last_error = $3, last_status = $4,
           failure = jsonb_build_object('message', COALESCE($3, 'the call could not be started'),
                                        'metadata', jsonb_build_object('type', 'nexus.HandlerError'),
                                        'details', jsonb_build_object('type', 'pg_gateway', 'status', $4))
     WHERE k.id = $1 AND k.state IN ('queued', 'started', 'running');
    IF FOUND THEN
      PERFORM pg_notify('gateway_connector_calls', jsonb_build_object('id', $1, 'state', 'failed')::text);
    END IF;
    -- The call's row is its dead letter (state failed, with the reason): none in the outbox too.
    DELETE FROM gateway.sync_jobs AS j
     WHERE j.target = 'nexus' AND j.object_kind = 'connector_call' AND j.object_id = $1 AND j.state = 'dead';
  ELSE
    UPDATE gateway.connector_calls AS k SET last_error = $3, last_status = $4
     WHERE k.id = $1 AND k.state IN ('queued', 'started', 'running');
  END IF;
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
  ELSIF j.object_kind = 'connector_call' AND outcome <> 'done' THEN
    -- (A done call job is recorded by _connector_calls_record before its job is deleted.)
    PERFORM gateway._connector_call_failed_attempt(j.object_id, outcome, $4, $5);
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION gateway._sync_finish_batch(outcomes jsonb) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r record;
BEGIN
  -- Calls first: their rows are found through the jobs the statement below deletes.
  PERFORM gateway._connector_calls_record(outcomes);

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
       -- A call whose completion arrived while its start was being recorded is final: no job
       -- waits for its deadline.
       AND NOT (done.object_kind = 'connector_call'
                AND EXISTS (SELECT FROM gateway.connector_calls AS k
                             WHERE k.id = done.object_id AND k.finished_at IS NOT NULL))
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

-- A completion the callback listener received (its token already checked): 'accepted',
-- 'unknown' (no such call) or 'finished' (already final: a late or repeated delivery).
CREATE FUNCTION gateway._connector_call_complete(call_id uuid, state text, result jsonb, failure jsonb,
                                                 links jsonb, token text, start_time timestamptz,
                                                 close_time timestamptz) RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  k gateway.connector_calls;
BEGIN
  IF $2 IS NULL OR $2 NOT IN ('succeeded', 'failed', 'canceled') THEN
    RAISE EXCEPTION 'invalid completion state "%"', $2 USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT * INTO k FROM gateway.connector_calls AS x WHERE x.id = $1 FOR UPDATE;
  IF NOT FOUND THEN
    RETURN 'unknown';
  END IF;
  IF k.state NOT IN ('queued', 'started', 'running') THEN
    RETURN 'finished';
  END IF;
  UPDATE gateway.connector_calls AS x
     SET state = $2, finished_at = COALESCE(LEAST($8, now()), now()),
         result = CASE WHEN $2 = 'succeeded' THEN $3 END,
         failure = CASE WHEN $2 <> 'succeeded' THEN $4 END,
         links = COALESCE($5, x.links), operation_token = COALESCE(x.operation_token, $6),
         last_error = NULL, last_status = NULL
   WHERE x.id = $1;
  -- The job waiting for the deadline has nothing left to do.
  DELETE FROM gateway.sync_jobs AS j
   WHERE j.target = 'nexus' AND j.object_kind = 'connector_call' AND j.object_id = $1 AND j.state = 'pending';
  PERFORM pg_notify('gateway_connector_calls', jsonb_build_object('id', $1, 'state', $2)::text);
  RETURN 'accepted';
END
$$;

-- The nexus target's reconcile: every open call whose job was lost (there is none in a healthy
-- database: the claim, the record and recovery keep one) gets a job again.
CREATE FUNCTION gateway._connector_calls_requeue() RETURNS integer
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
  WITH lost AS (
    SELECT k.id, CASE WHEN k.state = 'running' THEN k.deadline ELSE now() END AS due
      FROM gateway.connector_calls AS k
     WHERE k.state IN ('queued', 'started', 'running')
       AND NOT EXISTS (SELECT FROM gateway.sync_jobs AS j
                        WHERE j.target = 'nexus' AND j.object_kind = 'connector_call' AND j.object_id = k.id
                          AND j.state IN ('pending', 'running'))
  ), queued AS (
    INSERT INTO gateway.sync_jobs AS j (target, object_kind, object_id, run_after)
    SELECT 'nexus', 'connector_call', lost.id, lost.due FROM lost
    ON CONFLICT (target, object_kind, object_id) WHERE state = 'pending'
    DO UPDATE SET run_after = LEAST(j.run_after, EXCLUDED.run_after), updated_at = now()
    RETURNING 1
  )
  SELECT count(*)::integer FROM queued
$$;

-- Superuser-only: the callback token of a call (tests and operators checking a listener).
CREATE FUNCTION gateway._callback_token(call_id uuid) RETURNS text
AS 'MODULE_PATHNAME', 'gateway_callback_token'
LANGUAGE C VOLATILE STRICT;

------------------------------------------------------------------------------------------------
-- Monitoring
------------------------------------------------------------------------------------------------

CREATE VIEW gateway.connector_call_stats WITH (security_invoker = true) AS
  SELECT k.connector_id, k.source_project_id,
         count(*)                                                              AS calls,
         count(*) FILTER (WHERE k.state = 'queued')                            AS queued,
         count(*) FILTER (WHERE k.state IN ('started', 'running'))             AS in_flight,
         count(*) FILTER (WHERE k.state = 'succeeded')                         AS succeeded,
         count(*) FILTER (WHERE k.state = 'failed')                            AS failed,
         count(*) FILTER (WHERE k.state = 'canceled')                          AS canceled,
         count(*) FILTER (WHERE k.state = 'timed_out')                         AS timed_out,
         count(*) FILTER (WHERE k.last_error IS NOT NULL AND k.finished_at IS NULL) AS retrying,
         round(count(*) FILTER (WHERE k.state IN ('failed', 'timed_out'))::numeric
               / NULLIF(count(*) FILTER (WHERE k.finished_at IS NOT NULL), 0), 4) AS error_rate,
         percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM k.finished_at - k.created_at) * 1000)
           FILTER (WHERE k.finished_at IS NOT NULL)                             AS p50_ms,
         percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM k.finished_at - k.created_at) * 1000)
           FILTER (WHERE k.finished_at IS NOT NULL)                             AS p95_ms,
         percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM k.finished_at - k.created_at) * 1000)
           FILTER (WHERE k.finished_at IS NOT NULL)                             AS p99_ms,
         max(k.created_at)                                                      AS last_call_at,
         (SELECT x.last_error FROM gateway.connector_calls AS x
           WHERE x.connector_id = k.connector_id AND x.last_error IS NOT NULL
           ORDER BY x.created_at DESC LIMIT 1)                                  AS last_error
    FROM gateway.connector_calls AS k
   WHERE k.created_at > now() - interval '24 hours'
   GROUP BY k.connector_id, k.source_project_id;
COMMENT ON VIEW gateway.connector_call_stats IS
  'Per connector, over the calls of the last 24 hours: counts by state, retrying calls, error rate (failed and timed out among finished calls) and latency percentiles (queued to final, ms). Reads through the caller''s row level security: members see their projects'' connectors.';

-- Deletes finished calls older than `older_than` (trusted roles); returns how many.
CREATE FUNCTION gateway.connector_calls_prune(older_than interval DEFAULT '30 days') RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  n bigint;
BEGIN
  IF NOT gateway._caller_is_trusted() THEN
    RAISE EXCEPTION 'permission denied to prune connector calls'
      USING ERRCODE = 'insufficient_privilege', HINT = 'Run it as service_role or the extension''s owner (e.g. from pg_cron).';
  END IF;
  IF older_than IS NULL OR older_than < interval '0' THEN
    RAISE EXCEPTION 'older_than must be zero or positive' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  DELETE FROM gateway.connector_calls AS k WHERE k.finished_at < now() - older_than;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;
COMMENT ON FUNCTION gateway.connector_calls_prune(interval) IS
  'Deletes finished calls that ended more than older_than ago (trusted roles only); returns how many. Open calls are never deleted.';

------------------------------------------------------------------------------------------------
-- Operations: the third target in status, reconcile and recovery
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
    FROM (VALUES ('kong'), ('temporal'), ('nexus')) AS t (target)
    LEFT JOIN gateway.sync_jobs AS j ON j.target = t.target
   GROUP BY t.target;

CREATE OR REPLACE FUNCTION gateway.sync_reconcile(target text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF $1 IS NOT NULL AND $1 NOT IN ('kong', 'temporal', 'nexus') THEN
    RAISE EXCEPTION 'unknown sync target "%"', $1
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Targets are kong, temporal and nexus (calls); NULL reconciles every one with a URL set.';
  END IF;
  -- NULL: every target with a URL set. A paused target's reconcile would wait in the outbox
  -- (and in sync_status) until it is configured; it reconciles when it starts anyway.
  PERFORM gateway._sync_enqueue(t.target, 'reconcile', '00000000-0000-0000-0000-000000000000')
     FROM (VALUES ('kong', 'gateway.kong_admin_url'), ('temporal', 'gateway.temporal_url'),
                  ('nexus', 'gateway.temporal_url')) AS t (target, url)
    WHERE t.target = $1
       OR ($1 IS NULL AND COALESCE(current_setting(t.url, true), '') <> '');
END
$$;
COMMENT ON FUNCTION gateway.sync_reconcile(text) IS
  'Asks the worker to compare a target (kong, temporal; nexus: give every open call without a job one again; NULL: every target with a URL set) with the tables now and repair every difference (after commit).';

CREATE OR REPLACE FUNCTION gateway._sync_recover(target text) RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  n integer := 0;
  j gateway.sync_jobs;
BEGIN
  IF $1 IS NULL OR $1 NOT IN ('kong', 'temporal', 'nexus') THEN
    RAISE EXCEPTION 'unknown sync target "%"', $1
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Targets are kong, temporal and nexus.';
  END IF;
  FOR j IN SELECT * FROM gateway.sync_jobs AS r WHERE r.state = 'running' AND r.target = $1 FOR UPDATE LOOP
    -- It may have stopped halfway: what Kong holds for the object is unknown now. (Temporal's
    -- jobs re-read the endpoint by the id recorded in nexus_endpoints; a call is started again
    -- with the same request id, which starts nothing new.)
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

------------------------------------------------------------------------------------------------
-- Consent covers the Nexus service a call names
------------------------------------------------------------------------------------------------

-- connector_call sends every call to the connector's nexus_service_name, which the source
-- project's editors may change: after approval they could point the target's approved endpoint
-- at any other Nexus service its workers register on that task queue. The target approved one
-- service, so a new one needs its consent again: the connector goes back to requested (its
-- endpoint is removed, calls are refused with 55000 until the target approves), and the target
-- project's audit log says why. Runs after project_connectors_prepare (triggers fire in name
-- order), whose consent guard has already checked the caller's own columns.
CREATE FUNCTION gateway._project_connectors_service_consent() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF gateway._restoring() OR NEW.nexus_service_name IS NOT DISTINCT FROM OLD.nexus_service_name
     OR OLD.consent_state <> 'approved' OR NEW.consent_state <> 'approved' THEN
    RETURN NEW;
  END IF;
  NEW.consent_state := 'requested';
  NEW.consent_by := NULL;
  NEW.consent_at := NULL;
  NEW.sync_state := 'pending';
  PERFORM gateway._audit('project_connector.consent_reset', 'project_connector', NEW.id, NEW.target_project_id, NULL,
                         jsonb_build_object('name', NEW.name, 'source_project_id', NEW.source_project_id,
                                            'target_project_id', NEW.target_project_id,
                                            'target_interface_id', NEW.target_interface_id,
                                            'reason', 'nexus_service_name changed',
                                            'previous_service', OLD.nexus_service_name,
                                            'service', NEW.nexus_service_name,
                                            'previous_state', OLD.consent_state));
  RETURN NEW;
END
$$;
CREATE TRIGGER project_connectors_service_consent BEFORE UPDATE OF nexus_service_name
  ON gateway.project_connectors FOR EACH ROW EXECUTE FUNCTION gateway._project_connectors_service_consent();

------------------------------------------------------------------------------------------------
-- Row level security, privileges, dumps
------------------------------------------------------------------------------------------------

ALTER TABLE gateway.connector_calls ENABLE ROW LEVEL SECURITY;
ALTER TABLE gateway.connector_calls FORCE ROW LEVEL SECURITY;
-- Source members read their calls; the target project and everybody else see nothing. Writes
-- happen only through the functions above and the worker.
CREATE POLICY connector_calls_member_read ON gateway.connector_calls FOR SELECT
  USING (gateway.has_project_role(source_project_id, 'viewer'));

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA gateway FROM PUBLIC;
REVOKE ALL ON ALL PROCEDURES IN SCHEMA gateway FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA gateway FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA gateway FROM PUBLIC;
GRANT EXECUTE ON FUNCTION gateway.current_user_id() TO PUBLIC;
GRANT EXECUTE ON FUNCTION gateway.has_project_role(uuid, text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION gateway._envelope_key_id(bytea) TO PUBLIC;
GRANT EXECUTE ON FUNCTION gateway._kong_object_id(text, uuid) TO PUBLIC;

SELECT pg_catalog.pg_extension_config_dump('gateway.connector_calls', '');

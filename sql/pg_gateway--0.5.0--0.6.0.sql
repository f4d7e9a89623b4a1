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

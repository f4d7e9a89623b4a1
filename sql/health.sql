-- gateway.health: the operator's checks, one row each. On the regress instance (master key file
-- private, no statement logging, worker running, Kong and Temporal not configured) all are ok.
\set SHOW_CONTEXT never
-- The worker connects once pg_regress has created the database: wait for it (at most 20 s).
DO $$
BEGIN
  FOR i IN 1..200 LOOP
    PERFORM pg_stat_clear_snapshot();
    EXIT WHEN EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker' AND datname = current_database());
    PERFORM pg_sleep(0.1);
  END LOOP;
  PERFORM pg_sleep(0.2);
END
$$;
-- (The job rows depend on what earlier suites left in the outbox: they are tested below.)
SELECT name, status FROM gateway.health WHERE name NOT IN ('dead_jobs', 'oldest_pending_job') ORDER BY name;
SELECT count(*) AS ok_rows_with_a_hint FROM gateway.health WHERE status = 'ok' AND hint IS NOT NULL;
BEGIN;
DELETE FROM gateway.sync_jobs;
SELECT name, status, detail FROM gateway.health WHERE name IN ('dead_jobs', 'oldest_pending_job') ORDER BY name;
ROLLBACK;
SELECT detail FROM gateway.health WHERE name IN ('log_statement', 'worker') ORDER BY name;

-- A session's own SET is not the server's configuration: it changes only this session (and only a
-- superuser may make it), so the checks read what a new session gets, and stay ok here...
SET log_statement = 'all';
SET log_min_duration_statement = 0;
SELECT name, status FROM gateway.health WHERE status <> 'ok' AND name NOT IN ('dead_jobs', 'oldest_pending_job');
RESET log_statement;
RESET log_min_duration_statement;
-- ...while an override for a role or database that new sessions do get is reported, naming the
-- role and the setting (never a value passed to a function: there is none to show).
CREATE ROLE regress_health_app NOLOGIN;
ALTER ROLE regress_health_app SET log_statement = 'mod';
ALTER ROLE regress_health_app IN DATABASE gateway_regression SET log_min_duration_statement = '250ms';
SELECT name, status, detail FROM gateway.health WHERE status <> 'ok' AND name NOT IN ('dead_jobs', 'oldest_pending_job');
DROP ROLE regress_health_app;
SELECT status FROM gateway.health WHERE name = 'role_settings';

-- What each logging value means for secrets passed as arguments.
SELECT s AS setting, v AS value, (gateway._log_setting_risk(s, v)).status
  FROM (VALUES ('log_statement', 'all'), ('log_statement', 'mod'), ('log_statement', 'ddl'),
               ('log_statement', 'none'), ('log_min_duration_statement', '0'),
               ('log_min_duration_statement', '250ms'), ('log_min_duration_statement', '-1'),
               ('log_min_error_statement', 'error'), ('log_min_error_statement', 'notice'),
               ('log_min_error_statement', 'panic'), ('log_parameter_max_length_on_error', '0'),
               ('log_parameter_max_length_on_error', '-1'), ('auto_explain.log_min_duration', '0'),
               ('auto_explain.log_min_duration', '-1'), ('log_transaction_sample_rate', '0.01'),
               ('log_transaction_sample_rate', '0'), ('debug_print_parse', 'on'),
               ('log_connections', 'on')) AS t (s, v);

-- Dead jobs and a job that has waited too long.
BEGIN;
DELETE FROM gateway.sync_jobs;
INSERT INTO gateway.sync_jobs (target, object_kind, object_id, state, last_error, created_at)
VALUES ('kong', 'public_interface', 'f1000000-0000-4000-8000-000000000001', 'dead', 'HTTP 400', now() - interval '3 hours'),
       ('temporal', 'project_connector', 'f1000000-0000-4000-8000-000000000002', 'dead', 'HTTP 400', now()),
       ('kong', 'public_interface', 'f1000000-0000-4000-8000-000000000003', 'pending', NULL, now() - interval '2 hours');
SELECT name, status, detail FROM gateway.health WHERE name IN ('dead_jobs', 'oldest_pending_job') ORDER BY name;
UPDATE gateway.sync_jobs SET created_at = now() - interval '20 minutes' WHERE object_id = 'f1000000-0000-4000-8000-000000000003';
SELECT name, status FROM gateway.health WHERE name = 'oldest_pending_job';
ROLLBACK;

-- Trusted roles only. A role like anon or authenticated is refused the view, and even when
-- granted it by mistake sees no row; a BYPASSRLS role like service_role, granted as the docs
-- show, sees every check.
CREATE ROLE regress_health_anon NOLOGIN;
CREATE ROLE regress_health_service NOLOGIN BYPASSRLS;
GRANT USAGE ON SCHEMA gateway TO regress_health_anon, regress_health_service;
GRANT SELECT ON gateway.health TO regress_health_service;
GRANT EXECUTE ON FUNCTION gateway._health_checks() TO regress_health_service;
SET ROLE regress_health_anon;
SELECT count(*) FROM gateway.health;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM gateway._health_checks();
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM gateway._health_internal();
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
GRANT SELECT ON gateway.health TO regress_health_anon;
GRANT EXECUTE ON FUNCTION gateway._health_checks() TO regress_health_anon;
SET ROLE regress_health_anon;
SELECT set_config('request.jwt.claims', '{"sub":"a1000000-0000-4000-8000-000000000001","role":"authenticated"}', false) IS NOT NULL AS signed_in;
SELECT count(*) AS rows_for_an_untrusted_role FROM gateway.health;
RESET ROLE;
SELECT set_config('request.jwt.claims', '', false) IS NOT NULL AS signed_out;
SET ROLE regress_health_service;
SELECT count(*) > 10 AS service_role_sees_the_checks FROM gateway.health;
RESET ROLE;
-- ...but not where the master key file is: gateway.master_key_file is a superuser-only setting
-- (docs/security.md), so only a superuser's view names the path.
SELECT current_setting('gateway.master_key_file') AS master_key_path \gset
SET ROLE regress_health_service;
SELECT name, detail FROM gateway.health WHERE strpos(detail || COALESCE(hint, ''), :'master_key_path') > 0;
SELECT count(*) AS rows_naming_the_key_file FROM gateway._health_checks()
 WHERE strpos(concat(detail, hint, problem), :'master_key_path') > 0;
RESET ROLE;
SELECT name FROM gateway.health WHERE strpos(detail, :'master_key_path') > 0;
DROP OWNED BY regress_health_anon;
DROP OWNED BY regress_health_service;
DROP ROLE regress_health_anon;
DROP ROLE regress_health_service;

-- The verify cache's triggers: a restore with --disable-triggers leaves them enabled for origin
-- sessions only, and verify then probes every time (correct, slower); health says so.
SELECT status FROM gateway.health WHERE name = 'verify_cache';
ALTER TABLE gateway.api_keys ENABLE TRIGGER zz_verify_cache;
SELECT status, hint FROM gateway.health WHERE name = 'verify_cache';
ALTER TABLE gateway.api_keys ENABLE ALWAYS TRIGGER zz_verify_cache;
SELECT status FROM gateway.health WHERE name = 'verify_cache';

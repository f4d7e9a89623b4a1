-- gateway.audit_prune: the extension's owner removes old audit records through one narrow path;
-- the log stays append-only for every other statement, the owner's included.
\set SHOW_CONTEXT never
INSERT INTO gateway.audit_log (occurred_at, action, object_type, details)
SELECT now() - interval '40 days', 'regress.old', 'regress', jsonb_build_object('n', g) FROM generate_series(1, 5) AS g;
INSERT INTO gateway.audit_log (occurred_at, action, object_type)
VALUES (now() - interval '10 days', 'regress.recent', 'regress');
SELECT count(*) AS regress_rows FROM gateway.audit_log WHERE object_type = 'regress';

-- Silly arguments: 22023 with a hint, and nothing changes.
SELECT gateway.audit_prune(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT gateway.audit_prune('-30 days');
\echo :LAST_ERROR_SQLSTATE
SELECT gateway.audit_prune('12 hours');
\echo :LAST_ERROR_SQLSTATE
SELECT gateway.audit_prune('0');
\echo :LAST_ERROR_SQLSTATE
-- An interval that compares as 52 days but whose cutoff is now (or tomorrow): months and days.
SELECT gateway.audit_prune('-120 months 3652 days');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS regress_rows, count(*) FILTER (WHERE action = 'audit_log.pruned') AS prunes
  FROM gateway.audit_log WHERE object_type IN ('regress', 'audit_log');

-- Not service_role (a BYPASSRLS role), not a project owner: 42501, nothing deleted.
CREATE ROLE regress_prune_service NOLOGIN BYPASSRLS;
CREATE ROLE regress_prune_user NOLOGIN;
GRANT USAGE ON SCHEMA gateway TO regress_prune_service, regress_prune_user;
GRANT EXECUTE ON FUNCTION gateway.audit_prune(interval) TO regress_prune_service, regress_prune_user;
INSERT INTO gateway.project_members (project_id, user_id, role)
VALUES ('c1000000-0000-4000-8000-00000000000a', 'a1000000-0000-4000-8000-00000000000a', 'owner');
SET ROLE regress_prune_service;
SELECT gateway.audit_prune('30 days');
\echo :LAST_ERROR_SQLSTATE
DELETE FROM gateway.audit_log WHERE object_type = 'regress';
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE regress_prune_user;
SELECT set_config('request.jwt.claims', '{"sub":"a1000000-0000-4000-8000-00000000000a","role":"authenticated"}', false) IS NOT NULL AS project_owner_signed_in;
SELECT gateway.audit_prune('30 days');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT set_config('request.jwt.claims', '', false) IS NOT NULL AS signed_out;
SELECT count(*) AS regress_rows FROM gateway.audit_log WHERE object_type = 'regress';

-- The owner prunes: the count, the old rows gone, the recent one kept, and the prune recorded
-- with its cutoff and count (a record the same prune does not delete).
SELECT gateway.audit_prune('30 days') AS pruned;
SELECT action, count(*) FROM gateway.audit_log WHERE object_type = 'regress' GROUP BY 1 ORDER BY 1;
SELECT action, object_type, details->>'count' AS count, details->>'by' AS by,
       (details->>'cutoff')::timestamptz BETWEEN now() - interval '30 days 1 minute' AND now() - interval '30 days' AS cutoff_30_days_ago
  FROM gateway.audit_log WHERE action = 'audit_log.pruned' ORDER BY id DESC LIMIT 1;
-- Pruning again finds nothing, and says so in the log too.
SELECT gateway.audit_prune('30 days') AS pruned_again;
SELECT count(*) AS prune_records FROM gateway.audit_log WHERE action = 'audit_log.pruned';

-- The guard is still there for everything else, the owner's own statements included; a prune
-- announced by hand does not open it to anyone who cannot write the announcement.
DELETE FROM gateway.audit_log WHERE object_type = 'regress';
\echo :LAST_ERROR_SQLSTATE
UPDATE gateway.audit_log SET action = 'tampered' WHERE action = 'audit_log.pruned';
\echo :LAST_ERROR_SQLSTATE
TRUNCATE gateway.audit_log;
\echo :LAST_ERROR_SQLSTATE
SET ROLE regress_prune_service;
INSERT INTO gateway.audit_prunes (cutoff) VALUES (now());
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT count(*) AS regress_rows FROM gateway.audit_log WHERE object_type = 'regress';
-- Nor to a BYPASSRLS role granted every table and routine (as Supabase's guide to custom
-- schemas does for an exposed schema): it may write the announcement, yet neither its own DELETE
-- nor gateway._audit_prune run as it deletes a record, in one transaction or in a savepoint.
GRANT ALL ON gateway.audit_prunes, gateway.audit_log TO regress_prune_service;
GRANT EXECUTE ON FUNCTION gateway._audit_prune(timestamptz, integer, text) TO regress_prune_service;
SET ROLE regress_prune_service;
BEGIN;
INSERT INTO gateway.audit_prunes (cutoff) VALUES ('infinity');
DELETE FROM gateway.audit_log WHERE object_type = 'regress';
COMMIT;
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SAVEPOINT s;
SELECT gateway._audit_prune('infinity', NULL, 'audit_prune');
ROLLBACK TO SAVEPOINT s;
\echo :LAST_ERROR_SQLSTATE
COMMIT;
RESET ROLE;
SELECT count(*) AS regress_rows FROM gateway.audit_log WHERE object_type = 'regress';

-- gateway.audit_retention: 0 (keep) or at least a day.
ALTER SYSTEM SET gateway.audit_retention = '1h';
\echo :LAST_ERROR_SQLSTATE
SELECT setting, unit, context FROM pg_settings WHERE name = 'gateway.audit_retention';

DELETE FROM gateway.project_members WHERE project_id = 'c1000000-0000-4000-8000-00000000000a';
DROP OWNED BY regress_prune_service;
DROP OWNED BY regress_prune_user;
DROP ROLE regress_prune_service;
DROP ROLE regress_prune_user;

-- ALTER EXTENSION pg_gateway UPDATE from every released version, with data made at that version
-- (sql/upgrade.sql walks 0.1.0 to the current version one step at a time; here each version goes
-- in one step). A new release fails the last check until its version is added here. (Recreates the
-- extension, as upgrade.sql does, and leaves a fresh one.)
\set SHOW_CONTEXT never
\set proj   '''c6000000-0000-4000-8000-000000000001'''
\set editor '''a6000000-0000-4000-8000-000000000001'''
\set leaver '''a6000000-0000-4000-8000-000000000002'''
CREATE TABLE upgrade_tested_versions (version text);

\set from 0.1.0
\ir helpers/upgrade_from.psql
\set from 0.2.0
\ir helpers/upgrade_from.psql
\set from 0.3.0
\ir helpers/upgrade_from.psql
\set from 0.4.0
\ir helpers/upgrade_from.psql
\set from 0.5.0
\ir helpers/upgrade_from.psql
\set from 0.6.0
\ir helpers/upgrade_from.psql

-- Every version an update can start from was tested.
SELECT version AS untested_version FROM pg_available_extension_versions
 WHERE name = 'pg_gateway' AND version <> (SELECT default_version FROM pg_available_extensions WHERE name = 'pg_gateway')
EXCEPT SELECT version FROM upgrade_tested_versions ORDER BY 1;
DROP TABLE upgrade_tested_versions;

DROP EXTENSION pg_gateway CASCADE;
CREATE EXTENSION pg_gateway;
SELECT extversion FROM pg_extension WHERE extname = 'pg_gateway';

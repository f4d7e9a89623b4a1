-- pg_gateway 0.6.0 -> 0.7.0: gateway.api_key_verify returns a named composite type,
-- gateway.api_key_verification, instead of a record described by OUT parameters. Same columns,
-- same names, same order, same types: calls are unchanged (what the catalogs show changes, and a
-- statement prepared before the update that returns the whole row as one column must be prepared
-- again: docs/operations.md#upgrades).
--
-- Why: for a function with OUT parameters PostgreSQL builds the result's tuple descriptor from
-- pg_proc (proallargtypes, proargmodes, proargnames) each time a statement calls it; for a
-- function that returns a named composite type the descriptor comes from the type cache, built
-- once per backend. Verify is called once per API request, so that per-call work is worth
-- removing. The library (src/pg/api_keys.cpp, form_result) answers either declaration.
\echo Use "ALTER EXTENSION pg_gateway UPDATE TO '0.7.0'" to load this file. \quit

-- No LOCK TABLE up front (unlike 0.5.0 -> 0.6.0): this script alters, reads and writes no table
-- of the extension, so it takes no table lock the worker's usage flush could be waiting on or
-- holding, and there is no lock order to get wrong. (It drops and creates api_key_verify, which
-- the worker never calls; calls take no lock on a function, so the DROP waits for nobody.)

CREATE TYPE gateway.api_key_verification AS (
  valid boolean,
  reason text,
  key_id uuid,
  user_id uuid,
  project_id uuid,
  rate_limit_remaining integer,
  retry_after_seconds integer,
  usage_remaining bigint
);
COMMENT ON TYPE gateway.api_key_verification IS
  'The answer of gateway.api_key_verify: valid, reason (ok or why not), the key, its user and project when known, what is left of its rate limit and usage limit, and seconds to wait when rate limited.';

-- A function's result type cannot change in place, so the old function goes and its grants move
-- over, as in 0.5.0 -> 0.6.0: whoever had EXECUTE keeps it (with the grant option if they had
-- it), nobody else gets it. The arguments, their names and defaults are unchanged, so positional
-- and named calls with one to four arguments work as before.
-- (The old ACL and the old initial privileges wait in transaction-local settings: no helper
-- object to clean up.)
SELECT set_config('pg_gateway.upgrade_acl_verify', coalesce(p.proacl::text, ''), true),
       -- (as JSON of aclexplode's columns, not as aclitem[] text: an entry of a dropped role shows
       -- as a bare OID there, which aclitem input refuses)
       set_config('pg_gateway.upgrade_initprivs_verify',
                  coalesce((SELECT coalesce(json_agg(json_build_object('grantor', a.grantor, 'grantee', a.grantee,
                                                                       'privilege', a.privilege_type,
                                                                       'grantable', a.is_grantable) ORDER BY a.n)
                                              FILTER (WHERE a.n IS NOT NULL), '[]')::text
                              FROM pg_init_privs AS i
                              LEFT JOIN LATERAL aclexplode(i.initprivs) WITH ORDINALITY
                                        AS a(grantor, grantee, privilege_type, is_grantable, n) ON true
                             WHERE i.objoid = p.oid AND i.classoid = 'pg_proc'::regclass AND i.objsubid = 0
                            HAVING count(*) > 0), ''), true)
  FROM pg_proc AS p WHERE p.oid = 'gateway.api_key_verify(text, uuid, text, integer)'::regprocedure;
DROP FUNCTION gateway.api_key_verify(text, uuid, text, integer);
CREATE FUNCTION gateway.api_key_verify(api_key text, public_interface_id uuid DEFAULT NULL,
                                       required_scope text DEFAULT NULL, cost integer DEFAULT 1)
RETURNS gateway.api_key_verification
AS 'MODULE_PATHNAME', 'gateway_api_key_verify'
-- Not SECURITY DEFINER: it reads gateway.api_keys through its index directly in C, parses no SQL
-- and so depends on no search_path; EXECUTE on it is the only gate (see src/pg/key_lookup.hpp).
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION gateway.api_key_verify(text, uuid, text, integer) IS
  'Checks an API key: reason is ok, malformed, unknown, revoked, expired, wrong_interface, insufficient_scope, usage_exceeded or rate_limited. With required_scope the key must hold that scope; cost uses are spent from a usage-limited key (0: only check). Never raises for a bad key and never writes, so it works on read-only transactions and hot standbys.';
REVOKE ALL ON FUNCTION gateway.api_key_verify(text, uuid, text, integer) FROM PUBLIC;
DO $$
DECLARE
  g record;
  owner oid := (SELECT proowner FROM pg_proc WHERE oid = 'gateway.api_key_verify(text, uuid, text, integer)'::regprocedure);
BEGIN
  -- The new function's ACL starts from the updating role's default privileges (ALTER DEFAULT
  -- PRIVILEGES ... GRANT EXECUTE ON FUNCTIONS), which would hand verify to roles the old one was
  -- never granted to: only its owner keeps anything before the old grants are carried over.
  FOR g IN SELECT DISTINCT a.grantee
             FROM pg_proc AS p, aclexplode(p.proacl) AS a
            WHERE p.oid = 'gateway.api_key_verify(text, uuid, text, integer)'::regprocedure
              AND a.grantee <> p.proowner LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION gateway.api_key_verify(text, uuid, text, integer) FROM %s',
                   CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE g.grantee::regrole::text END);
  END LOOP;
  -- Each grant is made again by its grantor, in the order of the old ACL (a grantor's own grant
  -- comes before the ones it made): a grant a holder of the grant option made still goes with
  -- REVOKE ... FROM that holder CASCADE. Grants by the owner (or a superuser) are the owner's.
  FOR g IN SELECT a.grantee, a.grantor, a.is_grantable AS grantable
             FROM aclexplode(nullif(current_setting('pg_gateway.upgrade_acl_verify'), '')::aclitem[])
                  WITH ORDINALITY AS a(grantor, grantee, privilege_type, is_grantable, n)
            WHERE a.privilege_type = 'EXECUTE' AND a.grantee <> owner
            ORDER BY a.n LOOP
    IF g.grantor <> owner THEN
      EXECUTE format('SET ROLE %s', g.grantor::regrole);
    END IF;
    EXECUTE format('GRANT EXECUTE ON FUNCTION gateway.api_key_verify(text, uuid, text, integer) TO %s%s',
                   -- (regrole's text is quoted already where the name needs it)
                   CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE g.grantee::regrole::text END,
                   CASE WHEN g.grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    RESET ROLE;
  END LOOP;
  -- Whoever could call the old function can call the new one: a grant its grantor could not make
  -- again (it lost the grant option meanwhile) is made by the owner.
  FOR g IN SELECT DISTINCT a.grantee
             FROM aclexplode(nullif(current_setting('pg_gateway.upgrade_acl_verify'), '')::aclitem[]) AS a
            WHERE a.privilege_type = 'EXECUTE' AND a.grantee <> owner AND a.grantee <> 0
              AND NOT has_function_privilege(a.grantee, 'gateway.api_key_verify(text, uuid, text, integer)', 'EXECUTE') LOOP
    EXECUTE format('GRANT EXECUTE ON FUNCTION gateway.api_key_verify(text, uuid, text, integer) TO %s', g.grantee::regrole);
  END LOOP;
END
$$;

-- Every GRANT in an extension script is recorded in pg_init_privs as the extension's own, and
-- pg_dump leaves out what is recorded there: the grants carried over just now would be missing
-- from a dump (and so lost by a dump and restore). The new function's initial privileges are the
-- old one's instead, so pg_dump writes the same GRANTs as it did under 0.6.0, less entries of
-- roles that no longer exist: PostgreSQL 15's DROP OWNED leaves them in pg_init_privs (0.5.0 ->
-- 0.6.0 recorded carried-over grants there), and pg_dump turns them into a REVOKE ... FROM "<oid>"
-- that fails on restore.
DELETE FROM pg_catalog.pg_init_privs
 WHERE objoid = 'gateway.api_key_verify(text, uuid, text, integer)'::regprocedure
   AND classoid = 'pg_catalog.pg_proc'::regclass AND objsubid = 0;
INSERT INTO pg_catalog.pg_init_privs (objoid, classoid, objsubid, privtype, initprivs)
SELECT 'gateway.api_key_verify(text, uuid, text, integer)'::regprocedure, 'pg_catalog.pg_proc'::regclass, 0, 'e',
       coalesce((SELECT array_agg(makeaclitem((e.value ->> 'grantee')::oid, (e.value ->> 'grantor')::oid,
                                              e.value ->> 'privilege', (e.value ->> 'grantable')::boolean) ORDER BY e.n)
                   FROM json_array_elements(current_setting('pg_gateway.upgrade_initprivs_verify')::json) WITH ORDINALITY AS e(value, n)
                  WHERE ((e.value ->> 'grantee')::oid = 0
                         OR EXISTS (SELECT FROM pg_roles AS r WHERE r.oid = (e.value ->> 'grantee')::oid))
                    AND EXISTS (SELECT FROM pg_roles AS r WHERE r.oid = (e.value ->> 'grantor')::oid)),
                '{}')
 WHERE current_setting('pg_gateway.upgrade_initprivs_verify') <> '';

-- pg_gateway 0.2.0 -> 0.3.0: the tenant boundary holds (membership for every project-scoped act,
-- keys bound only within their project, trust from the role and never from a missing claim),
-- every change is audited, and the sync engine survives hostile answers.
\echo Use "ALTER EXTENSION pg_gateway UPDATE TO '0.3.0'" to load this file. \quit

------------------------------------------------------------------------------------------------
-- Tenant boundary
------------------------------------------------------------------------------------------------

------------------------------------------------------------------------------------------------
-- Audit and data safety
------------------------------------------------------------------------------------------------

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

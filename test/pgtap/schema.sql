-- The shape users and tools depend on: tables, columns, constraints, functions, flags.
BEGIN;
SELECT plan(78);

SELECT has_schema('gateway');
SELECT has_table('gateway', 'api_keys', 'api_keys exists');
SELECT has_table('gateway', 'audit_log', 'audit_log exists');
SELECT has_view('gateway', 'api_keys_list', 'the key listing view exists');

SELECT columns_are('gateway', 'api_keys', ARRAY[
  'id', 'user_id', 'project_id', 'public_interface_id', 'name', 'key_prefix', 'key_hash',
  'hash_version', 'is_active', 'revoked_at', 'expires_at', 'rate_limit_per_minute',
  'rotated_from', 'replaced_by', 'last_used_at', 'created_at', 'kong_key_sealed',
  'kong_sync_state', 'kong_sync_error', 'kong_synced_at', 'kong_synced',
  'master_fingerprint', 'scopes', 'usage_limit', 'refill_amount', 'refill_interval']);
SELECT col_is_pk('gateway', 'api_keys', 'id', 'api_keys.id is the primary key');
SELECT col_type_is('gateway', 'api_keys', 'key_hash', 'bytea', 'key_hash is bytea');
SELECT col_not_null('gateway', 'api_keys', 'key_hash', 'key_hash is required');
SELECT col_not_null('gateway', 'api_keys', 'user_id', 'user_id is required');
SELECT col_not_null('gateway', 'api_keys', 'project_id', 'project_id is required');
SELECT col_is_unique('gateway', 'api_keys', 'key_hash', 'key_hash is unique');
SELECT col_is_unique('gateway', 'api_keys', 'key_prefix', 'key_prefix is unique (one index probe per verify)');
SELECT index_is_unique('gateway', 'api_keys', 'api_keys_user_name_key', 'names are unique per user');
SELECT fk_ok('gateway', 'api_keys', 'rotated_from', 'gateway', 'api_keys', 'id');
SELECT col_default_is('gateway', 'api_keys', 'is_active', 'true', 'keys start active');
SELECT col_type_is('gateway', 'api_keys', 'expires_at', 'timestamp with time zone', 'expiry is timestamptz');

SELECT hasnt_column('gateway', 'api_keys_list', 'key_hash', 'the listing never shows the hash');
SELECT has_column('gateway', 'api_keys_list', 'status', 'the listing has a status');

SELECT columns_are('gateway', 'audit_log', ARRAY[
  'id', 'occurred_at', 'actor_user_id', 'actor_role', 'action', 'object_type', 'object_id',
  'project_id', 'subject_user_id', 'details']);
SELECT has_trigger('gateway', 'audit_log', 'audit_log_append_only', 'the audit log is guarded');

SELECT has_function('gateway', 'api_key_issue',
  ARRAY['uuid', 'uuid', 'text', 'uuid', 'timestamp with time zone', 'integer', 'text[]', 'bigint', 'bigint', 'interval']);
SELECT has_function('gateway', 'api_key_verify', ARRAY['text', 'uuid', 'text', 'integer']);
SELECT has_function('gateway', 'api_key_revoke', ARRAY['uuid']);
SELECT has_function('gateway', 'api_key_rotate', ARRAY['uuid', 'interval']);
SELECT has_function('gateway', 'current_user_id', ARRAY[]::text[]);

SELECT is_definer('gateway', 'api_key_issue',
  ARRAY['uuid', 'uuid', 'text', 'uuid', 'timestamp with time zone', 'integer', 'text[]', 'bigint', 'bigint', 'interval']);
SELECT isnt_definer('gateway', 'api_key_verify', ARRAY['text', 'uuid', 'text', 'integer'], 'verify reads its table in C, needing no definer rights');
SELECT is_definer('gateway', 'api_key_revoke', ARRAY['uuid']);
SELECT is_definer('gateway', 'api_key_rotate', ARRAY['uuid', 'interval']);
SELECT isnt_definer('gateway', 'current_user_id', ARRAY[]::text[]);
SELECT volatility_is('gateway', 'current_user_id', ARRAY[]::text[], 'stable');
SELECT volatility_is('gateway', 'api_key_verify', ARRAY['text', 'uuid', 'text', 'integer'], 'volatile');

SELECT is(
  (SELECT count(*)::int FROM pg_proc WHERE pronamespace = 'gateway'::regnamespace AND prosecdef
      AND NOT coalesce(proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false)),
  0, 'every SECURITY DEFINER function pins search_path');

SELECT is(
  (SELECT count(*)::int FROM pg_description d JOIN pg_proc p ON p.oid = d.objoid
    WHERE p.pronamespace = 'gateway'::regnamespace AND p.proname NOT LIKE '\_%'),
  (SELECT count(*)::int FROM pg_proc WHERE pronamespace = 'gateway'::regnamespace AND proname NOT LIKE '\_%'),
  'every public function has a comment');

SELECT ok(
  (SELECT relrowsecurity AND relforcerowsecurity FROM pg_class WHERE oid = 'gateway.api_keys'::regclass),
  'api_keys has forced row level security');
SELECT ok(
  (SELECT relrowsecurity AND relforcerowsecurity FROM pg_class WHERE oid = 'gateway.audit_log'::regclass),
  'audit_log has forced row level security');
SELECT policies_are('gateway', 'api_keys', ARRAY['api_keys_owner_read', 'api_keys_project_admin_read']);

SELECT set_eq(
  $$SELECT unnest(extconfig)::regclass::text FROM pg_extension WHERE extname = 'pg_gateway'$$,
  ARRAY['gateway.api_keys', 'gateway.audit_log', 'gateway.project_members', 'gateway.encryption_keys',
        'gateway.connectors', 'gateway.service_interfaces', 'gateway.public_interfaces',
        'gateway.audit_log_id_seq', 'gateway.project_workers', 'gateway.project_connectors',
        'gateway.nexus_endpoints', 'gateway.connector_calls',
        'gateway.api_key_usage'],
  'every table''s rows are included in pg_dump (but the transient outbox), and the audit log''s sequence');

SELECT is((SELECT extversion FROM pg_extension WHERE extname = 'pg_gateway'),
          (SELECT default_version FROM pg_available_extensions WHERE name = 'pg_gateway'),
          'installed at the default version');

SELECT has_table('gateway', 'project_members', 'project_members exists');
SELECT col_is_pk('gateway', 'project_members', ARRAY['project_id', 'user_id'], 'one role per user and project');
SELECT has_table('gateway', 'encryption_keys', 'encryption_keys exists');
SELECT hasnt_column('gateway', 'encryption_keys', 'key', 'encryption_keys holds no key material');
SELECT has_table('gateway', 'connectors', 'connectors exists');
SELECT col_is_unique('gateway', 'connectors', ARRAY['project_id', 'name'], 'connector names are unique per project');
SELECT fk_ok('gateway', 'connectors', 'encryption_key_id', 'gateway', 'encryption_keys', 'id');
SELECT has_function('gateway', 'has_project_role', ARRAY['uuid', 'text']);

-- Public interfaces and the outbox (0.2.0).
SELECT has_table('gateway', 'service_interfaces', 'service_interfaces exists');
SELECT col_is_unique('gateway', 'service_interfaces', ARRAY['project_id', 'workflow_id', 'name'], 'interface names are unique per workflow within a project');
SELECT has_table('gateway', 'public_interfaces', 'public_interfaces exists');
SELECT col_is_unique('gateway', 'public_interfaces', ARRAY['http_method', 'http_path'], 'one interface per method and path');
SELECT col_is_unique('gateway', 'public_interfaces', 'service_interface_id', 'one public face per interface');
SELECT has_column('gateway', 'public_interfaces', 'sync_state', 'interfaces show their sync state');
SELECT has_column('gateway', 'public_interfaces', 'sync_error', 'and their last sync error');
SELECT has_table('gateway', 'sync_jobs', 'the outbox exists');
SELECT index_is_unique('gateway', 'sync_jobs', 'sync_jobs_one_pending', 'one pending job per remote object');
SELECT has_view('gateway', 'sync_status', 'sync_status exists');
SELECT has_function('gateway', 'sync_retry', ARRAY['bigint']);
SELECT has_function('gateway', 'sync_cancel', ARRAY['bigint']);
SELECT has_function('gateway', 'sync_reconcile', ARRAY['text']);
SELECT ok(
  (SELECT bool_and(relrowsecurity AND relforcerowsecurity) FROM pg_class
    WHERE oid IN ('gateway.service_interfaces'::regclass, 'gateway.public_interfaces'::regclass,
                  'gateway.sync_jobs'::regclass)),
  'the new tables have forced row level security');
SELECT triggers_are('gateway', 'public_interfaces',
  ARRAY['public_interfaces_authorize', 'public_interfaces_change', 'public_interfaces_revoke_keys', 'project_id_immutable'],
  'public_interfaces queues sync jobs from a trigger, revokes its keys when deleted, stays in its project');
-- The tenant boundary (0.3.0): a key binds only to an interface of its own project.
SELECT fk_ok('gateway', 'api_keys', ARRAY['public_interface_id', 'project_id'],
             'gateway', 'public_interfaces', ARRAY['id', 'project_id'],
             'a key''s interface is one of its own project (composite foreign key)');

-- Project connectors (0.4.0): a connector's target is one interface of one workflow of one project.
SELECT fk_ok('gateway', 'project_connectors', ARRAY['target_interface_id', 'target_project_id', 'target_service_id'],
             'gateway', 'service_interfaces', ARRAY['id', 'project_id', 'workflow_id'],
             'a connector''s target interface, project and workflow belong together (composite foreign key)');
SELECT ok(
  (SELECT bool_and(relrowsecurity AND relforcerowsecurity) FROM pg_class
    WHERE oid IN ('gateway.project_workers'::regclass, 'gateway.project_connectors'::regclass,
                  'gateway.nexus_endpoints'::regclass)),
  'project_workers, project_connectors and nexus_endpoints have forced row level security');
SELECT policies_are('gateway', 'nexus_endpoints', ARRAY[]::name[], 'nexus_endpoints has no policy: only the worker reads it');
SELECT col_has_check('gateway', 'project_connectors', 'auth_config', 'auth_config is never stored (CHECK auth_config IS NULL)');
SELECT has_function('gateway', '_sync_recover', ARRAY['text']);
-- 0.6.0 scopes and usage limits
SELECT columns_are('gateway', 'api_key_usage', ARRAY['key_id', 'period', 'granted', 'spent', 'updated_at']);
SELECT has_function('gateway', 'api_key_refill', ARRAY['uuid', 'bigint']);
SELECT is_definer('gateway', 'api_key_refill', ARRAY['uuid', 'bigint']);
-- 0.7.0: verify returns a named composite type with the columns of 0.6.0's OUT parameters, in order
SELECT function_returns('gateway', 'api_key_verify', ARRAY['text', 'uuid', 'text', 'integer'], 'gateway.api_key_verification');
SELECT has_type('gateway', 'api_key_verification', 'the verify result type exists');
SELECT has_composite('gateway', 'api_key_verification', 'the verify result type is a composite type');
SELECT is(
  (SELECT array_agg(attname || ' ' || format_type(atttypid, atttypmod) ORDER BY attnum) FROM pg_attribute
    WHERE attrelid = 'gateway.api_key_verification'::regclass AND attnum > 0 AND NOT attisdropped),
  ARRAY['valid boolean', 'reason text', 'key_id uuid', 'user_id uuid', 'project_id uuid',
        'rate_limit_remaining integer', 'retry_after_seconds integer', 'usage_remaining bigint'],
  'api_key_verification has the verify columns, in order, with their types');
SELECT isnt_definer('gateway', 'api_key_verify', ARRAY['text', 'uuid', 'text', 'integer'], 'verify is not SECURITY DEFINER');
SELECT volatility_is('gateway', 'api_key_verify', ARRAY['text', 'uuid', 'text', 'integer'], 'volatile', 'verify is VOLATILE');
SELECT has_column('gateway', 'api_keys_list', 'usage_remaining', 'the listing shows the uses left');

SELECT * FROM finish();
ROLLBACK;

-- Usage-limited keys: remaining uses, per-call cost, refills (by interval and by hand), who may
-- refill, and that the worker persists what verify spent.
\set SHOW_CONTEXT never
\ir helpers/app_role.psql
\ir helpers/fails_hint.psql
\ir helpers/act_as.psql
\set uma '''af000000-0000-4000-8000-000000000001'''
\set ned '''af000000-0000-4000-8000-000000000002'''
\set ada '''af000000-0000-4000-8000-000000000003'''
\set vic '''af000000-0000-4000-8000-000000000004'''
\set out '''af000000-0000-4000-8000-000000000009'''
\set proj '''cf000000-0000-4000-8000-000000000001'''
\set other '''cf000000-0000-4000-8000-000000000002'''
INSERT INTO gateway.project_members (project_id, user_id, role)
VALUES (:proj, :uma, 'editor'), (:proj, :ned, 'editor'), (:proj, :ada, 'admin'), (:proj, :vic, 'viewer'),
       (:other, :out, 'owner');
GRANT EXECUTE ON FUNCTION gateway.api_key_refill(uuid, bigint) TO regress_gw_user;
-- Waits (up to 10 s) until the worker has written what the listing should show.
CREATE FUNCTION pg_temp.persisted(key uuid, expected bigint) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  seen bigint;
BEGIN
  FOR i IN 1..100 LOOP
    SELECT usage_remaining INTO seen FROM gateway.api_keys_list WHERE id = key;
    EXIT WHEN seen = expected;
    PERFORM pg_sleep(0.1);
    PERFORM pg_stat_clear_snapshot();
  END LOOP;
  RETURN seen;
END
$$;

-- Three uses: spent one by one, then usage_exceeded; a refused call spends nothing.
SELECT key_id AS k3, api_key AS s3 FROM gateway.api_key_issue(:uma, :proj, 'three', remaining => 3) \gset
SELECT usage_limit, usage_remaining, refill_amount FROM gateway.api_keys_list WHERE id = :'k3';
SELECT valid, reason, usage_remaining FROM gateway.api_key_verify(:'s3');
SELECT valid, reason, usage_remaining FROM gateway.api_key_verify(:'s3', cost => 3);
SELECT valid, reason, usage_remaining FROM gateway.api_key_verify(:'s3', cost => 2);
SELECT valid, reason, usage_remaining FROM gateway.api_key_verify(:'s3', cost => 0);
SELECT valid, reason, usage_remaining FROM gateway.api_key_verify(:'s3');
SELECT valid, reason, usage_remaining FROM gateway.api_key_verify(:'s3', cost => 0);
-- A bad cost is the caller's mistake, not a bad key.
SELECT pg_temp.fails_hint(format('SELECT gateway.api_key_verify(%L, cost => -1)', :'s3'));
SELECT pg_temp.fails_hint(format('SELECT gateway.api_key_verify(%L, cost => NULL)', :'s3'));
-- Unlimited keys answer NULL and ignore the cost.
SELECT key_id AS fk, api_key AS f FROM gateway.api_key_issue(:uma, :proj, 'free') \gset
SELECT reason, usage_remaining FROM gateway.api_key_verify(:'f', cost => 1000000);
-- The worker writes what was spent (not into api_keys).
SELECT pg_temp.persisted(:'k3', 0) AS persisted_remaining;
SELECT granted, spent, period FROM gateway.api_key_usage WHERE key_id = :'k3';

-- Usage is checked before the rate limit; a rate-limited call gives its uses back.
SELECT key_id AS rk, api_key AS r FROM gateway.api_key_issue(:uma, :proj, 'both', remaining => 5, rate_limit_per_minute => 1) \gset
SELECT reason, usage_remaining, rate_limit_remaining FROM gateway.api_key_verify(:'r');
SELECT reason, usage_remaining, retry_after_seconds > 0 AS retry FROM gateway.api_key_verify(:'r');
SELECT reason, usage_remaining FROM gateway.api_key_verify(:'r', cost => 10);
-- A scope refusal comes first and spends nothing.
SELECT key_id AS ck, api_key AS c FROM gateway.api_key_issue(:uma, :proj, 'scoped', scopes => ARRAY['read'], remaining => 1) \gset
SELECT reason, usage_remaining FROM gateway.api_key_verify(:'c', required_scope => 'write');
SELECT reason, usage_remaining FROM gateway.api_key_verify(:'c', required_scope => 'read');

-- Manual refill adds uses, visible to verify at once after commit.
SELECT gateway.api_key_refill(:'k3', 10);
SELECT reason, usage_remaining FROM gateway.api_key_verify(:'s3', cost => 4);
SELECT pg_temp.persisted(:'k3', 6) AS persisted_remaining;
-- A refill rolled back adds nothing.
BEGIN;
SELECT gateway.api_key_refill(:'k3', 100);
ROLLBACK;
SELECT reason, usage_remaining FROM gateway.api_key_verify(:'s3', cost => 0);
SELECT details->>'amount' AS amount FROM gateway.audit_log WHERE action = 'api_key.refilled' AND object_id = :'k3';

-- Interval refill: the key gets refill_amount again each interval (counted from created_at), a
-- reset, not an addition. Moving created_at back stands in for waiting a day.
SELECT key_id AS dk, api_key AS d FROM gateway.api_key_issue(:uma, :proj, 'daily', refill_amount => 2, refill_interval => '1 day') \gset
SELECT usage_limit, refill_amount, refill_interval FROM gateway.api_keys_list WHERE id = :'dk';
SELECT reason, usage_remaining FROM gateway.api_key_verify(:'d', cost => 2);
SELECT reason, usage_remaining FROM gateway.api_key_verify(:'d');
UPDATE gateway.api_keys SET created_at = created_at - interval '1 day 1 minute' WHERE id = :'dk';
SELECT reason, usage_remaining FROM gateway.api_key_verify(:'d', cost => 0);
SELECT reason, usage_remaining FROM gateway.api_key_verify(:'d');
SELECT pg_temp.persisted(:'dk', 1) AS persisted_remaining;
SELECT period FROM gateway.api_key_usage WHERE key_id = :'dk';

-- Rotation keeps the limit and hands over what was left (never more).
SELECT new_key_id AS nk, api_key AS n FROM gateway.api_key_rotate(:'k3', interval '0') \gset
SELECT usage_limit, usage_remaining FROM gateway.api_keys_list WHERE id = :'nk';
SELECT reason, usage_remaining FROM gateway.api_key_verify(:'n', cost => 0);

-- Settings that make no sense are refused with advice.
SELECT pg_temp.fails_hint(format('SELECT gateway.api_key_issue(%L, %L, %L, remaining => -1)', :uma, :proj, 'bad1'));
SELECT pg_temp.fails_hint(format('SELECT gateway.api_key_issue(%L, %L, %L, refill_amount => 5)', :uma, :proj, 'bad2'));
SELECT pg_temp.fails_hint(format('SELECT gateway.api_key_issue(%L, %L, %L, remaining => 5, refill_interval => %L)', :uma, :proj, 'bad3', '1 day'));
SELECT pg_temp.fails_hint(format('SELECT gateway.api_key_issue(%L, %L, %L, refill_amount => 5, refill_interval => %L)', :uma, :proj, 'bad4', '1 month'));
SELECT pg_temp.fails_hint(format('SELECT gateway.api_key_issue(%L, %L, %L, refill_amount => 5, refill_interval => %L)', :uma, :proj, 'bad5', '30 seconds'));
SELECT pg_temp.fails_hint(format('SELECT gateway.api_key_issue(%L, %L, %L, refill_amount => 0, refill_interval => %L)', :uma, :proj, 'bad6', '1 day'));
SELECT pg_temp.fails_hint(format('SELECT gateway.api_key_refill(%L, 0)', :'nk'));
SELECT pg_temp.fails_hint(format('SELECT gateway.api_key_refill(%L, 5)', :'fk'));
SELECT pg_temp.fails_hint('SELECT gateway.api_key_refill(NULL, 5)');

-- Who may refill: whoever may revoke the key. The owner and an admin may; another editor, a
-- viewer and another project's owner may not, and cannot tell the key from a missing one.
SELECT pg_temp.as_user(:uma);
SELECT gateway.api_key_refill(:'nk', 1) AS by_owner;
SELECT pg_temp.as_user(:ada);
SELECT gateway.api_key_refill(:'nk', 1) AS by_admin;
SELECT pg_temp.as_user(:ned);
SELECT pg_temp.fails_hint(format('SELECT gateway.api_key_refill(%L, 1)', :'nk'));
SELECT pg_temp.as_user(:vic);
SELECT pg_temp.fails_hint(format('SELECT gateway.api_key_refill(%L, 1)', :'nk'));
SELECT pg_temp.as_user(:out);
SELECT pg_temp.fails_hint(format('SELECT gateway.api_key_refill(%L, 1)', :'nk'));
SELECT pg_temp.fails_hint('SELECT gateway.api_key_refill(''af000000-0000-4000-8000-0000000000ff'', 1)');
SELECT pg_temp.fails_hint('SELECT * FROM gateway.api_key_usage');
SELECT pg_temp.as_superuser();
SELECT reason, usage_remaining FROM gateway.api_key_verify(:'n', cost => 0);

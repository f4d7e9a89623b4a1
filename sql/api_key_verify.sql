-- api_key_verify: one row with a reason for every kind of key; never an error, never a write.
\set SHOW_CONTEXT never
\set carol '''a2000000-0000-4000-8000-000000000001'''
\set proj  '''c2000000-0000-4000-8000-000000000003'''
\set ifa   '''d2000000-0000-4000-8000-00000000000a'''
\set ifb   '''d2000000-0000-4000-8000-00000000000b'''
\set ifq   '''d2000000-0000-4000-8000-00000000000c'''
INSERT INTO gateway.project_members (project_id, user_id, role) VALUES (:proj, :carol, 'editor');
-- Two interfaces of the key's project, and one of another project (q).
INSERT INTO gateway.service_interfaces (id, project_id, workflow_id, name, interface_type, callable_name)
VALUES ('e2000000-0000-4000-8000-00000000000a', :proj, gen_random_uuid(), 'va', 'signal', 'va'),
       ('e2000000-0000-4000-8000-00000000000b', :proj, gen_random_uuid(), 'vb', 'signal', 'vb'),
       ('e2000000-0000-4000-8000-00000000000c', 'c2000000-0000-4000-8000-0000000000ff', gen_random_uuid(), 'vq', 'signal', 'vq');
INSERT INTO gateway.public_interfaces (id, service_interface_id, project_id)
VALUES (:ifa, 'e2000000-0000-4000-8000-00000000000a', :proj), (:ifb, 'e2000000-0000-4000-8000-00000000000b', :proj),
       (:ifq, 'e2000000-0000-4000-8000-00000000000c', 'c2000000-0000-4000-8000-0000000000ff');

SELECT key_id AS k, api_key AS s FROM gateway.api_key_issue(:carol, :proj, 'verify-plain') \gset
SELECT valid, reason, key_id = :'k' AS same_key, user_id = :carol AS owner, project_id = :proj AS project,
       rate_limit_remaining, retry_after_seconds
  FROM gateway.api_key_verify(:'s');

-- malformed: never reaches the table.
SELECT reason FROM gateway.api_key_verify(NULL);
SELECT reason FROM gateway.api_key_verify('');
SELECT reason FROM gateway.api_key_verify('Bearer something');
SELECT reason FROM gateway.api_key_verify(left(:'s', -1));                    -- truncated
SELECT reason FROM gateway.api_key_verify(:'s' || 'x');                       -- extended
SELECT reason FROM gateway.api_key_verify(overlay(:'s' placing
  CASE WHEN substr(:'s', 30, 1) = 'a' THEN 'b' ELSE 'a' END from 30 for 1)); -- one typo
SELECT reason FROM gateway.api_key_verify(repeat('x', 10 * 1024 * 1024));

-- unknown: a well-formed key whose row is gone, or a known prefix whose stored hash belongs to
-- another secret; both look the same to the caller, and neither returns a key id.
SELECT key_id AS kd, api_key AS sd FROM gateway.api_key_issue(:carol, :proj, 'verify-deleted') \gset
DELETE FROM gateway.api_keys WHERE id = :'kd';
SELECT reason, key_id FROM gateway.api_key_verify(:'sd');
SELECT key_id AS kx, api_key AS sx FROM gateway.api_key_issue(:carol, :proj, 'verify-other') \gset
UPDATE gateway.api_keys SET key_hash = sha256(key_hash) WHERE id = :'kx';
SELECT reason, key_id FROM gateway.api_key_verify(:'sx');

-- revoked: effective for the next statement.
SELECT key_id AS kr, api_key AS sr FROM gateway.api_key_issue(:carol, :proj, 'verify-revoked') \gset
SELECT reason FROM gateway.api_key_verify(:'sr');
SELECT gateway.api_key_revoke(:'kr');
SELECT reason, key_id = :'kr' AS same_key FROM gateway.api_key_verify(:'sr');

-- expired.
SELECT key_id AS ke, api_key AS se
  FROM gateway.api_key_issue(:carol, :proj, 'verify-expired', expires_at => now() + interval '1 hour') \gset
SELECT reason FROM gateway.api_key_verify(:'se');
UPDATE gateway.api_keys SET expires_at = now() - interval '1 second' WHERE id = :'ke';
SELECT reason FROM gateway.api_key_verify(:'se');

-- wrong_interface: a key bound to interface A passes only on A.
SELECT api_key AS sb FROM gateway.api_key_issue(:carol, :proj, 'verify-bound', public_interface_id => :ifa) \gset
SELECT reason FROM gateway.api_key_verify(:'sb', :ifa);
SELECT reason FROM gateway.api_key_verify(:'sb', :ifb);
SELECT reason FROM gateway.api_key_verify(:'sb');
-- An unbound key passes on every interface of its own project, and on none of another project
-- (nor on an interface that does not exist): the reviewer's cross-tenant key.
SELECT reason FROM gateway.api_key_verify(:'s', :ifb);
SELECT reason, key_id = :'k' AS same_key FROM gateway.api_key_verify(:'s', :ifq);
SELECT reason FROM gateway.api_key_verify(:'s', 'd2000000-0000-4000-8000-0000000000ee');
-- A key cannot be bound to another project's interface, by the function or by a direct write.
SELECT * FROM gateway.api_key_issue(:carol, :proj, 'verify-cross', public_interface_id => :ifq);
\echo :LAST_ERROR_SQLSTATE
UPDATE gateway.api_keys SET public_interface_id = :ifq WHERE id = :'k';
\echo :LAST_ERROR_SQLSTATE

-- rate_limited: a burst of the per-minute limit, then a retry time.
SELECT api_key AS sl FROM gateway.api_key_issue(:carol, :proj, 'verify-limited', rate_limit_per_minute => 3) \gset
SELECT valid, reason, rate_limit_remaining, retry_after_seconds FROM gateway.api_key_verify(:'sl');
SELECT valid, reason, rate_limit_remaining, retry_after_seconds FROM gateway.api_key_verify(:'sl');
SELECT valid, reason, rate_limit_remaining, retry_after_seconds FROM gateway.api_key_verify(:'sl');
SELECT valid, reason, rate_limit_remaining, retry_after_seconds BETWEEN 1 AND 20 AS retry_soon FROM gateway.api_key_verify(:'sl');

-- No writes: it works in a read-only transaction and with default_transaction_read_only.
BEGIN READ ONLY;
SELECT valid, reason FROM gateway.api_key_verify(:'s');
COMMIT;
SET default_transaction_read_only = on;
SELECT valid, reason FROM gateway.api_key_verify(:'s');
SELECT reason FROM gateway.api_key_verify('gw_nope');
RESET default_transaction_read_only;

-- Wrong argument types are ordinary SQL errors.
SELECT * FROM gateway.api_key_verify('gw_x', 'not-a-uuid');
\echo :LAST_ERROR_SQLSTATE

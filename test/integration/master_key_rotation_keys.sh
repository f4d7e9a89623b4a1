#!/usr/bin/env bash
# API keys across a master-key rotation: 10,000 keys issued under the old master key keep
# verifying through a restart onto a new one (gateway.previous_master_key_file = the old file)
# while a client verifies them without pause; each verify moves its key to the new master key
# through the worker; gateway.master_key_status says when none is left; then the old file goes and
# every key still verifies. Also: a revoke racing a rehash stays a revoke, a verify in a read-only
# transaction writes nothing itself, and no key reaches the server log.
set -u
source "$REPO/test/integration/lib/tap.sh"
plan 16

nkeys=10000
dir=$(own_cluster master-rotation-keys)
port=$(free_port 25760)
cluster_init "$dir" "$port" "gateway.database = 'postgres'" "gateway.usage_flush_interval = '200ms'"
cluster_start "$dir"
mq() { cluster_psql "$dir" -d postgres -At -c "$1" 2>&1; }
mq "CREATE EXTENSION pg_gateway" >/dev/null

# The keys (issued as the superuser, a trusted role) and their plaintext in a test-only table.
# The last 100 keys are made to look like keys from before 0.6.0 (no master key marker); the
# client below reaches them only after the rotation.
started=$SECONDS
cluster_psql "$dir" -d postgres >/dev/null <<SQL
INSERT INTO gateway.project_members (project_id, user_id, role)
SELECT 'c9000000-0000-4000-8000-000000000001', ('a9000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, 'editor'
  FROM generate_series(0, 99) AS g;
CREATE TABLE keys (n int PRIMARY KEY, id uuid NOT NULL, api_key text NOT NULL);
INSERT INTO keys
SELECT g, k.key_id, k.api_key
  FROM generate_series(1, $nkeys) AS g,
       LATERAL gateway.api_key_issue(('a9000000-0000-4000-8000-' || lpad(to_hex(g % 100), 12, '0'))::uuid,
                                     'c9000000-0000-4000-8000-000000000001', 'k' || g) AS k;
UPDATE gateway.api_keys SET master_fingerprint = NULL
 WHERE id IN (SELECT id FROM keys WHERE n > $nkeys - 100);
-- Unknown keys: well formed, their rows deleted.
CREATE TABLE gone AS
SELECT k.api_key FROM generate_series(1, 20) AS g,
       LATERAL gateway.api_key_issue('a9000000-0000-4000-8000-000000000000',
                                     'c9000000-0000-4000-8000-000000000001', 'gone' || g) AS k;
DELETE FROM gateway.api_keys WHERE name LIKE 'gone%';
CREATE TABLE results (valid boolean, reason text, rotating boolean);
-- A credential sealed under the old master key too.
INSERT INTO gateway.connectors (project_id, name, connector_type)
VALUES ('c9000000-0000-4000-8000-000000000001', 'db', 'postgres') RETURNING id AS connector \\gset
SELECT gateway.connector_set_credentials(:'connector', '{"password": "before-rotation"}');
SQL
diag "issued $nkeys keys in $((SECONDS - started)) s"
old_fp=$(mq "SELECT gateway._master_key_fingerprint()")

# The client: verifies keys 3..10000 in blocks of 500, round and round, reconnecting whenever
# the server is down; each answer goes to `results`. Keys 1 and 2 are kept for the checks below.
stop_file="$STAGE/master-rotation-keys.stop"
pause_file="$STAGE/master-rotation-keys.pause"
rm -f "$stop_file" "$pause_file"
client() {
  local lo=3
  while [[ ! -e "$stop_file" ]]; do
    [[ -e "$pause_file" ]] && { sleep 0.05; continue; }
    cluster_psql "$dir" -d postgres -c "INSERT INTO results
      SELECT v.valid, v.reason, current_setting('gateway.previous_master_key_file') <> ''
        FROM keys AS k, LATERAL gateway.api_key_verify(k.api_key) AS v
       WHERE k.n BETWEEN $lo AND $((lo + 499))" >/dev/null 2>&1 || sleep 0.1
    lo=$((lo + 500)); ((lo > nkeys)) && lo=3
  done
}
client &
client_pid=$!
# wait_for_rows N [CONDITION]: until `results` has N rows (meeting CONDITION).
wait_for_rows() { poll_with mq "SELECT count(*) >= $1 FROM results WHERE ${2:-true}" t 60 >/dev/null; }
wait_for_rows 2000

# The rotation: a new master key, the old one as the previous key, one restart.
cluster_stop "$dir"
as_pg mv "$dir/master.key" "$dir/old.key"
make_master_key "$dir/master.key"
echo "gateway.previous_master_key_file = '$dir/old.key'" | as_pg tee -a "$dir/data/postgresql.conf" >/dev/null
cluster_start "$dir"
new_fp=$(mq "SELECT gateway._master_key_fingerprint()")
diag "after the restart: $(mq "SELECT format('%s keys on the previous master key, %s unmarked', api_keys_previous, api_keys_unmarked) FROM gateway.master_key_status")"
ok $([[ "$new_fp" != "$old_fp" && ${#new_fp} -eq 16 ]]; echo $?) "the server runs on a new master key"
is "$(mq "SELECT previous_fingerprint FROM gateway.master_key_status")" "$old_fp" \
   "master_key_status names the previous master key"

is "$(mq "SELECT credentials_old_master || ' ' || encryption_keys_old_master || ' ' || previous_key_removable FROM gateway.master_key_status")" \
   "1 1 false" "master_key_status counts the credential and encryption key still under the old master key"
mq "SELECT gateway.rotate_encryption_key()" >/dev/null
mq "CALL gateway.reencrypt_credentials(10)" >/dev/null
mq "SELECT gateway.retire_encryption_key(1)" >/dev/null
is "$(mq "SELECT credentials_old_master || ' ' || encryption_keys_old_master FROM gateway.master_key_status")" "0 0" \
   "after re-encryption and retiring the old encryption key, no credential needs the old master key"

# The checks of keys 1 and 2 want a queue with room: the client pauses while the worker drains it
# (it has verified keys against the new server by now).
wait_for_rows 500 rotating
touch "$pause_file"
sleep 1

# A verify in a read-only transaction: valid, no transaction id of its own, and the worker moves
# the key afterwards.
is "$(mq "BEGIN READ ONLY;
          SELECT v.valid::text || ' ' || (pg_current_xact_id_if_assigned() IS NULL)::text
            FROM keys AS k, LATERAL gateway.api_key_verify(k.api_key) AS v WHERE k.n = 1;
          COMMIT;")" "true true" "a key under the previous master key verifies in a read-only transaction, writing nothing"
# A request that finds the queue full is dropped and the key's next verify asks again (the
# client filled it before its pause): verify key 1 read-only until the worker has moved it.
moved_after_read_only_verify() {
  mq "BEGIN READ ONLY; SELECT FROM keys AS k, LATERAL gateway.api_key_verify(k.api_key) AS v WHERE k.n = 1; COMMIT" >/dev/null
  mq "$1"
}
is "$(poll_with moved_after_read_only_verify "SELECT a.master_fingerprint FROM gateway.api_keys AS a JOIN keys AS k USING (id) WHERE k.n = 1" "$new_fp" 30)" \
   "$new_fp" "the worker moved it to the new master key"

# A revoke racing the rehash: the revoke holds the row while the key verifies (still valid in the
# committed snapshot) and its rehash is queued; the worker's write waits, then leaves revoked_at.
key2=$(mq "SELECT id FROM keys WHERE n = 2")
cluster_psql "$dir" -d postgres -c "BEGIN; SELECT gateway.api_key_revoke('$key2'); SELECT pg_sleep(1.5); COMMIT;" >/dev/null 2>&1 &
revoker=$!
sleep 0.3
is "$(mq "SELECT v.valid FROM keys AS k, LATERAL gateway.api_key_verify(k.api_key) AS v WHERE k.n = 2")" t \
   "the key verifies while its revoke is uncommitted"
wait "$revoker"
is "$(poll_with mq "SELECT a.master_fingerprint = '$new_fp' AND a.revoked_at IS NOT NULL AND NOT a.is_active FROM gateway.api_keys AS a WHERE a.id = '$key2'" t 20)" t \
   "the rehash waited for the revoke and kept it"
is "$(mq "SELECT v.reason FROM keys AS k, LATERAL gateway.api_key_verify(k.api_key) AS v WHERE k.n = 2")" revoked \
   "the revoked key stays revoked"

rm -f "$pause_file"

# Every key moves while the client goes on.
is "$(poll_with mq "SELECT api_keys_previous || ' ' || api_keys_unmarked || ' ' || api_keys_current || ' ' || previous_key_removable FROM gateway.master_key_status" "0 0 $((nkeys - 1)) true" 60)" \
   "0 0 $((nkeys - 1)) true" "master_key_status: every usable key is on the new master key, the old file may go"
wait_for_rows "$(( $(mq "SELECT count(*) FROM results") + 1000 ))"
touch "$stop_file"
wait "$client_pid"
is "$(mq "SELECT count(*) FILTER (WHERE NOT valid) || ' failed, ' || (count(*) FILTER (WHERE rotating) >= $nkeys) FROM results")" "0 failed, true" \
   "0 failed verifications among $(mq "SELECT count(*) FROM results") (at least $nkeys during the rotation)"

# The old master key is gone for good.
cluster_stop "$dir"
as_pg sed -i '/previous_master_key_file/d' "$dir/data/postgresql.conf"
as_pg rm "$dir/old.key"
cluster_start "$dir"
is "$(mq "SELECT count(*) FILTER (WHERE v.valid) FROM keys AS k, LATERAL gateway.api_key_verify(k.api_key) AS v WHERE k.n <> 2")" \
   "$((nkeys - 1))" "without the old master key all $((nkeys - 1)) usable keys verify"
is "$(mq "SELECT string_agg(DISTINCT v.reason, ',') FROM gone AS g, LATERAL gateway.api_key_verify(g.api_key) AS v")" unknown \
   "unknown keys are still unknown"
is "$(mq "SELECT previous_fingerprint IS NULL AND api_keys_current = $((nkeys - 1)) FROM gateway.master_key_status")" t \
   "master_key_status without a previous key"

# An authenticated client cannot read the status, even if someone granted the view to it.
mq "CREATE ROLE authenticated NOLOGIN; GRANT USAGE ON SCHEMA gateway TO authenticated; GRANT SELECT ON gateway.master_key_status TO authenticated; GRANT EXECUTE ON FUNCTION gateway._master_key_status() TO authenticated" >/dev/null
out=$(mq "SET ROLE authenticated; SELECT * FROM gateway.master_key_status")
ok $([[ "$out" == *"permission denied for gateway.master_key_status"* ]]; echo $?) "authenticated is refused master_key_status"

# No key in the server log.
mq "COPY (SELECT api_key FROM keys UNION ALL SELECT api_key FROM gone) TO '$dir/keys.txt'" >/dev/null
is "$(as_pg grep -c -F -f "$dir/keys.txt" "$dir/server.log")" 0 "no API key in the server log"
cluster_stop "$dir"

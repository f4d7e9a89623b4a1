#!/usr/bin/env bash
# The verify cache (gateway.verify_cache_size) has no window: a change to a key is the answer of
# the next verify after its COMMIT returns, in the session that keeps verifying it (the key hot in
# the cache) and in a third backend, while two more clients verify the same key without pause
# (racing the cache fills against the commit). 200 rounds per kind of change, 0 stale answers
# allowed. A rolled-back change changes nothing; the writer sees its own uncommitted change.
# Verify still never writes, works read-only, and stays correct when the keys outnumber the cache.
set -u
source "$REPO/test/integration/lib/tap.sh"
plan 21

rounds=${VERIFY_CACHE_ROUNDS:-200}
dir=$(own_cluster verify_cache)
port=$(free_port 25950)
# 64 entries: 8 sets of 8, so the eviction checks below need only a few hundred keys.
cluster_init "$dir" "$port" "gateway.verify_cache_size = 64" "max_prepared_transactions = 2" >/dev/null
cluster_start "$dir"
racers=""
trap '[[ -n $racers ]] && kill $racers 2>/dev/null; wait 2>/dev/null; cluster_stop "$dir"' EXIT
cq() { cluster_psql "$dir" -d gateway -At -c "$1"; }
cluster_psql "$dir" -d postgres -c "CREATE DATABASE gateway" >/dev/null
cq "CREATE EXTENSION pg_gateway" >/dev/null
cq "CREATE EXTENSION dblink" >/dev/null

user=ac000000-0000-4000-8000-000000000001
project=cc000000-0000-4000-8000-000000000001
one=dc000000-0000-4000-8000-000000000001
two=dc000000-0000-4000-8000-000000000002
cluster_psql "$dir" -d gateway -q >/dev/null <<SQL
INSERT INTO gateway.project_members (project_id, user_id, role) VALUES ('$project', '$user', 'editor');
INSERT INTO gateway.service_interfaces (id, project_id, workflow_id, name, interface_type, callable_name)
VALUES ('ec000000-0000-4000-8000-000000000001', '$project', gen_random_uuid(), 'one', 'signal', 'one'),
       ('ec000000-0000-4000-8000-000000000002', '$project', gen_random_uuid(), 'two', 'signal', 'two');
INSERT INTO gateway.public_interfaces (id, service_interface_id)
VALUES ('$one', 'ec000000-0000-4000-8000-000000000001'), ('$two', 'ec000000-0000-4000-8000-000000000002');
SQL
read -r key_id key < <(cq "SELECT key_id || ' ' || api_key FROM gateway.api_key_issue('$user', '$project', 'race', public_interface_id => '$one')")

# Two clients verify the key without pause for the whole race: they fill the cache again as soon
# as a commit empties its set, so a fill that read the old row would be caught.
echo "SELECT reason FROM gateway.api_key_verify('$key', '$one');" >"$dir/racer.sql"
chmod a+r "$dir/racer.sql"
as_pg "$PGBIN/pgbench" -n -h "$dir" -p "$port" -U postgres -c 2 -T 240 -f "$dir/racer.sql" gateway >/dev/null 2>&1 &
racers=$!

# race CHANGE EXPECTED [RESTORE]: per round, the key is restored (and checked ok here and in the
# third backend, then verified again so it is hot), CHANGE commits in the writer session, and the
# very next verify here and in the third backend must answer EXPECTED. Prints the stale answers.
race() {
  local change=${1//%L/\'$key_id\'}
  local restore="UPDATE gateway.api_keys SET is_active = true, revoked_at = ${3:-NULL}, expires_at = NULL, public_interface_id = '$one' WHERE id = '$key_id'"
  cluster_psql "$dir" -d gateway -At <<SQL
SELECT dblink_connect('w', 'dbname=gateway host=$dir port=$port user=postgres') AS a,
       dblink_connect('o', 'dbname=gateway host=$dir port=$port user=postgres') AS b \\gset
DO \$\$
DECLARE
  stale int := 0;
  r text;
  restore text := \$r\$$restore\$r\$;
  change text := \$c\$$change\$c\$;
  check_sql text := format('SELECT reason FROM gateway.api_key_verify(%L, %L)', '$key', '$one');
BEGIN
  FOR i IN 1..$rounds LOOP
    PERFORM dblink_exec('w', restore);
    r := (SELECT reason FROM gateway.api_key_verify('$key', '$one'));
    IF r <> 'ok' THEN stale := stale + 1; END IF;
    SELECT reason INTO r FROM dblink('o', check_sql) AS t(reason text);
    IF r <> 'ok' THEN stale := stale + 1; END IF;
    PERFORM gateway.api_key_verify('$key', '$one');  -- a hit now
    PERFORM dblink_exec('w', change);
    r := (SELECT reason FROM gateway.api_key_verify('$key', '$one'));
    IF r <> '$2' THEN stale := stale + 1; END IF;
    SELECT reason INTO r FROM dblink('o', check_sql) AS t(reason text);
    IF r <> '$2' THEN stale := stale + 1; END IF;
  END LOOP;
  RAISE NOTICE 'stale=%', stale;
END
\$\$;
SQL
}
stale_of() { sed -n 's/.*stale=\([0-9]*\).*/\1/p' <<<"$1"; }

before=$(cq "SELECT hits FROM gateway.verify_cache")
out=$(race "UPDATE gateway.api_keys SET is_active = false, revoked_at = now() WHERE id = %L" revoked 2>&1)
is "$(stale_of "$out")" 0 "revocation: 0 stale answers in $rounds rounds, here and in a third backend"
out=$(race "UPDATE gateway.api_keys SET revoked_at = clock_timestamp() WHERE id = %L" revoked "now() + interval '1 hour'" 2>&1)
is "$(stale_of "$out")" 0 "rotation grace ended (revoked_at moved to the past): 0 stale answers"
out=$(race "UPDATE gateway.api_keys SET expires_at = now() - interval '1 second' WHERE id = %L" expired 2>&1)
is "$(stale_of "$out")" 0 "expiry set to the past: 0 stale answers"
out=$(race "UPDATE gateway.api_keys SET public_interface_id = '$two' WHERE id = %L" wrong_interface 2>&1)
is "$(stale_of "$out")" 0 "binding moved to another interface: 0 stale answers"
out=$(race "DELETE FROM gateway.api_keys WHERE id = %L AND false" ok 2>&1)
is "$(stale_of "$out")" 0 "an UPDATE/DELETE that matches nothing leaves the answer ok"
after=$(cq "SELECT hits FROM gateway.verify_cache")
ok "$([[ $after -gt $((before + rounds)) ]]; echo $?)" "the key was answered from the cache meanwhile ($((after - before)) hits)"

# A rolled-back revoke: while open, only the writer sees it; after ROLLBACK nothing changed.
out=$(cluster_psql "$dir" -d gateway -At <<SQL 2>&1
SELECT dblink_connect('w', 'dbname=gateway host=$dir port=$port user=postgres') AS a \\gset
DO \$\$
DECLARE
  bad int := 0;
  r text;
BEGIN
  FOR i IN 1..$rounds LOOP
    PERFORM gateway.api_key_verify('$key', '$one');
    PERFORM dblink_exec('w', 'BEGIN');
    PERFORM dblink_exec('w', 'UPDATE gateway.api_keys SET is_active = false, revoked_at = now() WHERE id = ''$key_id''');
    SELECT reason INTO r FROM dblink('w', 'SELECT reason FROM gateway.api_key_verify(''$key'', ''$one'')') AS t(reason text);
    IF r <> 'revoked' THEN bad := bad + 1; END IF;
    r := (SELECT reason FROM gateway.api_key_verify('$key', '$one'));
    IF r <> 'ok' THEN bad := bad + 1; END IF;
    PERFORM dblink_exec('w', 'ROLLBACK');
    r := (SELECT reason FROM gateway.api_key_verify('$key', '$one'));
    IF r <> 'ok' THEN bad := bad + 1; END IF;
  END LOOP;
  RAISE NOTICE 'stale=%', bad;
END
\$\$;
SQL
)
is "$(stale_of "$out")" 0 "a revoke in progress: the writer sees it, others do not; rolled back it changes nothing"
kill $racers 2>/dev/null; wait $racers 2>/dev/null; racers=""

# Verify never writes, hit or miss, and works in a read-only transaction.
is "$(cq "BEGIN; SELECT gateway.api_key_verify('$key', '$one'); SELECT gateway.api_key_verify('$key', '$one');
         SELECT txid_current_if_assigned() IS NULL; COMMIT" | tail -1)" t "verify (miss, then hit) assigns no transaction id"
is "$(cq "BEGIN READ ONLY; SELECT reason FROM gateway.api_key_verify('$key', '$one'); COMMIT")" ok \
   "verify answers in a read-only transaction"

# PREPARE of a transaction that changed a key is refused (its commit would come from elsewhere).
out=$(cq "BEGIN; UPDATE gateway.api_keys SET expires_at = now() + interval '1 day' WHERE id = '$key_id'; PREPARE TRANSACTION 'vc'" 2>&1)
ok "$([[ $out == *"cannot PREPARE a transaction that changed gateway.api_keys"* ]]; echo $?)" "PREPARE TRANSACTION after a key change is refused"
is "$(cq "SELECT count(*) FROM pg_prepared_xacts")" 0 "and nothing stays prepared"

# A trigger disabled, a key revoked, the trigger enabled again: the entry cached before is not used.
cq "SELECT gateway.api_key_verify('$key', '$one'), gateway.api_key_verify('$key', '$one')" >/dev/null
cq "ALTER TABLE gateway.api_keys DISABLE TRIGGER zz_verify_cache" >/dev/null
cq "UPDATE gateway.api_keys SET is_active = false, revoked_at = now() WHERE id = '$key_id'" >/dev/null
is "$(cq "SELECT reason FROM gateway.api_key_verify('$key', '$one')")" revoked "with the trigger disabled verify bypasses the cache"
cq "ALTER TABLE gateway.api_keys ENABLE ALWAYS TRIGGER zz_verify_cache" >/dev/null
is "$(cq "SELECT reason FROM gateway.api_key_verify('$key', '$one')")" revoked \
   "enabled again, no entry from before is used"

# TRUNCATE in a transaction: its own verify sees no key; rolled back, the key is valid again.
cq "UPDATE gateway.api_keys SET is_active = true, revoked_at = NULL WHERE id = '$key_id'" >/dev/null
is "$(cq "SELECT gateway.api_key_verify('$key', '$one'); BEGIN; TRUNCATE gateway.api_keys CASCADE;
         SELECT reason FROM gateway.api_key_verify('$key', '$one'); ROLLBACK" | tail -1)" unknown "after TRUNCATE its transaction finds no key"
is "$(cq "SELECT reason FROM gateway.api_key_verify('$key', '$one')")" ok "rolled back, the key is valid"

# 400 keys through a 64-entry cache: evictions, and every answer still right, before and after
# a third of them are revoked.
cq "CREATE TABLE evict AS SELECT g AS n, k.key_id, k.api_key FROM generate_series(1, 400) AS g,
      LATERAL gateway.api_key_issue('$user', '$project', 'evict-' || g) AS k" >/dev/null
# Each key three times in a row: a key enters the cache on its second miss.
thrice="(SELECT e.* FROM evict AS e, generate_series(1, 3) AS g ORDER BY e.n, g) AS e"
wrong=$(cq "SELECT count(*) FROM $thrice, gateway.api_key_verify(e.api_key) AS v WHERE v.reason <> 'ok'")
cq "UPDATE gateway.api_keys SET is_active = false, revoked_at = now() WHERE id IN (SELECT key_id FROM evict WHERE n % 3 = 0)" >/dev/null
wrong2=$(cq "SELECT count(*) FROM $thrice, gateway.api_key_verify(e.api_key) AS v
              WHERE v.reason <> CASE WHEN e.n % 3 = 0 THEN 'revoked' ELSE 'ok' END")
is "$wrong $wrong2" "0 0" "400 keys through 64 entries: every answer right, before and after revoking a third"
is "$(cq "SELECT size = 64 AND used <= size AND evictions > 0 AND invalidations > 0 AND memory_bytes > 0 FROM gateway.verify_cache")" t \
   "gateway.verify_cache shows the size, evictions and invalidations"

# A key answered from the cache is not hashed again in that session (the hash memo): a key with the
# same public prefix and another secret (a valid checksum, so it parses) must still be unknown, in
# that session right after the real key and in another one, and the real key stays ok.
cq "UPDATE gateway.api_keys SET is_active = true, revoked_at = NULL, expires_at = NULL, public_interface_id = '$one' WHERE id = '$key_id'" >/dev/null
forged=$(python3 - "$key" <<'PY'
import sys, zlib
key = sys.argv[1]
alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
body = key[:16] + ("B" if key[16] != "B" else "C") + key[17:59]  # gw_ + prefix + _, then the secret
c, checksum = zlib.crc32(body.encode()), ""
for _ in range(6):
    checksum, c = alphabet[c % 62] + checksum, c // 62
print(body + checksum)
PY
)
hits_before=$(cq "SELECT hits FROM gateway.verify_cache")
is "$(cq "SELECT string_agg(v.reason, ',' ORDER BY u.n)
            FROM unnest(ARRAY['$key', '$key', '$key', '$forged', '$forged', '$key']) WITH ORDINALITY AS u(k, n),
                 LATERAL gateway.api_key_verify(u.k, '$one') AS v")" "ok,ok,ok,unknown,unknown,ok" \
   "a forged secret under a hot key's prefix is unknown in the session that memoized the real key"
is "$(cq "SELECT reason FROM gateway.api_key_verify('$forged', '$one')") $(cq "SELECT hits > $hits_before + 3 FROM gateway.verify_cache")" "unknown t" \
   "and in another session; the real key's answers came from the cache"

# Changes that reach no trigger, seen by a session in the middle of a transaction (a hit takes
# no lock, so nothing else makes it read the catalog again): a trigger disabled by the owner
# before a revoke, and a rewrite of the table (ALTER COLUMN ... TYPE ... USING).
cq "UPDATE gateway.api_keys SET is_active = true, revoked_at = NULL, expires_at = NULL WHERE id = '$key_id'" >/dev/null
cq "SELECT gateway.api_key_verify('$key', '$one'), gateway.api_key_verify('$key', '$one')" >/dev/null
conn="dbname=gateway host=$dir port=$port user=postgres"
is "$(cq "BEGIN; SELECT reason FROM gateway.api_key_verify('$key', '$one');
          SELECT dblink_exec('$conn', 'ALTER TABLE gateway.api_keys DISABLE TRIGGER zz_verify_cache;
                                      UPDATE gateway.api_keys SET is_active = false, revoked_at = now() WHERE id = ''$key_id''');
          SELECT reason FROM gateway.api_key_verify('$key', '$one'); COMMIT" | tail -1)" revoked \
   "a trigger disabled and a key revoked during a transaction: its next verify sees the revoke"
cq "ALTER TABLE gateway.api_keys ENABLE ALWAYS TRIGGER zz_verify_cache" >/dev/null
cq "UPDATE gateway.api_keys SET is_active = true, revoked_at = NULL WHERE id = '$key_id'" >/dev/null
cq "SELECT gateway.api_key_verify('$key', '$one'), gateway.api_key_verify('$key', '$one')" >/dev/null
cq "ALTER TABLE gateway.api_keys ALTER COLUMN hash_version TYPE smallint USING hash_version + 100" >/dev/null
is "$(cq "SELECT reason FROM gateway.api_key_verify('$key', '$one')")" unknown \
   "a table rewrite that changed every key's pepper version (no trigger fires): the cached row is not used"

#!/usr/bin/env bash
# verify works on a hot standby (it never writes), and an issued key reaches neither the WAL nor
# the server log, even with every statement logged.
set -u
source "$REPO/test/integration/lib/tap.sh"
plan 10

user=a9000000-0000-4000-8000-000000000001
project=c9000000-0000-4000-8000-000000000001
q "INSERT INTO gateway.project_members (project_id, user_id, role) VALUES ('$project', '$user', 'editor') ON CONFLICT DO NOTHING" >/dev/null

# Log everything while issuing; then look for the secret in the WAL and the log.
cluster_psql "$CLUSTER" -d gateway -c "ALTER SYSTEM SET log_statement = 'all'" \
  -c "ALTER SYSTEM SET log_min_duration_statement = 0" -c "SELECT pg_reload_conf()" >/dev/null
wal_start=$(q "SELECT pg_walfile_name(pg_current_wal_insert_lsn())")
key=$(q "SELECT api_key FROM gateway.api_key_issue('$user', '$project', 'standby', rate_limit_per_minute => 2)")
rotated=$(q "SELECT api_key FROM gateway.api_key_rotate((SELECT id FROM gateway.api_keys WHERE name = 'standby' AND replaced_by IS NULL AND user_id = '$user'))")
q "SELECT pg_switch_wal()" >/dev/null
q "CHECKPOINT" >/dev/null
cluster_psql "$CLUSTER" -d gateway -c "ALTER SYSTEM RESET log_statement" \
  -c "ALTER SYSTEM RESET log_min_duration_statement" -c "SELECT pg_reload_conf()" >/dev/null
secret=$(echo "$key" | cut -c17-)
secret2=$(echo "$rotated" | cut -c17-)
found=0
for seg in "$CLUSTER"/data/pg_wal/0*; do
  [[ "$(basename "$seg")" < "$wal_start" ]] && continue
  grep -qaF -e "$secret" -e "$secret2" "$seg" && found=1
done
is "$found" 0 "issued and rotated keys appear in no WAL segment written meanwhile"
is "$(grep -caF -e "$secret" -e "$secret2" "$CLUSTER/server.log")" 0 "nor in the server log with log_statement = all"

# A usage-limited key with 1 of its 4 uses spent and written, before the base backup.
metered=$(q "SELECT api_key FROM gateway.api_key_issue('$user', '$project', 'standby-metered', remaining => 4)")
metered_id=$(q "SELECT key_id FROM gateway.api_key_verify('$metered')")
wait_for "SELECT spent FROM gateway.api_key_usage WHERE key_id = '$metered_id'" 1 >/dev/null

# A hot standby from a base backup.
standby=$(make_standby "$CLUSTER" "$PGPORT" standby)
sq() { cluster_psql "$standby" -d gateway -At -c "$1"; }
is "$(sq "SELECT pg_is_in_recovery()")" t "the standby is in recovery"
is "$(sq "SELECT reason FROM gateway.api_key_verify('$rotated')")" ok "verify answers ok on the standby"
is "$(sq "SELECT reason FROM gateway.api_key_verify('$rotated'); SELECT reason FROM gateway.api_key_verify('$rotated')" | tail -1)" \
   rate_limited "rate limits apply on the standby"
is "$(sq "SELECT reason FROM gateway.api_key_verify('gw_nope')")" malformed "bad keys get a reason there too"
# A standby cannot spend (nothing there would write it): it answers from the replicated counters.
is "$(sq "SELECT reason || ' ' || usage_remaining FROM gateway.api_key_verify('$metered', cost => 0)")" "ok 3" \
   "a usage-limited key checks on the standby (cost 0) with the uses written on the primary"
is "$(sq "SELECT reason || ' ' || usage_remaining FROM gateway.api_key_verify('$metered')")" "usage_exceeded 3" \
   "and spending there is refused (usage_exceeded), never counted twice"
out=$(sq "SELECT * FROM gateway.api_key_issue('$user', '$project', 'on-standby')" 2>&1)
ok $([[ "$out" == *"read-only transaction"* ]]; echo $?) "issuing on the standby is refused as a read-only transaction"
# The verify cache's trigger does not run during replay: the standby must not answer from it.
sq "SELECT gateway.api_key_verify('$key'), gateway.api_key_verify('$key')" >/dev/null
q "UPDATE gateway.api_keys SET is_active = false, revoked_at = now() WHERE name = 'standby' AND replaced_by IS NOT NULL AND user_id = '$user'" >/dev/null
lsn=$(q "SELECT pg_current_wal_insert_lsn()")
poll_with sq "SELECT pg_last_wal_replay_lsn() >= '$lsn'" t >/dev/null
is "$(sq "SELECT reason FROM gateway.api_key_verify('$key')")" revoked \
   "a revoke replayed on the standby is effective there for a key verified there before"
cluster_stop "$standby"

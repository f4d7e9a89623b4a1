#!/usr/bin/env bash
# A credential's plaintext reaches no WAL record, no table file and no server log line: it is
# sealed before any row is written, and re-encryption, rotation and failed decryptions never
# expose it. The WAL is searched byte for byte (pg_waldump prints record headers, not tuple
# data, so a raw scan is the stronger check).
set -u
source "$REPO/test/integration/lib/tap.sh"
plan 7

marker="plaintext-marker-$RANDOM$RANDOM$RANDOM"
project=cd000000-0000-4000-8000-000000000001

wal_start=$(q "SELECT pg_walfile_name(pg_current_wal_insert_lsn())")
conn=$(q "INSERT INTO gateway.connectors (project_id, name, connector_type) VALUES ('$project', 'wal-scan', 'http') RETURNING id")
q "SELECT gateway.connector_set_credentials('$conn', '{\"password\": \"$marker\"}')" >/dev/null
is "$(q "SELECT gateway.connector_credentials('$conn') ->> 'password'")" "$marker" \
   "the credential decrypts back (the scans below look for something real)"

# A failed decryption, a rotation and a re-encryption: none may write the plaintext anywhere.
q "SELECT gateway.decrypt_credentials(encrypted_credentials, 'another-row') FROM gateway.connectors WHERE id = '$conn'" >/dev/null 2>&1
q "SELECT gateway.rotate_encryption_key()" >/dev/null
cluster_psql "$CLUSTER" -d gateway -c "CALL gateway.reencrypt_credentials(100)" >/dev/null 2>&1
is "$(q "SELECT encryption_key_id = (SELECT id FROM gateway.encryption_keys WHERE state = 'active') FROM gateway.connectors WHERE id = '$conn'")" t \
   "re-encryption moved it to the new key"
is "$(q "SELECT gateway.connector_credentials('$conn') ->> 'password'")" "$marker" "and it still decrypts"

q "SELECT pg_switch_wal()" >/dev/null
q "CHECKPOINT" >/dev/null
found=0
for seg in "$CLUSTER"/data/pg_wal/0*; do
  [[ "$(basename "$seg")" < "$wal_start" ]] && continue
  grep -qaF "$marker" "$seg" && found=1
done
is "$found" 0 "the plaintext is in no WAL segment written meanwhile"
relfile="$CLUSTER/data/$(q "SELECT pg_relation_filepath('gateway.connectors')")"
is "$(cat "$relfile"* | grep -caF "$marker")" 0 "nor in the connectors table's files"
is "$(grep -caF "$marker" "$CLUSTER/server.log")" 0 "nor in the server log"

# Each backend caches the key directory; a rotation committed by another session must be seen by
# the next encryption of a session that cached the old one.
port=$(sed -n 's/^port = \([0-9]*\)$/\1/p' "$CLUSTER/data/postgresql.conf" | tail -1)
ids=$(as_pg "$PGBIN/psql" -X -q -At -h "$CLUSTER" -p "$port" -U postgres -d gateway <<SQL
SELECT gateway._envelope_key_id(gateway.encrypt_credentials('{}', 'cache'));
\! $PGBIN/psql -X -q -At -h $CLUSTER -p $port -U postgres -d gateway -c "SELECT gateway.rotate_encryption_key()" >/dev/null
SELECT gateway._envelope_key_id(gateway.encrypt_credentials('{}', 'cache'));
SQL
)
first=$(echo "$ids" | head -1)
second=$(echo "$ids" | tail -1)
is "$second" "$((first + 1))" "a session encrypts with the key another session just rotated to"

#!/usr/bin/env bash
# Rotating the master key: with the old key as gateway.previous_master_key_file, existing
# credentials keep decrypting, encrypting under the old master is refused, rotation and
# re-encryption move everything to the new master, and then the old key can go. A server started
# with an unrelated master key says so (GW004) instead of failing obscurely.
set -u
source "$REPO/test/integration/lib/tap.sh"
plan 9

dir=$(own_cluster master-rotation)
port=$(free_port 25750)
cluster_init "$dir" "$port" "gateway.database = 'postgres'"
cluster_start "$dir"
mq() { cluster_psql "$dir" -d postgres -At -c "$1" 2>&1; }
mq "CREATE EXTENSION pg_gateway" >/dev/null
conn=$(mq "INSERT INTO gateway.connectors (project_id, name, connector_type) VALUES (gen_random_uuid(), 'db', 'postgres') RETURNING id")
mq "SELECT gateway.connector_set_credentials('$conn', '{\"password\": \"before-rotation\"}')" >/dev/null

# New master key, old one kept as the previous key.
cluster_stop "$dir"
as_pg mv "$dir/master.key" "$dir/old.key"
make_master_key "$dir/master.key"
echo "gateway.previous_master_key_file = '$dir/old.key'" | as_pg tee -a "$dir/data/postgresql.conf" >/dev/null
cluster_start "$dir"
is "$(mq "SELECT gateway.connector_credentials('$conn') ->> 'password'")" before-rotation \
   "during the rotation, old credentials decrypt through the previous master key"
out=$(mq "SELECT gateway.encrypt_credentials('{}', 'x')")
ok $([[ "$out" == *"derived from another master key"* ]]; echo $?) \
   "nothing new is sealed under the old master key (GW004) until the key is rotated"
mq "SELECT gateway.rotate_encryption_key()" >/dev/null
mq "CALL gateway.reencrypt_credentials(10)" >/dev/null
is "$(mq "SELECT master_fingerprint = gateway._master_key_fingerprint() FROM gateway.encryption_keys WHERE state = 'active'")" t \
   "the new active key belongs to the new master key"
is "$(mq "SELECT count(*) FROM gateway.connectors WHERE encryption_key_id <> (SELECT id FROM gateway.encryption_keys WHERE state = 'active')")" 0 \
   "re-encryption moved every credential to it"
mq "SELECT gateway.retire_encryption_key(1)" >/dev/null
is "$(mq "SELECT state FROM gateway.encryption_keys WHERE id = 1")" retired "the old master's key is retired"

# The old master key is gone for good.
cluster_stop "$dir"
as_pg sed -i '/previous_master_key_file/d' "$dir/data/postgresql.conf"
as_pg rm "$dir/old.key"
cluster_start "$dir"
is "$(mq "SELECT gateway.connector_credentials('$conn') ->> 'password'")" before-rotation \
   "after the rotation the credentials decrypt with the new master key alone"
is "$(mq "SELECT gateway._envelope_key_id(gateway.encrypt_credentials('{}', 'x'))")" 2 "and new ones are sealed with it"

# An unrelated master key: a clear error naming both fingerprints, not garbage.
cluster_stop "$dir"
as_pg rm "$dir/master.key"
make_master_key "$dir/master.key"
cluster_start "$dir"
out=$(mq "SELECT gateway.connector_credentials('$conn')")
ok $([[ "$out" == *"derived from another master key"* ]]; echo $?) "a different master key is refused with GW004"
ok $([[ "$out" == *"gateway.master_key_file"* ]]; echo $?) "with a hint naming the setting to fix"
cluster_stop "$dir"

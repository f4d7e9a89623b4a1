#!/usr/bin/env bash
# Keys keep working across unpublish/republish and auth_type toggles without rotation: a valid
# key's consumer, key-auth credential and acl stay in Kong whatever its interface's state, so the
# sealed copy is needed only until the first delivery. A key bound before its interface was ever
# published is delivered too, and works once the interface is published.
set -u
source "$REPO/test/integration/lib/tap.sh"
source "$REPO/test/integration/lib/kong.sh"
plan 17

start_kong_fake kong-key-republish
kong_cluster kong-key-republish
tag=$(kq "SELECT 'pg-gateway-' || (SELECT system_identifier FROM pg_control_system()) || '-' || oid FROM pg_database WHERE datname = 'gateway'")
project=c5000000-0000-4000-8000-000000000001
user=a5000000-0000-4000-8000-000000000001
kq "INSERT INTO gateway.project_members (project_id, user_id, role) VALUES ('$project', '$user', 'editor') ON CONFLICT DO NOTHING" >/dev/null
not_found() { kong GET "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("message"))'; }
key_state() { kq "SELECT kong_sync_state || ' ' || coalesce(kong_sync_error, '-') || ' ' || (kong_key_sealed IS NULL) FROM gateway.api_keys WHERE id = '$1'"; }
set_public() { kq "UPDATE gateway.service_interfaces SET is_public = $2 WHERE id = (SELECT service_interface_id FROM gateway.public_interfaces WHERE id = '$1')" >/dev/null; }

iface=$(publish keep-me)
read -r key_id key < <(kq "SELECT key_id || ' ' || api_key FROM gateway.api_key_issue('$user', '$project', 'keep', '$iface')")
kwait "$ALL_SYNCED" 0 >/dev/null
is "$(kong_py '[c["key"] for c in d["data"]]' "/consumers/gw-key-$key_id/key-auth")" "['$key']" "a bound key is delivered"
is "$(key_state "$key_id")" "synced - true" "and its sealed copy is wiped"

# Unpublish: the route goes, the consumer stays (it grants nothing without a route).
set_public "$iface" false
kwait "$ALL_SYNCED" 0 >/dev/null
is "$(not_found "/services/gw-$iface")" "Not found" "unpublishing removes the service"
is "$(not_found "/routes/gw-$iface")" "Not found" "and the route"
is "$(kong_py '[c["key"] for c in d["data"]]' "/consumers/gw-key-$key_id/key-auth")" "['$key']" \
   "the key keeps its consumer and credential"
is "$(kong_py '[a["group"] for a in d["data"]]' "/consumers/gw-key-$key_id/acls")" "['gw-$iface']" "and its acl group"

# Republish: the same key works again, no rotation.
set_public "$iface" true
kwait "$ALL_SYNCED" 0 >/dev/null
is "$(kong_py 'd["name"]' "/routes/gw-$iface")" "gw-$iface" "republishing restores the route"
is "$(key_state "$key_id")" "synced - true" "the key is synced, not dead"
is "$(kong_py '[c["key"] for c in d["data"]]' "/consumers/gw-key-$key_id/key-auth")" "['$key']" \
   "and Kong still holds its credential"

# auth_type api_key -> none -> api_key.
kq "UPDATE gateway.public_interfaces SET auth_type = 'none' WHERE id = '$iface'" >/dev/null
kwait "$ALL_SYNCED" 0 >/dev/null
is "$(kong_py 'sorted(p["name"] for p in d["data"])' "/plugins?tags=$tag")" "[]" \
   "an open interface has no key-auth or acl plugin"
kq "UPDATE gateway.public_interfaces SET auth_type = 'api_key' WHERE id = '$iface'" >/dev/null
kwait "$ALL_SYNCED" 0 >/dev/null
is "$(key_state "$key_id")" "synced - true" "after none and back to api_key the key is synced, not dead"
is "$(kong_py '[c["key"] for c in d["data"]]' "/consumers/gw-key-$key_id/key-auth")" "['$key']" \
   "and its credential is still there"

# A key bound to an interface that was never published.
later=$(kq "WITH s AS (
        INSERT INTO gateway.service_interfaces (project_id, workflow_id, name, interface_type, callable_name, is_public)
        VALUES ('$project', gen_random_uuid(), 'later', 'signal', 'later', false) RETURNING id)
      INSERT INTO gateway.public_interfaces (service_interface_id) SELECT id FROM s RETURNING id")
read -r early_id early_key < <(kq "SELECT key_id || ' ' || api_key FROM gateway.api_key_issue('$user', '$project', 'early', '$later')")
kwait "$ALL_SYNCED" 0 >/dev/null
is "$(not_found "/services/gw-$later")" "Not found" "an interface never published has no service"
is "$(kong_py '[c["key"] for c in d["data"]]' "/consumers/gw-key-$early_id/key-auth")" "['$early_key']" \
   "but a key bound to it is delivered"
set_public "$later" true
kwait "$ALL_SYNCED" 0 >/dev/null
is "$(kong_py '[p["config"]["allow"] for p in d["data"] if p["name"] == "acl" and p["route"]["id"] == "'"$(kong_py 'd["id"]' "/routes/gw-$later")"'"]' "/plugins")" \
   "[['gw-$later']]" "once published, its route admits the key's acl group"
is "$(key_state "$early_id")" "synced - true" "and the early key is synced"
check_contract

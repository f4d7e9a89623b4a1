#!/usr/bin/env bash
# Publishing interfaces and binding keys: what Kong ends up with, in the fake, for every flow.
set -u
source "$REPO/test/integration/lib/tap.sh"
source "$REPO/test/integration/lib/kong.sh"
plan 35

start_kong_fake kong-publish
kong_cluster kong-publish
# Keys are issued by project editors (the tenant rules): the test's user is one.
kq "INSERT INTO gateway.project_members (project_id, user_id, role)
    VALUES ('c5000000-0000-4000-8000-000000000001', 'a5000000-0000-4000-8000-000000000001', 'editor')
    ON CONFLICT DO NOTHING" >/dev/null
tag=$(kq "SELECT 'pg-gateway-' || (SELECT system_identifier FROM pg_control_system()) || '-' || oid FROM pg_database WHERE datname = 'gateway'")

# A transaction that rolls back queues nothing and wakes nobody.
kq "BEGIN; INSERT INTO gateway.service_interfaces (project_id, workflow_id, name, interface_type, callable_name, is_public)
    VALUES (gen_random_uuid(), gen_random_uuid(), 'never', 'signal', 'never', true); ROLLBACK" >/dev/null
sleep 0.3
is "$(kq "SELECT count(*) FROM gateway.sync_jobs")" 0 "a rolled-back change leaves no job"
is "$(kong_py 'd["by_method"].get("PUT", 0)' /__fake/stats)" 0 "and nothing reached Kong"

iface=$(publish approve 60)
is "$(kwait "SELECT sync_state FROM gateway.public_interfaces WHERE id = '$iface'" synced)" synced \
   "publishing an interface syncs it"
path=$(kq "SELECT http_path FROM gateway.public_interfaces WHERE id = '$iface'")
is "$(kong_py '[s["name"] for s in d["data"]]' "/services?tags=$tag")" "['gw-$iface']" "Kong has its service, under our tag"
is "$(kong_py '(d["host"], d["port"], d["path"])' "/services/gw-$iface")" \
   "('app.internal', 3000, '/api/interfaces/$iface')" "the service points at the app with the interface in the path"
is "$(kong_py '(d["methods"], d["paths"])' "/routes/gw-$iface")" "(['POST'], ['$path'])" "its route has the method and derived path"
is "$(kong_py 'sorted(p["name"] for p in d["data"])' "/plugins?tags=$tag")" "['acl', 'key-auth', 'rate-limiting']" \
   "key-auth, acl and rate-limiting are on the route"
is "$(kong_py '[(p["config"]["key_names"], p["config"]["hide_credentials"], p["config"]["key_in_query"]) for p in d["data"] if p["name"] == "key-auth"][0]' "/plugins?tags=$tag")" \
   "(['X-API-Key'], True, False)" "key-auth reads X-API-Key from the header only and hides it from the upstream"
is "$(kong_py '[p["config"]["minute"] for p in d["data"] if p["name"] == "rate-limiting"][0]' "/plugins?tags=$tag")" 60 \
   "rate-limiting has the row's limit"

# Keys bound to the interface become consumers of its acl group.
read -r key_id key < <(kq "SELECT key_id || ' ' || api_key FROM gateway.api_key_issue(
  'a5000000-0000-4000-8000-000000000001', 'c5000000-0000-4000-8000-000000000001', 'kong-key', '$iface')")
is "$(kwait "SELECT kong_sync_state FROM gateway.api_keys WHERE id = '$key_id'" synced)" synced "a bound key syncs"
is "$(kong_py '[c["key"] for c in d["data"]]' "/consumers/gw-key-$key_id/key-auth")" "['$key']" \
   "Kong's key-auth credential carries exactly the issued key"
is "$(kq "SELECT kong_key_sealed IS NULL FROM gateway.api_keys WHERE id = '$key_id'")" t \
   "once Kong has it, the sealed copy is wiped from the row"
is "$(kong_py '[a["group"] for a in d["data"]]' "/consumers/gw-key-$key_id/acls")" "['gw-$iface']" \
   "the consumer is in the interface's acl group only"

other=$(publish reject)
kwait "SELECT sync_state FROM gateway.public_interfaces WHERE id = '$other'" synced >/dev/null
other_route=$(kong_py 'd["id"]' "/routes/gw-$other")
is "$(kong_py '[p["config"]["allow"] for p in d["data"] if p["name"] == "acl" and p["route"]["id"] == "'"$other_route"'"]' "/plugins?tags=$tag")" \
   "[['gw-$other']]" "interface B allows only its own group, so A's key fails there"
is "$(kong_py 'len([p for p in d["data"] if p["name"] == "rate-limiting"])' "/plugins?tags=$tag")" 1 \
   "an interface without a limit gets no rate-limiting plugin"

# Changes follow.
kq "UPDATE gateway.public_interfaces SET rate_limit_per_minute = 5, http_method = 'PUT' WHERE id = '$iface'" >/dev/null
kwait "SELECT sync_state FROM gateway.public_interfaces WHERE id = '$iface'" synced >/dev/null
is "$(kong_py 'd["methods"]' "/routes/gw-$iface")" "['PUT']" "a changed method reaches the route"
is "$(kong_py '[p["config"]["minute"] for p in d["data"] if p["name"] == "rate-limiting"][0]' "/plugins?tags=$tag")" 5 \
   "a changed limit reaches the plugin"
kq "UPDATE gateway.public_interfaces SET auth_type = 'none' WHERE id = '$iface'" >/dev/null
kwait "SELECT count(*) FROM gateway.sync_jobs" 0 >/dev/null
kwait "SELECT kong_sync_state FROM gateway.api_keys WHERE id = '$key_id'" synced >/dev/null
is "$(kong_py 'sorted(p["name"] for p in d["data"] if p.get("route") and p["route"]["id"] == "'"$(kong_py 'd["id"]' "/routes/gw-$iface")"'")' "/plugins?tags=$tag")" \
   "['rate-limiting']" "an open interface loses key-auth and acl"
is "$(kong_py '[c["key"] for c in d["data"]]' "/consumers/gw-key-$key_id/key-auth")" "['$key']" \
   "its keys stay consumers (no route asks for them now), so switching back needs no plaintext"
kq "UPDATE gateway.public_interfaces SET auth_type = 'api_key' WHERE id = '$iface'" >/dev/null
kwait "SELECT count(*) FROM gateway.sync_jobs" 0 >/dev/null
is "$(kq "SELECT kong_sync_state || ' ' || coalesce(kong_sync_error, '-') FROM gateway.api_keys WHERE id = '$key_id'")" "synced -" \
   "switching keys back on leaves the key synced, not dead"
is "$(kong_py '[c["key"] for c in d["data"]]' "/consumers/gw-key-$key_id/key-auth")" "['$key']" \
   "and Kong still has its credential"
is "$(kq "SELECT dead FROM gateway.sync_status WHERE target = 'kong'")" 0 "no dead letter"
first_key=$key_id

# Rotation: the successor becomes a consumer at once; the old key's consumer goes when the grace ends.
read -r key_id key < <(kq "SELECT key_id || ' ' || api_key FROM gateway.api_key_issue(
  'a5000000-0000-4000-8000-000000000001', 'c5000000-0000-4000-8000-000000000001', 'kong-key-2', '$iface')")
is "$(kwait "SELECT kong_sync_state FROM gateway.api_keys WHERE id = '$key_id'" synced)" synced "a new key syncs"
read -r new_id new_key < <(kq "SELECT new_key_id || ' ' || api_key FROM gateway.api_key_rotate('$key_id', interval '2 seconds')")
is "$(kwait "SELECT kong_sync_state FROM gateway.api_keys WHERE id = '$new_id'" synced)" synced "the rotated key syncs"
is "$(kong_py '[c["key"] for c in d["data"]]' "/consumers/gw-key-$new_id/key-auth")" "['$new_key']" "Kong has the new key"
sleep 2.5
is "$(kwait "SELECT count(*) FROM gateway.sync_jobs WHERE state <> 'dead'" 0)" 0 "the follow-up job at the end of the grace period ran"
is "$(kong GET "/consumers/gw-key-$key_id" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("message"))')" "Not found" \
   "the old key's consumer is gone once its grace period ended"

kq "SELECT gateway.api_key_revoke('$new_id')" >/dev/null
kwait "SELECT count(*) FROM gateway.sync_jobs" 0 >/dev/null
is "$(kong GET "/consumers/gw-key-$new_id" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("message"))')" "Not found" \
   "revoking a key removes its consumer and credential"

# Unpublish and delete.
kq "UPDATE gateway.service_interfaces SET is_public = false WHERE id = (SELECT service_interface_id FROM gateway.public_interfaces WHERE id = '$iface')" >/dev/null
kwait "SELECT sync_state FROM gateway.public_interfaces WHERE id = '$iface'" synced >/dev/null
is "$(kong GET "/services/gw-$iface" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("message"))')" "Not found" \
   "is_public = false removes the service, route and plugins"
kq "SELECT gateway.api_key_revoke('$first_key')" >/dev/null
kq "DELETE FROM gateway.service_interfaces WHERE id = (SELECT service_interface_id FROM gateway.public_interfaces WHERE id = '$other')" >/dev/null
kwait "SELECT count(*) FROM gateway.sync_jobs" 0 >/dev/null
is "$(kong_py 'd["objects"]' /__fake/stats)" "{'services': 0, 'routes': 0, 'consumers': 0, 'plugins': 0, 'keyauth_credentials': 0, 'acls': 0}" \
   "revoking the last key and deleting the last interface leaves Kong empty"
is "$(kq "SELECT count(*) FROM gateway.audit_log WHERE action LIKE 'public_interface.%'")" 6 \
   "interface changes are audited (2 inserts, 3 updates, 1 delete)"
is "$(kq "SELECT count(*) FROM gateway.audit_log WHERE details::text LIKE '%$(echo "$new_key" | cut -c17-)%'")" 0 \
   "no key in the audit log"
is "$(grep -c "$(echo "$new_key" | cut -c17-)" "$KCLUSTER/server.log")" 0 "no key in the server log"
# The worker reports its own statistics, so autovacuum sees the outbox churn.
is "$(kwait "SELECT n_tup_ins > 0 AND n_tup_del > 0 FROM pg_stat_user_tables WHERE relid = 'gateway.sync_jobs'::regclass" t 5)" t \
   "the worker's deletes of done jobs reach pg_stat_user_tables"
check_contract

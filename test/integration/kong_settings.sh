#!/usr/bin/env bash
# Connection settings: an Admin API behind a path prefix and a token header. The token comes from a
# private file (a setting's new value would be written to the server log on reload); a missing
# token is a dead letter with Kong's message, fixed by a reload.
set -u
source "$REPO/test/integration/lib/tap.sh"
source "$REPO/test/integration/lib/kong.sh"
plan 8

start_kong_fake kong-settings --path-prefix /kong-admin --require-header "Kong-Admin-Token: s3cret"
base=$KONG_URL
KONG_URL="$base/kong-admin"
kong_cluster kong-settings
KONG_URL=$base  # the test itself talks to the fake through its control port as usual

iface=$(publish behind-proxy)
is "$(kwait "SELECT sync_state FROM gateway.public_interfaces WHERE id = '$iface'" dead)" dead \
   "without the token Kong's 401 is a dead letter"
is "$(kq "SELECT sync_error FROM gateway.public_interfaces WHERE id = '$iface'")" \
   "HTTP 401: Invalid credentials. Token or User credentials required" "with Kong's message"

headers="$KCLUSTER/kong-headers"
printf '# sent with every Admin API request\nKong-Admin-Token: s3cret\nX-Request-Source: pg_gateway\n' | as_pg tee "$headers" >/dev/null
as_pg chmod 644 "$headers"
kq "ALTER SYSTEM SET gateway.kong_admin_headers_file = '$headers'" >/dev/null
kq "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
is "$(grep -c 'Kong Admin API header file .* is accessible by group or others' "$KCLUSTER/server.log")" 1 \
   "a header file others can read is refused, with a warning"
as_pg chmod 600 "$headers"
kq "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
kq "SELECT gateway.sync_retry(id) FROM gateway.sync_jobs WHERE state = 'dead'" >/dev/null
is "$(kwait "SELECT sync_state FROM gateway.public_interfaces WHERE id = '$iface'" synced)" synced \
   "with gateway.kong_admin_headers_file fixed and a reload, the retried job lands under the path prefix"
is "$(curl -s -H 'Kong-Admin-Token: s3cret' "$base/kong-admin/services/gw-$iface" | python3 -c 'import json,sys; print(json.load(sys.stdin)["name"])')" \
   "gw-$iface" "Kong has the service"

cluster_psql "$KCLUSTER" -d gateway -c "CREATE ROLE settings_reader LOGIN" >/dev/null
is "$(cluster_psql "$KCLUSTER" -d gateway -U settings_reader -Atc "SHOW gateway.kong_admin_headers_file" 2>&1 | grep -c 'permission denied\|must be superuser\|privileges of pg_read_all_settings')" 1 \
   "an ordinary role cannot even see where the header file is"
is "$(cluster_psql "$KCLUSTER" -d gateway -Atc "SHOW gateway.kong_admin_url")" "$base/kong-admin" \
   "the URL keeps its path prefix"
is "$(grep -c 's3cret' "$KCLUSTER/server.log")" 0 "the token never appears in the server log"

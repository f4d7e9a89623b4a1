#!/usr/bin/env bash
# Temporal connection settings: a frontend behind a path prefix that wants a bearer token. The
# token comes from a private file (a setting's new value would be written to the server log on
# reload); without it Temporal's 401 is a dead letter that names the setting, fixed by a reload.
set -u
source "$REPO/test/integration/lib/tap.sh"
source "$REPO/test/integration/lib/temporal.sh"
plan 7

start_temporal_fake temporal-settings --path-prefix /temporal --require-header "Authorization: Bearer t0ken"
base=$TEMPORAL_URL
TEMPORAL_URL="$base/temporal"
temporal_cluster temporal-settings
TEMPORAL_URL=$base  # the test talks to the fake's control endpoints as usual

c=$(connect behind-proxy)
approve "$c"
is "$(twait "SELECT sync_state FROM gateway.project_connectors WHERE id = '$c'" dead)" dead \
   "without the token Temporal's 401 is a dead letter"
ok $(tq "SELECT sync_error FROM gateway.project_connectors WHERE id = '$c'" | grep -q "401" && echo 0 || echo 1) \
   "its error says 401"

headers="$TCLUSTER/temporal-headers"
printf '# sent with every Temporal request\nAuthorization: Bearer t0ken\n' | as_pg tee "$headers" >/dev/null
as_pg chmod 644 "$headers"
tq "ALTER SYSTEM SET gateway.temporal_headers_file = '$headers'" >/dev/null
tq "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
# Two engines use the file (endpoint sync and calls): each refuses it and says so.
is "$(grep -c 'Temporal header file .* is accessible by group or others' "$TCLUSTER/server.log")" 2 \
   "a header file others can read is refused by both engines that use it, with a warning that names it"
as_pg chmod 600 "$headers"
tq "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
tq "SELECT gateway.sync_retry(id) FROM gateway.sync_jobs WHERE state = 'dead'" >/dev/null
is "$(twait "SELECT sync_state FROM gateway.project_connectors WHERE id = '$c'" synced)" synced \
   "with gateway.temporal_headers_file fixed and a reload, the retried job lands under the path prefix"
is "$(endpoint_count)" 1 "Temporal has the endpoint"
is "$(tq "SHOW gateway.temporal_url")" "$base/temporal" "the URL keeps its path prefix"
is "$(grep -c 't0ken' "$TCLUSTER/server.log")" 0 "the token never appears in the server log"

#!/usr/bin/env bash
# A hostile or broken Temporal answering call starts, and a connector whose auth_config tries to
# frame the request: every call ends in a sane final state with a bounded row, the worker keeps
# serving other calls and does not restart.
set -u
source "$REPO/test/integration/lib/tap.sh"
source "$REPO/test/integration/lib/temporal.sh"
source "$REPO/test/integration/lib/nexus.sh"
plan 12

start_temporal_fake nexus-hostile
nexus_cluster nexus-hostile
CONNECTOR=$(ready_connector hostile)
handler '*' '*' '{"kind": "sync", "result": {"ok": true}}'
worker_pid() { tq "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'"; }
PID=$(worker_pid)

# --- a 20 MB "successful" answer: not stored (gateway.callback_max_body bounds results too)
temporal_faults '{"error_rate": 1, "error_status": 200, "error_body": "huge", "error_path": "/services/"}'
id=$(call "$CONNECTOR")
is "$(settled "$id" 60)" failed "a 20 MB result fails the call"
is "$(call_field "$id" "failure->'details'->>'type'")" result_too_large "saying the result is too large"
ok "$([[ $(call_field "$id" "pg_column_size(connector_calls.*)") -lt 20000 ]]; echo $?)" "and the row stays small"

# --- invalid UTF-8 and NUL in a 200: kept byte for byte, storable
for body in invalid_utf8 nul; do
  temporal_faults "{\"error_rate\": 1, \"error_status\": 200, \"error_body\": \"$body\", \"error_path\": \"/services/\"}"
  id=$(call "$CONNECTOR")
  is "$(settled "$id" 30)/$(call_field "$id" "result ? 'base64'")" succeeded/t "a 200 with $body JSON is kept as bytes"
done
temporal_faults '{"error_rate": 0}'

# --- a 424 whose Failure nests 400 causes (the fake's JSON reader stops near 1,000 levels)
deep=$(python3 -c 'import json
f = {"message": "leaf"}
for i in range(400): f = {"message": "m%d" % i, "cause": f}
print(json.dumps(f))')
handler '*' '*' "{\"kind\": \"failure\", \"state\": \"failed\", \"failure\": $deep}"
id=$(call "$CONNECTOR")
is "$(settled "$id" 30)/$(call_field "$id" "failure->'details'->>'type'")" failed/unreadable_failure \
   "a Failure nesting 400 causes (over 32) fails the call as unreadable"
ok "$([[ $(call_field "$id" "pg_column_size(failure)") -lt 10000 ]]; echo $?)" "its stored failure is bounded"
handler '*' '*' '{"kind": "sync", "result": {"ok": true}}'

# --- a connector auth_config header that frames the request is refused; nothing is started
starts=$(nexus_stat nexus_starts)
tq "UPDATE gateway.project_connectors SET auth_config = '{\"headers\": {\"Transfer-Encoding\": \"gzip\"}}'
     WHERE id = '$CONNECTOR'" >/dev/null
id=$(call "$CONNECTOR")
is "$(settled "$id" 30)" failed "an auth_config Transfer-Encoding header fails the call"
is "$(nexus_stat nexus_starts)" "$starts" "and nothing reached the handler"
tq "UPDATE gateway.project_connectors SET auth_config = '{}' WHERE id = '$CONNECTOR'" >/dev/null

# --- the worker kept serving
id=$(call "$CONNECTOR")
is "$(settled "$id" 30)" succeeded "a plain call afterwards succeeds"
is "$(worker_pid)" "$PID" "the same worker served them all (no crash, no restart)"
check_temporal_contract

#!/usr/bin/env bash
# Cross-project calls end to end: a call queued in SQL is started by the worker at the connector's
# endpoint, and every kind of answer lands on its row: a synchronous result, an asynchronous
# completion delivered to the callback listener, a failure, a cancellation, handler errors
# (retried or not), no worker on the target's task queue, an unknown operation; a bad input is
# refused before anything is queued; NOTIFY announces final states.
set -u
source "$REPO/test/integration/lib/tap.sh"
source "$REPO/test/integration/lib/temporal.sh"
source "$REPO/test/integration/lib/nexus.sh"
plan 36

start_temporal_fake nexus-calls
nexus_cluster nexus-calls
tq "UPDATE gateway.service_interfaces SET input_schema =
      '{\"type\": \"object\", \"required\": [\"orderId\"],
        \"properties\": {\"orderId\": {\"type\": \"string\"}, \"items\": {\"type\": \"array\", \"items\": {\"type\": \"integer\"}}}}'
     WHERE id = '$TARGET_INTERFACE'" >/dev/null
CONNECTOR=$(ready_connector calls)
ENDPOINT=$(tq "SELECT nexus_endpoint_id FROM gateway.project_connectors WHERE id = '$CONNECTOR'")

# --- a synchronous result, and what the start request carried
handler '*' '*' '{"kind": "echo"}'
id=$(call "$CONNECTOR" '{"orderId": "o-1", "items": [1, 2]}' '30 s')
is "$(settled "$id")" succeeded "a synchronous answer (200) makes the call succeeded"
is "$(call_field "$id" "result->'input'->>'orderId'")" o-1 "its result is the handler's answer, stored as JSON"
is "$(call_field "$id" "result->'headers'->>'nexus-request-id'")" "$id" "the start carries the call's id as Nexus-Request-Id"
timeout_ms=$(call_field "$id" "(result->'headers'->>'operation-timeout')")
ok "$([[ "$timeout_ms" =~ ^[0-9]+ms$ && ${timeout_ms%ms} -le 30000 && ${timeout_ms%ms} -gt 20000 ]]; echo $?)" \
   "Operation-Timeout is what is left of the call's 30 s ($timeout_ms)"
request_ms=$(call_field "$id" "(result->'headers'->>'request-timeout')")
ok "$([[ "$request_ms" =~ ^[0-9]+ms$ && ${request_ms%ms} -le 30000 ]]; echo $?)" "Request-Timeout is bounded by the call's deadline ($request_ms)"
is "$(call_field "$id" "result->'headers'->>'pg-gateway-interface-type'")" update "the handler learns the interface's type"
is "$(call_field "$id" "result->'headers'->>'pg-gateway-callable'")" approveOrder "and the callable it maps to"
is "$(call_field "$id" "endpoint_id")" "$ENDPOINT" "the row records the endpoint it was started at"
is "$(call_field "$id" "attempts")" 1 "one attempt"

# --- the input schema guards the queue
out=$(tq "SELECT gateway.connector_call('$CONNECTOR', '{\"orderId\": \"o-2\", \"items\": [1, \"two\"]}')" 2>&1)
ok "$([[ "$out" == *"/items/1"* ]]; echo $?)" "a bad input is refused with the JSON pointer that fails ($out)"
is "$(tq "SELECT count(*) FROM gateway.connector_calls WHERE input->>'orderId' = 'o-2'")" 0 "and nothing is queued"
state=$(cluster_psql "$TCLUSTER" -d gateway -At -v VERBOSITY=verbose -c "SELECT gateway.connector_call('$CONNECTOR', '{}')" 2>&1 | grep -o '22023' | head -1)
is "$state" 22023 "a missing required property is SQLSTATE 22023"

# --- asynchronous: 201 now, the completion later through the listener, announced by NOTIFY
handler '*' '*' '{"kind": "async", "delay_ms": 300, "outcome": "succeeded", "result": {"approved": true}}'
listener_out="$STAGE/nexus-calls.notify"
# Two commands, not one -c string: LISTEN takes effect when its own transaction commits.
( printf 'LISTEN gateway_connector_calls;\nSELECT pg_sleep(4);\n' | cluster_psql "$TCLUSTER" -d gateway -At >"$listener_out" 2>&1 & )
sleep 0.3
id=$(call "$CONNECTOR" '{"orderId": "o-3"}')
is "$(twait "SELECT state FROM gateway.connector_calls WHERE id = '$id'" running 10)" running "an asynchronous start (201) makes the call running"
ok "$([[ -n "$(call_field "$id" operation_token)" ]]; echo $?)" "with the operation token"
is "$(settled "$id")" succeeded "the completion delivered to the callback listener makes it succeeded"
is "$(call_field "$id" "result->>'approved'")" true "with the operation's result"
is "$(call_field "$id" "jsonb_array_length(links) > 0")" t "and the Nexus links the handler returned"
sleep 4
ok "$(grep -q "\"id\": \"$id\", \"state\": \"succeeded\"" "$listener_out"; echo $?)" "LISTEN gateway_connector_calls hears the final state"

# --- failures
handler '*' '*' '{"kind": "failure", "state": "failed", "failure": {"message": "order is closed", "metadata": {"type": "nexus.OperationError"}, "details": {"state": "failed"}}}'
id=$(call "$CONNECTOR" '{"orderId": "o-4"}')
is "$(settled "$id")" failed "a 424 failed answer makes the call failed"
is "$(call_field "$id" "failure->>'message'")" "order is closed" "with the handler's Failure"
handler '*' '*' '{"kind": "failure", "state": "canceled", "failure": {"message": "canceled by the handler", "details": {"state": "canceled"}}}'
id=$(call "$CONNECTOR" '{"orderId": "o-5"}')
is "$(settled "$id")" canceled "a 424 canceled answer makes the call canceled"
handler '*' '*' '{"kind": "handler_error", "status": 400, "type": "BAD_REQUEST", "message": "bad order"}'
id=$(call "$CONNECTOR" '{"orderId": "o-6"}')
is "$(settled "$id")" failed "a non-retryable handler error (400) fails the call at once"
is "$(call_field "$id" "failure->'details'->>'type'")" BAD_REQUEST "its failure names the handler error type"
is "$(call_field "$id" attempts)" 1 "without a retry"

# --- retryable errors are retried, and the row says why it waits
handler '*' '*' '{"kind": "no_worker"}'
id=$(call "$CONNECTOR" '{"orderId": "o-7"}')
err=$(twait "SELECT last_error LIKE '%no worker polls%' FROM gateway.connector_calls WHERE id = '$id'" t 20)
is "$err" t "520 upstream timeout: the row says no worker polls the target's task queue"
is "$(call_field "$id" state)" started "and the call waits to be retried"
handler '*' '*' '{"kind": "sync", "result": {"late": true}}'
is "$(settled "$id" 30)" succeeded "once a worker answers, the retried call succeeds"
is "$(nexus_stat nexus_duplicate_operations)" 0 "no operation was started twice"

# --- an unknown operation
temporal DELETE /__fake/nexus/handlers >/dev/null
id=$(call "$CONNECTOR" '{"orderId": "o-8"}')
is "$(settled "$id")" failed "an operation the handler does not serve fails the call (404)"

# --- the listener refuses a completion without the call's token
handler '*' '*' '{"kind": "async", "delay_ms": 60000, "outcome": "succeeded", "result": {}}'
id=$(call "$CONNECTOR" '{"orderId": "o-9"}')
twait "SELECT state FROM gateway.connector_calls WHERE id = '$id'" running 10 >/dev/null
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$CALLBACK_URL/nexus/calls/$id" \
         -H 'Pg-Gateway-Token: forged' -H 'Nexus-Operation-State: succeeded' -H 'Content-Type: application/json' -d '{"forged": true}')
is "$code" 401 "a completion with a wrong token is refused (401)"
is "$(call_field "$id" state)" running "and changes nothing"

# --- cancel: a running call is canceled at the handler, the outcome arrives as usual
is "$(tq "SELECT gateway.connector_call_cancel('$id')")" t "cancel of a running call is accepted"
is "$(settled "$id" 20)" canceled "the handler cancels it and the completion says canceled"
is "$(nexus_stat nexus_cancels)" 1 "one cancel request reached the handler"

# --- monitoring
is "$(tq "SELECT succeeded >= 3 AND failed >= 3 AND canceled >= 2 AND p50_ms > 0 AND p99_ms >= p50_ms
            FROM gateway.connector_call_stats WHERE connector_id = '$CONNECTOR'")" t \
   "connector_call_stats counts the calls by state, with latency percentiles"
check_temporal_contract

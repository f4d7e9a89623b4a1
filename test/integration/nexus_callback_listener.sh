#!/usr/bin/env bash
# The Nexus completion callback listener (gateway.callback_listen): a valid completion lands on its
# call and is announced with NOTIFY; every malformed, unauthenticated, oversized or late one is
# refused with the status Temporal expects and changes nothing; a client that stalls does not hold
# up the others; a burst of 200 is accepted; a taken address is retried, not a crash loop.
set -u
source "$REPO/test/integration/lib/tap.sh"
plan 42

LCLUSTER=$(own_cluster callback-listener)
lport=$(free_port 26600)
cport=$(free_port 26700)
cluster_init "$LCLUSTER" "$lport" "gateway.callback_listen = '127.0.0.1:$cport'" \
  "gateway.usage_flush_interval = '100ms'" >/dev/null
cluster_start "$LCLUSTER"
trap 'cluster_stop "$LCLUSTER"' EXIT
lq() { cluster_psql "$LCLUSTER" -d gateway -At -c "$1"; }
lwait() { poll_with lq "$@"; }
cluster_psql "$LCLUSTER" -d postgres -c "CREATE DATABASE gateway" >/dev/null
cluster_psql "$LCLUSTER" -d gateway -c "CREATE EXTENSION pg_gateway" >/dev/null
BASE="http://127.0.0.1:$cport"

# TEMPORARY until the lead's sql/pg_gateway--0.4.0--0.5.0.sql is in this branch: stand-ins for
# gateway.connector_calls, gateway._connector_call_complete() and gateway._callback_token(),
# created only when the extension does not have them. Remove this block on merge.
lq "DO \$do\$ BEGIN
  IF to_regclass('gateway.connector_calls') IS NULL THEN
    CREATE TABLE gateway.connector_calls (
      id uuid PRIMARY KEY, connector_id uuid, source_project_id uuid, target_project_id uuid,
      endpoint_id text, service text, operation text, input jsonb,
      state text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'started', 'running', 'succeeded',
                                                             'failed', 'canceled', 'timed_out')),
      operation_token text, result jsonb, failure jsonb, links jsonb, attempts int NOT NULL DEFAULT 0,
      last_error text, last_status int, created_by uuid, created_at timestamptz NOT NULL DEFAULT now(),
      started_at timestamptz, finished_at timestamptz, deadline timestamptz,
      cancel_requested_at timestamptz, cancel_sent_at timestamptz);
  END IF;
  IF to_regprocedure('gateway._connector_call_complete(uuid,text,jsonb,jsonb,jsonb,text,timestamptz,timestamptz)') IS NULL THEN
    CREATE FUNCTION gateway._connector_call_complete(call_id uuid, new_state text, new_result jsonb,
        new_failure jsonb, new_links jsonb, new_token text, start_time timestamptz, close_time timestamptz)
      RETURNS text LANGUAGE plpgsql AS \$f\$
    DECLARE current text;
    BEGIN
      SELECT c.state INTO current FROM gateway.connector_calls c WHERE c.id = call_id FOR UPDATE;
      IF NOT FOUND THEN RETURN 'unknown'; END IF;
      IF current IN ('succeeded', 'failed', 'canceled', 'timed_out') THEN RETURN 'finished'; END IF;
      UPDATE gateway.connector_calls c
         SET state = new_state, result = new_result, failure = new_failure,
             links = COALESCE(new_links, c.links), operation_token = COALESCE(new_token, c.operation_token),
             started_at = COALESCE(c.started_at, start_time), finished_at = COALESCE(close_time, now())
       WHERE c.id = call_id;
      PERFORM pg_notify('gateway_connector_calls', json_build_object('id', call_id, 'state', new_state)::text);
      RETURN 'accepted';
    END \$f\$;
  END IF;
  IF to_regprocedure('gateway._callback_token(uuid)') IS NULL THEN
    CREATE FUNCTION gateway._callback_token(call_id uuid) RETURNS text
      AS '\$libdir/pg_gateway', 'gateway_callback_token' LANGUAGE C STRICT;
  END IF;
END \$do\$" >/dev/null
# End of TEMPORARY.

# new_call SERVICE: a started call whose start answer has not come back yet (no operation token:
# a completion may arrive before it); prints its id.
new_call() {
  lq "INSERT INTO gateway.connector_calls (id, source_project_id, target_project_id, endpoint_id,
                                           service, operation, input, state, operation_token,
                                           attempts, created_by, started_at, deadline)
      VALUES (gen_random_uuid(), 'd1000000-0000-4000-8000-00000000000a', 'd2000000-0000-4000-8000-00000000000b',
              'endpoint-1', '$1', 'approve-order', '{}', 'started', NULL, 1,
              'e1000000-0000-4000-8000-000000000001', now(), now() + interval '1 hour')
      RETURNING id"
}
token() { lq "SELECT gateway._callback_token('$1')"; }

# post ID [curl args...]: a completion callback; prints the status code.
post() {
  local id=$1
  shift
  curl -s -o /dev/null -w '%{http_code}' --max-time 20 -X POST "$BASE/nexus/calls/$id" "$@"
}
# complete ID TOKEN STATE BODY [curl args...]: a JSON completion as Temporal sends it.
complete() {
  local id=$1 tok=$2 state=$3 body=$4
  shift 4
  post "$id" -H "Pg-Gateway-Token: $tok" -H "Nexus-Operation-State: $state" \
    -H 'Content-Type: application/json' -H "Nexus-Operation-Token: op-token-x" \
    -H 'Nexus-Operation-Start-Time: Sun, 29 Nov 2026 08:00:00 GMT' \
    -H 'Nexus-Operation-Close-Time: 2026-11-29T08:00:01.250Z' \
    -H 'Nexus-Link: <temporal:///namespaces/project-b/workflows/wf-1/run-1/history>; type="temporal.api.common.v1.Link.WorkflowEvent"' \
    --data-binary "$body" "$@"
}
call_state() { lq "SELECT state || ' ' || coalesce(result::text, '-') || ' ' || coalesce(failure::text, '-') FROM gateway.connector_calls WHERE id = '$1'"; }

is "$(lwait "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_gateway callback listener'" 1)" 1 \
   "with gateway.callback_listen set, the listener runs as its own background worker"
for i in $(seq 100); do curl -s -o /dev/null "$BASE/" && break; sleep 0.05; done

# --- accepted ---
c1=$(new_call one)
t1=$(token "$c1")
listen_out="$LCLUSTER/listen.out"
cluster_psql "$LCLUSTER" -d gateway -At -c "LISTEN gateway_connector_calls" -c "SELECT pg_sleep(2)" >"$listen_out" 2>&1 &
listen_pid=$!
sleep 0.5
is "$(complete "$c1" "$t1" succeeded '{"approved": true, "by": "b"}')" 200 "a valid completion is accepted (200)"
is "$(call_state "$c1")" 'succeeded {"by": "b", "approved": true} -' "it lands on the call: state and result"
is "$(lq "SELECT operation_token || ' ' || (links->0->>'type') || ' ' || (links->0->>'url')
          FROM gateway.connector_calls WHERE id = '$c1'")" \
   "op-token-x temporal.api.common.v1.Link.WorkflowEvent temporal:///namespaces/project-b/workflows/wf-1/run-1/history" \
   "the operation token and the Nexus-Link are recorded"
wait "$listen_pid"
ok $(grep -q "notification \"gateway_connector_calls\" with payload .*$c1.*succeeded" "$listen_out" && echo 0 || echo 1) \
   "a NOTIFY on gateway_connector_calls announces it"
ok $(curl -s -D - -o /dev/null -X POST "$BASE/nexus/calls/$c1" -H "Pg-Gateway-Token: $t1" \
       -H 'Nexus-Operation-State: succeeded' -d 'null' | grep -q '^HTTP/1.1 409' && echo 0 || echo 1) \
   "the same completion again: 409, the call has already finished"

# --- refused: nothing changes ---
c2=$(new_call two)
t2=$(token "$c2")
before=$(call_state "$c2")
is "$(complete "$c2" "$t1" succeeded '{"forged": true}')" 401 "another call's token: 401"
is "$(complete "$c2" "${t2%?}x" succeeded '{"forged": true}')" 401 "a tampered token: 401"
is "$(post "$c2" -H 'Nexus-Operation-State: succeeded' -H 'Content-Type: application/json' -d '{"forged": true}')" 401 \
   "no token: 401"
rand=$(lq "SELECT gen_random_uuid()")
is "$(complete "$rand" "$(token "$rand")" succeeded '{}')" 404 "a call that does not exist, with a valid token: 404"
is "$(complete "$c2" "$t2" finished '{}')" 400 "an unknown Nexus-Operation-State: 400"
is "$(post "$c2" -H "Pg-Gateway-Token: $t2" -H 'Content-Type: application/json' -d '{}')" 400 \
   "no Nexus-Operation-State: 400"
is "$(complete "$c2" "$t2" succeeded '{"approved": tru')" 400 "a body that is not JSON: 400"
is "$(complete "$c2" "$t2" succeeded "$(printf '{"name": "\xff\xfe"}')")" 400 "a body that is not UTF-8: 400"
is "$(complete "$c2" "$t2" failed '"just a string"')" 400 "a failed completion whose body is not a Failure object: 400"
is "$(post "$c2" -H "Pg-Gateway-Token: $t2" -H 'Nexus-Operation-State: succeeded' -H 'Content-Type: application/json' \
          -H 'Nexus-Operation-Close-Time: yesterday-ish' -d '{}')" 400 \
   "a close time that is not a timestamp: 400"
big=$(head -c 3000 /dev/zero | tr '\0' 'a')
lq "ALTER SYSTEM SET gateway.callback_max_body = 2048" >/dev/null
lq "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
is "$(complete "$c2" "$t2" succeeded "{\"pad\": \"$big\"}")" 413 \
   "a body over gateway.callback_max_body (lowered by a reload): 413"
is "$(complete "$c2" "$t2" succeeded "{\"pad\": \"$big\"}" -H 'Transfer-Encoding: chunked')" 413 \
   "the same, chunked without a Content-Length: 413"
is "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/nexus/calls/$c2" -H "Pg-Gateway-Token: $t2")" 405 "GET: 405"
is "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$BASE/nexus/calls/not-a-uuid" -d '{}')" 404 \
   "a path that is not a call: 404"
is "$(call_state "$c2")" "$before" "none of the refused callbacks changed the call"
c3=$(new_call three)
is "$(complete "$c3" "$(token "$c3")" failed '{"message": "order rejected", "failureInfo": {"applicationFailureInfo": {"type": "Rejected"}}}')" \
   200 "a failed completion with a Failure object is accepted"
is "$(lq "SELECT state || ' ' || (failure->>'message') FROM gateway.connector_calls WHERE id = '$c3'")" \
   "failed order rejected" "its Failure is recorded"

# --- a call row another transaction holds: 503 once lock_timeout passes; Temporal's retry lands ---
c6=$(new_call six)
t6=$(token "$c6")
cluster_psql "$LCLUSTER" -d gateway -At -c "BEGIN" -c "SELECT 1 FROM gateway.connector_calls WHERE id = '$c6' FOR UPDATE" \
  -c "SELECT pg_sleep(6.5)" -c "COMMIT" >/dev/null 2>&1 &
locker=$!
sleep 0.5
is "$(complete "$c6" "$t6" succeeded '{"locked": true}')" 503 \
   "a call locked by another transaction for longer than the listener waits: 503 (Temporal retries)"
wait "$locker"
is "$(complete "$c6" "$t6" succeeded '{"locked": true}')" 200 "the retry once the lock is gone is accepted"

# --- a client that stalls does not hold up the others; the connection timeout ends it ---
c4=$(new_call four)
t4=$(token "$c4")
slow=$(python3 - "$cport" "$c4" "$t4" <<'PY'
import http.client, socket, sys, time
port, call, tok = int(sys.argv[1]), sys.argv[2], sys.argv[3]
stalled = []
# One stalls in its headers, one after them (the body never comes).
s = socket.create_connection(("127.0.0.1", port)); s.sendall(b"POST /nexus/calls/" + call.encode() + b" HTTP/1.1\r\nHost: x\r\n"); stalled.append(s)
s = socket.create_connection(("127.0.0.1", port))
s.sendall(("POST /nexus/calls/%s HTTP/1.1\r\nHost: x\r\nPg-Gateway-Token: %s\r\nNexus-Operation-State: succeeded\r\n"
           "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{" % (call, tok)).encode()); stalled.append(s)
time.sleep(0.3)
t0 = time.monotonic()
c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
c.request("POST", "/nexus/calls/" + call, body=b'{"fast": true}',
          headers={"Pg-Gateway-Token": tok, "Nexus-Operation-State": "succeeded", "Content-Type": "application/json"})
status = c.getresponse().status
answered = time.monotonic() - t0
closed = []
for s in stalled:
    s.settimeout(20)
    try:
        s.recv(1024)  # b"" (or a 408 from libmicrohttpd) when the listener gives up on it
    except OSError:
        pass
    closed.append(time.monotonic() - t0)
print(status, "%.2f" % answered, "%.1f" % max(closed))
PY
)
read -r slow_status slow_answered slow_closed <<<"$slow"
diag "stalled clients: the second callback answered in ${slow_answered}s, stalled connections closed after ${slow_closed}s"
is "$slow_status" 200 "with two clients stalled mid-request, another callback is accepted"
ok "$(python3 -c "import sys; sys.exit(0 if float('$slow_answered') < 2 else 1)"; echo $?)" \
   "and answered at once, well before the 10 s connection timeout"
ok "$(python3 -c "import sys; sys.exit(0 if float('$slow_closed') < 16 else 1)"; echo $?)" \
   "the stalled connections are closed by the connection timeout"
is "$(call_state "$c4")" 'succeeded {"fast": true} -' "the stalled partial completion changed nothing"

# --- clients trickling a byte at a time hold no slot for long (gateway.callback_request_timeout) ---
lq "ALTER SYSTEM SET gateway.callback_request_timeout = '3s'" >/dev/null
lq "SELECT pg_reload_conf()" >/dev/null
c6=$(lq "INSERT INTO gateway.connector_calls (id, source_project_id, target_project_id, endpoint_id, service,
                                              operation, input, state, operation_token, attempts, created_by,
                                              started_at, deadline)
         VALUES (gen_random_uuid(), 'd1000000-0000-4000-8000-00000000000a', 'd2000000-0000-4000-8000-00000000000b',
                 'endpoint-1', 'trickle', 'approve-order', '{}', 'running', 'op-t', 1,
                 'e1000000-0000-4000-8000-000000000001', now(), now() + interval '1 hour') RETURNING id")
trickle=$(python3 - "$cport" "$c6" "$(token "$c6")" <<'PY'
import http.client, socket, sys, threading, time
port, call, tok = int(sys.argv[1]), sys.argv[2], sys.argv[3]
stop = time.monotonic() + 14
def trickle():
    # Each of the listener's 64 connections gets a client sending one header byte every 0.5 s:
    # never idle long enough for the idle timeout (10 s).
    try:
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"POST /nexus/calls/" + call.encode() + b" HTTP/1.1\r\nX-Slow: ")
        while time.monotonic() < stop:
            s.sendall(b"a"); time.sleep(0.5)
    except OSError:
        pass
threads = [threading.Thread(target=trickle, daemon=True) for _ in range(64)]
for t in threads: t.start()
time.sleep(0.5)
t0 = time.monotonic()
status = 0
# (A try that gave up client-side may still have landed: the next one then hears 409.)
while time.monotonic() - t0 < 12 and status not in (200, 409):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("POST", "/nexus/calls/" + call, body=b'{"trickled": false}',
                  headers={"Pg-Gateway-Token": tok, "Nexus-Operation-State": "succeeded", "Content-Type": "application/json"})
        status = c.getresponse().status
    except OSError:
        time.sleep(0.2)
print(status, "%.1f" % (time.monotonic() - t0))
PY
)
read -r trickle_status trickle_after <<<"$trickle"
diag "64 trickling clients: a valid completion got through after ${trickle_after}s"
ok "$([[ $trickle_status == 200 || $trickle_status == 409 ]]; echo $?)" "with 64 clients trickling bytes into every connection, a valid completion still gets through ($trickle_status)"
is "$(call_state "$c6" | cut -c1-9)" succeeded "and lands on its row"
ok "$(python3 -c "import sys; sys.exit(0 if float('$trickle_after') < 8 else 1)"; echo $?)" \
   "once gateway.callback_request_timeout (3 s here) closes them, long before the idle timeout would"
lq "ALTER SYSTEM RESET gateway.callback_request_timeout" >/dev/null
lq "SELECT pg_reload_conf()" >/dev/null

# --- a burst of 200 ---
lq "INSERT INTO gateway.connector_calls (id, source_project_id, target_project_id, endpoint_id, service,
                                         operation, input, state, operation_token, attempts, created_by,
                                         started_at, deadline)
    SELECT gen_random_uuid(), 'd1000000-0000-4000-8000-00000000000a', 'd2000000-0000-4000-8000-00000000000b',
           'endpoint-1', 'burst', 'approve-order', '{}', 'running', 'op-' || i, 1,
           'e1000000-0000-4000-8000-000000000001', now(), now() + interval '1 hour'
      FROM generate_series(1, 200) AS i" >/dev/null
lq "SELECT id || ' ' || gateway._callback_token(id) FROM gateway.connector_calls WHERE service = 'burst'" >"$LCLUSTER/burst.calls"
burst=$(python3 - "$cport" "$LCLUSTER/burst.calls" <<'PY'
import collections, concurrent.futures, http.client, sys, time
port, calls = int(sys.argv[1]), [l.split() for l in open(sys.argv[2]) if l.strip()]
def send(call):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("POST", "/nexus/calls/" + call[0], body=b'{"burst": true}',
              headers={"Pg-Gateway-Token": call[1], "Nexus-Operation-State": "succeeded",
                       "Content-Type": "application/json"})
    status = c.getresponse().status
    c.close()
    return status
t0 = time.monotonic()
with concurrent.futures.ThreadPoolExecutor(32) as pool:
    statuses = collections.Counter(pool.map(send, calls))
elapsed = time.monotonic() - t0
print(statuses.get(200, 0), int(len(calls) / elapsed), dict(statuses))
PY
)
read -r burst_ok burst_rate burst_rest <<<"$burst"
diag "callbacks/s: $burst_rate"
is "$burst_ok" 200 "a burst of 200 concurrent callbacks: every one is accepted ($burst_rest)"
is "$(lq "SELECT count(*) FROM gateway.connector_calls WHERE service = 'burst' AND state = 'succeeded'")" 200 \
   "and every one landed"

# --- the log, settings, restarts ---
is "$(grep -c -e "$t1" -e "$t2" -e "$t4" -e '"forged"' -e 'order rejected' "$LCLUSTER/server.log")" 0 \
   "neither a token nor a body ever appears in the server log"
ok $(grep -q "refused a completion for call $c2 with 401" "$LCLUSTER/server.log" && echo 0 || echo 1) \
   "each refusal is logged with the call id and the reason"
ok $(lq "ALTER SYSTEM SET gateway.callback_listen = 'example.com:80'" 2>&1 | grep -q 'not an IPv4 address or localhost' && echo 0 || echo 1) \
   "a callback_listen that is not an IPv4 address is refused with a clear message"

lq "CREATE ROLE regress_cb_peek; GRANT USAGE ON SCHEMA gateway TO regress_cb_peek" >/dev/null
ok $(cluster_psql "$LCLUSTER" -d gateway -At -c "SET ROLE regress_cb_peek" -c "SELECT gateway._callback_token('$c2')" 2>&1 |
     grep -q 'permission denied for function _callback_token' && echo 0 || echo 1) \
   "only a superuser may compute a callback token"

old_pid=$(lq "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_gateway callback listener'")
lq "SELECT pg_terminate_backend($old_pid)" >/dev/null
is "$(lwait "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_gateway callback listener' AND pid <> $old_pid" 1 20)" 1 \
   "a terminated listener is started again"

# The address taken by someone else when the server starts: logged with a hint, retried.
cluster_stop "$LCLUSTER"
squat="$LCLUSTER/squatter.bound"
rm -f "$squat"
python3 -c "
import socket, time
for _ in range(100):  # a closing connection of the old listener may hold the port a moment
    try:
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', $cport)); s.listen(1); break
    except OSError:
        s.close(); time.sleep(0.1)
open('$squat', 'w').write('bound')
time.sleep(6)" &
squatter=$!
for i in $(seq 120); do [[ -s "$squat" ]] && break; sleep 0.1; done
ss -tln 2>/dev/null | grep ":$cport " | sed "s/^/# squatter: /"
cluster_start "$LCLUSTER"
taken="callback listener could not listen on 127.0.0.1:$cport: Address already in use"
for i in $(seq 100); do grep -q "$taken" "$LCLUSTER/server.log" && break; sleep 0.1; done
ok $(grep -q "$taken" "$LCLUSTER/server.log" && echo 0 || echo 1) \
   "a taken address is logged with the reason"
wait "$squatter"
c5=$(new_call five)
code=000
for i in $(seq 150); do code=$(complete "$c5" "$(token "$c5")" succeeded '{"late": true}'); [[ $code == 200 ]] && break; sleep 0.1; done
is "$code" 200 "once the address is free the listener binds it and serves, without a crash loop"
ok $(( $(grep -c "callback listener could not listen" "$LCLUSTER/server.log") <= 2 ? 0 : 1 )) \
   "the failure is not logged at every retry"

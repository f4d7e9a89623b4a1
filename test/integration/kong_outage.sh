#!/usr/bin/env bash
# Kong down, a 5xx storm, 429s: the database keeps accepting changes, jobs wait and retry with
# backoff, the circuit breaker stops hammering, and everything catches up when Kong is back.
set -u
source "$REPO/test/integration/lib/tap.sh"
source "$REPO/test/integration/lib/kong.sh"
plan 12

start_kong_fake kong-outage
kong_cluster kong-outage

fake_faults '{"down": true}'
start=$(date +%s%N)
for i in $(seq 20); do publish "down-$i" 30 >/dev/null; done
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
ok $((elapsed_ms < 10000 ? 0 : 1)) "20 interfaces published while Kong is down (commits never wait for Kong: ${elapsed_ms} ms)"
is "$(kwait "SELECT count(*) FROM gateway.public_interfaces WHERE sync_state = 'failed'" 20)" 20 \
   "their state says failed (retrying)"
is "$(kq "SELECT pending > 0 AND retrying > 0 AND last_error LIKE 'no answer:%' FROM gateway.sync_status WHERE target = 'kong'")" t \
   "sync_status shows the retries and the connection error"
sleep 2
attempts=$(kq "SELECT max(attempts) FROM gateway.sync_jobs")
ok $((attempts <= 8 ? 0 : 1)) "backoff and the circuit breaker keep attempts low while down (max $attempts in ~3 s)"

fake_faults '{"down": false}'
is "$(kwait "$ALL_SYNCED" 0 30)" 0 "when Kong returns, everything catches up"
is "$(kong_py 'd["objects"]["services"]' /__fake/stats)" 20 "each interface exists once in Kong"
is "$(kq "SELECT count(*) FROM gateway.public_interfaces WHERE sync_error IS NOT NULL")" 0 "errors are cleared"

# A 5xx storm: 30 % of all requests fail (a job of 5 calls fails 5 times in 6).
fake_faults '{"error_rate": 0.3, "error_status": 503}'
for i in $(seq 20); do publish "storm-$i" >/dev/null; done
kq "UPDATE gateway.public_interfaces SET rate_limit_per_minute = 99 WHERE rate_limit_per_minute = 30" >/dev/null
is "$(kwait "$ALL_SYNCED" 0 60)" 0 "through a 5xx storm every change lands"
fake_faults '{"error_rate": 0}'
is "$(kong_py 'len([p for p in d["data"] if p["name"] == "rate-limiting" and p["config"]["minute"] == 99])' '/plugins?size=1000')" 20 \
   "with the latest values"
is "$(kong_py 'd["objects"]["services"]' /__fake/stats)" 40 "and no duplicates"

# 429: Kong asks us to slow down; Retry-After is honoured.
fake_faults '{"rate_limit": true}'
publish slow-down >/dev/null
is "$(kwait "SELECT bool_or(last_status = 429) AND bool_and(state <> 'dead') FROM gateway.sync_jobs" t)" t "a 429 is retried, not dead"
fake_faults '{"rate_limit": false}'
is "$(kwait "$ALL_SYNCED" 0 30)" 0 "and lands once Kong accepts again"

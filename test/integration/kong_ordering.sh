#!/usr/bin/env bash
# One job per object at a time: a change committed while the object's previous job is still
# talking to Kong waits for it, so the two jobs' writes never interleave and the last change is
# what Kong ends up with. The fake answers slowly, so the first job is still running when the
# changes arrive.
set -u
source "$REPO/test/integration/lib/tap.sh"
source "$REPO/test/integration/lib/kong.sh"
plan 6

start_kong_fake kong-ordering
kong_cluster kong-ordering
# The worker is up and syncing before the timing below starts.
warm=$(publish warm-up)
kwait "SELECT sync_state FROM gateway.public_interfaces WHERE id = '$warm'" synced >/dev/null
fake_faults '{"latency_ms": 150}'

# Running-job counts per object, sampled while the jobs run.
sample_running() {
  local i
  for i in $(seq 60); do
    kq "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM gateway.sync_jobs
         WHERE state = 'running' GROUP BY object_kind, object_id) AS c"
    sleep 0.05
  done | sort -n | tail -1
}

iface=$(publish ordered 10)
sleep 0.05
kq "UPDATE gateway.public_interfaces SET rate_limit_per_minute = 30 WHERE id = '$iface'" >/dev/null
sample_running >"$STAGE/ordering.max" &
sampler=$!
sleep 0.1
kq "UPDATE gateway.public_interfaces SET rate_limit_per_minute = 45 WHERE id = '$iface'" >/dev/null
is "$(kq "SELECT string_agg(state, ',' ORDER BY state) FROM gateway.sync_jobs WHERE object_id = '$iface'")" \
   pending,running "the changes made while the first job runs wait for it, as one pending job"
wait "$sampler"
is "$(cat "$STAGE/ordering.max")" 1 "never more than one running job per object"

fake_faults '{"latency_ms": 0}'
is "$(kwait "$ALL_SYNCED" 0 30)" 0 "everything synced"
is "$(kong_py 'sorted(p["config"]["minute"] for p in d["data"] if p["name"] == "rate-limiting")' /plugins)" "[45]" \
   "Kong has the last change"
is "$(kong_py 'd["overlapping_writes"]' /__fake/stats)" 0 "no two writes to one Kong object were ever in flight together"
check_contract

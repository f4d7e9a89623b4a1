#!/usr/bin/env bash
# Hostile answers from Temporal, as errors and as "successes" (a body cut inside a UTF-8
# character, bytes that are not UTF-8, a NUL, 20 MB, HTML, a socket closed mid-answer): the job
# that got one ends with a stored, bounded error, the other jobs of its batch are recorded, the
# worker goes on, and the connector lands once Temporal behaves.
set -u
source "$REPO/test/integration/lib/tap.sh"
source "$REPO/test/integration/lib/temporal.sh"
plan 27

start_temporal_fake temporal-hostile
temporal_cluster temporal-hostile
worker_pid() { tq "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'"; }
twait "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_gateway worker'" 1 >/dev/null
pid=$(worker_pid)

# three NAME: three approved connectors in one transaction (one batch for the worker); the
# middle one is named NAME-b and its endpoint name is printed.
three() {
  tq "BEGIN;
      INSERT INTO gateway.project_connectors (source_project_id, target_project_id, target_service_id,
                                              target_interface_id, name, nexus_endpoint_name)
      SELECT '$SOURCE_PROJECT', '$TARGET_PROJECT', '$TARGET_WORKFLOW', '$TARGET_INTERFACE', '$1-' || s, 'h-$1-' || s
        FROM unnest(ARRAY['a', 'b', 'c']) AS s;
      SELECT count(*) FROM (SELECT gateway.connector_approve(id) FROM gateway.project_connectors WHERE name LIKE '$1-%') AS x;
      COMMIT;" >/dev/null
}
state() { tq "SELECT sync_state FROM gateway.project_connectors WHERE name = '$1'"; }

for kind in utf8_split invalid_utf8 nul huge not_json cut; do
  name=${kind//_/-}
  # Every answer about the middle connector's endpoint is hostile, an error or a 200.
  status=503
  [[ $kind == not_json || $kind == nul ]] && status=200
  temporal_faults "{\"error_rate\": 1, \"error_status\": $status, \"error_body\": \"$kind\", \"error_path\": \"h-$name-b\"}"
  three "$name"
  is "$(twait "SELECT sync_state IN ('failed', 'dead') FROM gateway.project_connectors WHERE name = '$name-b'" t 20)" t \
     "$kind ($status): the job that got it is not synced, and its outcome is recorded"
  is "$(twait "SELECT count(*) FROM gateway.project_connectors WHERE name IN ('$name-a', '$name-c') AND sync_state = 'synced'" 2)" 2 \
     "$kind: the other jobs of its batch are recorded"
  is "$(tq "SELECT sync_error IS NOT NULL AND octet_length(sync_error) <= 1000 FROM gateway.project_connectors WHERE name = '$name-b'")" t \
     "$kind: the error is stored, at most 1000 bytes"
  temporal_faults '{"error_rate": 0, "error_body": null, "error_path": null}'
  tq "SELECT gateway.sync_retry(id) FROM gateway.sync_jobs WHERE state = 'dead'" >/dev/null
  is "$(twait "SELECT sync_state FROM gateway.project_connectors WHERE name = '$name-b'" synced 20)" synced \
     "$kind: once Temporal behaves, the connector lands"
done
is "$(worker_pid)" "$pid" "the worker never restarted"
is "$(endpoint_count)" 18 "one endpoint per connector, no duplicate"
check_temporal_contract

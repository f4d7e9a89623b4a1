# Helpers for the Temporal sync tests: a Temporal fake, a cluster of the test's own that syncs to
# it, and two projects (A calls into B) with the memberships a connector needs. Source after
# tap.sh (and kong.sh, for SPECS_DIR and the Kong helpers when a test uses both).

SPECS_DIR="$REPO/../shared/specs"

# start_temporal_fake NAME [fake options...]: starts test/fakes/temporal_fake.py on a free port
# with the namespace of project B registered; sets TEMPORAL_PORT and TEMPORAL_URL. It exits by
# itself when this test script ends.
start_temporal_fake() {
  local name=$1
  shift
  start_fake temporal_fake.py "$name" temporal-openapiv2.json --namespaces "$TARGET_NAMESPACE" "$@"
  TEMPORAL_PORT=$FAKE_PORT
  TEMPORAL_URL="http://127.0.0.1:$TEMPORAL_PORT"
}

# temporal METHOD PATH [JSON]: one call to the fake; prints the body.
temporal() {
  if [[ $# -ge 3 ]]; then
    curl -s -X "$1" "$TEMPORAL_URL$2" -H 'Content-Type: application/json' -d "$3"
  else
    curl -s -X "$1" "$TEMPORAL_URL$2"
  fi
}

# temporal_py EXPR PATH: a Python expression over the JSON at PATH (bound to d).
temporal_py() { temporal GET "$2" | python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

temporal_faults() { temporal POST /__fake/faults "$1" >/dev/null; }

# Endpoints the fake holds now (its registry, not the lagging list).
endpoint_count() { temporal_py 'len(d["endpoints"])' /__fake/endpoints; }

# Every request the worker sent passed the Temporal OpenAPI check (or the check says it skipped).
check_temporal_contract() {
  if [[ -f "$SPECS_DIR/temporal-openapiv2.json" ]]; then
    is "$(temporal_py 'len(d["contract_violations"])' /__fake/stats)" 0 \
       "every request the worker sent is accepted by the Temporal OpenAPI document"
  else
    _tap_n=$((_tap_n + 1))
    echo "ok $_tap_n - Temporal contract check # SKIP $SPECS_DIR not found: requests were not checked against the Temporal document"
  fi
}

# Project A (source: its editor makes connectors) calls into project B (target: its admin
# approves them; its workers poll TARGET_NAMESPACE / TARGET_QUEUE).
SOURCE_PROJECT=d1000000-0000-4000-8000-00000000000a
TARGET_PROJECT=d2000000-0000-4000-8000-00000000000b
SOURCE_EDITOR=e1000000-0000-4000-8000-000000000001
TARGET_ADMIN=e2000000-0000-4000-8000-000000000002
TARGET_NAMESPACE=project-b
TARGET_QUEUE=project-b-nexus
TARGET_WORKFLOW=f2000000-0000-4000-8000-0000000000b1

# temporal_cluster NAME [postgresql.conf lines...]: a cluster of the test's own syncing to
# $TEMPORAL_URL (and to $KONG_URL when set), with the extension, both projects, the target's
# workers row and one target interface (TARGET_INTERFACE). Sets TCLUSTER.
temporal_cluster() {
  local name=$1
  shift
  TCLUSTER=$(own_cluster "$name")
  local port kong_lines=()
  port=$(free_port 26400)
  [[ -n "${KONG_URL:-}" ]] && kong_lines=("gateway.kong_admin_url = '$KONG_URL'")
  cluster_init "$TCLUSTER" "$port" "gateway.temporal_url = '$TEMPORAL_URL'" "${kong_lines[@]}" \
    "gateway.usage_flush_interval = '100ms'" "gateway.sync_retry_base = '100ms'" \
    "gateway.sync_retry_max = '1s'" "gateway.sync_reconcile_interval = 0" "$@" >/dev/null
  cluster_start "$TCLUSTER"
  trap 'cluster_stop "$TCLUSTER"' EXIT
  cluster_psql "$TCLUSTER" -d postgres -c "CREATE DATABASE gateway" >/dev/null
  cluster_psql "$TCLUSTER" -d gateway -c "CREATE EXTENSION pg_gateway" >/dev/null
  tq "INSERT INTO gateway.project_members (project_id, user_id, role)
      VALUES ('$SOURCE_PROJECT', '$SOURCE_EDITOR', 'editor'), ('$TARGET_PROJECT', '$TARGET_ADMIN', 'admin');
      INSERT INTO gateway.project_workers (project_id, temporal_namespace, task_queue)
      VALUES ('$TARGET_PROJECT', '$TARGET_NAMESPACE', '$TARGET_QUEUE')" >/dev/null
  TARGET_INTERFACE=$(tq "INSERT INTO gateway.service_interfaces (project_id, workflow_id, name, interface_type, callable_name)
      VALUES ('$TARGET_PROJECT', '$TARGET_WORKFLOW', 'approve-order', 'update', 'approveOrder') RETURNING id")
}

# tq SQL: one value from the test's own cluster (as the superuser).
tq() { cluster_psql "$TCLUSTER" -d gateway -At -c "$1"; }

# twait SQL EXPECTED [SECONDS]: polls the test's own cluster until SQL returns EXPECTED.
twait() { poll_with tq "$@"; }

# connect NAME: a connector from A to B's interface, made as the superuser on behalf of A's
# editor; prints its id.
connect() {
  tq "INSERT INTO gateway.project_connectors (source_project_id, target_project_id, target_service_id,
                                              target_interface_id, name, description, created_by)
      VALUES ('$SOURCE_PROJECT', '$TARGET_PROJECT', '$TARGET_WORKFLOW', '$TARGET_INTERFACE', '$1',
              'connector $1', '$SOURCE_EDITOR') RETURNING id"
}

# connect_many PREFIX N: N connectors PREFIX-1..N created and approved in one transaction (psql
# runs the statements of one -c string in one transaction).
connect_many() {
  tq "INSERT INTO gateway.project_connectors (source_project_id, target_project_id, target_service_id,
                                              target_interface_id, name, created_by)
      SELECT '$SOURCE_PROJECT', '$TARGET_PROJECT', '$TARGET_WORKFLOW', '$TARGET_INTERFACE', '$1-' || i, '$SOURCE_EDITOR'
        FROM generate_series(1, $2) AS i;
      SELECT count(*) FROM (SELECT gateway.connector_approve(id) FROM gateway.project_connectors
                             WHERE name LIKE '$1-%') AS approved" >/dev/null
}

# approve ID...: B's consent (as the superuser; the tenant matrix tests who may).
approve() { local id; for id in "$@"; do tq "SELECT gateway.connector_approve('$id')" >/dev/null; done; }

# Every connector is settled (synced or absent, as its consent says) and no Temporal job is left.
ALL_CONNECTORS_SYNCED="SELECT (SELECT count(*) FROM gateway.sync_jobs WHERE target = 'temporal')
                            + (SELECT count(*) FROM gateway.project_connectors
                                WHERE sync_state IS DISTINCT FROM
                                      CASE WHEN consent_state = 'approved' THEN 'synced' ELSE 'absent' END)"

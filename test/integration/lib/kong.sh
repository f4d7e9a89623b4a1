# Helpers for the Kong sync tests: a Kong fake and a cluster of the test's own that syncs to it.
# Source after tap.sh.

SPECS_DIR="$REPO/../shared/specs"

# start_kong_fake NAME [fake options...]: starts test/fakes/kong_fake.py on a free port; sets
# KONG_PORT and KONG_URL. The fake exits by itself when this test script ends.
start_kong_fake() {
  local name=$1
  shift
  start_fake kong_fake.py "$name" kong-admin-oss-openapi.yaml "$@"
  KONG_PORT=$FAKE_PORT
  KONG_URL="http://127.0.0.1:$KONG_PORT"
}

# kong METHOD PATH [JSON]: one Admin API call to the fake; prints the body. KONG_CURL_OPTS: extra
# curl options (a CA and a client certificate for a fake that speaks https).
KONG_CURL_OPTS=()
kong() {
  if [[ $# -ge 3 ]]; then
    curl -s "${KONG_CURL_OPTS[@]}" -X "$1" "$KONG_URL$2" -H 'Content-Type: application/json' -d "$3"
  else
    curl -s "${KONG_CURL_OPTS[@]}" -X "$1" "$KONG_URL$2"
  fi
}

# kong_py EXPR PATH: evaluates a Python expression over the JSON at PATH (bound to d).
kong_py() { kong GET "$2" | python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

fake_faults() { kong POST /__fake/faults "$1" >/dev/null; }

# The contract check ran (or says plainly why not), and the worker sent nothing Kong would refuse.
check_contract() {
  if [[ -f "$SPECS_DIR/kong-admin-oss-openapi.yaml" ]]; then
    is "$(kong_py 'len(d["violations"])' /__fake/stats)" 0 \
       "every request the worker sent is accepted by the Kong Admin API document"
  else
    _tap_n=$((_tap_n + 1))
    echo "ok $_tap_n - contract check # SKIP $SPECS_DIR not found: requests were not checked against the Kong documents"
  fi
}

# kong_cluster NAME [postgresql.conf lines...]: a cluster of the test's own syncing to $KONG_URL,
# with the extension created; sets KCLUSTER. Stopped when the test ends.
kong_cluster() {
  local name=$1
  shift
  KCLUSTER=$(own_cluster "$name")
  local port
  port=$(free_port 26100)
  cluster_init "$KCLUSTER" "$port" "gateway.kong_admin_url = '$KONG_URL'" \
    "gateway.kong_upstream_url = 'http://app.internal:3000/api/interfaces'" \
    "gateway.usage_flush_interval = '100ms'" "gateway.sync_retry_base = '100ms'" \
    "gateway.sync_retry_max = '1s'" "gateway.sync_reconcile_interval = 0" "$@" >/dev/null
  cluster_start "$KCLUSTER"
  trap 'cluster_stop "$KCLUSTER"' EXIT
  cluster_psql "$KCLUSTER" -d postgres -c "CREATE DATABASE gateway" >/dev/null
  cluster_psql "$KCLUSTER" -d gateway -c "CREATE EXTENSION pg_gateway" >/dev/null
  # The users the Kong tests issue keys for: editors of the project publish() uses.
  cluster_psql "$KCLUSTER" -d gateway -c "INSERT INTO gateway.project_members (project_id, user_id, role)
    VALUES ('$KONG_PROJECT', 'a5000000-0000-4000-8000-000000000001', 'editor'),
           ('$KONG_PROJECT', 'a7000000-0000-4000-8000-000000000001', 'editor')" >/dev/null
}

# The project of every interface publish() makes.
KONG_PROJECT=c5000000-0000-4000-8000-000000000001

# kq SQL: one value from the test's own cluster.
kq() { cluster_psql "$KCLUSTER" -d gateway -At -c "$1"; }

# kwait SQL EXPECTED [SECONDS]: polls the test's own cluster until SQL returns EXPECTED.
kwait() { poll_with kq "$@"; }

# publish NAME [rate limit] [auth type]: a service interface made public; prints the public
# interface id.
publish() {
  local name=$1 limit=${2:-NULL} auth=${3:-api_key}
  kq "WITH s AS (
        INSERT INTO gateway.service_interfaces (project_id, workflow_id, name, interface_type, callable_name, is_public)
        VALUES ('$KONG_PROJECT', gen_random_uuid(), '$name', 'signal', '$name', true)
        RETURNING id)
      INSERT INTO gateway.public_interfaces (service_interface_id, rate_limit_per_minute, auth_type)
      SELECT id, $limit, '$auth' FROM s RETURNING id"
}

# all_synced: every interface and bound key is synced and no job is left.
ALL_SYNCED="SELECT (SELECT count(*) FROM gateway.sync_jobs)
                 + (SELECT count(*) FROM gateway.public_interfaces WHERE sync_state <> 'synced')
                 + (SELECT count(*) FROM gateway.api_keys WHERE kong_sync_state IS DISTINCT FROM 'synced'
                                                              AND public_interface_id IS NOT NULL)"

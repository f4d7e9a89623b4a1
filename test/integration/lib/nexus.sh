# Helpers for the cross-project call tests: the Temporal fake's Nexus side, a cluster whose worker
# starts calls and whose callback listener takes completions, and one approved, synced connector.
# Source after tap.sh and temporal.sh.

# nexus_cluster NAME [postgresql.conf lines...]: temporal_cluster with the callback listener on
# a free port (CALLBACK_PORT); its URL is the one the fake delivers completions to.
nexus_cluster() {
  local name=$1
  shift
  CALLBACK_PORT=$(free_port 27400)
  temporal_cluster "$name" "gateway.callback_listen = '127.0.0.1:$CALLBACK_PORT'" "$@"
  CALLBACK_URL="http://127.0.0.1:$CALLBACK_PORT"
}

# ready_connector NAME: a connector from A to B's interface, approved, its endpoint synced;
# prints its id.
ready_connector() {
  local id
  id=$(connect "$1")
  approve "$id"
  twait "SELECT sync_state FROM gateway.project_connectors WHERE id = '$id'" synced 30 >/dev/null
  echo "$id"
}

# handler SERVICE OPERATION BEHAVIOUR_JSON: what the target's handler does from now on.
handler() {
  temporal POST /__fake/nexus/handlers "{\"service\": \"$1\", \"operation\": \"$2\", \"behaviour\": $3}" >/dev/null
}

# call CONNECTOR [INPUT_JSON] [TIMEOUT]: queues a call (as the superuser); prints its id.
call() {
  tq "SELECT gateway.connector_call('$1', '${2:-{\}}'::jsonb, '${3:-1 hour}'::interval)"
}

# call_field ID COLUMN: one column of a call's row.
call_field() { tq "SELECT $2 FROM gateway.connector_calls WHERE id = '$1'"; }

# settled ID [SECONDS]: waits for a final state; prints the state.
settled() {
  twait "SELECT CASE WHEN state IN ('succeeded', 'failed', 'canceled', 'timed_out') THEN 'final' END
           FROM gateway.connector_calls WHERE id = '$1'" final "${2:-20}" >/dev/null
  call_field "$1" state
}

nexus_stat() { temporal_py "d[\"$1\"]" /__fake/stats; }

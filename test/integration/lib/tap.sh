# Minimal TAP for the integration tests, plus helpers for the test cluster that scripts/test.sh
# started ($CLUSTER, $STAGE, $PGPORT). Each test prints a plan and one line per check.
source "$REPO/scripts/lib.sh"

_tap_n=0
plan() { echo "1..$1"; }
ok() {  # ok CONDITION_EXIT_STATUS DESCRIPTION
  _tap_n=$((_tap_n + 1))
  if [[ $1 -eq 0 ]]; then echo "ok $_tap_n - $2"; else echo "not ok $_tap_n - $2"; fi
}
is() {  # is GOT EXPECTED DESCRIPTION
  _tap_n=$((_tap_n + 1))
  if [[ "$1" == "$2" ]]; then
    echo "ok $_tap_n - $3"
  else
    echo "not ok $_tap_n - $3"
    echo "#   got:      '$1'"
    echo "#   expected: '$2'"
  fi
}
diag() { echo "# $*"; }

# q SQL: one value from the test database of the shared cluster.
q() { cluster_psql "$CLUSTER" -d gateway -At -c "$1"; }

# poll_with QUERY_FUNCTION SQL EXPECTED [SECONDS]: runs SQL through QUERY_FUNCTION until it
# returns EXPECTED or the time is up; prints the last value.
poll_with() {
  local query=$1 deadline=$((SECONDS + ${4:-15})) value
  while :; do
    value=$("$query" "$2" 2>/dev/null)
    [[ "$value" == "$3" || $SECONDS -ge $deadline ]] && break
    sleep 0.05
  done
  echo "$value"
}

# wait_for SQL EXPECTED [SECONDS]: polls the shared cluster until SQL returns EXPECTED.
wait_for() { poll_with q "$@"; }

# make_standby PRIMARY_DIR PRIMARY_PORT NAME: a streaming hot standby of the primary, from a base
# backup, in a directory of the test's own; started; prints its directory. The backup asks for an
# immediate checkpoint: a spread one took 105 s after CREATE EXTENSION.
make_standby() {
  local primary=$1 primary_port=$2 standby port
  standby=$(own_cluster "$3")
  port=$(free_port 25800)
  as_pg "$PGBIN/pg_basebackup" -h "$primary" -p "$primary_port" -U postgres -D "$standby/data" -R -X stream -c fast >/dev/null 2>&1
  as_pg bash -c "cat >> '$standby/data/postgresql.conf'" <<CONF
port = $port
unix_socket_directories = '$standby'
hot_standby = on
CONF
  cluster_start "$standby"
  echo "$standby"
}

# A throwaway cluster of the test's own, removed when the test ends.
own_cluster() {
  local dir
  dir="$STAGE/$1"
  as_pg mkdir -p "$dir"
  echo "$dir"
}

# start_fake SCRIPT NAME SPEC_FILE [fake options...]: starts test/fakes/SCRIPT on a free port, with
# the contract check when ../shared/specs has SPEC_FILE; sets FAKE_PORT. The fake exits by itself
# when this test script ends (or after 15 minutes).
start_fake() {
  local script=$1 name=$2 spec=$3
  shift 3
  local port_file="$STAGE/$name.port" specs="$REPO/../shared/specs" spec_args=() i
  rm -f "$port_file"
  [[ -f "$specs/$spec" ]] && spec_args=(--spec-dir "$specs")
  python3 "$REPO/test/fakes/$script" --port-file "$port_file" --parent-pid $$ --max-seconds 900 \
    "${spec_args[@]}" "$@" >"$STAGE/$name.log" 2>&1 &
  for i in $(seq 100); do [[ -s "$port_file" ]] && break; sleep 0.05; done
  FAKE_PORT=$(cat "$port_file")
}

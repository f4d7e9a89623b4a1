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

# wait_for SQL EXPECTED [SECONDS]: polls until SQL returns EXPECTED; prints the last value.
wait_for() {
  local deadline=$((SECONDS + ${3:-15})) value
  while :; do
    value=$(q "$1" 2>/dev/null)
    [[ "$value" == "$2" || $SECONDS -ge $deadline ]] && break
    sleep 0.1
  done
  echo "$value"
}

# A throwaway cluster of the test's own, removed when the test ends.
own_cluster() {
  local dir
  dir="$STAGE/$1"
  as_pg mkdir -p "$dir"
  echo "$dir"
}

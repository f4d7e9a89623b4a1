# Shared shell helpers for make demo, make test and the integration tests.
# Clusters run as the `postgres` OS user (initdb refuses root) in directories that user owns.

PG_CONFIG=${PG_CONFIG:-pg_config}
PGBIN=${PGBIN:-$("$PG_CONFIG" --bindir)}
PGXS_DIR=$(dirname "$("$PG_CONFIG" --pgxs)")/..
PG_REGRESS=${PG_REGRESS:-$PGXS_DIR/test/regress/pg_regress}
REPO=${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
export PGBIN PG_REGRESS REPO

step() { printf '\n==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }

# Runs a command as the postgres OS user (or as ourselves when we already are not root). From a
# directory postgres cannot enter (a clone under /root, as in CI) it runs from / instead, so no
# "could not change directory" warning ends up in captured output; callers pass absolute paths.
_pg_can_enter=""
as_pg() {
  if [[ $(id -u) -ne 0 ]]; then
    "$@"
    return
  fi
  if [[ $_pg_can_enter != "$PWD:"* ]]; then
    if runuser -u postgres -- test -x "$PWD" 2>/dev/null; then _pg_can_enter="$PWD:yes"; else _pg_can_enter="$PWD:no"; fi
  fi
  if [[ $_pg_can_enter == *":yes" ]]; then
    runuser -u postgres -- "$@"
  else
    (cd / && runuser -u postgres -- "$@")
  fi
}

# A fresh directory owned by the postgres user: CI clones into places postgres cannot read.
make_stage() {
  local dir
  dir=$(mktemp -d "/tmp/pg_gateway-$1.XXXXXX")
  chmod 755 "$dir"
  [[ $(id -u) -eq 0 ]] && chown postgres: "$dir"
  echo "$dir"
}

# Writes a fresh random master key file readable by the postgres user only.
make_master_key() {
  local file=$1
  as_pg bash -c "umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > '$file'; echo >> '$file'"
}

# A TCP port nobody listens on, from a range the tests own. The ranges sit below Linux's
# ephemeral ports (32768-60999): a port there may be the local end of some outgoing connection
# (the worker's, a fake's), and then the server cannot bind it.
free_port() {
  local port
  for port in $(seq "${1:-25400}" "$((${1:-25400} + 200))"); do
    # Two integration scripts run at a time, each taking ports of its own parity (scripts/test.sh).
    [[ -n ${PGW_PORT_PARITY:-} && $((port % 2)) -ne $PGW_PORT_PARITY ]] && continue
    if ! (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && [[ ! -e "/tmp/.s.PGSQL.$port" ]]; then
      echo "$port"
      return 0
    fi
  done
  return 1
}

# cluster_init DIR PORT [extra postgresql.conf lines...]: initdb + pg_gateway settings.
cluster_init() {
  local dir=$1 port=$2
  shift 2
  as_pg "$PGBIN/initdb" -D "$dir/data" -A trust -U postgres --no-sync >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log"; return 1; }
  [[ -f "$dir/master.key" ]] || make_master_key "$dir/master.key"
  as_pg bash -c "cat >> '$dir/data/postgresql.conf'" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
fsync = off
shared_preload_libraries = 'pg_gateway'
gateway.master_key_file = '$dir/master.key'
gateway.database = 'gateway'
$(printf '%s\n' "$@")
CONF
}

cluster_start() {
  as_pg "$PGBIN/pg_ctl" -D "$1/data" -l "$1/server.log" -w -t 60 start >/dev/null
}

cluster_stop() {
  [[ -f "$1/data/postmaster.pid" ]] && as_pg "$PGBIN/pg_ctl" -D "$1/data" -m fast -w stop >/dev/null 2>&1
  return 0
}

# psql against a cluster directory: cluster_psql DIR [psql args...]
cluster_psql() {
  local dir=$1
  shift
  local port
  port=$(sed -n 's/^port = \([0-9]*\)$/\1/p' "$dir/data/postgresql.conf" | tail -1)
  as_pg "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres "$@"
}

# Shared by the benchmarks: a throwaway cluster tuned for measuring, pgbench runs, and the
# arithmetic for the summary. Source after scripts/lib.sh.

clients=${BENCH_CLIENTS:-2}
seconds=${BENCH_SECONDS:-10}
rounds=${BENCH_ROUNDS:-3}
cd "$REPO"

# bench_cluster NAME [postgresql.conf lines...]: builds, installs, starts a cluster with the
# extension created in database "gateway"; sets $stage, $port and $cluster. Stopped on exit.
bench_cluster() {
  local name=$1
  shift
  step "build and install"
  make -s -j2 all && make -s install >/dev/null
  stage=$(make_stage "$name")
  cluster="$stage/cluster"
  trap 'cluster_stop "$cluster"; rm -rf "$stage"' EXIT
  as_pg mkdir -p "$cluster"
  port=$(free_port 25900)
  cluster_init "$cluster" "$port" "shared_buffers = '1GB'" "max_wal_size = '4GB'" \
    "synchronous_commit = off" "$@"
  cluster_start "$cluster"
  cluster_psql "$cluster" -d postgres -c "CREATE DATABASE gateway" >/dev/null
  cluster_psql "$cluster" -d gateway -c "CREATE EXTENSION pg_gateway" >/dev/null
}

# Copies a folder of pgbench scripts and setup SQL where the postgres user can read them.
bench_stage_scripts() {
  cp -r "$1" "$stage/scripts"
  [[ $(id -u) -eq 0 ]] && chown -R postgres: "$stage/scripts"
}

# pgbench_tps SCRIPT SECONDS [pgbench options...]: prints the tps of one run.
pgbench_tps() {
  local script=$1 seconds=$2
  shift 2
  as_pg "$PGBIN/pgbench" -n -M prepared -c "$clients" -j "$clients" -T "$seconds" "$@" \
    -h "$cluster" -p "$port" -U postgres -f "$stage/scripts/$script" gateway 2>&1 |
    sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}

# The middle value; for an even count the mean of the two middle ones (bench/verify alternates the
# order of its rounds, and with an even count each order then weighs the same).
median() {
  printf '%s\n' "$@" | sort -g |
    awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2] + a[NR/2+1]) / 2}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# results_section NAME: prints the summary read from stdin, and keeps it as section NAME of
# bench/RESULTS.md (replacing that section's previous figures) with the machine, date and commit,
# so docs can point at measured numbers in the repository.
results_section() {
  local name=$1 summary file="$REPO/bench/RESULTS.md"
  summary=$(cat)
  echo "$summary"
  [[ -f $file ]] || printf '# Benchmark results\n\nWritten by the benchmarks themselves (`make bench` runs them all, `make bench-<name>` one); each\nsection is its last run.\n' >"$file"
  python3 - "$file" "$name" "$summary" "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)$(git -C "$REPO" diff --quiet 2>/dev/null || echo '+changes')" \
    "$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(. /etc/os-release && echo "$PRETTY_NAME"), PostgreSQL $("$PG_CONFIG" --version | awk '{print $2}')" <<'PY'
import re, sys, datetime
path, name, summary, commit, machine = sys.argv[1:6]
text = open(path).read()
section = "## %s\n\n%s, commit %s, %s\n\n```\n%s\n```\n" % (
    name, datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"), commit, machine, summary.strip())
pattern = re.compile(r"^## %s\n.*?(?=^## |\Z)" % re.escape(name), re.S | re.M)
text = pattern.sub(lambda m: section + "\n", text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
open(path, "w").write(text)
PY
}

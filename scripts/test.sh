#!/usr/bin/env bash
# make test: build, install, then every suite; ends with one line "N passed, N failed".
set -uo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO"

# Developers may narrow a run: SUITES (words from: unit fuzz sanitize fake regress pgtap integration;
# default all) and ONLY (an extended regex on suite file names). CI runs everything.
SUITES=${SUITES:-unit fuzz sanitize fake regress pgtap integration}
ONLY=${ONLY:-}
want() { [[ " $SUITES " == *" $1 "* ]]; }
picked() { [[ -z "$ONLY" ]] || [[ "$(basename "$1")" =~ $ONLY ]]; }

# One run at a time on this machine: `make install` replaces the library and scripts the
# clusters of another run are using (several work trees share the one PostgreSQL install). A run
# against another PostgreSQL install (make check-cassert's) takes that install's lock. The lock is
# held by flock itself (-o): servers this run starts do not inherit it, so one left running
# cannot hold it.
lock=/tmp/pg_gateway-test.lock
if [[ $PGBIN != "$(pg_config --bindir 2>/dev/null)" ]]; then
  lock=/tmp/pg_gateway-test-$(echo "$PGBIN" | md5sum | cut -c1-12).lock
fi
if [[ -z "${PGW_TEST_LOCKED:-}" ]]; then
  export PGW_TEST_LOCKED=1
  flock -n -o "$lock" true || echo "==> waiting for another make test on this machine to finish"
  exec flock -o "$lock" bash "$0" "$@"
fi

passed=0 failed=0 skipped=0
count() { passed=$((passed + $1)); failed=$((failed + $2)); skipped=$((skipped + ${3:-0})); }
summary() {
  local line="$passed passed, $failed failed"
  ((skipped > 0)) && line+=", $skipped skipped"
  echo
  echo "$line"
  ((failed == 0))
}

# Counts TAP lines in $1 (a file); a non-zero exit or a missing plan counts as one failure, and
# "ok N - ... # SKIP why" counts as skipped.
count_tap() {
  local file=$1 status=$2 ok bad planned skip
  ok=$(grep -cE '^[[:space:]]*ok [0-9]+' "$file")
  skip=$(grep -cE '^[[:space:]]*ok [0-9]+.*# SKIP' "$file")
  bad=$(grep -cE '^[[:space:]]*not ok [0-9]+' "$file")
  planned=$(grep -oE '^[[:space:]]*1\.\.[0-9]+' "$file" | head -1 | sed 's/.*\.\.//')
  if [[ $status -ne 0 && $bad -eq 0 ]] || [[ -z "$planned" ]] || [[ $planned -ne $((ok + bad)) ]]; then
    bad=$((bad + 1))
    grep -vE '^[[:space:]]*ok [0-9]+' "$file" | tail -n 20
  fi
  count "$((ok - skip))" "$bad" "$skip"
}

# Starts nothing until fewer than two of this shell's background jobs run (one per core).
two_at_a_time() {
  while (( $(jobs -rp | wc -l) >= 2 )); do wait -n; done
}

step "build and install the extension"
if ! { make -s -j2 all && make -s install >/dev/null; }; then
  echo "build failed"; count 0 1; summary; exit 1
fi

step "unit tests (ctest)"
if ! want unit; then note "skipped (SUITES)"
# The core the unit tests link is the extension's own src/core objects, built just above.
elif cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGATEWAY_PGXS_CORE=ON >build-cmake.log 2>&1 &&
   cmake --build build -j2 >>build-cmake.log 2>&1; then
  out=$(cd build && ctest -j2 --output-on-failure 2>&1)  # one process per test: two at a time
  echo "$out" | tail -n 3
  total=$(echo "$out" | sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p')
  bad=$(echo "$out" | sed -n 's/.* \([0-9]*\) tests failed out of.*/\1/p')
  if [[ -n "$total" ]]; then count $((total - bad)) "$bad"; else echo "$out"; count 0 1; fi
else
  cat build-cmake.log; count 0 1
fi
rm -f build-cmake.log

step "fuzz (libFuzzer, ${FUZZ_SECONDS:-10}s per target)"
if ! want fuzz; then note "skipped (SUITES)"
elif command -v clang++ >/dev/null &&
   cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DGATEWAY_FUZZ=ON >build-fuzz.log 2>&1; then
  # Every target at once, on both cores (a failure shows in the per-target build below).
  cmake --build build-fuzz -j2 --target $(for f in test/fuzz/*_fuzz.cpp; do basename "$f" .cpp; done) \
    >>build-fuzz.log 2>&1 || true
  # libFuzzer runs on one core: two targets at a time, each still for its full time.
  for source in test/fuzz/*_fuzz.cpp; do
    target=$(basename "$source" .cpp)
    # New inputs go to a scratch corpus; the committed seeds stay untouched.
    mkdir -p "build-fuzz/corpus/$target"
    rm -f "build-fuzz/$target.status"
    cmake --build build-fuzz --target "$target" >>build-fuzz.log 2>&1 || continue
    two_at_a_time
    { build-fuzz/"$target" -max_total_time="${FUZZ_SECONDS:-10}" -print_final_stats=1 \
        "build-fuzz/corpus/$target" "test/fuzz/corpus/${target%_fuzz}" >"build-fuzz/$target.log" 2>&1
      echo $? >"build-fuzz/$target.status"; } &
  done
  wait
  for source in test/fuzz/*_fuzz.cpp; do
    target=$(basename "$source" .cpp)
    if [[ $(cat "build-fuzz/$target.status" 2>/dev/null) == 0 ]]; then
      note "$target: $(sed -n 's/^stat::number_of_executed_units: *//p' "build-fuzz/$target.log") inputs, no crash"
      count 1 0
    else
      tail -n 30 "build-fuzz/$target.log" build-fuzz.log 2>/dev/null; count 0 1
    fi
  done
else
  note "clang++ with libFuzzer is not available: fuzz targets skipped"; count 0 0 1
fi
rm -f build-fuzz.log

# The unit tests and the fuzz targets again, everything (the core included) built with
# AddressSanitizer and UndefinedBehaviorSanitizer; the fuzzers only replay their corpus briefly
# (the fuzz step above explores). build-asan/ is kept, so later runs rebuild only what changed.
step "sanitizers (ASan+UBSan: ctest, fuzz corpus ${SANITIZE_FUZZ_SECONDS:-5}s per target)"
if ! want sanitize; then note "skipped (SUITES)"
elif ! command -v clang++ >/dev/null; then
  note "clang++ is not available: sanitizer builds skipped"; count 0 0 1
elif cmake -S . -B build-asan -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug \
       -DGATEWAY_SANITIZE=ON -DGATEWAY_FUZZ=ON >build-asan.log 2>&1 &&
     cmake --build build-asan -j2 --target unit_tests $(for f in test/fuzz/*_fuzz.cpp; do basename "$f" .cpp; done) \
       >>build-asan.log 2>&1; then
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  out=$(cd build-asan && ctest -j2 --output-on-failure 2>&1)
  echo "$out" | tail -n 3
  total=$(echo "$out" | sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p')
  bad=$(echo "$out" | sed -n 's/.* \([0-9]*\) tests failed out of.*/\1/p')
  if [[ -n "$total" ]]; then count $((total - bad)) "$bad"; else echo "$out"; count 0 1; fi
  [[ -z "$bad" || "$bad" -eq 0 ]] || echo "$out" | grep -E 'ERROR: (Address|Leak)Sanitizer|runtime error' | head -5
  for source in test/fuzz/*_fuzz.cpp; do
    target=$(basename "$source" .cpp)
    mkdir -p "build-asan/corpus/$target"
    rm -f "build-asan/$target.status"
    two_at_a_time
    { build-asan/"$target" -max_total_time="${SANITIZE_FUZZ_SECONDS:-5}" -print_final_stats=1 \
        "build-asan/corpus/$target" "test/fuzz/corpus/${target%_fuzz}" >"build-asan/$target.log" 2>&1
      echo $? >"build-asan/$target.status"; } &
  done
  wait
  for source in test/fuzz/*_fuzz.cpp; do
    target=$(basename "$source" .cpp)
    if [[ $(cat "build-asan/$target.status" 2>/dev/null) == 0 ]]; then
      note "$target: $(sed -n 's/^stat::number_of_executed_units: *//p' "build-asan/$target.log") inputs under ASan+UBSan, no finding"
      count 1 0
    else
      tail -n 30 "build-asan/$target.log"; count 0 1
    fi
  done
else
  tail -n 40 build-asan.log; count 0 1
fi
rm -f build-asan.log

if want fake; then
step "Kong and Temporal fakes (their own tests)"
for fake_test in test_kong_fake.py test_temporal_fake.py; do
  log=$(mktemp)
  timeout 120 python3 "test/fakes/$fake_test" >"$log" 2>/dev/null
  status=$?
  printf '    %-40s %s\n' "$fake_test" "$(grep -cE '^ok [0-9]+' "$log") ok, $(grep -cE '^not ok' "$log") not ok"
  grep -E '^not ok|^#|# SKIP' "$log" | head -20
  count_tap "$log" "$status"
  rm -f "$log"
done
fi

stage=$(make_stage test)
trap 'cleanup' EXIT
cleanup() {
  for d in "$stage"/*/; do [[ -d "$d/data" ]] && cluster_stop "$d"; done
  [[ -n "${KEEP_STAGE:-}" ]] || rm -rf "$stage"
}
cp -r sql expected test "$stage/"
# The grants the docs show, for the pgTAP role suites to apply as they are.
bash scripts/doc-grants.sh > "$stage/test/pgtap/include/doc_grants.psql"
[[ $(id -u) -eq 0 ]] && chown -R postgres: "$stage"

if want regress; then
step "pg_regress"
bash scripts/check-schedule.sh || count 0 1
make_master_key "$stage/regress.key"
cat > "$stage/regress.conf" <<CONF
shared_preload_libraries = 'pg_gateway'
gateway.master_key_file = '$stage/regress.key'
gateway.usage_flush_interval = '100ms'
gateway.database = 'gateway_regression'
CONF
tests=$(make -s -f Makefile print-regress 2>/dev/null || true)
[[ -n "$tests" ]] || tests=$(ls sql/*.sql | xargs -n1 basename | sed 's/\.sql$//' | grep -v '^pg_gateway--')
[[ -z "$ONLY" ]] || tests=$(for t in $tests; do picked "$t" && echo "$t"; done)
if [[ -z "${tests// /}" ]]; then note "no pg_regress suite matches ONLY"; else
port=$(free_port 25400)
# From inside sql/, where the suites' \ir helpers/... includes resolve (psql reads them on stdin).
out=$(cd "$stage/sql" && as_pg "$PG_REGRESS" --temp-instance="$stage/regress-instance" --temp-config="$stage/regress.conf" \
  --inputdir="$stage" --outputdir="$stage" --bindir="$PGBIN" --port="$port" \
  --dbname=gateway_regression --load-extension=pg_gateway $tests 2>&1)
echo "$out" | grep -E '^test |^ok |^not ok |tests (passed|failed)|^ *[0-9]+ of'
ok=$(echo "$out" | grep -cE '^test .* \.\.\. ok')
bad=$(echo "$out" | grep -cE '^test .* \.\.\. FAILED|^test .* \.\.\. failed')
[[ $((ok + bad)) -gt 0 ]] || { echo "$out"; bad=1; }
[[ $bad -gt 0 && -f "$stage/regression.diffs" ]] && head -n 200 "$stage/regression.diffs"
count "$ok" "$bad"
fi
fi

# One cluster with the worker for pgTAP and the integration tests.
step "start a cluster for pgTAP and integration tests"
cluster="$stage/cluster"
as_pg mkdir -p "$cluster"
port=$(free_port 25500)
if cluster_init "$cluster" "$port" "gateway.usage_flush_interval = '100ms'" && cluster_start "$cluster"; then
  cluster_psql "$cluster" -d postgres -c "CREATE DATABASE gateway" &&
  cluster_psql "$cluster" -d gateway -c "CREATE EXTENSION pgtap; CREATE EXTENSION pg_gateway;"
  note "cluster on port $port"
else
  cat "$cluster/server.log" 2>/dev/null; count 0 1; summary; exit 1
fi


step "pgTAP (pg_prove)"
for t in "$stage"/test/pgtap/*.sql; do
  want pgtap && picked "$t" || continue
  log="$stage/$(basename "$t").tap"
  # From the suite's folder, where its \ir include/... lines resolve.
  (cd "$(dirname "$t")" && as_pg pg_prove --verbose -h "$cluster" -p "$port" -U postgres -d gateway "$t") >"$log" 2>&1
  status=$?
  printf '    %-40s %s\n' "$(basename "$t")" "$(grep -cE '^[[:space:]]*ok [0-9]+' "$log") ok, $(grep -cE '^[[:space:]]*not ok' "$log") not ok"
  grep -E '^[[:space:]]*not ok' "$log" | head -20
  count_tap "$log" "$status"
done

step "integration"
export STAGE=$stage CLUSTER=$cluster PGPORT=$port
# Two scripts at a time: most of a script's time is spent waiting (on its worker, a fake, a
# timeout), not on a core. Only scripts with a cluster and fakes of their own run side by side,
# on ports of their own parity (PGW_PORT_PARITY, see free_port in scripts/lib.sh). A script on the
# shared cluster, one that bounds an elapsed time and one that loads the machine run alone, in
# file order, before the others. Results are reported in file order.
integration_alone() {
  [[ $(basename "$1") =~ ^(kong_ordering|kong_outage|kong_connection_close|kong_prepared|nexus_call_bulk|nexus_call_failures)\.sh$ ]] ||
    grep -qE 'elapsed_ms <|SECONDS - |time\.monotonic' "$1"
}
integration_shared() { grep -qE '\$\{?CLUSTER\b|PGPORT|(^|[^[:alnum:]_-])(q|wait_for) ["$]' "$1"; }
run_integration() {  # SCRIPT LOG PARITY: the script's TAP in LOG, "status seconds" in LOG.status
  local started=$SECONDS
  PGW_PORT_PARITY=$3 timeout 300 bash "$1" >"$2" 2>&1
  echo "$? $((SECONDS - started))" >"$2.status"
}
scripts=() reported=0 slot_pid=("" "") slot_kind=("" "")
report_finished() {  # the scripts not reported yet whose results are in, up to the first still running
  local t log status seconds
  while ((reported < ${#scripts[@]})); do
    t=${scripts[reported]} log="$stage/$(basename "${scripts[reported]}").tap"
    [[ -f "$log.status" ]] || return 0
    read -r status seconds <"$log.status"
    printf '    %-40s %s (%d s)\n' "$(basename "$t")" "$(grep -cE '^ok [0-9]+' "$log") ok, $(grep -cE '^not ok' "$log") not ok" \
      "$seconds"
    grep -E '^not ok|^#' "$log" | head -20
    count_tap "$log" "$status"
    reported=$((reported + 1))
  done
}
for t in test/integration/*.sh; do
  want integration && picked "$t" && scripts+=("$t")
done
alone=() others=()
for t in ${scripts[@]+"${scripts[@]}"}; do
  rm -f "$stage/$(basename "$t").tap.status"
  if integration_alone "$t" || integration_shared "$t"; then alone+=("$t"); else others+=("$t"); fi
done
for t in ${alone[@]+"${alone[@]}"} ${others[@]+"${others[@]}"}; do
  log="$stage/$(basename "$t").tap"
  kind=own
  [[ " ${alone[*]} " == *" $t "* ]] && kind=alone
  while :; do  # until a slot is free and nothing running rules this script out
    free="" busy=0 blocked=""
    for s in 0 1; do
      if [[ -n ${slot_pid[s]} ]] && jobs -rp | grep -qx "${slot_pid[s]}"; then
        busy=$((busy + 1))
        [[ ${slot_kind[s]} == alone ]] && blocked=1
      else
        slot_pid[s]=""
        [[ -n $free ]] || free=$s
      fi
    done
    report_finished
    [[ -n $free && -z $blocked ]] && ! [[ $kind == alone && $busy -gt 0 ]] && break
    sleep 0.1
  done
  run_integration "$t" "$log" "$free" &
  slot_pid[free]=$! slot_kind[free]=$kind
done
wait
report_finished

summary

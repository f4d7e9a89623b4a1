#!/usr/bin/env bash
# make bench: every benchmark in bench/ (each bench/*.sh but the shared lib.sh, so a new one is
# picked up without editing this), one after another, under the machine-wide lock that make test
# takes. Each writes its own section of bench/RESULTS.md. BENCH_ONLY (an extended regex on the
# script names) narrows the run. A benchmark that fails does not stop the others; the exit status
# says whether any failed.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO"

# One install at a time on this machine (see scripts/test.sh); held for the whole run, so no test
# run installs or loads the machine between two benchmarks.
lock=/tmp/pg_gateway-test.lock
if [[ -z "${PGW_TEST_LOCKED:-}" ]]; then
  export PGW_TEST_LOCKED=1
  flock -n -o "$lock" true || echo "==> waiting for make test or another benchmark on this machine to finish"
  exec flock -o "$lock" bash "$0" "$@"
fi

failed=()
ran=0
for script in bench/*.sh; do
  name=$(basename "$script" .sh)
  [[ $name == lib ]] && continue
  [[ -z "${BENCH_ONLY:-}" || $name =~ $BENCH_ONLY ]] || continue
  step "bench/$name"
  started=$SECONDS
  ran=$((ran + 1))
  bash "$script" || failed+=("$name")
  note "bench/$name: $((SECONDS - started)) s"
done

echo
echo "$ran benchmarks run, ${#failed[@]} failed${failed:+: ${failed[*]}}; results in bench/RESULTS.md"
((${#failed[@]} == 0))

#!/usr/bin/env bash
# Fails when a pg_regress suite in sql/ has no expected output, or an expected output has no
# suite: a test that silently never runs is worse than no test.
set -u
cd "$(dirname "$0")/.."
status=0
for f in sql/*.sql; do
  name=$(basename "$f" .sql)
  [[ $name == pg_gateway--* ]] && continue
  [[ -f expected/$name.out ]] || { echo "schedule check: sql/$name.sql has no expected/$name.out"; status=1; }
done
for f in expected/*.out; do
  name=$(basename "$f" .out)
  [[ -f sql/$name.sql ]] || { echo "schedule check: expected/$name.out has no sql/$name.sql"; status=1; }
done
exit $status

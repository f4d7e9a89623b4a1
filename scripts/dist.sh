#!/usr/bin/env bash
# make dist: the PGXN release archive pg_gateway-<version>.zip of the committed tree (HEAD), one
# top directory pg_gateway-<version>/, with META.json and pg_gateway.control generated from HEAD's
# templates and HEAD's EXTVERSION; then checked by scripts/check-dist.py.
#   scripts/dist.sh [OUTPUT_DIR] [COMMIT]      (default: the repository, HEAD)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$repo}
commit=${2:-HEAD}
cd "$repo"

# From the commit, not the work tree: the archive holds only what is committed, so its generated
# files must come from the same commit's templates and version.
version=$(git show "$commit:Makefile" | sed -n 's/^EXTVERSION *= *\([^ ]*\).*/\1/p')
[[ -n "$version" ]] || { echo "dist: no EXTVERSION in $commit:Makefile" >&2; exit 1; }
name=pg_gateway-$version
generated=$(mktemp -d)
trap 'rm -rf "$generated"' EXIT
git show "$commit:META.json.in" | sed "s/@EXTVERSION@/$version/g" >"$generated/META.json"
git show "$commit:pg_gateway.control.in" | sed "s/@EXTVERSION@/$version/g" >"$generated/pg_gateway.control"

# --add-file puts a file at the top of --prefix, under its own name.
mkdir -p "$out"
git archive --format=zip --prefix="$name/" --add-file="$generated/META.json" \
  --add-file="$generated/pg_gateway.control" -o "$out/$name.zip" "$commit"

if [[ $commit == HEAD ]] && ! git diff --quiet HEAD -- 2>/dev/null; then
  echo "dist: note: uncommitted changes are not in the archive (it is built from HEAD)" >&2
fi
python3 scripts/check-dist.py "$out/$name.zip" "$commit" >"$generated/check.tap" ||
  { grep -v '^ok ' "$generated/check.tap" >&2; exit 1; }
echo "$out/$name.zip"

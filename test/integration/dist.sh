#!/usr/bin/env bash
# make dist: the PGXN archive of HEAD holds one top directory pg_gateway-<version>/, a META.json
# that follows the PGXN Meta Spec 1.0.0, the generated control file, every install and upgrade
# script, and only tracked files, with one version throughout (scripts/check-dist.py). The checker
# itself refuses archives broken the ways a release goes wrong. Needs no cluster.
set -u
source "$REPO/test/integration/lib/tap.sh"
cd "$REPO"

if ! git rev-parse --verify -q HEAD >/dev/null 2>&1; then
  plan 1
  echo "ok 1 - make dist # SKIP not a git checkout: the archive is built from git"
  exit 0
fi
plan 20

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The work tree may have changes (and untracked build output) that must not reach the archive.
touch "$REPO/dist-test-untracked.tmp"
out=$(bash scripts/dist.sh "$work" 2>&1)
status=$?
rm -f "$REPO/dist-test-untracked.tmp"
version=$(git show HEAD:Makefile | sed -n 's/^EXTVERSION *= *\([^ ]*\).*/\1/p')
archive=$work/pg_gateway-$version.zip
ok $([[ $status -eq 0 && -f $archive ]]; echo $?) "make dist builds pg_gateway-$version.zip from HEAD"
[[ $status -eq 0 ]] || diag "$out"

# The checker's own TAP lines, one check each here.
python3 scripts/check-dist.py "$archive" >"$work/check.tap" 2>&1
while IFS= read -r line; do
  case $line in
    "ok "*) ok 0 "${line#ok * - }" ;;
    "not ok "*) ok 1 "${line#not ok * - }" ;;
    "#"*) echo "$line" ;;
  esac
done <"$work/check.tap"
ok $(unzip -Z1 "$archive" | grep -q 'dist-test-untracked' && echo 1 || echo 0) \
   "an untracked file of the work tree is not in it"
is "$(unzip -p "$archive" "pg_gateway-$version/META.json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["provides"]["pg_gateway"]["file"])')" \
   "sql/pg_gateway--0.1.0.sql" "provides.pg_gateway.file is the install script (a fresh install runs the chain from it)"

# tamper NAME PYTHON: a copy of the archive whose META.json (bound to m), control file (c) or file
# list (extra, under the top directory, and outside, beside it: name -> text; drop: names) the
# code changes; prints the checker's failures.
tamper() {
  python3 - "$archive" "$work/$1.zip" "$2" <<'PY'
import json, sys, zipfile
src, dst, code = sys.argv[1:4]
zin = zipfile.ZipFile(src)
top = zin.namelist()[0].split("/")[0]
m = json.loads(zin.read(top + "/META.json"))
c = zin.read(top + "/pg_gateway.control").decode()
extra, outside, drop = {}, {}, set()
exec(code)
with zipfile.ZipFile(dst, "w") as zout:
    for item in zin.infolist():
        rel = item.filename[len(top) + 1:]
        if rel in drop:
            continue
        data = zin.read(item)
        if rel == "META.json":
            data = json.dumps(m).encode()
        elif rel == "pg_gateway.control":
            data = c.encode()
        zout.writestr(item, data)
    for name, text in extra.items():
        zout.writestr(top + "/" + name, text)
    for name, text in outside.items():
        zout.writestr(name, text)
PY
  python3 scripts/check-dist.py "$work/$1.zip" 2>&1 | grep -A1 '^not ok' | grep '^#' | tr '\n' ' '
}
refused() {  # refused NAME PYTHON EXPECTED DESCRIPTION
  local got
  got=$(tamper "$1" "$2")
  ok $([[ "$got" == *"$3"* ]]; echo $?) "$4"
  [[ "$got" == *"$3"* ]] || diag "checker said: '$got'"
}
refused no_license 'del m["license"]' "required key 'license' is missing" "the checker refuses a META.json without a license"
refused bad_semver 'm["version"] = "0.6"' "is not a SemVer" "... a version that is not SemVer"
refused lost_file 'm["provides"]["pg_gateway"]["file"] = "sql/pg_gateway.sql"' "is not in the archive" \
  "... provides.pg_gateway.file naming a file the archive lacks"
refused skew 'c = c.replace("default_version = '"'"'%s'"'"'" % m["version"], "default_version = '"'"'9.9.9'"'"'")' \
  "control default_version 9.9.9" "... a control file whose version is not META.json's"
refused build_output 'extra["build/unit_tests.o"] = "x"' "untracked: ['build/unit_tests.o']" "... build output in the archive"
refused missing_upgrade 'drop.add("sql/pg_gateway--0.4.0--0.5.0.sql")' "missing: ['sql/pg_gateway--0.4.0--0.5.0.sql']" \
  "... an archive without one of the upgrade scripts"
refused second_top 'outside["node_modules/pg/index.js"] = "x"' "tops: ['node_modules', 'pg_gateway-" "... an archive with a second top directory"

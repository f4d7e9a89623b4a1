#!/usr/bin/env bash
# make check-cassert: the pg_regress and pgTAP suites against a PostgreSQL 15 built with
# --enable-cassert. That build turns on CLOBBER_FREED_MEMORY, so memory read after its context was
# reset or deleted (an SPI result after SPI_finish, say) reads 0x7f garbage instead of the old
# value that a release build leaves in place. Not part of make test: the first run builds
# PostgreSQL (about 20-30 minutes on two cores); later runs reuse the cache.
#
#   CASSERT_CACHE   where the source, build and install live (default /var/cache/pg_gateway-cassert)
#   CASSERT_BUILD_ONLY=1  stop once PostgreSQL is installed
#   SUITES          passed on to scripts/test.sh (default "regress pgtap")
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${CASSERT_CACHE:-/var/cache/pg_gateway-cassert}
# The name must contain "postgres": otherwise Debian's per-version-dirs patch sends pkglibdir to
# /usr/lib/postgresql/15/lib, and make install would overwrite the system server's modules.
PREFIX=$CACHE/postgresql-cassert
JOBS=${JOBS:-2}

step() { printf '\n==> %s\n' "$*"; }

[[ $(id -u) -eq 0 ]] || { echo "check-cassert: run as root (apt-get and the postgres OS user)" >&2; exit 1; }

# Same upstream version as the system server, so the suites' expected output still matches.
version=$(dpkg-query -W -f '${Version}' postgresql-15)

# deb-src for the mirrors the machine already uses (read from its deb822 sources).
add_deb_src() {
  local src=/etc/apt/sources.list.d/pg_gateway-deb-src.sources
  [[ -f $src ]] && return 0
  step "adding deb-src entries ($src)"
  awk 'BEGIN { RS=""; ORS="\n\n" }
       /(^|\n)Types:[^\n]*deb/ && !/deb-src/ { sub(/Types:[^\n]*/, "Types: deb-src"); print }' \
    /etc/apt/sources.list.d/debian.sources >"$src"
  apt-get update -qq
}

fetch_source() {
  [[ -d $CACHE/src/postgresql-15 ]] && return 0
  add_deb_src
  mkdir -p "$CACHE/src"
  # The installed version first; a mirror may not carry the security pocket's sources, and then
  # the newest other 15.x it has will do (the suites do not depend on the minor version).
  local v
  for v in "$version" $(apt-cache showsrc postgresql-15 | sed -n 's/^Version: //p' | sort -rV); do
    step "apt-get source postgresql-15=$v"
    if (cd "$CACHE/src" && apt-get source -qq "postgresql-15=$v" >/dev/null 2>&1); then
      (cd "$CACHE/src" && mv "$(find . -maxdepth 1 -type d -name 'postgresql-15-*' | head -1)" postgresql-15)
      return 0
    fi
  done
  echo "check-cassert: apt-get source postgresql-15 failed for every version" >&2
  exit 1
}

build_postgres() {
  [[ -x $PREFIX/bin/pg_config && -f $PREFIX/.complete ]] && return 0
  fetch_source
  local b=$CACHE/build
  mkdir -p "$b"
  if [[ ! -f $b/config.status || $(cat "$b/.prefix" 2>/dev/null) != "$PREFIX" ]]; then
    # Objects compiled with another prefix keep its paths: start over.
    [[ -f $b/config.status ]] && make -C "$b" -s clean >/dev/null 2>&1
    step "configure --enable-cassert (log: $b/configure.log)"
    # Minimal options: nothing the suites need beyond the core server.
    (cd "$b" && "$CACHE/src/postgresql-15/configure" --prefix="$PREFIX" --enable-cassert \
      --enable-debug --enable-depend --without-icu --without-readline --without-llvm \
      --without-libxml --without-perl --without-python --without-tcl --without-gssapi --without-ldap \
      --without-openssl --without-zstd --without-lz4 --with-extra-version=" (cassert)" \
      CFLAGS="-O1 -g" >configure.log 2>&1) || { tail -30 "$b/configure.log"; exit 1; }
    echo "$PREFIX" >"$b/.prefix"
  fi
  local pkglibdir
  pkglibdir=$(make -s -C "$b/src/port" -f - print <<<'include Makefile
print: ; @echo $(pkglibdir)')
  [[ $pkglibdir == "$PREFIX"/* ]] || { echo "check-cassert: pkglibdir $pkglibdir is outside $PREFIX" >&2; exit 1; }
  step "building PostgreSQL with -j$JOBS (log: $b/build.log)"
  nice make -C "$b" -j"$JOBS" >"$b/build.log" 2>&1 || { tail -30 "$b/build.log"; exit 1; }
  nice make -C "$b/contrib" -j"$JOBS" >>"$b/build.log" 2>&1 || { tail -30 "$b/build.log"; exit 1; }
  make -C "$b" install >"$b/install.log" 2>&1 && make -C "$b/contrib" install >>"$b/install.log" 2>&1 ||
    { tail -30 "$b/install.log"; exit 1; }
  touch "$PREFIX/.complete"
}

build_postgres
# pgTAP is SQL only: the system package's files work in any PostgreSQL 15.
cp /usr/share/postgresql/15/extension/pgtap* "$("$PREFIX/bin/pg_config" --sharedir)/extension/"
[[ ${CASSERT_BUILD_ONLY:-0} == 1 ]] && { echo "PostgreSQL with cassert at $PREFIX"; exit 0; }

# The cluster runs as postgres: it must be able to reach the install.
chmod 755 "$CACHE" "$PREFIX"
step "suites against $("$PREFIX/bin/pg_config" --version) with cassert"
# From a copy of the work tree: objects built against this PostgreSQL must not mix with the
# work tree's (built against the system one), and make test's build folders stay untouched.
copy=$CACHE/tree
rm -rf "$copy"
mkdir -p "$copy"
(cd "$REPO" && git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$copy" 2>/dev/null) || true
PG_CONFIG=$PREFIX/bin/pg_config SUITES=${SUITES:-regress pgtap} bash "$copy/scripts/test.sh"

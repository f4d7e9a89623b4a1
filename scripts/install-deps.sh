#!/usr/bin/env bash
# Installs the Debian packages pg_gateway needs to build and test. Idempotent: it only calls apt
# when something is missing, so repeated `make demo` / `make test` runs stay fast and offline.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  postgresql-15 postgresql-server-dev-15
  libsodium-dev libcurl4-openssl-dev nlohmann-json3-dev
  postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl
  googletest libgtest-dev libbenchmark-dev clang libclang-rt-14-dev
  libvalijson-dev json-schema-test-suite libmicrohttpd-dev
  python3 curl openssl
  pgbouncer  # the TypeScript middleware is tested through it (test/integration/ts_middleware.sh starts its own)
)
# node and npm run the node-postgres client suite (test/node). Any node on the PATH will do (nvm,
# NodeSource, whose nodejs bundles npm); Debian's packages only when there is none.
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "==> dependencies: all present"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "error: missing packages: ${missing[*]}" >&2
  echo "hint: run 'make deps' as root, or install them with apt-get." >&2
  exit 1
fi

echo "==> dependencies: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "==> dependencies: installed"

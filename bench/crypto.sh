#!/usr/bin/env bash
# bench/crypto: encrypt_credentials and decrypt_credentials against pgcrypto's pgp_sym_encrypt /
# pgp_sym_decrypt and against SELECT 1, measured in the same run on one throwaway cluster
# (pgbench -M prepared, 2 clients, a 280-byte credential document), then a re-encryption of
# BENCH_ROWS connectors. Prints tps, ratios and rows/s. Not a test.
#
#   make bench-crypto                 (BENCH_ROWS=1000000 BENCH_SECONDS=10 BENCH_ROUNDS=3)
#   BENCH_ROWS=1000 BENCH_SECONDS=5 make bench-crypto   (quick: the tps ratios only)
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
source "$(dirname "$0")/lib.sh"

rows=${BENCH_ROWS:-1000000}

bench_cluster bench-crypto
bench_stage_scripts bench/crypto

step "store $rows encrypted connector credentials"
start=$SECONDS
cluster_psql "$cluster" -d gateway -v nrows="$rows" -f "$stage/scripts/setup.sql" >/dev/null
note "done in $((SECONDS - start)) s"

# The decrypt scripts present one stored ciphertext as a literal, as the encrypt scripts present
# their plaintext, so neither side pays a table lookup that SELECT 1 does not. The CASE on
# random() keeps the planner from folding pgcrypto's IMMUTABLE pgp_sym_decrypt into a constant
# (it would then run once per prepared statement, not once per transaction); both sides carry it.
for kind in ours pgp; do
  literal=$(cluster_psql "$cluster" -d gateway -Atc "SELECT $kind FROM bench.sealed WHERE n = 1")
  if [[ $kind == ours ]]; then
    echo "SELECT gateway.decrypt_credentials(CASE WHEN random() >= 0 THEN '$literal'::bytea END, 'bench') ->> 'region';" >"$stage/scripts/decrypt.pgbench"
    cp "$stage/scripts/decrypt.pgbench" "$stage/scripts/decrypt_durable.pgbench"
  else
    echo "SELECT length(pgp_sym_decrypt(CASE WHEN random() >= 0 THEN '$literal'::bytea END, 'bench-passphrase'));" >"$stage/scripts/pgp_decrypt.pgbench"
  fi
done
[[ $(id -u) -eq 0 ]] && chown postgres: "$stage"/scripts/*.pgbench

declare -A samples
names=(select_1 encrypt pgp_encrypt decrypt decrypt_durable pgp_decrypt)
# decrypt_durable: the same script with gateway.audit_decrypt_durable on (a SIGHUP setting).
durable() {
  cluster_psql "$cluster" -d gateway -c "ALTER SYSTEM SET gateway.audit_decrypt_durable = $1" \
    -c "SELECT pg_reload_conf()" >/dev/null
  sleep 0.5
}
for r in $(seq "$rounds"); do
  step "round $r of $rounds (${seconds}s each, $clients clients, -M prepared)"
  for name in "${names[@]}"; do
    cluster_psql "$cluster" -d gateway -c "CHECKPOINT" >/dev/null
    [[ $name == decrypt_durable ]] && durable on
    tps=$(pgbench_tps "$name.pgbench" "$seconds")
    [[ $name == decrypt_durable ]] && durable off
    samples[$name]+="$tps "
    note "$(printf '%-14s %10.0f tps' "$name" "$tps")"
  done
done

step "re-encrypt $rows credentials (rotate, then CALL gateway.reencrypt_credentials(10000))"
cluster_psql "$cluster" -d gateway -c "SELECT gateway.rotate_encryption_key()" >/dev/null
start_ns=$(date +%s%N)
cluster_psql "$cluster" -d gateway -c "CALL gateway.reencrypt_credentials(10000)" 2>&1 | tail -1 | sed 's/^/    /'
elapsed_ms=$((($(date +%s%N) - start_ns) / 1000000))
left=$(cluster_psql "$cluster" -d gateway -Atc "SELECT count(*) FROM gateway.connectors WHERE encryption_key_id <> (SELECT id FROM gateway.encryption_keys WHERE state = 'active')")

m() { median ${samples[$1]}; }
one=$(m select_1); enc=$(m encrypt); penc=$(m pgp_encrypt); dec=$(m decrypt); pdec=$(m pgp_decrypt)
ddec=$(m decrypt_durable)
echo
{
echo "== bench/crypto: 280-byte document, $clients clients, median of $rounds x ${seconds}s, tps =="
printf '%-34s %10.0f\n' "SELECT 1" "$one" "encrypt_credentials" "$enc" "pgcrypto pgp_sym_encrypt" "$penc" \
  "decrypt_credentials (audited)" "$dec" "decrypt_credentials (durable audit)" "$ddec" \
  "pgcrypto pgp_sym_decrypt" "$pdec"
echo "ratio encrypt / pgp_sym_encrypt   = $(ratio "$enc" "$penc")   (goal >= 5)"
echo "ratio decrypt / pgp_sym_decrypt   = $(ratio "$dec" "$pdec")   (goal >= 5)"
echo "ratio encrypt / SELECT 1          = $(ratio "$enc" "$one")   (goal >= 0.5)"
echo "ratio decrypt / SELECT 1          = $(ratio "$dec" "$one")   (goal >= 0.5)"
echo "ratio decrypt durable / not durable = $(ratio "$ddec" "$dec")   (gateway.audit_decrypt_durable on / off; reported)"
echo "reencrypt_credentials             = $(awk -v r="$rows" -v ms="$elapsed_ms" 'BEGIN { printf "%.0f", r / (ms / 1000) }') rows/s ($rows rows in ${elapsed_ms} ms, $left left on old keys)"
} | results_section "bench/crypto (make bench-crypto)"

#!/usr/bin/env bash
# TLS to the Kong Admin API: the fake speaks https only and requires a client certificate signed
# by the test's CA. The worker verifies Kong's certificate against gateway.kong_ca_file and
# presents gateway.kong_client_cert with its key, which is read from a private file (the master
# key's checks). Each missing or wrong piece leaves the job retrying with libcurl's reason; fixed
# by a reload, the job lands.
set -u
source "$REPO/test/integration/lib/tap.sh"
source "$REPO/test/integration/lib/kong.sh"
plan 9

# A CA, Kong's certificate for 127.0.0.1, a client certificate, and an unrelated CA.
tls=$(make_stage kong-tls-certs)
as_pg bash -c "cd '$tls' && umask 077 &&
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj '/CN=test CA' \
    -keyout ca.key -out ca.pem &&
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj '/CN=other CA' \
    -keyout other.key -out other.pem &&
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj '/CN=127.0.0.1' \
    -keyout kong.key -out kong.csr &&
  printf 'subjectAltName=IP:127.0.0.1\n' > kong.ext &&
  openssl x509 -req -in kong.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile kong.ext -out kong.pem &&
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj '/CN=pg_gateway' \
    -keyout client.key -out client.csr &&
  openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -out client.pem &&
  chmod 644 ca.pem other.pem kong.pem client.pem kong.key" 2>"$STAGE/openssl.log" ||
  { cat "$STAGE/openssl.log"; echo "Bail out! openssl could not make the test certificates"; exit 1; }
trap 'cluster_stop "$KCLUSTER"; rm -rf "$tls"' EXIT

start_kong_fake kong-tls --tls-cert "$tls/kong.pem" --tls-key "$tls/kong.key" --tls-client-ca "$tls/ca.pem"
KONG_URL="https://127.0.0.1:$KONG_PORT"
KONG_CURL_OPTS=(--cacert "$tls/ca.pem" --cert "$tls/client.pem" --key "$tls/client.key")
kong_cluster kong-tls "gateway.kong_ca_file = '$tls/ca.pem'"
trap 'cluster_stop "$KCLUSTER"; rm -rf "$tls"' EXIT

tag=$(kq "SELECT 'pg-gateway-' || (SELECT system_identifier FROM pg_control_system()) || '-' || oid FROM pg_database WHERE datname = 'gateway'")
reload() { kq "SELECT pg_reload_conf()" >/dev/null; sleep 0.5; }
set_conf() { kq "ALTER SYSTEM SET $1 = '$2'" >/dev/null; }
state_sql() { echo "SELECT sync_state FROM gateway.public_interfaces WHERE id = '$1'"; }
error_of() { kq "SELECT sync_error FROM gateway.public_interfaces WHERE id = '$1'"; }

iface=$(publish over-tls)
is "$(kwait "$(state_sql "$iface")" failed 10)" failed \
   "without a client certificate the job fails and retries ($(error_of "$iface"))"
(( $(kong_py 'd["tls_refused"]' /__fake/stats) > 0 ))
ok $? "Kong refused the handshake"

as_pg chmod 644 "$tls/client.key"
set_conf gateway.kong_client_cert "$tls/client.pem"
set_conf gateway.kong_client_key "$tls/client.key"
reload
# The worker rebuilds its client once its requests in flight are done: wait for it.
key_warnings() { grep -c 'Kong client key file .* is accessible by group or others' "$KCLUSTER/server.log"; }
is "$(poll_with key_warnings unused 1 20)" 1 \
   "a client key others can read is refused, with a warning"
as_pg chmod 600 "$tls/client.key"
reload
is "$(kwait "$(state_sql "$iface")" synced)" synced \
   "with the client certificate and a private key, the job lands over mutual TLS"
is "$(kong_py 'd["name"]' "/services/gw-$iface")" "gw-$iface" "Kong has the service"

# Kong's certificate is verified: a CA bundle that did not sign it fails every request.
set_conf gateway.kong_ca_file "$tls/other.pem"
reload
kq "UPDATE gateway.public_interfaces SET rate_limit_per_minute = 30 WHERE id = '$iface'" >/dev/null
kwait "$(state_sql "$iface")" failed 10 >/dev/null
error=$(error_of "$iface")
[[ $error =~ certificate|SSL ]]
ok $? "a Kong certificate the CA bundle did not sign is refused ($error)"
set_conf gateway.kong_ca_file "$tls/ca.pem"
reload
is "$(kwait "$(state_sql "$iface")" synced 20)" synced \
   "with the right CA again, the change catches up"
is "$(kong_py '[p["config"]["minute"] for p in d["data"] if p["name"] == "rate-limiting"][0]' "/plugins?tags=$tag")" 30 \
   "Kong has the new limit"
is "$(grep -c 'PRIVATE KEY' "$KCLUSTER/server.log")" 0 "no key material in the server log"

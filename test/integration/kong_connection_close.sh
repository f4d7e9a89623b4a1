#!/usr/bin/env bash
# A Kong that closes every connection after its answer (Connection: close): each request opens a
# new socket, often with the number of the one just closed. The worker watches what libcurl asks
# for, so a publish lands at once rather than when libcurl's timer next fires.
set -u
source "$REPO/test/integration/lib/tap.sh"
source "$REPO/test/integration/lib/kong.sh"
plan 6

start_kong_fake kong-close
fake_faults '{"close_connections": true}'
kong_cluster kong-close
warm=$(publish warm-up)
is "$(kwait "SELECT sync_state FROM gateway.public_interfaces WHERE id = '$warm'" synced 30)" synced \
   "the worker syncs against a Kong that closes every connection"

# From the fake's clock: how long the worker took from its first to its last write of one publish
# (the 4 writes go one after the other, each on a new connection).
spans=() seen='{}'
for name in first second third fourth fifth sixth; do
  iface=$(publish "$name")
  kwait "SELECT sync_state FROM gateway.public_interfaces WHERE id = '$iface'" synced 30 >/dev/null
  read -r span seen < <(kong GET /__fake/created | python3 -c '
import json, sys
created, seen = json.load(sys.stdin), json.loads(sys.argv[1])
new = [t for k, t in created.items() if k not in seen]
print(int(max(new) - min(new)), json.dumps(created, separators=(",", ":")))' "$seen")
  spans+=("$span")
done
diag "first to last write of each publish, ms: ${spans[*]}"
sorted=($(printf '%s\n' "${spans[@]}" | sort -n))
ok $((sorted[5] >= 3000)) "each publish lands in well under 3 seconds"
# Sleeping until some other timer (a stats report, libcurl's) costs up to a second per write; the
# median leaves room for one hiccup of a loaded machine.
ok $((sorted[3] >= 300)) "publishes do not wait on a timer: their 4 writes take under 300 ms (median)"
is "$(kong_py 'len(d["data"])' "/services")" 7 "Kong has every service"
is "$(kong_py 'len(d["data"])' "/plugins")" 14 "and every plugin (key-auth and acl per route)"
check_contract

#!/usr/bin/env bash
# Hostile answers from Kong (a body cut inside a UTF-8 character, bytes that are not UTF-8, a NUL,
# 20 MB, HTML, a socket closed mid-answer) and an outcome the database refuses: each ends as a
# recorded outcome of its own job, the other jobs of the batch are recorded, the worker goes on.
set -u
source "$REPO/test/integration/lib/tap.sh"
source "$REPO/test/integration/lib/kong.sh"
plan 24

start_kong_fake kong-hostile
kong_cluster kong-hostile
warm=$(publish warm-up)
is "$(kwait "SELECT sync_state FROM gateway.public_interfaces WHERE id = '$warm'" synced)" synced "the worker syncs"

# three NAME ID...: three open interfaces queued in one transaction (one batch for the worker).
three() {
  local sql="BEGIN;" id
  for id in "$@"; do
    sql+="WITH s AS (INSERT INTO gateway.service_interfaces (project_id, workflow_id, name, interface_type, callable_name, is_public)
            VALUES ('c5000000-0000-4000-8000-000000000001', gen_random_uuid(), 'i-$id', 'signal', 'i-$id', true) RETURNING id)
          INSERT INTO gateway.public_interfaces (id, service_interface_id, auth_type) SELECT '$id', id, 'none' FROM s;"
  done
  kq "$sql COMMIT;" >/dev/null
}
uuid() { kq "SELECT gen_random_uuid()"; }

for kind in utf8_split invalid_utf8 nul huge not_json cut; do
  a=$(uuid) b=$(uuid) c=$(uuid)
  fake_faults "{\"error_rate\": 1, \"error_status\": 400, \"error_body\": \"$kind\", \"error_path\": \"gw-$b\"}"
  three "$a" "$b" "$c"
  expect=dead
  [[ $kind == cut ]] && expect=failed  # no answer at all: retried
  is "$(kwait "SELECT sync_state FROM gateway.public_interfaces WHERE id = '$b'" $expect 20)" $expect \
     "$kind: the job that got it ends $expect, with its outcome recorded"
  is "$(kwait "SELECT count(*) FROM gateway.public_interfaces WHERE id IN ('$a', '$c') AND sync_state = 'synced'" 2)" 2 \
     "$kind: the other jobs of its batch are recorded"
  is "$(kq "SELECT sync_error IS NOT NULL AND octet_length(sync_error) <= 1000 FROM gateway.public_interfaces WHERE id = '$b'")" t \
     "$kind: the error is stored, at most 1000 bytes"
  fake_faults '{"error_rate": 0, "error_body": null, "error_path": null}'
done

# An outcome the database itself refuses (here a trigger): recorded alone, its job dead-lettered
# with the reason, and the rest of the batch recorded.
a=$(uuid) b=$(uuid) c=$(uuid)
kq "CREATE FUNCTION public.refuse() RETURNS trigger LANGUAGE plpgsql AS \$\$
    BEGIN
      IF NEW.id = '$b' AND NEW.sync_state = 'synced' THEN RAISE EXCEPTION 'refused by a test trigger'; END IF;
      RETURN NEW;
    END \$\$;
    CREATE TRIGGER refuse BEFORE UPDATE ON gateway.public_interfaces FOR EACH ROW EXECUTE FUNCTION public.refuse()" >/dev/null
three "$a" "$b" "$c"
is "$(kwait "SELECT sync_state FROM gateway.public_interfaces WHERE id = '$b'" dead 20)" dead \
   "an outcome the database refuses: that job is dead-lettered"
is "$(kq "SELECT sync_error LIKE '%could not be recorded%refused by a test trigger%' FROM gateway.public_interfaces WHERE id = '$b'")" t \
   "with the reason"
is "$(kwait "SELECT count(*) FROM gateway.public_interfaces WHERE id IN ('$a', '$c') AND sync_state = 'synced'" 2)" 2 \
   "the other jobs of its batch are recorded"
kq "DROP TRIGGER refuse ON gateway.public_interfaces" >/dev/null

is "$(kwait "SELECT count(*) FROM gateway.sync_jobs WHERE state = 'running'" 0 10)" 0 "no job is left running"
after=$(publish after)
is "$(kwait "SELECT sync_state FROM gateway.public_interfaces WHERE id = '$after'" synced)" synced "the worker goes on syncing"

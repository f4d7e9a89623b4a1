#include "key_lookup.hpp"

#include <cstring>

#include "cached_relation.hpp"
#include "error_bridge.hpp"
#include "key_scopes.hpp"
#include "secrets.hpp"
#include "uuid.hpp"

extern "C" {
#include "utils/lsyscache.h"
#include "utils/fmgroids.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
}

namespace gateway::pg {
namespace {

// Column numbers of gateway.api_keys, looked up by name so later versions may add columns.
struct Columns {
  AttrNumber id, user_id, project_id, public_interface_id, key_hash, hash_version, is_active,
      revoked_at, expires_at, rate_limit_per_minute, scopes, usage_limit, refill_amount,
      refill_interval, created_at, last_used_at;
  AttrNumber master_fingerprint;  // InvalidAttrNumber before ALTER EXTENSION UPDATE to 0.6.0
};

CachedRelation api_keys("api_keys", "api_keys_key_prefix_key");
CachedRelation public_interfaces("public_interfaces", "public_interfaces_pkey");
unsigned interface_columns_generation = 0;
AttrNumber interface_project_column = InvalidAttrNumber;
unsigned columns_generation = 0;  // api_keys.generation() `columns` were read at
Columns columns{};

AttrNumber column(Oid table, const char* name) {
  AttrNumber attnum = get_attnum(table, name);
  if (attnum == InvalidAttrNumber) {
    ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
                    errmsg("column gateway.api_keys.%s is missing", name),
                    errhint("Update the extension: ALTER EXTENSION pg_gateway UPDATE;")));
  }
  return attnum;
}

// Column numbers, read again whenever the relations were looked up again.
void resolve_columns() {
  Oid table = api_keys.table();
  if (api_keys.generation() == columns_generation) return;
  columns = Columns{column(table, "id"), column(table, "user_id"), column(table, "project_id"),
                    column(table, "public_interface_id"), column(table, "key_hash"),
                    column(table, "hash_version"), column(table, "is_active"),
                    column(table, "revoked_at"), column(table, "expires_at"),
                    column(table, "rate_limit_per_minute"),
                    // 0.6.0 columns: absent while a new library runs on a 0.5.0 schema (between
                    // installing it and ALTER EXTENSION UPDATE), when no key has them.
                    get_attnum(table, "scopes"), get_attnum(table, "usage_limit"),
                    get_attnum(table, "refill_amount"), get_attnum(table, "refill_interval"),
                    column(table, "created_at"), column(table, "last_used_at"),
                    get_attnum(table, "master_fingerprint")};
  columns_generation = api_keys.generation();
}

KeyId uuid_at(TupleTableSlot* slot, AttrNumber attnum, bool* isnull) {
  Datum value = slot_getattr(slot, attnum, isnull);
  return *isnull ? KeyId{} : uuid_to_id(value);
}

// Copies the row out of the slot into plain C++ values (no PostgreSQL memory escapes).
void read_row(TupleTableSlot* slot, const SecureBuffer& scope_key, StoredKey& key) {
  bool isnull = false;
  key.id = uuid_at(slot, columns.id, &isnull);
  key.user_id = uuid_at(slot, columns.user_id, &isnull);
  key.project_id = uuid_at(slot, columns.project_id, &isnull);
  key.row.project = key.project_id;
  KeyId bound = uuid_at(slot, columns.public_interface_id, &isnull);
  if (!isnull) key.row.bound_interface = bound;

  Datum value = slot_getattr(slot, columns.key_hash, &isnull);
  if (!isnull) {
    bytea* hash = DatumGetByteaPP(value);
    key.hash_len = VARSIZE_ANY_EXHDR(hash);
    if (key.hash_len == key.hash.size()) std::memcpy(key.hash.data(), VARDATA_ANY(hash), key.hash_len);
  }
  key.hash_version = DatumGetInt16(slot_getattr(slot, columns.hash_version, &isnull));
  key.row.is_active = DatumGetBool(slot_getattr(slot, columns.is_active, &isnull));
  value = slot_getattr(slot, columns.revoked_at, &isnull);
  if (!isnull) key.row.revoked_at = DatumGetTimestampTz(value);
  value = slot_getattr(slot, columns.expires_at, &isnull);
  if (!isnull) key.row.expires_at = DatumGetTimestampTz(value);
  value = slot_getattr(slot, columns.rate_limit_per_minute, &isnull);
  if (!isnull) key.rate_limit_per_minute = DatumGetInt32(value);
  value = slot_getattr(slot, columns.last_used_at, &isnull);
  if (!isnull) key.last_used_at = DatumGetTimestampTz(value);
  if (columns.master_fingerprint != InvalidAttrNumber) {
    value = slot_getattr(slot, columns.master_fingerprint, &isnull);
    if (!isnull) {
      key.has_master_fingerprint =
          api_key::parse_fingerprint(text_view(DatumGetTextPP(value)), key.master_fingerprint);
    }
  }
  if (columns.scopes != InvalidAttrNumber) {
    value = slot_getattr(slot, columns.scopes, &isnull);
    if (!isnull) hash_scope_array(value, scope_key, key.scopes);
  }
  if (columns.usage_limit == InvalidAttrNumber) return;
  slot_getattr(slot, columns.usage_limit, &isnull);
  key.usage_limited = !isnull;
  if (key.usage_limited) {
    value = slot_getattr(slot, columns.refill_amount, &isnull);
    if (!isnull) key.usage.refill_amount = DatumGetInt64(value);
    value = slot_getattr(slot, columns.refill_interval, &isnull);
    if (!isnull) {
      // api_key_issue refuses months, so an interval is a fixed number of microseconds.
      const Interval* interval = DatumGetIntervalP(value);
      key.usage.refill_interval_us = interval->time + static_cast<std::int64_t>(interval->day) * USECS_PER_DAY;
    }
    key.usage.anchor_us = DatumGetTimestampTz(slot_getattr(slot, columns.created_at, &isnull));
  }
}

}  // namespace

namespace {

// One probe of the prefix index under the statement's snapshot, or (`latest`) under the latest one.
std::optional<StoredKey> probe_key(std::string_view prefix, bool latest) {
  std::optional<StoredKey> found;
  const SecureBuffer& scope_key = scope_hash_key();  // may throw: not inside pg_call
  pg_call([&] {
    resolve_columns();
    // The latest snapshot is not registered (a copy per miss costs unknown keys 3 %): nothing in
    // one index probe takes another latest snapshot, and its xmin is no older than this
    // transaction's.
    Snapshot snapshot = latest ? GetLatestSnapshot()
                               : ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot();
    Datum value = PointerGetDatum(cstring_to_text_with_len(prefix.data(), static_cast<int>(prefix.size())));
    RegProcedure eq = F_TEXTEQ;
    api_keys.probe(&value, &eq, 1, snapshot, [&](TupleTableSlot* slot) {
      read_row(slot, scope_key, found.emplace());
      return false;
    });
  });
  return found;
}

}  // namespace

std::optional<StoredKey> find_key_by_prefix(std::string_view prefix) { return probe_key(prefix, false); }

std::optional<StoredKey> find_key_by_prefix_latest(std::string_view prefix) { return probe_key(prefix, true); }

std::optional<KeyId> find_interface_project(const KeyId& interface_id) {
  std::optional<KeyId> project;
  pg_call([&] {
    Oid table = public_interfaces.table();
    if (public_interfaces.generation() != interface_columns_generation) {
      interface_project_column = get_attnum(table, "project_id");
      interface_columns_generation = public_interfaces.generation();
    }
    Snapshot snapshot = ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot();
    Datum value = id_to_uuid(interface_id);
    RegProcedure eq = F_UUID_EQ;
    public_interfaces.probe(&value, &eq, 1, snapshot, [&](TupleTableSlot* slot) {
      bool isnull = false;
      KeyId id = uuid_at(slot, interface_project_column, &isnull);
      if (!isnull) project = id;
      return false;
    });
  });
  return project;
}

}  // namespace gateway::pg

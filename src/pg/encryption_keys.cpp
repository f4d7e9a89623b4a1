#include "encryption_keys.hpp"

#include <cstring>
#include <map>
#include <vector>

#include "../core/envelope.hpp"
#include "../core/error.hpp"
#include "error_bridge.hpp"
#include "secrets.hpp"
#include "shared_state.hpp"

extern "C" {
#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "commands/trigger.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
}

namespace gateway::pg {
namespace {

std::map<std::uint32_t, EncryptionKey> keys;
bool loaded = false;
std::uint64_t loaded_generation = 0;
Oid loaded_table = InvalidOid;  // the table the cache was read from: DROP + CREATE EXTENSION makes a new one
bool bump_at_commit = false;
bool callback_registered = false;

// Publishes a change to the key table when (and only if) its transaction commits; any backend's
// cache is then stale. Until then only this backend, which sees its own changes, reloads.
void on_transaction_end(XactEvent event, void*) {
  switch (event) {
    case XACT_EVENT_COMMIT:
    case XACT_EVENT_PARALLEL_COMMIT:
      if (bump_at_commit) bump_encryption_keys_generation();
      bump_at_commit = false;
      break;
    case XACT_EVENT_ABORT:
    case XACT_EVENT_PARALLEL_ABORT:
      if (bump_at_commit) loaded = false;  // what we cached may have been rolled back
      bump_at_commit = false;
      break;
    default:
      break;
  }
}

Oid key_table() {
  return get_relname_relid("encryption_keys", get_namespace_oid("gateway", false));
}

Oid key_table_owner() {
  Oid table = key_table();
  HeapTuple tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(table));
  if (!HeapTupleIsValid(tuple)) elog(ERROR, "gateway.encryption_keys is missing");
  Oid owner = reinterpret_cast<Form_pg_class>(GETSTRUCT(tuple))->relowner;
  ReleaseSysCache(tuple);
  return owner;
}

// Runs `body` (PostgreSQL code) as the owner of the key table: the key directory is readable by
// the extension, not by the caller, who only holds EXECUTE on encrypt/decrypt. The queries below
// are schema-qualified and use no operator, so the caller's search_path cannot redirect them.
template <typename Body>
void as_key_table_owner(Body&& body) {
  Oid saved_user;
  int saved_context;
  GetUserIdAndSecContext(&saved_user, &saved_context);
  SetUserIdAndSecContext(key_table_owner(), saved_context | SECURITY_LOCAL_USERID_CHANGE);
  PG_TRY();
  {
    body();
  }
  PG_FINALLY();
  {
    SetUserIdAndSecContext(saved_user, saved_context);
  }
  PG_END_TRY();
}

// A copy of `value` in the memory context that was current at SPI_connect (empty for NULL).
char* copy_to_caller(const char* value) {
  if (value == nullptr) value = "";
  std::size_t size = strlen(value) + 1;
  return static_cast<char*>(memcpy(SPI_palloc(size), value, size));
}

struct Row {
  int32 id;
  char* state;
  char* fingerprint;
};

void load(bool see_own_writes) {
  std::uint64_t generation = encryption_keys_generation();  // before reading: never miss a bump
  Row* rows = nullptr;
  int count = 0;
  pg_call([&] {
    as_key_table_owner([&] {
      if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
      if (SPI_execute("SELECT id, state, master_fingerprint FROM gateway.encryption_keys",
                      !see_own_writes, 0) != SPI_OK_SELECT) {
        elog(ERROR, "could not read gateway.encryption_keys");
      }
      count = static_cast<int>(SPI_processed);
      // Rows and strings go to the caller's context (SPI_palloc): SPI_getvalue's copies live in
      // SPI's own context, which SPI_finish frees before we read them.
      rows = static_cast<Row*>(SPI_palloc(sizeof(Row) * (count + 1)));
      for (int i = 0; i < count; ++i) {
        HeapTuple tuple = SPI_tuptable->vals[i];
        TupleDesc desc = SPI_tuptable->tupdesc;
        bool isnull;
        rows[i].id = DatumGetInt32(SPI_getbinval(tuple, desc, 1, &isnull));
        rows[i].state = copy_to_caller(SPI_getvalue(tuple, desc, 2));
        rows[i].fingerprint = copy_to_caller(SPI_getvalue(tuple, desc, 3));
      }
      SPI_finish();
    });
  });
  keys.clear();
  for (int i = 0; i < count; ++i) {
    auto id = static_cast<std::uint32_t>(rows[i].id);
    keys[id] = EncryptionKey{id, rows[i].state, rows[i].fingerprint};
  }
  loaded = true;
  loaded_generation = generation;
}

void refresh() {
  Oid table = InvalidOid;
  pg_call([&] { table = key_table(); });
  if (!loaded || loaded_generation != encryption_keys_generation() || table != loaded_table) {
    load(false);
    loaded_table = table;
  }
}

const EncryptionKey* find_active() {
  for (const auto& [id, key] : keys) {
    if (key.state == "active") return &key;
  }
  return nullptr;
}

}  // namespace

std::optional<EncryptionKey> find_encryption_key(std::uint32_t id) {
  refresh();
  auto it = keys.find(id);
  if (it == keys.end()) return std::nullopt;
  return it->second;
}

EncryptionKey active_encryption_key() {
  refresh();
  const EncryptionKey* active = find_active();
  if (active == nullptr) {
    pg_call([] {
      as_key_table_owner([] {
        if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
        if (SPI_execute("SELECT gateway.rotate_encryption_key()", false, 1) != SPI_OK_SELECT) {
          elog(ERROR, "could not create the first encryption key");
        }
        SPI_finish();
      });
    });
    load(true);
    active = find_active();
  }
  if (active == nullptr) throw Error(sqlstate::kInternalError, "no active encryption key");
  if (active->master_fingerprint != master_key_fingerprint()) {
    throw Error(crypto::kMasterKeyChanged,
                "the active encryption key was derived from another master key",
                "Encryption key " + std::to_string(active->id) + " belongs to master key " +
                    active->master_fingerprint + "; the server now has " +
                    master_key_fingerprint() + ".",
                "After changing gateway.master_key_file, run SELECT "
                "gateway.rotate_encryption_key(); then CALL gateway.reencrypt_credentials();");
  }
  return *active;
}

}  // namespace gateway::pg

using namespace gateway::pg;

extern "C" {
PG_FUNCTION_INFO_V1(gateway_encryption_keys_changed);
}

// Statement trigger on gateway.encryption_keys: this backend reloads at once, the others after
// the change commits.
extern "C" Datum gateway_encryption_keys_changed(PG_FUNCTION_ARGS) {
  if (!CALLED_AS_TRIGGER(fcinfo)) elog(ERROR, "_encryption_keys_changed must be called as a trigger");
  if (!callback_registered) {
    RegisterXactCallback(on_transaction_end, nullptr);
    callback_registered = true;
  }
  bump_at_commit = true;
  loaded = false;
  return PointerGetDatum(nullptr);
}

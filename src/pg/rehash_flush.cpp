#include "rehash_flush.hpp"

#include <map>
#include <string>
#include <new>
#include <vector>

#include "rehash_queue.hpp"
#include "worker_transaction.hpp"
#include "uuid.hpp"

extern "C" {
#include "commands/extension.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
}

namespace gateway::pg {
namespace {

ArrayType* array_of(Datum* values, int count, Oid type) {
  int16 typlen;
  bool typbyval;
  char typalign;
  get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
  return construct_array(values, count, type, typlen, typbyval, typalign);
}

// Runs inside a transaction with SPI connected. Plain C style: no C++ object lives in this frame,
// so a PostgreSQL error may longjmp through it. Returns how many rows moved.
uint64 write_rehashes(const RehashRequest* requests, int count) {
  Datum* ids = static_cast<Datum*>(palloc(sizeof(Datum) * count));
  Datum* old_hashes = static_cast<Datum*>(palloc(sizeof(Datum) * count));
  Datum* new_hashes = static_cast<Datum*>(palloc(sizeof(Datum) * count));
  Datum* versions = static_cast<Datum*>(palloc(sizeof(Datum) * count));
  Datum* fingerprints = static_cast<Datum*>(palloc(sizeof(Datum) * count));
  for (int i = 0; i < count; ++i) {
    const RehashRequest& r = requests[i];
    ids[i] = id_to_uuid(r.key);
    old_hashes[i] = PointerGetDatum(bytes_to_bytea(r.old_hash.data(), r.old_hash.size()));
    new_hashes[i] = PointerGetDatum(bytes_to_bytea(r.new_hash.data(), r.new_hash.size()));
    versions[i] = Int16GetDatum(r.pepper_version);
    fingerprints[i] = PointerGetDatum(cstring_to_text_with_len(r.master_fingerprint.data(),
                                                               static_cast<int>(r.master_fingerprint.size())));
  }
  Oid types[5] = {UUIDARRAYOID, BYTEAARRAYOID, BYTEAARRAYOID, INT2ARRAYOID, TEXTARRAYOID};
  Datum args[5] = {PointerGetDatum(array_of(ids, count, UUIDOID)),
                   PointerGetDatum(array_of(old_hashes, count, BYTEAOID)),
                   PointerGetDatum(array_of(new_hashes, count, BYTEAOID)),
                   PointerGetDatum(array_of(versions, count, INT2OID)),
                   PointerGetDatum(array_of(fingerprints, count, TEXTOID))};
  // Compare-and-set on the hash: only what the verifying backend saw is replaced, and nothing
  // but the hash columns is written, so a concurrent revoke stays a revoke.
  int rc = SPI_execute_with_args(
      "UPDATE gateway.api_keys AS k"
      "   SET key_hash = u.new_hash, hash_version = u.version, master_fingerprint = u.fingerprint"
      "  FROM unnest($1::uuid[], $2::bytea[], $3::bytea[], $4::smallint[], $5::text[])"
      "    AS u(id, old_hash, new_hash, version, fingerprint)"
      " WHERE k.id = u.id AND k.key_hash = u.old_hash",
      5, types, args, nullptr, false, 0);
  if (rc != SPI_OK_UPDATE) elog(ERROR, "pg_gateway rehash failed: %s", SPI_result_code_string(rc));
  return SPI_processed;
}

}  // namespace

FlushResult flush_rehash() noexcept {
  std::vector<RehashRequest> requests;
  std::uint64_t dropped = 0;
  try {
    std::vector<RehashRequest> drained;
    dropped = drain_rehash_requests(drained);
    // One request per key (several backends may have queued it), this database's only.
    std::map<KeyId, std::size_t> seen;
    for (const RehashRequest& r : drained) {
      if (r.database != MyDatabaseId) continue;
      if (seen.emplace(r.key, requests.size()).second) requests.push_back(r);
    }
  } catch (const std::bad_alloc&) {
    ereport(LOG, (errmsg("pg_gateway worker could not move API keys to the current master key: out of memory"),
                  errdetail("Their next verifications ask again.")));
    return FlushResult::kFailed;
  }
  if (requests.empty()) {
    if (dropped > 0) {
      ereport(DEBUG1, (errmsg("pg_gateway: %llu API key rehash requests dropped (queue full)",
                              static_cast<unsigned long long>(dropped))));
    }
    return FlushResult::kDone;
  }

  // The error names no hash and no key (the statement's parameters are not in the report).
  std::uint64_t moved = 0;
  std::string error;
  bool written = true;
  if (!try_transaction("pg_gateway: moving API keys to the current master key", error, [&] {
        pg_call([&] {
          if (OidIsValid(get_extension_oid("pg_gateway", true))) {
            moved = write_rehashes(requests.data(), static_cast<int>(requests.size()));
          }
        });
      })) {
    written = false;
    // A lock wait given up is logged by the worker's loop, once per run of them.
    if (!failed_on_lock()) {
      ereport(LOG, (errmsg("pg_gateway worker could not move %zu API keys to the current master key: %s",
                           requests.size(), error.c_str()),
                    errdetail("Their next verifications ask again.")));
    }
  }
  if (moved > 0) {
    ereport(DEBUG1, (errmsg("pg_gateway moved %llu API keys to the current master key",
                            static_cast<unsigned long long>(moved))));
  }
  if (written) return FlushResult::kDone;
  if (!failed_on_lock()) return FlushResult::kFailed;
  // A lock wait given up: a transaction holds a key's row (a revoke, say) or DDL the table. The
  // requests go back on the queue for the worker's retry, so the rehash still lands after that
  // transaction (its compare-and-set on the old hash keeps what the transaction wrote).
  for (const RehashRequest& r : requests) queue_rehash_request(r);
  return FlushResult::kLocked;
}

}  // namespace gateway::pg

// SQL-callable functions for API keys that need C++: generating a key and the verify hot path.
// Everything else about keys (issue, revoke, rotate, listing) is SQL in the install script,
// where its rules are easiest to read.
#include <sodium.h>

#include <array>
#include <cstring>
#include <optional>
#include <string>

#include "../core/key_format.hpp"
#include "../core/verify_decision.hpp"
#include "error_bridge.hpp"
#include "key_lookup.hpp"
#include "key_rehash.hpp"
#include "key_scopes.hpp"
#include "secrets.hpp"
#include "settings.hpp"
#include "shared_state.hpp"
#include "usage_limits.hpp"
#include "uuid.hpp"
#include "verify_cache.hpp"

extern "C" {
#include "access/detoast.h"
#include "access/htup_details.h"
#include "catalog/pg_type_d.h"
#include "utils/typcache.h"
}

namespace gateway::pg {
namespace {

using api_key::Reason;

// Reads the key argument without detoasting anything that cannot be a key, so a 10 MB string
// costs no more than a short one.
std::optional<api_key::ParsedKey> parse_key_argument(FunctionCallInfo fcinfo) {
  if (PG_ARGISNULL(0)) return std::nullopt;
  Datum raw = PG_GETARG_DATUM(0);
  if (toast_raw_datum_size(raw) != VARHDRSZ + api_key::kKeyLength) return std::nullopt;
  text* key = nullptr;
  pg_call([&] { key = PG_GETARG_TEXT_PP(0); });
  return api_key::parse(text_view(key));
}

struct VerifyResult {
  Reason reason = Reason::kMalformed;
  const StoredKey* key = nullptr;       // set once the secret matched
  std::optional<std::int32_t> remaining;
  std::optional<std::int32_t> retry_after_seconds;
  std::optional<std::int64_t> usage_remaining;  // keys with a usage limit, once it was checked
};

void queue_failure(const VerifyResult& result, std::string_view prefix, TimestampTz now) {
  if (!settings.audit_verify_failures) return;
  AuditEvent event{};
  event.at = now;
  event.database = MyDatabaseId;
  event.role = GetOuterUserId();
  event.kind = AuditKind::kVerifyFailed;
  event.reason = static_cast<std::uint8_t>(result.reason);
  if (result.key != nullptr) {
    event.has_object = event.has_project = true;
    event.object_id = result.key->id;
    event.subject_id = result.key->user_id;
    event.project_id = result.key->project_id;
  }
  std::size_t n = std::min(prefix.size(), sizeof(event.label) - 1);
  std::memcpy(event.label, prefix.data(), n);
  queue_audit(event, /*required=*/false);
}

// The blessed result descriptor, built once per call site and kept in fn_extra: building it from
// the function's OUT parameters costs more than the rest of a verify.
TupleDesc result_descriptor(FunctionCallInfo fcinfo) {
  if (fcinfo->flinfo->fn_extra == nullptr) {
    TupleDesc desc;
    if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE) {
      elog(ERROR, "function returning record called in a context that cannot accept it");
    }
    MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
    desc = BlessTupleDesc(CreateTupleDescCopy(desc));
    MemoryContextSwitchTo(old);
    fcinfo->flinfo->fn_extra = desc;
  }
  return static_cast<TupleDesc>(fcinfo->flinfo->fn_extra);
}

// Forms verify's result row. From 0.7.0 the result is the composite type
// gateway.api_key_verification, whose descriptor the type cache keeps for the session (one hash
// probe per call). Schemas before 0.7.0 declare OUT parameters instead: their descriptor is built
// from pg_proc's arrays on every execution, which cost a verify about a tenth of its time.
HeapTuple form_result(FunctionCallInfo fcinfo, Datum* values, bool* nulls) {
  constexpr int kColumns = 8;
  const Oid type = get_fn_expr_rettype(fcinfo->flinfo);
  if (type == InvalidOid || type == RECORDOID) return heap_form_tuple(result_descriptor(fcinfo), values, nulls);
  TupleDesc desc = lookup_rowtype_tupdesc(type, -1);
  // The row is formed by the type's descriptor: a column whose type a DBA changed (ALTER TYPE ...
  // ALTER ATTRIBUTE ... TYPE) would take a Datum of another type (a bool as a text pointer: a
  // crash), a dropped one leaves the count but not the place. Eight compares per call.
  static constexpr Oid kTypes[kColumns] = {BOOLOID, TEXTOID, UUIDOID, UUIDOID, UUIDOID, INT4OID, INT4OID, INT8OID};
  bool same = desc->natts == kColumns;
  for (int i = 0; same && i < kColumns; ++i) {
    Form_pg_attribute attr = TupleDescAttr(desc, i);
    same = !attr->attisdropped && attr->atttypid == kTypes[i];
  }
  if (!same) {
    ReleaseTupleDesc(desc);
    ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                    errmsg("gateway.api_key_verification does not have the %d columns of the types this library returns", kColumns),
                    errhint("Update the extension: ALTER EXTENSION pg_gateway UPDATE;")));
  }
  HeapTuple tuple = heap_form_tuple(desc, values, nulls);
  ReleaseTupleDesc(desc);
  return tuple;
}

Datum result_tuple(FunctionCallInfo fcinfo, const VerifyResult& result) {
  Datum values[8];
  bool nulls[8] = {false, false, true, true, true, true, true, true};
  values[0] = BoolGetDatum(result.reason == Reason::kOk);
  std::string_view reason = api_key::reason_name(result.reason);
  Datum out = 0;
  pg_call([&] {
    values[1] = PointerGetDatum(cstring_to_text_with_len(reason.data(), static_cast<int>(reason.size())));
    if (result.key != nullptr) {
      values[2] = id_to_uuid(result.key->id);
      values[3] = id_to_uuid(result.key->user_id);
      values[4] = id_to_uuid(result.key->project_id);
      nulls[2] = nulls[3] = nulls[4] = false;
    }
    if (result.remaining) {
      values[5] = Int32GetDatum(*result.remaining);
      nulls[5] = false;
    }
    if (result.retry_after_seconds) {
      values[6] = Int32GetDatum(*result.retry_after_seconds);
      nulls[6] = false;
    }
    if (result.usage_remaining) {
      values[7] = Int64GetDatum(*result.usage_remaining);
      nulls[7] = false;
    }
    out = HeapTupleGetDatum(form_result(fcinfo, values, nulls));
  });
  return out;
}

// The cost argument: 1 when not given; a negative or NULL cost is the caller's bug, not a bad key.
std::int64_t cost_argument(FunctionCallInfo fcinfo) {
  std::int64_t cost = 1;
  if (PG_NARGS() > 3) cost = PG_ARGISNULL(3) ? -1 : PG_GETARG_INT32(3);
  if (cost < 0) {
    pg_call([] {
      ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                      errmsg("cost must be zero or more"),
                      errhint("Pass how many uses the call spends (default 1), or 0 to check the key without spending.")));
    });
  }
  return cost;
}

// The required scope's hash, when one is asked for. Only for keys that got this far (the master
// key is loaded by then).
std::optional<std::uint64_t> required_scope(FunctionCallInfo fcinfo) {
  if (PG_NARGS() <= 2 || PG_ARGISNULL(2)) return std::nullopt;
  std::string scope;
  pg_call([&] { scope = std::string(text_view(PG_GETARG_TEXT_PP(2))); });
  return scope_hash(scope, scope_hash_key());
}

}  // namespace
}  // namespace gateway::pg

using namespace gateway;
using namespace gateway::pg;

extern "C" {
PG_FUNCTION_INFO_V1(gateway_api_key_generate);
PG_FUNCTION_INFO_V1(gateway_api_key_verify);
}

// gateway._api_key_generate() -> (api_key text, key_prefix text, key_hash bytea, hash_version int2)
// The caller stores everything but api_key, which it hands to the user once.
extern "C" Datum gateway_api_key_generate(PG_FUNCTION_ARGS) {
  return sql_function([&]() -> Datum {
    std::string key = api_key::generate();
    const int version = settings.pepper_version;
    api_key::Hash hash = api_key_hasher().hash(key, version);
    std::string_view prefix = api_key::parse(key)->prefix;

    Datum out = 0;
    pg_call([&] {
      TupleDesc desc = result_descriptor(fcinfo);
      bytea* stored = bytes_to_bytea(hash.data(), hash.size());
      Datum values[4] = {
          PointerGetDatum(cstring_to_text_with_len(key.data(), static_cast<int>(key.size()))),
          PointerGetDatum(cstring_to_text_with_len(prefix.data(), static_cast<int>(prefix.size()))),
          PointerGetDatum(stored), Int16GetDatum(static_cast<int16>(version))};
      bool nulls[4] = {false, false, false, false};
      out = HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
    });
    sodium_memzero(key.data(), key.size());
    return out;
  });
}

// gateway.api_key_verify(api_key text, public_interface_id uuid, required_scope text,
// cost integer) -> one row. Never raises for a
// bad key, never writes: usage and failures go to shared memory for the worker to record.
extern "C" Datum gateway_api_key_verify(PG_FUNCTION_ARGS) {
  return sql_function([&]() -> Datum {
    const TimestampTz now = GetCurrentTimestamp();
    const std::int64_t cost = cost_argument(fcinfo);
    VerifyResult result;
    std::optional<api_key::ParsedKey> parsed = parse_key_argument(fcinfo);
    bool from_cache = false;
    // Initialised from the call: the key (500 bytes) is not copied once more.
    std::optional<StoredKey> stored = parsed ? lookup_key(parsed->prefix, &from_cache) : std::nullopt;
    SecretMatch secret;
    if (parsed) result.reason = Reason::kUnknown;
    if (stored) {
      if (stored->rate_limit_per_minute > 0) prefetch_use(stored->id);
      secret = match_secret(parsed->full, *stored, from_cache);
      stored->row.hash_matches = secret.matches;
      std::optional<KeyId> requested;
      if (!PG_ARGISNULL(1)) requested = uuid_to_id(PG_GETARG_DATUM(1));
      std::optional<KeyId> requested_project;
      if (api_key::needs_interface_project(stored->row, requested)) {
        requested_project = find_interface_project(*requested);
      }
      result.reason = api_key::decide(stored->row, requested, now, requested_project);
      if (stored->row.hash_matches) result.key = &*stored;
    }
    // Then scope, usage, rate limit: the order is documented at api_key::check_scope.
    if (result.reason == Reason::kOk) result.reason = api_key::check_scope(stored->scopes, required_scope(fcinfo));
    if (result.reason == Reason::kOk && stored->usage_limited) {
      UsageAnswer usage = spend_usage(stored->id, stored->usage, cost, now);
      result.usage_remaining = usage.remaining;
      if (!usage.allowed) result.reason = Reason::kUsageExceeded;
    }
    if (result.reason == Reason::kOk) {
      if (secret.rehash) request_rehash(parsed->full, *stored);
      BucketDecision decision = record_use(stored->id, stored->rate_limit_per_minute, now, stored->last_used_at);
      if (stored->rate_limit_per_minute > 0) {
        result.remaining = decision.remaining;
        if (!decision.allowed) {
          result.reason = Reason::kRateLimited;
          result.retry_after_seconds =
              static_cast<std::int32_t>((decision.retry_after_us + 999999) / 1000000);
          // A refused call spends nothing: give the uses back.
          if (stored->usage_limited) {
            refund_usage(stored->id, cost);
            *result.usage_remaining += cost;
          }
        }
      }
    }
    if (result.reason != Reason::kOk) {
      queue_failure(result, parsed ? parsed->prefix : std::string_view(), now);
    }
    return result_tuple(fcinfo, result);
  });
}

#include "key_rehash.hpp"

#include <sodium.h>

#include <algorithm>

#include "../core/error.hpp"
#include "../core/hash_memo.hpp"
#include "error_bridge.hpp"
#include "rehash_queue.hpp"
#include "secrets.hpp"
#include "settings.hpp"
#include "shared_state.hpp"

extern "C" {
#include "access/xlog.h"
}

namespace gateway::pg {
namespace {

const api_key::Fingerprint& current_fingerprint() {
  static api_key::Fingerprint current{};
  static bool parsed = false;
  if (!parsed) {
    parsed = api_key::parse_fingerprint(master_key_fingerprint(), current);
    if (!parsed) throw Error(sqlstate::kInternalError, "the master key fingerprint is malformed");
  }
  return current;
}

const api_key::Fingerprint* previous_fingerprint() {
  static api_key::Fingerprint previous{};
  static int state = -1;  // -1: not looked at; 0: no previous master key; 1: `previous`
  if (state < 0) {
    const std::string* text = previous_master_key_fingerprint();
    state = text != nullptr && api_key::parse_fingerprint(*text, previous) ? 1 : 0;
  }
  return state == 1 ? &previous : nullptr;
}

// Made on first use, in the backend: its tag key is then this process's own, not the postmaster's.
api_key::HashMemo& hash_memo() {
  static api_key::HashMemo memo;
  return memo;
}

// The keys this backend queued lately, by the first byte of their id: a busy client verifying
// one key in a loop queues it once per flush interval, not once per call.
struct Recent {
  KeyId key;
  TimestampTz at;
};
Recent recent[256];

}  // namespace

SecretMatch match_secret(std::string_view key, const StoredKey& stored, bool memoize) {
  const api_key::Fingerprint& current = current_fingerprint();
  const api_key::Fingerprint* marker = stored.has_master_fingerprint ? &stored.master_fingerprint : nullptr;
  // The hot path: a key on the current master key never loads or compares the previous one.
  const bool on_current = marker != nullptr && *marker == current;
  const api_key::Fingerprint* previous = on_current ? nullptr : previous_fingerprint();
  api_key::VerifyPlan plan =
      api_key::plan_verify(api_key::classify(marker, current, previous), previous != nullptr);
  SecretMatch match;
  for (int i = 0; i < plan.count && !match.matches; ++i) {
    const bool current_master = plan.tries[i] == api_key::Master::kCurrent;
    api_key::Hasher& hasher = current_master ? api_key_hasher() : *previous_api_key_hasher();
    if (!memoize) {
      match.matches = api_key::Hasher::matches(hasher.hash(key, stored.hash_version), stored.hash.data(), stored.hash_len);
      continue;
    }
    const api_key::HashMemo::Tag tag =
        hash_memo().tag(key, stored.hash_version, current_master ? current : *previous);
    const api_key::Hash* remembered = hash_memo().find(tag);
    const api_key::Hash computed = remembered != nullptr ? *remembered : hasher.hash(key, stored.hash_version);
    match.matches = api_key::Hasher::matches(computed, stored.hash.data(), stored.hash_len);
    if (match.matches && remembered == nullptr) hash_memo().remember(tag, computed);
  }
  match.rehash = match.matches && plan.rehash_on_match;
  return match;
}

void request_rehash(std::string_view key, const StoredKey& stored) {
  if (RecoveryInProgress() || !worker_serves_this_database()) return;
  const TimestampTz now = GetCurrentTimestamp();
  Recent& seen = recent[stored.id[0]];
  const TimestampTz again_after =
      static_cast<TimestampTz>(settings.usage_flush_interval_ms) * 1000 * 2;
  if (seen.key == stored.id && now - seen.at < again_after) return;

  RehashRequest request{};
  request.database = MyDatabaseId;
  request.key = stored.id;
  std::copy(stored.hash.begin(), stored.hash.end(), request.old_hash.begin());
  request.pepper_version = static_cast<std::int16_t>(settings.pepper_version);
  request.new_hash = api_key_hasher().hash(key, request.pepper_version);
  request.master_fingerprint = current_fingerprint();
  if (queue_rehash_request(request)) {
    seen = Recent{stored.id, now};
    notify_worker();
  }
}

}  // namespace gateway::pg

using namespace gateway;
using namespace gateway::pg;

extern "C" {
PG_FUNCTION_INFO_V1(gateway_previous_master_key_fingerprint);
}

// gateway._previous_master_key_fingerprint() -> text: NULL unless a rotation is under way.
extern "C" Datum gateway_previous_master_key_fingerprint(PG_FUNCTION_ARGS) {
  return sql_function([&]() -> Datum {
    const std::string* fingerprint = previous_master_key_fingerprint();
    if (fingerprint == nullptr) {
      fcinfo->isnull = true;
      return Datum(0);
    }
    Datum out = 0;
    pg_call([&] { out = PointerGetDatum(cstring_to_text(fingerprint->c_str())); });
    return out;
  });
}

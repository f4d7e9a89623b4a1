// The hand-off of an API key to Kong. Kong's key-auth compares plaintext keys, so a key bound to a
// public interface must reach Kong once. Issue and rotate seal it (gateway._seal_key_handoff) with
// a key derived from the master key for this purpose alone, bound to the API key's id; the worker
// opens it right before the PUT and the row's sealed copy is cleared once Kong has it.
#include "key_handoff.hpp"

#include <sodium.h>

#include "../core/envelope.hpp"
#include "../core/error.hpp"
#include "../core/kong_ids.hpp"
#include "error_bridge.hpp"
#include "secrets.hpp"
#include "uuid.hpp"

namespace gateway::pg {

std::optional<SecureBuffer> open_key_handoff(const std::vector<std::uint8_t>& sealed,
                                             const std::string& key_id) {
  auto envelope = crypto::parse_envelope(sealed.data(), sealed.size());
  if (!envelope) return std::nullopt;
  try {
    return crypto::open(handoff_key(), *envelope, key_id);
  } catch (const Error&) {
    return std::nullopt;
  }
}

}  // namespace gateway::pg

extern "C" {
PG_FUNCTION_INFO_V1(gateway_seal_key_handoff);
}

// gateway._seal_key_handoff(api_key text, key_id uuid) -> bytea
extern "C" Datum gateway_seal_key_handoff(PG_FUNCTION_ARGS) {
  using namespace gateway;
  using namespace gateway::pg;
  return sql_function([&]() -> Datum {
    text* key = nullptr;
    pg_call([&] { key = PG_GETARG_TEXT_PP(0); });
    const std::string context = kong::to_string(uuid_to_id(PG_GETARG_DATUM(1)));
    std::vector<std::uint8_t> sealed = crypto::seal(
        handoff_key(), 0, text_view(key), context);
    Datum out = 0;
    pg_call([&] { out = PointerGetDatum(bytes_to_bytea(sealed.data(), sealed.size())); });
    return out;
  });
}

// The per-call token of a Nexus completion callback (issue 12 contract, "Callback token"): the
// start request asks Temporal to send it back in `Pg-Gateway-Token`, so the listener can tell a
// completion for one of our calls from a forged one without keeping any state per call.
// token = base64url without padding of keyed BLAKE2b-256 of the call id's canonical text.
// TEMPORARY duplicate of nexus::callback_token / callback_token_valid (src/core/nexus_call.hpp,
// branch i12-core): fold into those on merge.
#pragma once

#include <string>
#include <string_view>

#include "secure_buffer.hpp"

namespace gateway::callback {

// `key` is 32 bytes (callback_key()); `call_id` the lower-case uuid text.
std::string token(const SecureBuffer& key, std::string_view call_id);

// Constant time when the lengths are equal (the length of a valid token is public).
bool token_valid(const SecureBuffer& key, std::string_view call_id, std::string_view presented);

}  // namespace gateway::callback

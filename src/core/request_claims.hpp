// Who a request is for, from the JWT claims PostgREST/Supabase put into request.jwt.claims
// (or the older request.jwt.claim.sub). Pure parsing, so every shape of hostile or broken claims
// is unit-tested; the PostgreSQL shell turns the verdict into a uuid or an error.
#pragma once

#include <string_view>

#include "kong_ids.hpp"

namespace gateway::claims {

enum class Subject {
  kAbsent,          // no claims, or claims without a sub: nobody in particular
  kUser,            // a well-formed uuid sub
  kMalformedClaims, // request.jwt.claims is set but is not a JSON object
  kNotAUuid,        // sub is there but is not a uuid (or not a string)
};

struct Identity {
  Subject subject = Subject::kAbsent;
  kong::Uuid user{};
};

// `claims`: the request.jwt.claims setting ("" when unset); `legacy_sub`: request.jwt.claim.sub.
// When the claims are set they alone decide: a leftover legacy setting on a pooled connection must
// not fill in a request whose claims carry no sub. The legacy setting counts only without claims.
Identity identify(std::string_view claims, std::string_view legacy_sub);

}  // namespace gateway::claims

#include "core/request_claims.hpp"

#include <gtest/gtest.h>

namespace cl = gateway::claims;
using cl::Subject;

TEST(RequestClaims, NoClaimsIsNobody) {
  EXPECT_EQ(cl::identify("", "").subject, Subject::kAbsent);
  EXPECT_EQ(cl::identify("  ", "").subject, Subject::kAbsent);
  EXPECT_EQ(cl::identify(R"({"role":"authenticated"})", "").subject, Subject::kAbsent);
  EXPECT_EQ(cl::identify(R"({"sub":null})", "").subject, Subject::kAbsent);
}

TEST(RequestClaims, UuidSubIsTheUser) {
  auto id = cl::identify(R"({"sub":"A7000000-0000-4000-8000-00000000000a","role":"authenticated"})", "");
  ASSERT_EQ(id.subject, Subject::kUser);
  EXPECT_EQ(gateway::kong::to_string(id.user), "a7000000-0000-4000-8000-00000000000a");
}

TEST(RequestClaims, ClaimsWinOverTheLegacySetting) {
  auto id = cl::identify(R"({"sub":"a7000000-0000-4000-8000-00000000000a"})",
                         "b7000000-0000-4000-8000-00000000000b");
  EXPECT_EQ(gateway::kong::to_string(id.user), "a7000000-0000-4000-8000-00000000000a");
  // Claims without a sub are nobody, whatever an older setting on the connection says.
  EXPECT_EQ(cl::identify(R"({"role":"authenticated"})", "b7000000-0000-4000-8000-00000000000b").subject,
            Subject::kAbsent);
  EXPECT_EQ(cl::identify(R"({"sub":null})", "b7000000-0000-4000-8000-00000000000b").subject, Subject::kAbsent);
  auto legacy = cl::identify("", "b7000000-0000-4000-8000-00000000000b");
  EXPECT_EQ(legacy.subject, Subject::kUser);
  EXPECT_EQ(gateway::kong::to_string(legacy.user), "b7000000-0000-4000-8000-00000000000b");
}

// A sub that is not a uuid, and claims that are not an object, are errors, never "nobody": a
// request that cannot be attributed must not be mistaken for trusted server code.
TEST(RequestClaims, HostileShapesAreErrorsNotNobody) {
  EXPECT_EQ(cl::identify(R"({"sub":"alice"})", "").subject, Subject::kNotAUuid);
  EXPECT_EQ(cl::identify(R"({"sub":""})", "").subject, Subject::kNotAUuid);
  EXPECT_EQ(cl::identify(R"({"sub":42})", "").subject, Subject::kNotAUuid);
  EXPECT_EQ(cl::identify(R"({"sub":["a7000000-0000-4000-8000-00000000000a"]})", "").subject, Subject::kNotAUuid);
  EXPECT_EQ(cl::identify(R"({"sub":"a7000000-0000-4000-8000-00000000000a' OR 1=1"})", "").subject,
            Subject::kNotAUuid);
  EXPECT_EQ(cl::identify("", "not-a-uuid").subject, Subject::kNotAUuid);
  EXPECT_EQ(cl::identify("{", "").subject, Subject::kMalformedClaims);
  EXPECT_EQ(cl::identify("[1,2]", "").subject, Subject::kMalformedClaims);
  EXPECT_EQ(cl::identify("\"a7000000-0000-4000-8000-00000000000a\"", "").subject, Subject::kMalformedClaims);
  // A raw NUL inside a JSON string is not JSON at all.
  EXPECT_EQ(cl::identify(std::string_view("{\"sub\":\"a\0b\"}", 13), "").subject, Subject::kMalformedClaims);
}

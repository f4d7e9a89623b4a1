#include "../../src/core/callback_reach.hpp"

#include <gtest/gtest.h>

using gateway::nexus::callback_problem;
using gateway::nexus::url_host;

TEST(CallbackReach, HostOfAUrl) {
  EXPECT_EQ(url_host("http://127.0.0.1:8790"), "127.0.0.1");
  EXPECT_EQ(url_host("https://user:pw@Temporal.Internal:7243/prefix"), "temporal.internal");
  EXPECT_EQ(url_host("http://[::1]:7243/"), "::1");
  EXPECT_EQ(url_host("http://host"), "host");
}

TEST(CallbackReach, NoListenerIsANoteNotAFault) {
  auto problem = callback_problem("http://temporal:7243", "");
  ASSERT_TRUE(problem.has_value());
  EXPECT_FALSE(problem->fatal);
  EXPECT_NE(problem->text.find("gateway.callback_listen"), std::string::npos);
}

TEST(CallbackReach, LoopbackListenerForARemoteTemporalIsAFault) {
  auto problem = callback_problem("https://temporal.prod.internal:7243", "http://127.0.0.1:8790");
  ASSERT_TRUE(problem.has_value());
  EXPECT_TRUE(problem->fatal);
  EXPECT_NE(problem->text.find("gateway.callback_url"), std::string::npos);
  EXPECT_NE(problem->text.find("allowedAddresses"), std::string::npos);
}

TEST(CallbackReach, LoopbackBothSidesOrARoutableListenerIsFine) {
  EXPECT_FALSE(callback_problem("http://127.0.0.1:7243", "http://127.0.0.1:8790").has_value());
  EXPECT_FALSE(callback_problem("http://localhost:7243", "http://localhost:8790").has_value());
  EXPECT_FALSE(callback_problem("https://temporal:7243", "https://db.internal:8790").has_value());
}

#include "core/master_key.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "core/error.hpp"

using gateway::MasterKey;

namespace {

class MasterKeyFile : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir_template[] = "/tmp/gw_master_key_test.XXXXXX";
    ASSERT_NE(mkdtemp(dir_template), nullptr);
    dir_ = dir_template;
  }
  void TearDown() override { std::system(("rm -rf '" + dir_ + "'").c_str()); }

  std::string write(const std::string& name, const std::string& content, mode_t mode = 0600) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << content;
    chmod(path.c_str(), mode);
    return path;
  }

  // The error message of loading `path`, or "" if it loaded.
  static std::string load_error(const std::string& path, std::string* hint = nullptr) {
    try {
      MasterKey::load_file(path);
      return "";
    } catch (const gateway::Error& e) {
      EXPECT_STREQ(e.code(), "F0000");
      if (hint) *hint = e.hint();
      return e.what();
    }
  }

  std::string dir_;
};

const std::string kHex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

}  // namespace

TEST_F(MasterKeyFile, HexRawAndWhitespaceFormsGiveTheSameKey) {
  std::uint8_t bytes[32];
  for (int i = 0; i < 32; ++i) bytes[i] = static_cast<std::uint8_t>(i);
  std::string expected = MasterKey::from_bytes(bytes, 32).fingerprint();

  EXPECT_EQ(MasterKey::load_file(write("hex", kHex)).fingerprint(), expected);
  EXPECT_EQ(MasterKey::load_file(write("hexnl", kHex + "\n")).fingerprint(), expected);
  EXPECT_EQ(MasterKey::load_file(write("hexsp", "  " + kHex + " \r\n")).fingerprint(), expected);
  EXPECT_EQ(MasterKey::load_file(write("raw", std::string(reinterpret_cast<char*>(bytes), 32)))
                .fingerprint(),
            expected);
}

TEST_F(MasterKeyFile, GroupOrWorldAccessIsRefusedWithAHint) {
  std::string hint;
  std::string message = load_error(write("open", kHex, 0644), &hint);
  EXPECT_NE(message.find("accessible by group or others"), std::string::npos) << message;
  EXPECT_NE(hint.find("chmod 600"), std::string::npos) << hint;
  EXPECT_NE(load_error(write("group", kHex, 0640)), "");
  EXPECT_NE(load_error(write("gw", kHex, 0620)), "");
  EXPECT_EQ(load_error(write("ok", kHex, 0400)), "");
}

TEST_F(MasterKeyFile, MissingEmptyAndUnsetAreClearErrors) {
  EXPECT_NE(load_error(dir_ + "/absent").find("cannot be opened"), std::string::npos);
  EXPECT_NE(load_error("").find("gateway.master_key_file is not set"), std::string::npos);
  EXPECT_NE(load_error(write("empty", "")).find("does not hold a key"), std::string::npos);
  EXPECT_NE(load_error(dir_).find("not a regular file"), std::string::npos);
}

TEST_F(MasterKeyFile, MalformedContentIsRefused) {
  EXPECT_NE(load_error(write("short", kHex.substr(2))).find("valid key"), std::string::npos);
  EXPECT_NE(load_error(write("long", kHex + "00")).find("valid key"), std::string::npos);
  EXPECT_NE(load_error(write("nothex", std::string(64, 'z'))).find("valid key"),
            std::string::npos);
  EXPECT_NE(load_error(write("trailing", kHex + "\nextra")).find("valid key"), std::string::npos);
  EXPECT_NE(load_error(write("big", std::string(5000, 'a'))).find("does not hold a key"),
            std::string::npos);
}

TEST_F(MasterKeyFile, SymlinksAreNotFollowed) {
  std::string target = write("target", kHex);
  std::string link = dir_ + "/link";
  ASSERT_EQ(symlink(target.c_str(), link.c_str()), 0);
  EXPECT_NE(load_error(link), "");
}

// The health check's variant: the same file checks and errors as loading, without reading the key
// (a file with a malformed key passes it: only loading judges the contents).
TEST_F(MasterKeyFile, CheckFileMakesTheLoadersFileChecksOnly) {
  auto check_error = [](const std::string& path) -> std::string {
    try {
      MasterKey::check_file(path);
      return "";
    } catch (const gateway::Error& e) {
      EXPECT_STREQ(e.code(), "F0000");
      return e.what();
    }
  };
  EXPECT_EQ(check_error(write("ok", kHex, 0600)), "");
  EXPECT_EQ(check_error(write("malformed", "not a key", 0600)), "");
  const std::string open = write("open", kHex, 0640);
  EXPECT_EQ(check_error(open), load_error(open));
  EXPECT_NE(check_error(open).find("accessible by group or others"), std::string::npos);
  EXPECT_EQ(check_error(dir_ + "/absent"), load_error(dir_ + "/absent"));
  EXPECT_EQ(check_error(""), load_error(""));
  EXPECT_EQ(check_error(dir_), load_error(dir_));
  std::string link = dir_ + "/link";
  ASSERT_EQ(symlink((dir_ + "/ok").c_str(), link.c_str()), 0);
  EXPECT_NE(check_error(link), "");
}

TEST(MasterKey, DerivedSubkeysDifferByContextAndId) {
  std::uint8_t bytes[32] = {};
  MasterKey key = MasterKey::from_bytes(bytes, 32);
  auto a = key.derive("gwapikey", 1);
  auto b = key.derive("gwapikey", 2);
  auto c = key.derive("gwcreds1", 1);
  ASSERT_EQ(a.size(), 32U);
  EXPECT_NE(std::string(reinterpret_cast<const char*>(a.data()), 32),
            std::string(reinterpret_cast<const char*>(b.data()), 32));
  EXPECT_NE(std::string(reinterpret_cast<const char*>(a.data()), 32),
            std::string(reinterpret_cast<const char*>(c.data()), 32));
  EXPECT_THROW(MasterKey::from_bytes(bytes, 31), gateway::Error);
}

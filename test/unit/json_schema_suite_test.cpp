// The official JSON-Schema-Test-Suite (Debian's json-schema-test-suite) against
// gateway::schema::CompiledSchema, for the drafts pg_gateway supports: every case of
// tests/draft{4,6,7}/*.json (not optional/) is one check, and a failing case fails the run unless
// test/unit/json_schema_suite_skips.txt lists it with its reason. A skip entry that matches
// nothing fails too, so the list cannot go stale.
//
// Suite location: $GATEWAY_JSON_SCHEMA_SUITE (the directory holding draft4/, draft6/, draft7/),
// default /usr/share/json-schema-test-suite/tests. Absent: the tests are skipped, saying so.
#include "core/json_schema.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace gateway::schema {
namespace {

namespace fs = std::filesystem;

fs::path suite_dir() {
  const char* env = std::getenv("GATEWAY_JSON_SCHEMA_SUITE");
  return env != nullptr && *env != '\0' ? fs::path(env) : fs::path("/usr/share/json-schema-test-suite/tests");
}

std::string trim(const std::string& s) {
  const auto begin = s.find_first_not_of(" \t");
  if (begin == std::string::npos) return "";
  const auto end = s.find_last_not_of(" \t");
  return s.substr(begin, end - begin + 1);
}

// One line of the skip list: "draft7/file.json | group description | test description | reason";
// "*" matches any group or test.
struct Skip {
  std::string file, group, test, reason;
  int line = 0;
  mutable int used = 0;

  bool matches(const std::string& f, const std::string& g, const std::string& t) const {
    return file == f && (group == "*" || group == g) && (test == "*" || test == t);
  }
};

std::vector<Skip> load_skips() {
  std::vector<Skip> skips;
  std::ifstream in(GATEWAY_SOURCE_DIR "/test/unit/json_schema_suite_skips.txt");
  EXPECT_TRUE(in.good()) << "cannot read test/unit/json_schema_suite_skips.txt";
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (trim(line).empty() || trim(line)[0] == '#') continue;
    std::vector<std::string> fields;
    std::size_t from = 0;
    for (int i = 0; i < 3; ++i) {
      std::size_t bar = line.find(" | ", from);
      if (bar == std::string::npos) break;
      fields.push_back(trim(line.substr(from, bar - from)));
      from = bar + 3;
    }
    fields.push_back(trim(line.substr(from)));
    if (fields.size() != 4 || fields[3].empty()) {
      ADD_FAILURE() << "json_schema_suite_skips.txt:" << number
                    << ": expected \"file | group | test | reason\"";
      continue;
    }
    skips.push_back(Skip{fields[0], fields[1], fields[2], fields[3], number});
  }
  return skips;
}

void run_draft(const std::string& draft, Draft fallback) {
  const fs::path dir = suite_dir() / draft;
  if (!fs::is_directory(dir)) {
    GTEST_SKIP() << "JSON-Schema-Test-Suite not found at " << dir
                 << " (install json-schema-test-suite or set GATEWAY_JSON_SCHEMA_SUITE)";
  }
  const std::vector<Skip> skips = load_skips();
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_regular_file() && entry.path().extension() == ".json") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  ASSERT_FALSE(files.empty()) << "no suite files in " << dir;

  int passed = 0, skipped = 0, failed = 0, skipped_but_passing = 0;
  for (const fs::path& path : files) {
    const std::string file = draft + "/" + path.filename().string();
    std::ifstream in(path);
    Json groups = Json::parse(in);
    for (const Json& group : groups) {
      const std::string group_name = group.at("description").get<std::string>();
      std::optional<CompiledSchema> compiled_schema;
      std::string compile_error;
      try {
        compiled_schema.emplace(group.at("schema"), fallback);
      } catch (const InvalidSchema& e) {
        compile_error = e.what();
      }
      for (const Json& test : group.at("tests")) {
        const std::string test_name = test.at("description").get<std::string>();
        const bool expected = test.at("valid").get<bool>();
        std::string outcome;  // empty: the case passes
        if (!compile_error.empty()) {
          outcome = "schema refused: " + compile_error;
        } else {
          try {
            std::optional<Violation> v = compiled_schema->validate(test.at("data"));
            if (v.has_value() == expected) {
              outcome = expected ? "valid data refused at " + v->where() + ": " + v->message
                                 : "invalid data accepted";
            }
          } catch (const std::exception& e) {
            outcome = std::string("validation threw: ") + e.what();
          }
        }
        const Skip* skip = nullptr;
        for (const Skip& s : skips) {
          if (s.matches(file, group_name, test_name)) {
            skip = &s;
            break;
          }
        }
        if (skip != nullptr) {
          ++skip->used;
          ++skipped;
          if (outcome.empty()) ++skipped_but_passing;
          continue;
        }
        if (outcome.empty()) {
          ++passed;
        } else {
          ++failed;
          ADD_FAILURE() << file << " | " << group_name << " | " << test_name << ": " << outcome;
        }
      }
    }
  }
  for (const Skip& s : skips) {
    if (s.file.rfind(draft + "/", 0) == 0 && s.used == 0) {
      ADD_FAILURE() << "json_schema_suite_skips.txt:" << s.line << " matches no case of " << draft;
    }
  }
  std::cout << "[ suite    ] " << draft << ": " << passed << " passed, " << failed << " failed, "
            << skipped << " skipped (" << skipped_but_passing << " of them pass anyway)" << std::endl;
  ::testing::Test::RecordProperty("passed", passed);
  ::testing::Test::RecordProperty("skipped", skipped);
}

TEST(JsonSchemaSuite, Draft4) { run_draft("draft4", Draft::k4); }
TEST(JsonSchemaSuite, Draft6) { run_draft("draft6", Draft::k6); }
TEST(JsonSchemaSuite, Draft7) { run_draft("draft7", Draft::k7); }

}  // namespace
}  // namespace gateway::schema

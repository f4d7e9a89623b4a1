#include "core/json_schema.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <iostream>
#include <string>

namespace gateway::schema {
namespace {

Json j(const char* text) { return Json::parse(text); }

// The violation of `instance` against `schema`, or "valid".
std::string check(const char* schema, const Json& instance) {
  CompiledSchema compiled(j(schema));
  std::optional<Violation> v = compiled.validate(instance);
  return v ? v->pointer + " | " + v->message : "valid";
}

std::string pointer_of(const char* schema, const char* instance) {
  std::optional<Violation> v = CompiledSchema(j(schema)).validate(j(instance));
  return v ? v->pointer : "valid";
}

std::string refusal(const Json& schema) {
  try {
    CompiledSchema compiled(schema);
  } catch (const InvalidSchema& e) {
    EXPECT_STREQ(e.code(), "22023");
    return e.what();
  }
  return "accepted";
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A typical interface input schema.
const char* kOrder = R"({
  "type": "object",
  "required": ["customer", "items"],
  "additionalProperties": false,
  "properties": {
    "customer": {"type": "string", "pattern": "^[a-z0-9-]+$", "minLength": 3, "maxLength": 40},
    "priority": {"enum": ["low", "normal", "high"]},
    "note": {"type": ["string", "null"]},
    "items": {
      "type": "array", "minItems": 1, "maxItems": 50,
      "items": {
        "type": "object",
        "required": ["sku", "quantity"],
        "properties": {
          "sku": {"type": "string"},
          "quantity": {"type": "integer", "minimum": 1, "maximum": 1000}
        }
      }
    }
  }
})";

TEST(JsonSchema, TypicalInterfaceSchema) {
  EXPECT_EQ(check(kOrder, j(R"({"customer": "acme-1", "items": [{"sku": "a", "quantity": 2}]})")), "valid");
  EXPECT_EQ(check(kOrder, j(R"({"customer": "acme-1", "priority": "high", "note": null,
                                "items": [{"sku": "a", "quantity": 1000}]})")),
            "valid");
  // required
  EXPECT_TRUE(contains(check(kOrder, j(R"({"customer": "acme-1"})")), "Missing required property 'items'"));
  EXPECT_EQ(pointer_of(kOrder, R"({"customer": "acme-1"})"), "");
  // types, min/max, enum, pattern, additionalProperties
  EXPECT_EQ(pointer_of(kOrder, R"({"customer": 7, "items": [{"sku": "a", "quantity": 1}]})"), "/customer");
  EXPECT_EQ(pointer_of(kOrder, R"({"customer": "ab", "items": [{"sku": "a", "quantity": 1}]})"), "/customer");
  EXPECT_EQ(pointer_of(kOrder, R"({"customer": "ACME", "items": [{"sku": "a", "quantity": 1}]})"), "/customer");
  EXPECT_EQ(pointer_of(kOrder, R"({"customer": "acme", "priority": "urgent", "items": [{"sku": "a", "quantity": 1}]})"),
            "/priority");
  EXPECT_EQ(pointer_of(kOrder, R"({"customer": "acme", "items": []})"), "/items");
  EXPECT_EQ(pointer_of(kOrder, R"({"customer": "acme", "items": [{"sku": "a", "quantity": 1}, {"sku": "b", "quantity": 0}]})"),
            "/items/1/quantity");
  EXPECT_EQ(pointer_of(kOrder, R"({"customer": "acme", "items": [{"sku": "a", "quantity": 1.5}]})"), "/items/0/quantity");
  EXPECT_EQ(pointer_of(kOrder, R"({"customer": "acme", "items": [{"sku": "a"}]})"), "/items/0");
  const std::string extra = check(kOrder, j(R"({"customer": "acme", "items": [{"sku": "a", "quantity": 1}], "x": 1})"));
  EXPECT_TRUE(contains(extra, "'x'")) << extra;
  EXPECT_EQ(extra.substr(0, 3), " | ");  // the root holds the extra property
  EXPECT_EQ(check(kOrder, Json()), " | Value type not permitted by 'type' constraint.");
}

TEST(JsonSchema, PointerEscapesAndDisambiguates) {
  // RFC 6901: "~" as "~0", "/" as "~1".
  EXPECT_EQ(pointer_of(R"({"properties": {"a/b": {"properties": {"c~d": {"type": "string"}}}}})",
                       R"({"a/b": {"c~d": 1}})"),
            "/a~1b/c~0d");
  // A property named "0" and an array index 0 are told apart by the instance.
  EXPECT_EQ(pointer_of(R"({"properties": {"0": {"items": {"type": "string"}}}})", R"({"0": ["x", 3]})"), "/0/1");
  // Brackets in names survive valijson's "[name]" context.
  EXPECT_EQ(pointer_of(R"({"properties": {"[a]": {"type": "string"}}})", R"({"[a]": 1})"), "/[a]");
  // Deep nesting, additionalProperties with a schema, patternProperties.
  EXPECT_EQ(pointer_of(R"({"additionalProperties": {"type": "array", "items": {"type": "object",
                          "patternProperties": {"^n": {"type": "number"}}}}})",
                       R"({"list": [{}, {"name": "x"}]})"),
            "/list/1/name");
  // The root.
  Violation root{"", "m", 0};
  EXPECT_EQ(root.where(), "(root)");
  Violation inner{"/a", "m", 0};
  EXPECT_EQ(inner.where(), "/a");
  Violation long_name{"/" + std::string(1000, 'k'), "m", 0};
  EXPECT_EQ(long_name.where().size(), kMaxShownPointer + 3);
}

TEST(JsonSchema, CountsFurtherViolations) {
  std::optional<Violation> v = CompiledSchema(j(R"({"properties": {"a": {"type": "string"}, "b": {"type": "string"}}})"))
                                   .validate(j(R"({"a": 1, "b": 2})"));
  ASSERT_TRUE(v);
  EXPECT_GE(v->others, 1u);
}

TEST(JsonSchema, DraftSelection) {
  EXPECT_EQ(draft_of(j("{}")), Draft::k7);
  EXPECT_EQ(draft_of(j("true")), Draft::k7);
  EXPECT_EQ(draft_of(j("{}"), Draft::k4), Draft::k4);
  EXPECT_EQ(draft_of(j(R"({"$schema": "http://json-schema.org/draft-04/schema#"})")), Draft::k4);
  EXPECT_EQ(draft_of(j(R"({"$schema": "https://json-schema.org/draft-06/schema"})")), Draft::k6);
  EXPECT_EQ(draft_of(j(R"({"$schema": "http://json-schema.org/draft-07/schema#"})")), Draft::k7);
  EXPECT_TRUE(contains(refusal(j(R"({"$schema": "https://json-schema.org/draft/2020-12/schema"})")),
                       "unsupported draft"));
  EXPECT_TRUE(contains(refusal(j(R"({"$schema": 4})")), "not a string"));

  // Draft 4: exclusiveMaximum is a boolean beside maximum; no boolean schemas.
  const char* d4 = R"({"$schema": "http://json-schema.org/draft-04/schema#", "maximum": 3, "exclusiveMaximum": true})";
  EXPECT_NE(check(d4, 3), "valid");
  EXPECT_EQ(check(d4, 2), "valid");
  EXPECT_TRUE(contains(refusal(j(R"({"$schema": "http://json-schema.org/draft-04/schema#", "not": true})")),
                       "not a JSON object"));
  // Draft 7: exclusiveMaximum is a number; boolean schemas.
  EXPECT_NE(check(R"({"exclusiveMaximum": 3})", 3), "valid");
  EXPECT_NE(check(R"({"properties": {"a": false}})", j(R"({"a": 1})")), "valid");
  // if/then/else: applied in draft 7, ignored (not a keyword) in drafts 6 and 4.
  const char* conditional = R"({"if": {"type": "string"}, "then": {"minLength": 2}})";
  EXPECT_NE(check(conditional, "a"), "valid");
  EXPECT_EQ(check(R"({"$schema": "http://json-schema.org/draft-06/schema#",
                      "if": {"type": "string"}, "then": {"minLength": 2}})", "a"), "valid");
  EXPECT_EQ(check(R"({"$schema": "http://json-schema.org/draft-04/schema#",
                      "properties": {"x": {"if": {"type": "string"}, "then": {"minLength": 2}}}})",
                  j(R"({"x": "a"})")),
            "valid");
  // Draft 4 has no propertyNames or const: ignored.
  EXPECT_EQ(check(R"({"$schema": "http://json-schema.org/draft-04/schema#", "const": 1, "propertyNames": {"maxLength": 1}})",
                  j(R"({"long": 2})")),
            "valid");
  EXPECT_NE(check(R"({"const": 1})", 2), "valid");
}

TEST(JsonSchema, IntegralFloatsAreIntegersFromDraft6) {
  // jsonb keeps 1.0 as written; drafts 6 and 7 call it an integer, draft 4 does not.
  EXPECT_EQ(check(R"({"type": "integer"})", j("1.0")), "valid");
  EXPECT_EQ(check(R"({"items": {"type": "integer", "maximum": 3}})", j("[1.0, 2, 3.0]")), "valid");
  EXPECT_EQ(pointer_of(R"({"items": {"type": "integer"}})", "[1.0, 2.5]"), "/1");
  EXPECT_NE(check(R"({"$schema": "http://json-schema.org/draft-04/schema#", "type": "integer"})", j("1.0")), "valid");
  EXPECT_NE(check(R"({"type": "integer"})", j("1e300")), "valid");  // beyond 2^53: left a float
}

TEST(JsonSchema, InvalidSchemasAreRefused) {
  EXPECT_TRUE(contains(refusal(j("3")), "not a JSON object or boolean"));
  EXPECT_TRUE(contains(refusal(j(R"({"properties": {"a": 3}})")), "/properties/a"));
  EXPECT_TRUE(contains(refusal(j(R"({"properties": []})")), "properties"));
  EXPECT_TRUE(contains(refusal(j(R"({"pattern": "(unclosed"})")), "does not compile"));
  EXPECT_TRUE(contains(refusal(j(R"({"patternProperties": {"[": {}}})")), "does not compile"));
  EXPECT_TRUE(contains(refusal(j(R"({"anyOf": []})")), "non-empty array"));
  EXPECT_TRUE(contains(refusal(j(R"({"$ref": "#/definitions/missing"})")), "does not resolve"));
  EXPECT_NE(refusal(j(R"({"minLength": "three"})")), "accepted");
  EXPECT_NE(refusal(j(R"({"required": "a"})")), "accepted");
}

TEST(JsonSchema, ExponentialPatternsAreRefused) {
  for (const char* pattern : {"^(a+)+$", "(a*)*", "^(\\w+\\s?)*$", "((ab)+c)*", "(x(a+)y){2,}", "([a-z]+)+"}) {
    Json schema = {{"pattern", pattern}};
    EXPECT_TRUE(contains(refusal(schema), "exponential")) << pattern;
    Json names = {{"patternProperties", {{pattern, Json::object()}}}};
    EXPECT_TRUE(contains(refusal(names), "exponential")) << pattern;
  }
  for (const char* pattern : {"^[a-z0-9-]+$", "^(foo|bar)*$", "^(ab)+$", "^(a+)?b$", "^(\\d{3})+$",
                              "^[(]+\\)*$", "\\(a+\\)+", "^([a-z]{2}-)*[a-z]{2}$", "^(a?b)+$"}) {
    Json schema = {{"pattern", pattern}};
    EXPECT_EQ(refusal(schema), "accepted") << pattern;
  }
}

// std::regex cannot be interrupted (statement_timeout and pg_terminate_backend wait for it), so
// patterns are bounded before any instance is matched: a repeated group whose alternatives can
// begin alike is exponential ("(a|a)*b": 1.7 s at 24 characters), and sequences of quantifiers
// are polynomial of a degree that makes 1024 bytes hours ("a*a*a*b" at 1000 bytes: minutes), so
// they shorten the strings matched.
TEST(JsonSchema, BacktrackingIsBounded) {
  for (const char* pattern : {"(a|a)*b", "(a|aa)*b", "^(\\w|\\d)+$", "(x|[xy])+", "(?:a|a)*", "(a|.){2,}"}) {
    Json schema = {{"pattern", pattern}};
    EXPECT_TRUE(contains(refusal(schema), "exponential")) << pattern;
  }
  std::string optional;
  for (int i = 0; i < 30; ++i) optional += "a?";
  EXPECT_TRUE(contains(refusal(Json{{"pattern", optional + std::string(30, 'a')}}), "bounded time"));
  auto longest = [](const char* pattern) {
    CompiledSchema c(Json{{"pattern", pattern}});
    for (std::size_t n = kMaxMatchedString; n > 0; --n) {
      auto v = c.validate(Json(std::string(n, '-')));
      if (!v || v->message.find("longer than") == std::string::npos) return n;
    }
    return std::size_t{0};
  };
  EXPECT_EQ(longest("^[a-z]+$"), kMaxMatchedString);
  EXPECT_EQ(longest("a*b"), kMaxMatchedString);
  EXPECT_LT(longest("a*a*b"), 256u);
  EXPECT_LT(longest(".*.*.*x"), 100u);
  // Worst cases at their bound stay short (each took seconds to hours at 1024 bytes).
  for (const char* pattern : {"a*a*b", "a*a*a*b", ".*.*.*x", "\\w*\\w*\\w*\\w*x"}) {
    CompiledSchema c(Json{{"pattern", pattern}});
    const std::string text(longest(pattern) - 1, 'a');
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_TRUE(c.validate(Json(text + "!")));
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 1.0) << pattern;
  }
}

TEST(JsonSchema, RemoteReferencesAreRefusedNotFetched) {
  for (const char* ref : {"http://127.0.0.1:9/schema.json", "https://json-schema.org/draft-07/schema#",
                          "other.json#/definitions/a", "urn:example:x"}) {
    Json schema = {{"properties", {{"a", {{"$ref", ref}}}}}};
    EXPECT_TRUE(contains(refusal(schema), "nothing is fetched")) << ref;
  }
  EXPECT_TRUE(contains(refusal(j(R"({"$ref": "#anchor"})")), "anchor"));
  // References inside the schema work, escaped ones included.
  const char* local = R"({"definitions": {"a/b": {"type": "integer"}, "p%q": {"type": "string"}},
                          "properties": {"x": {"$ref": "#/definitions/a~1b"}, "y": {"$ref": "#/definitions/p%25q"}}})";
  EXPECT_EQ(check(local, j(R"({"x": 1, "y": "s"})")), "valid");
  EXPECT_EQ(pointer_of(local, R"({"x": "1"})"), "/x");
  // Recursion through a property is fine (it descends into the instance).
  const char* tree = R"({"type": "object", "properties": {"child": {"$ref": "#"}, "v": {"type": "integer"}}})";
  EXPECT_EQ(pointer_of(tree, R"({"child": {"child": {"v": "x"}}})"), "/child/child/v");
}

TEST(JsonSchema, LoopsInPlaceAreRefused) {
  EXPECT_TRUE(contains(refusal(j(R"({"$ref": "#"})")), "loop"));
  EXPECT_TRUE(contains(refusal(j(R"({"anyOf": [{"$ref": "#"}]})")), "loop"));
  EXPECT_TRUE(contains(refusal(j(R"({"definitions": {"a": {"$ref": "#/definitions/b"}, "b": {"allOf": [{"$ref": "#/definitions/a"}]}},
                                     "properties": {"x": {"$ref": "#/definitions/a"}}})")),
                       "loop"));
  EXPECT_TRUE(contains(refusal(j(R"({"not": {"if": {"$ref": "#"}}})")), "loop"));
  // A long chain of $refs nests as deep as it is long.
  Json chain = {{"definitions", Json::object()}};
  for (int i = 0; i < 100; ++i) {
    chain["definitions"]["d" + std::to_string(i)] = {{"$ref", "#/definitions/d" + std::to_string(i + 1)}};
  }
  chain["definitions"]["d100"] = {{"type", "integer"}};
  chain["$ref"] = "#/definitions/d0";
  EXPECT_TRUE(contains(refusal(chain), "chain"));
}

TEST(JsonSchema, DeepSchemasAreRefused) {
  auto nested = [](int levels) {
    Json schema = {{"type", "integer"}};
    for (int i = 1; i < levels; ++i) schema = {{"properties", {{"a", schema}}}};
    return schema;
  };
  EXPECT_EQ(refusal(nested(kMaxSchemaDepth)), "accepted");
  EXPECT_TRUE(contains(refusal(nested(kMaxSchemaDepth + 1)), "more than 64 levels"));
  Json deep_not = true;
  for (int i = 0; i < 1000; ++i) deep_not = {{"not", deep_not}};
  EXPECT_NE(refusal(deep_not), "accepted");
}

TEST(JsonSchema, InstanceBounds) {
  // Nesting.
  Json deep = 1;
  for (int i = 0; i < kMaxInstanceDepth + 5; ++i) deep = Json::array({deep});
  std::optional<Violation> v = CompiledSchema(j("{}")).validate(deep);
  ASSERT_TRUE(v);
  EXPECT_TRUE(contains(v->message, "nests more than")) << v->message;
  EXPECT_EQ(v->pointer.size(), 2u * kMaxInstanceDepth);  // "/0" per level down to the first too deep
  // Long strings are refused only where a regular expression may run over them.
  const std::string long_text(kMaxMatchedString + 1, 'a');
  EXPECT_EQ(check(R"({"properties": {"a": {"type": "string"}}})", Json{{"a", long_text}}), "valid");
  v = CompiledSchema(j(R"({"properties": {"b": {"pattern": "^a+$"}}})")).validate(Json{{"a", long_text}});
  ASSERT_TRUE(v);
  EXPECT_EQ(v->pointer, "/a");
  EXPECT_TRUE(contains(v->message, "longer than 1024 bytes"));
  v = CompiledSchema(j(R"({"patternProperties": {"^x": {}}})")).validate(Json{{long_text, 1}});
  ASSERT_TRUE(v);
  EXPECT_TRUE(contains(v->message, "property name"));
  // uniqueItems compares every pair: long arrays are refused where it applies.
  Json many = Json::array();
  for (std::size_t i = 0; i <= kMaxUniqueItems; ++i) many.push_back(i);
  EXPECT_EQ(check(R"({"items": {"type": "integer"}})", many), "valid");
  v = CompiledSchema(j(R"({"properties": {"a": {"uniqueItems": true}}})")).validate(Json{{"b", many}});
  ASSERT_TRUE(v);
  EXPECT_EQ(v->pointer, "/b");
  many.erase(many.size() - 1);
  EXPECT_EQ(check(R"({"uniqueItems": true})", many), "valid");
  // At the limit it is matched (and does not exhaust the stack).
  EXPECT_EQ(check(R"({"pattern": "^(a|b)*$"})", std::string(kMaxMatchedString, 'a')), "valid");
}

TEST(JsonSchema, MessagesAreBounded) {
  const std::string name(5000, 'n');
  Json schema = {{"required", {name}}};
  std::optional<Violation> v = CompiledSchema(schema).validate(Json::object());
  ASSERT_TRUE(v);
  EXPECT_LE(v->message.size(), 210u);
}

TEST(JsonSchema, CacheReusesCompiledSchemas) {
  cache_clear();
  auto first = compiled(R"({"type": "string"})");
  auto again = compiled(R"({"type": "string"})");
  EXPECT_EQ(first.get(), again.get());
  EXPECT_EQ(cache_compilations(), 1u);
  for (std::size_t i = 0; i < kCacheEntries; ++i) compiled(R"({"maxLength": )" + std::to_string(i) + "}");
  EXPECT_EQ(cache_compilations(), 1u + kCacheEntries);
  // The first was the least recently used: gone, compiled again.
  auto third = compiled(R"({"type": "string"})");
  EXPECT_EQ(cache_compilations(), 2u + kCacheEntries);
  EXPECT_FALSE(third->validate(j("3")) == std::nullopt);
  EXPECT_THROW(compiled("{not json"), InvalidSchema);
  EXPECT_THROW(compiled(R"({"$ref": "http://x/"})"), InvalidSchema);
  EXPECT_EQ(cache_compilations(), 2u + kCacheEntries);
  // Large texts are compiled each time rather than held.
  const std::string large = R"({"description": ")" + std::string(kMaxCachedText, 'd') + R"("})";
  auto big = compiled(large);
  EXPECT_NE(big.get(), compiled(large).get());
  cache_clear();
}

// Not an assertion on time: prints what one validation of a typical 10-property schema costs.
TEST(JsonSchema, CostOfOneValidation) {
  Json schema = {{"type", "object"}, {"additionalProperties", false}, {"properties", Json::object()}};
  Json input = Json::object();
  for (int i = 0; i < 10; ++i) {
    const std::string name = "p" + std::to_string(i);
    schema["required"].push_back(name);
    if (i % 3 == 0) {
      schema["properties"][name] = {{"type", "string"}, {"maxLength", 64}, {"pattern", "^[a-z0-9_-]+$"}};
      input[name] = "value_" + std::to_string(i);
    } else if (i % 3 == 1) {
      schema["properties"][name] = {{"type", "integer"}, {"minimum", 0}, {"maximum", 1000000}};
      input[name] = i * 1000;
    } else {
      schema["properties"][name] = {{"enum", {"a", "b", "c"}}};
      input[name] = "b";
    }
  }
  const std::string text = schema.dump();
  constexpr int kRounds = 20000;
  cache_clear();
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kRounds; ++i) ASSERT_FALSE(compiled(text)->validate(input));
  const double cached_us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() / kRounds;
  start = std::chrono::steady_clock::now();
  for (int i = 0; i < kRounds / 10; ++i) ASSERT_FALSE(CompiledSchema(schema).validate(input));
  const double fresh_us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() / (kRounds / 10);
  start = std::chrono::steady_clock::now();
  std::size_t sizes = 0;
  for (int i = 0; i < kRounds; ++i) sizes += Json::parse(text).size();
  EXPECT_GT(sizes, 0u);
  const double parse_us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() / kRounds;
  std::cout << "[ cost     ] 10-property schema: " << cached_us << " us per validation (cached compile), "
            << fresh_us << " us compiling each time; parsing the schema text alone " << parse_us << " us"
            << std::endl;
  cache_clear();
}

}  // namespace
}  // namespace gateway::schema

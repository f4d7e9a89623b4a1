// JSON Schema validation of connector_call inputs (issue 12), over valijson (Debian's
// libvalijson-dev). Drafts 4, 6 and 7; the draft comes from the root "$schema", default draft 7.
//
// valijson itself is kept out of this header (it is large, and must be included with
// VALIJSON_USE_EXCEPTIONS, else a bad schema aborts the process); only json_schema.cpp includes it.
// Drafts 6 and 7 count 1.0 as an integer (jsonb keeps "1.0" as written; valijson would not).
//
// Bounds, because validation runs inside a PostgreSQL backend, where a C++ stack overflow takes
// the whole server down:
//  - a schema nesting more than kMaxSchemaDepth subschemas is refused;
//  - a schema whose $ref/allOf/anyOf/oneOf/not/if/then/else loop back on themselves without
//    descending into the instance (e.g. {"anyOf": [{"$ref": "#"}]}) is refused: valijson would
//    recurse forever on it;
//  - a $ref to another document is refused: nothing is ever fetched (no network);
//  - an instance nesting deeper than kMaxInstanceDepth is a violation;
//  - when the schema uses "pattern", "patternProperties" or "format" (std::regex, which recurses
//    once per character matched), a string or property name longer than kMaxMatchedString bytes
//    in the instance is a violation, and a pattern that repeats a group which itself repeats
//    ("(a+)+", exponential backtracking that nothing can interrupt) makes the schema invalid;
//  - when the schema uses "uniqueItems" (valijson compares every pair of items), an array of more
//    than kMaxUniqueItems items in the instance is a violation: validation cannot be interrupted.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "error.hpp"

namespace gateway::schema {

using Json = nlohmann::json;

inline constexpr int kMaxSchemaDepth = 64;
inline constexpr int kMaxInstanceDepth = 128;
inline constexpr std::size_t kMaxMatchedString = 1024;
inline constexpr std::size_t kMaxUniqueItems = 2000;
inline constexpr std::size_t kMaxShownPointer = 256;

enum class Draft { k4, k6, k7 };

// The schema itself is not a usable JSON Schema. what() is the reason alone (no prefix), so the
// caller can say whose schema it is. SQLSTATE 22023.
class InvalidSchema : public Error {
 public:
  explicit InvalidSchema(const std::string& reason)
      : Error(sqlstate::kInvalidParameterValue, reason) {}
};

// The first failing location of an instance.
struct Violation {
  // RFC 6901 JSON pointer of the failing instance location: "" is the whole instance
  // ("~" is written "~0" and "/" is written "~1" in property names).
  std::string pointer;
  // valijson's description of the failure. It may quote property names of the instance (as
  // "Missing required property 'x'"), never values; bounded in length.
  std::string message;
  // How many further failures validation found (0 when this is the only one).
  std::size_t others = 0;

  // The pointer for people: "(root)" for the whole instance, else the pointer, cut after
  // kMaxShownPointer bytes (with "...") so a long property name cannot flood a message.
  std::string where() const;
};

// The draft a schema declares: its root "$schema" (http or https, with or without the trailing
// "#"), `fallback` (draft 7 unless said otherwise) without one. Throws InvalidSchema for any other
// "$schema".
Draft draft_of(const Json& schema, Draft fallback = Draft::k7);

class CompiledSchema {
 public:
  // Throws InvalidSchema when `schema` is not a valid schema of a supported draft. `fallback` is
  // the draft of a schema without "$schema".
  explicit CompiledSchema(const Json& schema, Draft fallback = Draft::k7);
  ~CompiledSchema();
  CompiledSchema(const CompiledSchema&) = delete;
  CompiledSchema& operator=(const CompiledSchema&) = delete;

  Draft draft() const noexcept;

  // nullopt when `instance` is valid. Not thread-safe (valijson caches compiled regexes); a
  // backend is single-threaded. Throws InvalidSchema if a "pattern" turns out not to compile.
  std::optional<Violation> validate(const Json& instance) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A compiled schema from the last kCacheEntries distinct schema texts (least recently used goes
// first), so repeated calls against one interface parse its schema once. `schema_text` must be
// the JSON text of the schema; equal texts share one compiled schema. Invalid schemas, and texts
// longer than kMaxCachedText, are not cached (each call compiles them again). Not thread-safe.
inline constexpr std::size_t kCacheEntries = 64;
inline constexpr std::size_t kMaxCachedText = 64 * 1024;
std::shared_ptr<const CompiledSchema> compiled(const std::string& schema_text);

// For tests: how many compilations compiled() has done, and a way to start from empty.
std::size_t cache_compilations() noexcept;
void cache_clear() noexcept;

}  // namespace gateway::schema

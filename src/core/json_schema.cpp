#include "cpp_only.hpp"

// valijson aborts the process on a bad schema unless told to throw; this must precede every
// valijson include (and no other file of the project includes valijson).
#define VALIJSON_USE_EXCEPTIONS 1

#include "json_schema.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <list>
#include <map>
#include <regex>
#include <unordered_map>
#include <utility>
#include <vector>

#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

namespace gateway::schema {
namespace {

constexpr std::size_t kMaxMessage = 200;

// RFC 6901 escaping of one reference token.
std::string escape_token(const std::string& token) {
  std::string out;
  out.reserve(token.size());
  for (char c : token) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

// Cuts `text` to at most `limit` bytes without splitting a UTF-8 sequence.
std::string bounded(std::string text, std::size_t limit) {
  if (text.size() <= limit) return text;
  std::size_t cut = limit;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  text.resize(cut);
  return text + "...";
}

bool is_schema_value(const Json& v) { return v.is_object() || v.is_boolean(); }

// "%xx" in a URI fragment back to bytes (a $ref fragment is URI-encoded, then a JSON pointer).
std::string percent_decoded(const std::string& text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    if (text[i] == '%' && i + 2 < text.size() && hex(text[i + 1]) >= 0 && hex(text[i + 2]) >= 0) {
      out += static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2]));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

// The index of the ']' closing the character class that opens at pattern[open] ('['), or the
// pattern's end: a leading '^' and a ']' right after the '[' (or "[^") are literal, '\\' escapes.
std::size_t class_end(const std::string& pattern, std::size_t open) {
  std::size_t i = open + 1;
  if (i < pattern.size() && pattern[i] == '^') ++i;
  if (i < pattern.size() && pattern[i] == ']') ++i;
  while (i < pattern.size() && pattern[i] != ']') {
    if (pattern[i] == '\\') ++i;
    ++i;
  }
  return i;
}

// Whether `pattern` repeats a group that itself repeats something, as "(a+)+" or "(\\w+\\s?)*":
// std::regex backtracks exponentially on such patterns (seconds at 25 characters, uninterruptible).
// A syntactic check of star height: "?" and a bounded "{n}" do not count as repetition inside.
bool nested_repetition(const std::string& pattern) {
  struct Group {
    bool repeats = false;  // something inside repeats
  };
  std::vector<Group> groups(1);
  bool last_atom_repeats = false;  // the atom just closed was a group whose inside repeats
  auto quantifier_at = [&](std::size_t i) -> int {  // 0 none, 1 bounded (? or {n}), 2 unbounded-ish
    if (i >= pattern.size()) return 0;
    const char c = pattern[i];
    if (c == '*' || c == '+') return 2;
    if (c == '?') return 1;
    if (c == '{') {
      const std::size_t close = pattern.find('}', i);
      if (close == std::string::npos) return 0;
      const std::string inside = pattern.substr(i + 1, close - i - 1);
      if (inside.empty() || inside.find_first_not_of("0123456789,") != std::string::npos) return 0;
      const std::size_t comma = inside.find(',');
      if (comma == std::string::npos) return 1;  // {n}: exactly n
      return 2;
    }
    return 0;
  };
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    bool atom = true;
    if (c == '\\') {
      ++i;
    } else if (c == '[') {
      i = class_end(pattern, i);
    } else if (c == '(') {
      groups.emplace_back();
      last_atom_repeats = false;
      continue;
    } else if (c == ')') {
      if (groups.size() > 1) {
        last_atom_repeats = groups.back().repeats;
        groups.pop_back();
      }
    } else if (c == '*' || c == '+' || c == '?' || c == '{' || c == '|' || c == '^' || c == '$') {
      atom = false;
    }
    if (!atom) continue;
    const bool closed_group = c == ')';
    const int q = quantifier_at(i + 1);
    if (q == 2) {
      if (closed_group && last_atom_repeats) return true;
      groups.back().repeats = true;
    } else if (closed_group && last_atom_repeats) {
      groups.back().repeats = true;
    }
    last_atom_repeats = false;
  }
  return false;
}

// Whether a repeated group's alternatives can begin with the same character, as "(a|a)*" or
// "(\\w|\\d)+": std::regex then tries every way to split the text between them (exponential,
// like nested repetition; "(a|a)*b" takes seconds at 24 characters). Conservative: an alternative
// beginning with anything but a plain character (a class, an escape, ".", a group) may overlap
// any other; "(foo|bar)*" is fine.
bool ambiguous_repeated_alternation(const std::string& pattern) {
  struct Group {
    std::vector<std::string> firsts;  // per alternative: "c" + its first character, or "*"
    bool at_start = true;             // the next atom begins an alternative
  };
  std::vector<Group> groups(1);
  auto first = [&](const std::string& atom) {
    Group& g = groups.back();
    if (g.at_start) g.firsts.push_back(atom);
    g.at_start = false;
  };
  auto repeats_at = [&](std::size_t i) {  // a quantifier that repeats (not "?", "{0,1}", "{1}")
    if (i >= pattern.size()) return false;
    const char c = pattern[i];
    if (c == '*' || c == '+') return true;
    if (c != '{') return false;
    const std::size_t close = pattern.find('}', i);
    if (close == std::string::npos) return false;
    const std::string inside = pattern.substr(i + 1, close - i - 1);
    return !inside.empty() && inside.find_first_not_of("0123456789,") == std::string::npos &&
           inside != "1" && inside != "0,1" && inside != "0" && inside != "1,1";
  };
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\') {
      const char e = i + 1 < pattern.size() ? pattern[i + 1] : '\\';
      first(std::string("dDwWsSbBcxu0123456789").find(e) != std::string::npos ? "*" : std::string("c") + e);
      ++i;
    } else if (c == '[') {
      first("*");
      i = class_end(pattern, i);
    } else if (c == '(') {
      first("*");
      groups.emplace_back();
      if (i + 1 < pattern.size() && pattern[i + 1] == '?') i += 2;  // (?: (?= (?!
    } else if (c == ')') {
      if (groups.size() > 1) {
        const Group g = groups.back();
        groups.pop_back();
        if (g.firsts.size() > 1 && repeats_at(i + 1)) {
          for (std::size_t a = 0; a < g.firsts.size(); ++a) {
            for (std::size_t b = a + 1; b < g.firsts.size(); ++b) {
              if (g.firsts[a] == "*" || g.firsts[b] == "*" || g.firsts[a] == g.firsts[b]) return true;
            }
          }
        }
      }
    } else if (c == '|') {
      groups.back().at_start = true;
    } else if (c == '^' || c == '$' || c == '*' || c == '+' || c == '?' || c == '{') {
      // anchors and quantifiers begin nothing ("{" of a quantifier: skip to its "}")
      if (c == '{') {
        const std::size_t close = pattern.find('}', i);
        if (close != std::string::npos) i = close;
      }
    } else {
      first(c == '.' ? std::string("*") : std::string("c") + c);
    }
  }
  return false;
}

// The longest string a pattern may be matched against, so that std::regex's backtracking
// (which nothing interrupts: not statement_timeout, not pg_cancel_backend) stays within about
// kRegexBudget steps. Each unbounded quantifier ("*", "+", "{n,}", "{n,m}") may split the text
// once more: k of them, and one more for a search not anchored by "^", cost up to n^k / k!
// steps on a string of n bytes ("a*a*b" takes 7 s at 1000 bytes, ".*.*.*x" 7 s at 256). Each "?"
// and each alternation multiplies the tries. 0: no length is short enough (refused).
std::size_t regex_max_length(const std::string& pattern) {
  constexpr double kRegexBudget = 2e6;  // steps: tens of milliseconds
  int unbounded = 0;
  double branches = 1;
  int alternatives = 0;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    const char before = i > 0 ? pattern[i - 1] : '\0';
    if (c == '\\') {
      ++i;
    } else if (c == '[') {
      i = class_end(pattern, i);
    } else if (c == '*' || c == '+') {
      ++unbounded;
    } else if (c == '?') {
      // "(?" opens a group; "*?" "+?" "??" "}?" make a quantifier lazy.
      if (before != '(' && before != '*' && before != '+' && before != '?' && before != '}') branches *= 2;
    } else if (c == '{') {
      const std::size_t close = pattern.find('}', i);
      if (close == std::string::npos) continue;
      const std::string inside = pattern.substr(i + 1, close - i - 1);
      if (inside.empty() || inside.find_first_not_of("0123456789,") != std::string::npos) continue;
      if (inside.find(',') != std::string::npos) ++unbounded;
      i = close;
    } else if (c == '|') {
      ++alternatives;
    }
  }
  branches *= alternatives + 1;
  const int degree = unbounded + (pattern.compare(0, 1, "^") == 0 ? 0 : 1);
  for (std::size_t n = kMaxMatchedString; n >= 16; n = n * 3 / 4) {
    double steps = branches;
    for (int k = 1; k <= degree; ++k) steps = steps * static_cast<double>(n) / k;
    if (steps <= kRegexBudget) return n;
  }
  return 0;
}

// The structural checks valijson does not do, and what validation needs to know about the schema.
// Every subschema is a node named by its JSON pointer; "in place" edges (allOf, anyOf, oneOf,
// not, if/then/else, $ref) validate the same instance location again, so a cycle of them never
// ends and a long chain of them nests as deep as its length.
class SchemaWalk {
 public:
  SchemaWalk(const Json& root, Draft draft) : root_(root), draft_(draft) {}

  void run() {
    visit(root_, "", 1);
    // $ref targets the walk did not reach through keywords (e.g. "#/x/y" under an unknown key).
    for (std::size_t i = 0; i < pending_.size(); ++i) {
      const std::string target = pending_[i];
      if (edges_.count(target) != 0) continue;
      visit(resolve(target), target, 1);
    }
    check_in_place_chains();
  }

  bool uses_regex() const { return uses_regex_; }
  // The longest string or property name the schema's regular expressions may be matched against.
  std::size_t max_string() const { return max_string_; }
  bool uses_unique_items() const { return uses_unique_items_; }

  // Draft 4 and 6 have no if/then/else, draft 4 no const/contains/propertyNames: unknown
  // keywords, so ignored; valijson would apply or refuse some of them. nullopt when there are none.
  std::optional<Json> without_later_keywords() const {
    if (ignored_.empty()) return std::nullopt;
    Json copy = root_;
    for (const auto& [at, key] : ignored_) copy.at(Json::json_pointer(at)).erase(key);
    return copy;
  }

 private:
  const Json& resolve(const std::string& pointer) {
    try {
      return root_.at(Json::json_pointer(pointer));
    } catch (const std::exception&) {
      throw InvalidSchema("$ref \"#" + bounded(pointer, kMaxMessage) + "\" does not resolve in the schema");
    }
  }

  void compile_regex(const std::string& pattern, const std::string& where) {
    uses_regex_ = true;
    if (nested_repetition(pattern)) {
      throw InvalidSchema("the regular expression at " + where + " repeats a group that itself repeats (" +
                          bounded(pattern, kMaxMessage) +
                          "), which can take exponential time; rewrite it without nested repetition");
    }
    if (ambiguous_repeated_alternation(pattern)) {
      throw InvalidSchema("the regular expression at " + where + " repeats a group whose alternatives can begin "
                          "with the same character (" + bounded(pattern, kMaxMessage) +
                          "), which can take exponential time; make the alternatives begin differently");
    }
    const std::size_t longest = regex_max_length(pattern);
    if (longest == 0) {
      throw InvalidSchema("the regular expression at " + where + " repeats or branches too often (" +
                          bounded(pattern, kMaxMessage) +
                          ") to be matched in bounded time; use fewer quantifiers, alternatives and \"?\"");
    }
    max_string_ = std::min(max_string_, longest);
    try {
      std::regex re(pattern);
    } catch (const std::regex_error&) {
      throw InvalidSchema("the regular expression at " + where + " does not compile: " +
                          bounded(pattern, kMaxMessage));
    }
  }

  void in_place(const std::string& from, const std::string& to) { edges_[from].push_back(to); }

  void visit(const Json& node, const std::string& at, int depth) {
    if (depth > kMaxSchemaDepth) {
      throw InvalidSchema("it nests subschemas more than " + std::to_string(kMaxSchemaDepth) +
                          " levels deep (at " + bounded(at, kMaxMessage) + ")");
    }
    edges_.emplace(at, std::vector<std::string>{});
    if (node.is_boolean() && draft_ != Draft::k4) return;
    if (!node.is_object()) {
      throw InvalidSchema("the subschema at " + (at.empty() ? std::string("(root)") : bounded(at, kMaxMessage)) +
                          " is not a JSON object" + (draft_ != Draft::k4 ? " or boolean" : ""));
    }
    auto ref = node.find("$ref");
    if (ref != node.end()) {
      if (!ref->is_string()) throw InvalidSchema("$ref at " + bounded(at, kMaxMessage) + " is not a string");
      const std::string& text = ref->get_ref<const std::string&>();
      if (text.empty() || text[0] != '#') {
        throw InvalidSchema("$ref \"" + bounded(text, kMaxMessage) +
                            "\" names another document; only references inside the schema "
                            "(\"#/...\") are supported, nothing is fetched");
      }
      std::string pointer = percent_decoded(text.substr(1));
      while (!pointer.empty() && pointer.back() == '/') pointer.pop_back();
      if (!pointer.empty() && pointer[0] != '/') {
        throw InvalidSchema("$ref \"" + bounded(text, kMaxMessage) +
                            "\" is not a JSON pointer (anchor names are not supported)");
      }
      (void) resolve(pointer);
      in_place(at, pointer);
      pending_.push_back(pointer);
      return;  // drafts 4 to 7 ignore the siblings of $ref
    }
    auto child = [&](const Json& value, const std::string& path, bool same_location) {
      if (same_location) in_place(at, path);
      visit(value, path, depth + 1);
    };
    for (const char* key : {"allOf", "anyOf", "oneOf"}) {
      auto it = node.find(key);
      if (it == node.end()) continue;
      if (!it->is_array() || it->empty()) {
        throw InvalidSchema(std::string(key) + " at " + bounded(at, kMaxMessage) + " is not a non-empty array");
      }
      for (std::size_t i = 0; i < it->size(); ++i) {
        child((*it)[i], at + "/" + key + "/" + std::to_string(i), true);
      }
    }
    std::vector<const char*> same = {"not"};
    if (draft_ == Draft::k7) {
      same.insert(same.end(), {"if", "then", "else"});
    }
    // Keywords of later drafts are no keywords in this one: ignored (see without_later_keywords).
    std::vector<const char*> later;
    if (draft_ != Draft::k7) later.insert(later.end(), {"if", "then", "else"});
    if (draft_ == Draft::k4) later.insert(later.end(), {"const", "contains", "propertyNames"});
    for (const char* key : later) {
      if (node.contains(key)) ignored_.emplace_back(at, key);
    }
    for (const char* key : same) {
      auto it = node.find(key);
      if (it != node.end()) child(*it, at + "/" + key, true);
    }
    for (const char* key : {"properties", "patternProperties", "definitions"}) {
      auto it = node.find(key);
      if (it == node.end()) continue;
      if (!it->is_object()) throw InvalidSchema(std::string(key) + " at " + bounded(at, kMaxMessage) + " is not an object");
      for (const auto& [name, value] : it->items()) {
        const std::string path = at + "/" + key + "/" + escape_token(name);
        if (std::string(key) == "patternProperties") compile_regex(name, path);
        child(value, path, false);
      }
    }
    std::vector<const char*> below = {"additionalProperties", "additionalItems"};
    if (draft_ != Draft::k4) below.insert(below.end(), {"contains", "propertyNames"});
    for (const char* key : below) {
      auto it = node.find(key);
      if (it == node.end()) continue;
      // Draft 4 allows true/false here (not boolean schemas in general).
      if (draft_ == Draft::k4 && it->is_boolean()) continue;
      child(*it, at + "/" + key, false);
    }
    auto items = node.find("items");
    if (items != node.end()) {
      if (items->is_array()) {
        for (std::size_t i = 0; i < items->size(); ++i) {
          child((*items)[i], at + "/items/" + std::to_string(i), false);
        }
      } else {
        child(*items, at + "/items", false);
      }
    }
    auto dependencies = node.find("dependencies");
    if (dependencies != node.end() && dependencies->is_object()) {
      for (const auto& [name, value] : dependencies->items()) {
        if (is_schema_value(value)) child(value, at + "/dependencies/" + escape_token(name), false);
      }
    }
    auto pattern = node.find("pattern");
    if (pattern != node.end() && pattern->is_string()) {
      compile_regex(pattern->get_ref<const std::string&>(), at + "/pattern");
    }
    if (node.contains("format")) uses_regex_ = true;
    if (node.contains("uniqueItems")) uses_unique_items_ = true;
  }

  // Refuses a cycle of in-place edges, and a chain of them longer than kMaxSchemaDepth. Iterative
  // (a chain of $refs may be as long as the schema is large).
  void check_in_place_chains() {
    enum Mark : char { kNew = 0, kOpen, kDone };
    std::unordered_map<std::string, Mark> mark;
    std::unordered_map<std::string, int> longest;  // nodes on the longest in-place path from here
    for (const auto& start : edges_) {
      if (mark[start.first] != kNew) continue;
      std::vector<std::pair<const std::string*, std::size_t>> stack;
      stack.emplace_back(&start.first, 0);
      mark[start.first] = kOpen;
      while (!stack.empty()) {
        auto& [node, next] = stack.back();
        const std::vector<std::string>& out = edges_[*node];
        if (next < out.size()) {
          const std::string& to = out[next++];
          Mark m = mark[to];
          if (m == kOpen) {
            throw InvalidSchema("its subschemas refer to each other in a loop that never reaches "
                                "into the instance (through " +
                                (to.empty() ? std::string("(root)") : bounded(to, kMaxMessage)) + ")");
          }
          if (m == kNew) {
            mark[to] = kOpen;
            stack.emplace_back(&edges_.find(to)->first, 0);
          }
          continue;
        }
        int best = 0;
        for (const std::string& to : out) best = std::max(best, longest[to]);
        longest[*node] = best + 1;
        if (best + 1 > kMaxSchemaDepth) {
          throw InvalidSchema("a chain of $ref/allOf/anyOf/oneOf/not/if subschemas is more than " +
                              std::to_string(kMaxSchemaDepth) + " long");
        }
        mark[*node] = kDone;
        stack.pop_back();
      }
    }
  }

  const Json& root_;
  Draft draft_;
  bool uses_regex_ = false;
  std::size_t max_string_ = kMaxMatchedString;
  bool uses_unique_items_ = false;
  std::map<std::string, std::vector<std::string>> edges_;  // every node, with its in-place edges
  std::vector<std::string> pending_;
  std::vector<std::pair<std::string, std::string>> ignored_;  // (subschema, keyword)
};

// The instance checks that keep validation within the stack (see the header). Recursion is
// bounded by kMaxInstanceDepth.
struct InstanceLimits {
  bool strings = false;  // string lengths (regular expressions)
  std::size_t max_string = kMaxMatchedString;
  bool arrays = false;   // array lengths (uniqueItems)
};

std::optional<Violation> instance_bounds(const Json& value, const std::string& at, int depth,
                                         InstanceLimits limits) {
  const bool strings = limits.strings;
  if (depth > kMaxInstanceDepth) {
    return Violation{at, "the input nests more than " + std::to_string(kMaxInstanceDepth) + " levels deep", 0};
  }
  auto too_long = [&](const std::string& where, const char* what) {
    return Violation{where,
                     std::string(what) + " is longer than " + std::to_string(limits.max_string) +
                         " bytes, the longest matched against the schema's regular expressions",
                     0};
  };
  if (value.is_string()) {
    if (strings && value.get_ref<const std::string&>().size() > limits.max_string) return too_long(at, "the string");
  } else if (value.is_array()) {
    if (limits.arrays && value.size() > kMaxUniqueItems) {
      return Violation{at,
                       "the array has more than " + std::to_string(kMaxUniqueItems) +
                           " items, the most checked against the schema's uniqueItems",
                       0};
    }
    for (std::size_t i = 0; i < value.size(); ++i) {
      if (auto v = instance_bounds(value[i], at + "/" + std::to_string(i), depth + 1, limits)) return v;
    }
  } else if (value.is_object()) {
    for (const auto& [name, member] : value.items()) {
      const std::string path = at + "/" + escape_token(name);
      if (strings && name.size() > limits.max_string) return too_long(path, "the property name");
      if (auto v = instance_bounds(member, path, depth + 1, limits)) return v;
    }
  }
  return std::nullopt;
}

// Drafts 6 and 7 count 1.0 as an integer; valijson does not, and jsonb keeps "1.0" as written.
// Such numbers (within the exact range of a double) become integers before validation.
// Recursion is bounded: instance_bounds() has checked the depth.
bool integral_float(const Json& v) {
  if (!v.is_number_float()) return false;
  const double d = v.get<double>();
  return std::trunc(d) == d && std::fabs(d) <= 9007199254740992.0;  // 2^53
}

bool has_integral_floats(const Json& v) {
  if (integral_float(v)) return true;
  if (v.is_structured()) {
    for (const Json& child : v) {
      if (has_integral_floats(child)) return true;
    }
  }
  return false;
}

void make_integers(Json& v) {
  if (integral_float(v)) {
    v = static_cast<std::int64_t>(v.get<double>());
  } else if (v.is_structured()) {
    for (Json& child : v) make_integers(child);
  }
}

// valijson's error context ("<root>", then "[name]" or "[index]" per step; a property named "0"
// and index 0 look alike) as a JSON pointer, disambiguated by walking the instance itself.
std::string pointer_of(const std::vector<std::string>& context, const Json& instance) {
  std::string pointer;
  const Json* at = &instance;
  for (std::size_t i = 1; i < context.size(); ++i) {
    const std::string& step = context[i];
    std::string token = step.size() >= 2 && step.front() == '[' && step.back() == ']'
                            ? step.substr(1, step.size() - 2)
                            : step;
    if (at != nullptr && at->is_array()) {
      char* end = nullptr;
      unsigned long index = std::strtoul(token.c_str(), &end, 10);
      if (!token.empty() && *end == '\0' && index < at->size()) {
        pointer += "/" + std::to_string(index);
        at = &(*at)[index];
        continue;
      }
    } else if (at != nullptr && at->is_object()) {
      auto it = at->find(token);
      if (it != at->end()) {
        pointer += "/" + escape_token(token);
        at = &*it;
        continue;
      }
    }
    pointer += "/" + escape_token(token);
    at = nullptr;
  }
  return pointer;
}

}  // namespace

std::string Violation::where() const {
  return pointer.empty() ? "(root)" : bounded(pointer, kMaxShownPointer);
}

Draft draft_of(const Json& schema, Draft fallback) {
  if (!schema.is_object()) return fallback;
  auto it = schema.find("$schema");
  if (it == schema.end()) return fallback;
  if (!it->is_string()) throw InvalidSchema("\"$schema\" is not a string");
  std::string uri = it->get<std::string>();
  std::string bare = uri;
  if (!bare.empty() && bare.back() == '#') bare.pop_back();
  for (const char* scheme : {"http://", "https://"}) {
    if (bare.rfind(scheme, 0) == 0) {
      std::string rest = bare.substr(std::string(scheme).size());
      if (rest == "json-schema.org/draft-04/schema") return Draft::k4;
      if (rest == "json-schema.org/draft-06/schema") return Draft::k6;
      if (rest == "json-schema.org/draft-07/schema") return Draft::k7;
    }
  }
  throw InvalidSchema("\"$schema\" names an unsupported draft (" + bounded(uri, kMaxMessage) +
                      "); supported: draft-04, draft-06, draft-07 (the default)");
}

struct CompiledSchema::Impl {
  Draft draft = Draft::k7;
  InstanceLimits limits;
  valijson::Schema schema;
  mutable valijson::Validator validator;  // caches compiled regexes across validations
};

CompiledSchema::CompiledSchema(const Json& schema, Draft fallback) : impl_(std::make_unique<Impl>()) {
  impl_->draft = draft_of(schema, fallback);
  SchemaWalk walk(schema, impl_->draft);
  walk.run();
  impl_->limits.strings = walk.uses_regex();
  impl_->limits.max_string = walk.max_string();
  impl_->limits.arrays = walk.uses_unique_items();
  // valijson knows drafts 3, 4 and 7; draft 6 is draft 7 without if/then/else.
  valijson::SchemaParser parser(impl_->draft == Draft::k4 ? valijson::SchemaParser::kDraft4
                                                          : valijson::SchemaParser::kDraft7);
  const std::optional<Json> plain = walk.without_later_keywords();
  valijson::adapters::NlohmannJsonAdapter adapter(plain ? *plain : schema);
  try {
    parser.populateSchema(adapter, impl_->schema);
  } catch (const InvalidSchema&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {
    const std::string what = e.what();
    throw InvalidSchema(bounded(what, kMaxMessage));
  }
}

CompiledSchema::~CompiledSchema() = default;

Draft CompiledSchema::draft() const noexcept { return impl_->draft; }

std::optional<Violation> CompiledSchema::validate(const Json& instance) const {
  if (auto v = instance_bounds(instance, "", 1, impl_->limits)) return v;
  std::optional<Json> integers;
  if (impl_->draft != Draft::k4 && has_integral_floats(instance)) {
    integers = instance;
    make_integers(*integers);
  }
  valijson::adapters::NlohmannJsonAdapter adapter(integers ? *integers : instance);
  valijson::ValidationResults results;
  bool valid = false;
  try {
    valid = impl_->validator.validate(impl_->schema, adapter, &results);
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {
    throw InvalidSchema(bounded(e.what(), kMaxMessage));
  }
  if (valid) return std::nullopt;
  valijson::ValidationResults::Error first;
  if (!results.popError(first)) return Violation{"", "the input does not match the schema", 0};
  return Violation{pointer_of(first.context, instance), bounded(first.description, kMaxMessage),
                   results.numErrors()};
}

// ---- cache ----

namespace {

struct Cache {
  using Entry = std::pair<std::string, std::shared_ptr<const CompiledSchema>>;
  std::list<Entry> order;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> by_text;
  std::size_t compilations = 0;
};

Cache& cache() {
  static Cache instance;
  return instance;
}

}  // namespace

std::shared_ptr<const CompiledSchema> compiled(const std::string& schema_text) {
  Cache& c = cache();
  auto found = c.by_text.find(schema_text);
  if (found != c.by_text.end()) {
    c.order.splice(c.order.begin(), c.order, found->second);
    return found->second->second;
  }
  Json schema;
  try {
    schema = Json::parse(schema_text);
  } catch (const Json::parse_error&) {
    throw InvalidSchema("it is not JSON");
  }
  auto made = std::make_shared<const CompiledSchema>(schema);
  ++c.compilations;
  if (schema_text.size() > kMaxCachedText) return made;
  c.order.emplace_front(schema_text, made);
  c.by_text[schema_text] = c.order.begin();
  if (c.order.size() > kCacheEntries) {
    c.by_text.erase(c.order.back().first);
    c.order.pop_back();
  }
  return made;
}

std::size_t cache_compilations() noexcept { return cache().compilations; }

void cache_clear() noexcept {
  cache().order.clear();
  cache().by_text.clear();
  cache().compilations = 0;
}

}  // namespace gateway::schema

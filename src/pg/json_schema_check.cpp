// SQL-callable JSON Schema checks (issue 12): gateway._input_schema_check(schema, input), which
// connector_call runs before it queues anything, and gateway.json_schema_validate(schema,
// instance) for application code. The validation itself is src/core/json_schema.
//
// NULL schema: no check. NULL input/instance: validated as JSON null (so a schema that wants an
// object refuses a missing input).
//
// Core (nlohmann/json) headers before any PostgreSQL header: PostgreSQL redefines snprintf.
#include "../core/json_schema.hpp"

#include <memory>
#include <optional>
#include <string>

#include "../core/error.hpp"
#include "error_bridge.hpp"

extern "C" {
#include "utils/jsonb.h"
}

namespace gateway::pg {
namespace {

using schema::Json;

// Argument `n` (a jsonb) as JSON text: jsonb's canonical form, so equal schemas give equal text
// (the compiled-schema cache key).
std::string jsonb_text(FunctionCallInfo fcinfo, int n) {
  char* text = nullptr;
  pg_call([&] {
    Jsonb* value = PG_GETARG_JSONB_P(n);
    text = JsonbToCString(nullptr, &value->root, VARSIZE(value));
  });
  std::string out(text);
  pfree(text);
  return out;
}

Json instance_of(FunctionCallInfo fcinfo, int n) {
  if (PG_ARGISNULL(n)) return Json();
  try {
    return Json::parse(jsonb_text(fcinfo, n));
  } catch (const Json::exception&) {
    // jsonb holds numbers a double cannot (e.g. 1e400); nlohmann's message would quote it whole.
    throw Error(sqlstate::kInvalidParameterValue,
                "the input cannot be checked against a JSON Schema: it holds a number beyond the "
                "range of a double", {},
                "Send such numbers as strings.");
  }
}

// The compiled schema of argument 0; `whose` names it in the error ("the target interface's
// input_schema").
std::shared_ptr<const schema::CompiledSchema> schema_of(FunctionCallInfo fcinfo, const std::string& whose,
                                                        const char* hint) {
  try {
    return schema::compiled(jsonb_text(fcinfo, 0));
  } catch (const schema::InvalidSchema& e) {
    throw Error(sqlstate::kInvalidParameterValue, whose + " is not a valid JSON Schema: " + e.what(), {},
                hint);
  }
}

std::optional<schema::Violation> validate(const schema::CompiledSchema& compiled, const Json& instance,
                                          const std::string& whose, const char* hint) {
  try {
    return compiled.validate(instance);
  } catch (const schema::InvalidSchema& e) {
    throw Error(sqlstate::kInvalidParameterValue, whose + " is not a valid JSON Schema: " + e.what(), {},
                hint);
  }
}

std::string further(const schema::Violation& v) {
  if (v.others == 0) return {};
  return "Validation found " + std::to_string(v.others) + " further failure" + (v.others == 1 ? "" : "s") +
         " (only the first is reported).";
}

constexpr const char* kInterfaceSchemaHint =
    "Fix the interface's input_schema: JSON Schema drafts 4, 6 and 7 (draft 7 unless \"$schema\" "
    "says otherwise), with \"$ref\" only inside the schema (\"#/...\"); or set it to NULL for no check.";
constexpr const char* kSchemaHint =
    "Pass a JSON Schema of draft 4, 6 or 7 (draft 7 unless \"$schema\" says otherwise), with "
    "\"$ref\" only inside the schema (\"#/...\").";

}  // namespace
}  // namespace gateway::pg

using namespace gateway;
using namespace gateway::pg;

extern "C" {
PG_FUNCTION_INFO_V1(gateway_input_schema_check);
PG_FUNCTION_INFO_V1(gateway_json_schema_validate);
}

// _input_schema_check(schema jsonb, input jsonb) -> void; raises 22023 when `input` does not
// match `schema` (naming the failing JSON pointer), or when `schema` is not a valid schema.
extern "C" Datum gateway_input_schema_check(PG_FUNCTION_ARGS) {
  return sql_function([&]() -> Datum {
    if (PG_ARGISNULL(0)) PG_RETURN_VOID();
    const std::string whose = "the target interface's input_schema";
    auto compiled = schema_of(fcinfo, whose, kInterfaceSchemaHint);
    const Json input = instance_of(fcinfo, 1);
    std::optional<schema::Violation> v = validate(*compiled, input, whose, kInterfaceSchemaHint);
    if (v) {
      throw Error(sqlstate::kInvalidParameterValue,
                  "input does not match the interface's input schema at " + v->where() + ": " + v->message,
                  further(*v),
                  "The target interface's input_schema describes the input connector_call accepts.");
    }
    PG_RETURN_VOID();
  });
}

// json_schema_validate(schema jsonb, instance jsonb) -> text: NULL when `instance` matches
// `schema` (or `schema` is NULL), else "<JSON pointer or (root)>: <reason>". Raises 22023 when
// `schema` is not a valid schema.
extern "C" Datum gateway_json_schema_validate(PG_FUNCTION_ARGS) {
  return sql_function([&]() -> Datum {
    if (PG_ARGISNULL(0)) PG_RETURN_NULL();
    const std::string whose = "the schema";
    auto compiled = schema_of(fcinfo, whose, kSchemaHint);
    const Json instance = instance_of(fcinfo, 1);
    std::optional<schema::Violation> v = validate(*compiled, instance, whose, kSchemaHint);
    if (!v) PG_RETURN_NULL();
    const std::string answer = v->where() + ": " + v->message;
    Datum out = 0;
    pg_call([&] { out = PointerGetDatum(cstring_to_text_with_len(answer.data(), static_cast<int>(answer.size()))); });
    return out;
  });
}

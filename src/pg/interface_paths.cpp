// Functions behind public_interfaces columns. default_http_path(): the path a public interface
// gets when none is given (its trigger calls it). A short hash of project, workflow and interface
// name, lengthened until no other interface with the same method holds it. Each candidate is one
// probe of the (http_method, http_path) unique index, done directly: a cached plan would have
// been made when the table was small (a sequential scan) and kept while it grows, which made
// publishing slower with every interface.
#include <sodium.h>

#include <string>

#include "../core/error.hpp"
#include "../core/kong_ids.hpp"
#include "cached_relation.hpp"
#include "interface_paths.hpp"
#include "error_bridge.hpp"
#include "uuid.hpp"

extern "C" {
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
}

namespace gateway::pg {
namespace {

CachedRelation interfaces("public_interfaces", "public_interfaces_method_path_key");

// True when a row other than `own_id` has (method, path).
bool path_taken(const std::string& method, const std::string& path, const KeyId& own_id) {
  bool taken = false;
  pg_call([&] {
    AttrNumber id_column = get_attnum(interfaces.table(), "id");
    Datum values[2] = {PointerGetDatum(cstring_to_text(method.c_str())),
                       PointerGetDatum(cstring_to_text(path.c_str()))};
    RegProcedure eq[2] = {F_TEXTEQ, F_TEXTEQ};
    interfaces.probe(values, eq, 2, GetActiveSnapshot(), [&](TupleTableSlot* slot) {
      bool isnull = false;
      Datum id = slot_getattr(slot, id_column, &isnull);
      taken = isnull || uuid_to_id(id) != own_id;
      return !taken;
    });
  });
  return taken;
}

}  // namespace

std::string default_http_path(const std::string& method, const KeyId& project_id,
                              const KeyId& workflow_id, const std::string& interface_name,
                              const KeyId& own_id) {
  const std::string seed = kong::to_string(project_id) + "/" + kong::to_string(workflow_id) + "/" +
                           interface_name;
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(seed.data()), seed.size());
  char hex[2 * crypto_hash_sha256_BYTES + 1];
  sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
  for (std::size_t length : {12, 20, 32, 64}) {
    std::string candidate = "/i/" + std::string(hex, length);
    if (!path_taken(method, candidate, own_id)) return candidate;
  }
  throw Error(sqlstate::kUniqueViolation, "no free path for interface \"" + interface_name + "\"",
              "Every hash-derived path for it is taken by another interface with the same method.",
              "Set http_path explicitly.");
}

}  // namespace gateway::pg

extern "C" {
PG_FUNCTION_INFO_V1(gateway_kong_object_id);
}

// gateway._kong_object_id(kind text, row_id uuid) -> uuid: the id the worker gives that object.
extern "C" Datum gateway_kong_object_id(PG_FUNCTION_ARGS) {
  using namespace gateway;
  using namespace gateway::pg;
  return sql_function([&]() -> Datum {
    std::string kind;
    pg_call([&] { kind = std::string(text_view(PG_GETARG_TEXT_PP(0))); });
    kong::Uuid id{};
    kong::parse_uuid(kong::object_id(kind, kong::to_string(uuid_to_id(PG_GETARG_DATUM(1)))), id);
    Datum out = 0;
    pg_call([&] { out = id_to_uuid(id); });
    return out;
  });
}

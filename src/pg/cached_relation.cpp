#include "cached_relation.hpp"

extern "C" {
#include "catalog/namespace.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
}

namespace gateway::pg {

void CachedRelation::forget(Datum self, Oid relid) {
  auto* cached = reinterpret_cast<CachedRelation*>(DatumGetPointer(self));
  if (relid == InvalidOid || relid == cached->table_ || relid == cached->index_) {
    cached->table_ = InvalidOid;
    cached->index_ = InvalidOid;
  }
}

void CachedRelation::resolve() {
  if (OidIsValid(table_)) return;
  if (!callback_registered_) {
    CacheRegisterRelcacheCallback(forget, PointerGetDatum(this));
    callback_registered_ = true;
  }
  Oid schema = get_namespace_oid("gateway", false);
  Oid table = get_relname_relid(table_name_, schema);
  Oid index = get_relname_relid(index_name_, schema);
  if (!OidIsValid(table) || !OidIsValid(index)) {
    ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE),
                    errmsg("gateway.%s or its index %s is missing", table_name_, index_name_),
                    errhint("Update the extension: ALTER EXTENSION pg_gateway UPDATE;")));
  }
  table_ = table;
  index_ = index;
  ++generation_;
}

Oid CachedRelation::table() {
  resolve();
  return table_;
}

Oid CachedRelation::index() {
  resolve();
  return index_;
}

}  // namespace gateway::pg

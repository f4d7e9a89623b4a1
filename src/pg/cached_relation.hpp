// A table and one of its indexes in schema gateway, looked up by name once per backend and
// forgotten when the relcache says either changed (the extension was dropped and created again),
// so hot paths that probe an index directly do no catalog lookup.
#pragma once

#include "postgres.hpp"

namespace gateway::pg {

class CachedRelation {
 public:
  CachedRelation(const char* table, const char* index) : table_name_(table), index_name_(index) {}

  // Resolves (if needed) and returns the table's oid; raises undefined_table with a hint when
  // either relation is missing. Call inside pg_call.
  Oid table();
  Oid index();
  // Changes every time the relations are looked up again: anything derived from them (column
  // numbers) is stale when it differs from the value it was derived at.
  unsigned generation() const { return generation_; }

 private:
  static void forget(Datum self, Oid relid);
  void resolve();

  const char* table_name_;
  const char* index_name_;
  Oid table_ = InvalidOid;
  Oid index_ = InvalidOid;
  bool callback_registered_ = false;
  unsigned generation_ = 0;
};

}  // namespace gateway::pg

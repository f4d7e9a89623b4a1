// A table and one of its indexes in schema gateway, looked up by name once per backend and
// forgotten when the relcache says either changed (the extension was dropped and created again),
// so hot paths that probe an index directly do no catalog lookup.
#pragma once

#include "postgres.hpp"

extern "C" {
#include "access/genam.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "executor/tuptable.h"
#include "utils/rel.h"
}

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

  // Visits the table's rows whose leading index columns equal `values` (compared with the
  // equality functions `procs`), under `snapshot`, until `visit(slot)` returns false. One direct
  // index probe: no plan, so none made when the table was small. Call inside pg_call.
  template <typename Visit>
  void probe(const Datum* values, const RegProcedure* procs, int n, Snapshot snapshot, Visit&& visit) {
    Relation table = table_open(this->table(), AccessShareLock);
    Relation index = index_open(this->index(), AccessShareLock);
    ScanKeyData keys[INDEX_MAX_KEYS];
    for (int i = 0; i < n; ++i) {
      ScanKeyEntryInitialize(&keys[i], 0, i + 1, BTEqualStrategyNumber, InvalidOid,
                             index->rd_indcollation[i], procs[i], values[i]);
    }
    IndexScanDesc scan = index_beginscan(table, index, snapshot, n, 0);
    index_rescan(scan, keys, n, nullptr, 0);
    TupleTableSlot* slot = table_slot_create(table, nullptr);
    while (index_getnext_slot(scan, ForwardScanDirection, slot) && visit(slot)) {
    }
    ExecDropSingleTupleTableSlot(slot);
    index_endscan(scan);
    index_close(index, AccessShareLock);
    table_close(table, AccessShareLock);
  }

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

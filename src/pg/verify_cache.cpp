// The verify cache (see verify_cache.hpp and docs/api-keys.md, "The verify cache").
//
// Layout: `sets` sets of kWays entries; a key (database, prefix) lives in one set. Each set has
//  - changecount: a seqlock. Verify reads entries without a lock and retries (or probes) when the
//    count was odd or moved; fills and invalidations change entries under the set's partition
//    LWLock, with the count odd meanwhile. A hit writes nothing shared (but a CLOCK bit, once).
//  - writers: transactions that wrote a row of this set and have not ended yet (the row trigger
//    marks, the end-of-transaction callback unmarks). Verify uses no entry and fills none while
//    it is > 0; the writer itself therefore always probes under its own snapshot.
//  - generation: bumped under the lock by every mark and every unmark.
//
// Why a verify that starts after a writer's COMMIT returned never gets the old row. The writer W
// marks set S (M1: writers++, generation++) before its row change, and unmarks at
// XACT_EVENT_COMMIT/ABORT (M2: empty S, generation++, writers--), which PostgreSQL runs after
// ProcArrayEndTransaction, i.e. after W's commit is visible to new snapshots, and before COMMIT
// returns. A fill F reads generation g0, then (barrier) takes a NEW snapshot and probes with it,
// then installs under the lock only if writers == 0 and generation == g0. Against any W:
//  - F read g0 after M2: its snapshot was taken after W's commit was visible: the row is W's.
//  - F read g0 before M1 or between M1 and M2: an M lies between g0 and F's install (the
//    generation moved), or M1 lies before it and M2 after it (writers > 0): F installs nothing;
//    or F installed before M1, and M2 empties the set.
// So every entry present after M2 was filled from a snapshot that sees W's commit, and a verify
// starting after COMMIT returned finds either no entry (probes with a snapshot newer than W's
// commit) or such an entry. A rollback runs M2 too: the set is emptied, nothing else changes.
// The statement snapshot of verify is never used to fill: it may predate W's commit.
//
// A writer that dies runs abort processing (M2); one that crashes makes the postmaster reinitialise
// shared memory. Were a mark ever left behind, its set would only stop caching (fail-safe).
// PREPARE TRANSACTION of a transaction that marked is refused: its commit would come from another
// backend, without M2. On a hot standby the trigger does not run during replay: verify bypasses
// the cache there (RecoveryInProgress). An entry also holds a stamp of the invalidation triggers
// (table oid and relfilenode, their pg_trigger row versions; verify reads pending catalog
// invalidations first): a dropped and re-created table, a rewrite, or a trigger that
// was disabled and enabled again (changes in between were not seen), makes every older entry a miss;
// while a trigger is missing or not ENABLE ALWAYS the cache is bypassed.
#include "verify_cache.hpp"

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "../core/key_format.hpp"
#include "cached_relation.hpp"
#include "error_bridge.hpp"
#include "settings.hpp"

extern "C" {
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/twophase.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_class.h"
#include "catalog/pg_trigger.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "common/hashfn.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
}

namespace gateway::pg {

static_assert(std::is_trivially_copyable_v<StoredKey>,
              "the verify cache copies StoredKey into shared memory");

namespace {

constexpr int kWays = 8;
constexpr int kPartitions = 64;  // LWLocks; set s uses s % kPartitions
constexpr const char* kTranche = "pg_gateway_verify_cache";
constexpr const char* kRowTrigger = "zz_verify_cache";
constexpr const char* kTruncateTrigger = "zz_verify_cache_truncate";
constexpr std::size_t kPrefix = api_key::kPrefixLength;

struct alignas(64) SetHeader {
  pg_atomic_uint32 changecount;
  pg_atomic_uint32 writers;
  pg_atomic_uint64 generation;
  std::uint32_t hand;  // CLOCK hand, under the lock
  // A hash of each way's (database, prefix), 0 when empty; changed with the entry. A lookup reads
  // this one cache line and touches only the entry whose tag matches: scanning the eight entries
  // themselves cost a cache miss each and was the slowest part of a hit.
  std::uint32_t tags[kWays];
  // Admission: tags of keys that missed here lately, written without the lock (a lost write only
  // costs one more miss). A key is filled on its second miss; the first probes as without the
  // cache. Under a working set far larger than the cache most keys would be evicted before their
  // next use, and a fill (a fresh snapshot, the lock, the copy) made those misses slower than no
  // cache at all.
  pg_atomic_uint32 missed[3];
};
static_assert(sizeof(SetHeader) == 64, "a set's header is one cache line");

struct Entry {
  std::uint64_t stamp;  // 0: empty
  Oid database;
  char prefix[kPrefix];
  volatile std::uint8_t referenced;  // CLOCK bit, set by hits without the lock
  StoredKey key;
};

// Per process (indexed by pgprocno): written by its one owner without atomics, summed by the view.
struct alignas(64) Counters {
  pg_atomic_uint64 hits, misses, evictions, invalidations;
};

struct Shared {
  std::uint32_t sets;
  std::uint32_t counter_slots;
};

Shared* shared = nullptr;
SetHeader* set_headers = nullptr;
Entry* entries = nullptr;
Counters* counters = nullptr;
LWLockPadded* locks = nullptr;

std::uint32_t sets_for_setting() {
  if (settings.verify_cache_size <= 0) return 0;
  return static_cast<std::uint32_t>((settings.verify_cache_size + kWays - 1) / kWays);
}

std::uint32_t counter_slots() {
  return static_cast<std::uint32_t>(MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts);
}

std::size_t shmem_size() {
  std::size_t sets = sets_for_setting();
  std::size_t size = 64 + MAXALIGN(sizeof(Shared));
  size = add_size(size, mul_size(sets, sizeof(SetHeader)));
  size = add_size(size, mul_size(mul_size(sets, kWays), sizeof(Entry)));
  size = add_size(size, mul_size(counter_slots(), sizeof(Counters)));
  return size;
}

// ---- counters --------------------------------------------------------------------------------

Counters* my_counters() {
  if (MyProc == nullptr || shared == nullptr) return nullptr;
  return &counters[static_cast<std::uint32_t>(MyProc->pgprocno) % shared->counter_slots];
}

void count(pg_atomic_uint64 Counters::*which, std::uint64_t n = 1) {
  Counters* mine = my_counters();
  if (mine == nullptr) return;
  pg_atomic_uint64* c = &(mine->*which);
  pg_atomic_write_u64(c, pg_atomic_read_u64(c) + n);  // one writer: no locked instruction
}

// ---- sets ------------------------------------------------------------------------------------

// Where a key lives: its set, and its tag in that set's header (never 0, which marks a free way).
struct Place {
  std::uint32_t set;
  std::uint32_t tag;
};

Place place_of(std::string_view prefix, Oid database) {
  std::uint32_t h = hash_bytes(reinterpret_cast<const unsigned char*>(prefix.data()),
                               static_cast<int>(prefix.size()));
  h ^= database * 0x9E3779B1u;
  return Place{h % shared->sets, h | 1u};
}

std::uint32_t set_of(std::string_view prefix, Oid database) { return place_of(prefix, database).set; }

Entry* way(std::uint32_t set, int w) { return &entries[static_cast<std::size_t>(set) * kWays + w]; }
LWLock* lock_of(std::uint32_t set) { return &locks[set % kPartitions].lock; }

// Entries change only between these two, under the set's lock.
void begin_change(SetHeader& h) { pg_atomic_fetch_add_u32(&h.changecount, 1); }  // full barrier
void end_change(SetHeader& h) {
  pg_write_barrier();
  pg_atomic_fetch_add_u32(&h.changecount, 1);
}

bool matches(const Entry& e, std::string_view prefix, Oid database, std::uint64_t stamp) {
  return e.stamp == stamp && e.database == database && std::memcmp(e.prefix, prefix.data(), kPrefix) == 0;
}

enum class Read { kHit, kMiss, kBusy };

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"  // StoredKey holds std::optional; GCC lays it out plainly
constexpr std::size_t kScopeHashesOffset = offsetof(StoredKey, scopes) + offsetof(api_key::ScopeSet, hashes);
static_assert(kScopeHashesOffset + sizeof(api_key::ScopeSet::hashes) == sizeof(StoredKey),
              "the scope hashes must end StoredKey: copy_key stops after the ones in use");
#pragma GCC diagnostic pop

// Copies an entry's key, but of its scope array only the hashes in use: most keys hold none, and
// the array is half of an entry. Under the seqlock a torn count is harmless (the copy is then
// discarded), so it is only kept within bounds.
void copy_key(StoredKey& out, const StoredKey& in) {
  const std::size_t used = std::min<std::size_t>(in.scopes.count, api_key::kMaxScopes);
  std::memcpy(static_cast<void*>(&out), &in, kScopeHashesOffset + used * sizeof(std::uint64_t));
}

// Lock-free read of one set (seqlock): the copy counts only if no change overlapped it.
Read read_entry(Place place, std::string_view prefix, std::uint64_t stamp, StoredKey& out) {
  const std::uint32_t set = place.set;
  SetHeader& h = set_headers[set];
  for (int attempt = 0; attempt < 4; ++attempt) {
    std::uint32_t before = pg_atomic_read_u32(&h.changecount);
    if (before & 1) continue;
    pg_read_barrier();
    Entry* found = nullptr;
    for (int w = 0; w < kWays; ++w) {
      if (h.tags[w] != place.tag) continue;
      Entry* e = way(set, w);
      if (matches(*e, prefix, MyDatabaseId, stamp)) {
        copy_key(out, e->key);
        found = e;
        break;
      }
    }
    pg_read_barrier();
    if (pg_atomic_read_u32(&h.changecount) != before) continue;
    if (found == nullptr) return Read::kMiss;
    if (found->referenced == 0) found->referenced = 1;
    return Read::kHit;
  }
  return Read::kBusy;
}

// Admission (see SetHeader::missed): a key that just missed is worth filling when it missed here
// before. Only keys that exist are noted (after the probe found them): a flood of well-formed keys
// with unknown prefixes (anyone who may call verify can make them) would otherwise overwrite the
// slots without pause and keep every key that is not cached yet out of the cache.
pg_atomic_uint32& missed_slot(SetHeader& h, std::uint32_t tag) { return h.missed[(tag >> 8) % 3]; }
bool admitted(SetHeader& h, std::uint32_t tag) { return pg_atomic_read_u32(&missed_slot(h, tag)) == tag; }
void note_miss(SetHeader& h, std::uint32_t tag) { pg_atomic_write_u32(&missed_slot(h, tag), tag); }

// Installs a row read under a snapshot taken after `generation` was read (see the top comment).
void fill(Place place, std::string_view prefix, std::uint64_t stamp, const StoredKey& key,
          std::uint64_t generation) {
  const std::uint32_t set = place.set;
  SetHeader& h = set_headers[set];
  LWLockAcquire(lock_of(set), LW_EXCLUSIVE);
  if (pg_atomic_read_u32(&h.writers) == 0 && pg_atomic_read_u64(&h.generation) == generation) {
    int target_way = -1;
    for (int w = 0; w < kWays && target_way < 0; ++w) {
      if (matches(*way(set, w), prefix, MyDatabaseId, stamp)) target_way = w;  // a concurrent fill won
    }
    for (int w = 0; w < kWays && target_way < 0; ++w) {
      if (way(set, w)->stamp == 0) target_way = w;
    }
    // CLOCK: the first entry not used since the hand last passed it.
    for (int step = 0; target_way < 0; ++step) {
      const int w = static_cast<int>(h.hand % kWays);
      Entry* e = way(set, w);
      h.hand++;
      if (e->referenced == 0 || step >= kWays) {
        target_way = w;
        count(&Counters::evictions);
      } else {
        e->referenced = 0;
      }
    }
    Entry* target = way(set, target_way);
    begin_change(h);
    h.tags[target_way] = place.tag;
    target->stamp = stamp;
    target->database = MyDatabaseId;
    std::memcpy(target->prefix, prefix.data(), kPrefix);
    target->referenced = 0;
    std::memcpy(static_cast<void*>(&target->key), &key, sizeof(StoredKey));
    end_change(h);
  }
  LWLockRelease(lock_of(set));
}

// ---- marks (the writer's side) -----------------------------------------------------------------

std::vector<std::uint32_t> marked;    // sets this transaction marked
std::vector<bool> is_marked;          // by set
bool callback_registered = false;

void unmark_all() noexcept {
  std::uint64_t dropped = 0;
  for (std::uint32_t set : marked) {
    SetHeader& h = set_headers[set];
    LWLockAcquire(lock_of(set), LW_EXCLUSIVE);
    begin_change(h);
    for (int w = 0; w < kWays; ++w) {
      if (way(set, w)->stamp != 0) ++dropped;
      way(set, w)->stamp = 0;
      h.tags[w] = 0;
    }
    end_change(h);
    pg_atomic_fetch_add_u64(&h.generation, 1);
    pg_atomic_fetch_sub_u32(&h.writers, 1);
    LWLockRelease(lock_of(set));
    is_marked[set] = false;
  }
  marked.clear();
  if (dropped != 0) count(&Counters::invalidations, dropped);
}

// After ProcArrayEndTransaction on commit: new snapshots see the change when the sets empty.
void on_transaction_end(XactEvent event, void*) {
  switch (event) {
    case XACT_EVENT_COMMIT:
    case XACT_EVENT_PARALLEL_COMMIT:
    case XACT_EVENT_ABORT:
    case XACT_EVENT_PARALLEL_ABORT:
      unmark_all();
      break;
    case XACT_EVENT_PRE_PREPARE:
      if (!marked.empty()) {
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("cannot PREPARE a transaction that changed gateway.api_keys"),
                        errdetail("The verify cache is invalidated when the changing transaction "
                                  "ends in the backend that made the change."),
                        errhint("Change API keys in a transaction that commits directly.")));
      }
      break;
    default:
      break;
  }
}

// Marks `set` until the end of the top-level transaction (a subtransaction's abort keeps it).
// C++ code: call outside pg_call.
void mark(std::uint32_t set) {
  if (is_marked.empty()) is_marked.assign(shared->sets, false);
  if (is_marked[set]) return;
  // May throw: before anything shared changes. Doubling: growing by one each time made a
  // TRUNCATE (every set) quadratic, 4 s for a cache of 2^20 entries.
  if (marked.size() == marked.capacity()) marked.reserve(std::max<std::size_t>(16, 2 * marked.capacity()));
  if (!callback_registered) {
    pg_call([] { RegisterXactCallback(on_transaction_end, nullptr); });
    callback_registered = true;
  }
  SetHeader& h = set_headers[set];
  LWLockAcquire(lock_of(set), LW_EXCLUSIVE);
  pg_atomic_fetch_add_u32(&h.writers, 1);
  pg_atomic_fetch_add_u64(&h.generation, 1);
  LWLockRelease(lock_of(set));
  marked.push_back(set);
  is_marked[set] = true;
}

// ---- the triggers' stamp ---------------------------------------------------------------------

CachedRelation api_keys_relation("api_keys", "api_keys_key_prefix_key");
unsigned stamp_generation = 0;
std::uint64_t stamp_value = 0;

// Nonzero when both invalidation triggers exist and fire ALWAYS (also under
// session_replication_role = replica); it changes when the table or either trigger row does.
// Read again only when the relcache says the table changed. Call inside pg_call.
std::uint64_t current_stamp() {
  Oid table = api_keys_relation.table();
  if (api_keys_relation.generation() == stamp_generation) return stamp_value;
  std::uint64_t stamp = table;
  // A rewrite (ALTER COLUMN ... TYPE ... USING) changes rows without firing the triggers: a new
  // relfilenode makes every older entry a miss.
  HeapTuple class_row = SearchSysCache1(RELOID, ObjectIdGetDatum(table));
  if (!HeapTupleIsValid(class_row)) elog(ERROR, "cache lookup failed for relation %u", table);
  stamp = stamp * 1000003u ^ reinterpret_cast<Form_pg_class>(GETSTRUCT(class_row))->relfilenode;
  ReleaseSysCache(class_row);
  int found = 0;
  Relation triggers = table_open(TriggerRelationId, AccessShareLock);
  ScanKeyData key;
  ScanKeyInit(&key, Anum_pg_trigger_tgrelid, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(table));
  SysScanDesc scan = systable_beginscan(triggers, TriggerRelidNameIndexId, true, nullptr, 1, &key);
  HeapTuple tuple;
  while (HeapTupleIsValid(tuple = systable_getnext(scan))) {
    auto* form = reinterpret_cast<Form_pg_trigger>(GETSTRUCT(tuple));
    const char* name = NameStr(form->tgname);
    if (std::strcmp(name, kRowTrigger) != 0 && std::strcmp(name, kTruncateTrigger) != 0) continue;
    if (form->tgenabled != TRIGGER_FIRES_ALWAYS) continue;
    ++found;
    stamp = stamp * 1000003u ^ HeapTupleHeaderGetRawXmin(tuple->t_data) ^ (std::uint64_t{form->oid} << 32);
  }
  systable_endscan(scan);
  table_close(triggers, AccessShareLock);
  stamp_value = found == 2 ? (stamp | 1) : 0;
  stamp_generation = api_keys_relation.generation();
  return stamp_value;
}

}  // namespace

void request_verify_cache_shmem() {
  RequestAddinShmemSpace(shmem_size());
  RequestNamedLWLockTranche(kTranche, kPartitions);
}

void init_verify_cache_shmem() {
  bool found = false;
  char* base = static_cast<char*>(ShmemInitStruct("pg_gateway verify cache", shmem_size(), &found));
  char* aligned = reinterpret_cast<char*>(TYPEALIGN(64, reinterpret_cast<std::uintptr_t>(base)));
  shared = reinterpret_cast<Shared*>(aligned);
  char* p = aligned + TYPEALIGN(64, sizeof(Shared));
  std::uint32_t sets = sets_for_setting();
  set_headers = reinterpret_cast<SetHeader*>(p);
  p += sizeof(SetHeader) * sets;
  entries = reinterpret_cast<Entry*>(p);
  p += sizeof(Entry) * static_cast<std::size_t>(sets) * kWays;
  counters = reinterpret_cast<Counters*>(TYPEALIGN(64, reinterpret_cast<std::uintptr_t>(p)));
  if (!found) {
    shared->sets = sets;
    shared->counter_slots = counter_slots();
    for (std::uint32_t s = 0; s < sets; ++s) {
      pg_atomic_init_u32(&set_headers[s].changecount, 0);
      pg_atomic_init_u32(&set_headers[s].writers, 0);
      pg_atomic_init_u64(&set_headers[s].generation, 0);
      set_headers[s].hand = 0;
      std::fill(std::begin(set_headers[s].tags), std::end(set_headers[s].tags), 0u);
      for (pg_atomic_uint32& missed : set_headers[s].missed) pg_atomic_init_u32(&missed, 0);
    }
    std::memset(static_cast<void*>(entries), 0, sizeof(Entry) * static_cast<std::size_t>(sets) * kWays);
    for (std::uint32_t i = 0; i < shared->counter_slots; ++i) {
      pg_atomic_init_u64(&counters[i].hits, 0);
      pg_atomic_init_u64(&counters[i].misses, 0);
      pg_atomic_init_u64(&counters[i].evictions, 0);
      pg_atomic_init_u64(&counters[i].invalidations, 0);
    }
  }
  locks = GetNamedLWLockTranche(kTranche);
}

std::optional<StoredKey> lookup_key(std::string_view prefix, bool* from_cache) {
  *from_cache = false;
  if (shared == nullptr || shared->sets == 0 || prefix.size() != kPrefix || settings.verify_cache_bypass) {
    return find_key_by_prefix(prefix);
  }
  bool recovery = false;
  std::uint64_t stamp = 0;
  pg_call([&] {
    // A standby replays changes without running the trigger: only the probe knows. Parallel
    // mode forbids the fresh snapshot a fill needs (verify is not PARALLEL SAFE; in case).
    recovery = RecoveryInProgress() || IsInParallelMode();
    // A hit takes no lock, so nothing else makes a transaction that verified before read the
    // catalog again: a trigger disabled or a table rewritten meanwhile must change the stamp now
    // (cheap when no message is pending).
    if (!recovery) AcceptInvalidationMessages();
    if (!recovery) stamp = current_stamp();
  });
  if (recovery || stamp == 0) return find_key_by_prefix(prefix);

  const Place place = place_of(prefix, MyDatabaseId);
  SetHeader& h = set_headers[place.set];
  // Being written (perhaps by this very transaction): the probe under the statement's snapshot,
  // which sees this transaction's own changes.
  if (pg_atomic_read_u32(&h.writers) != 0) {
    count(&Counters::misses);
    return find_key_by_prefix(prefix);
  }

  std::optional<StoredKey> key(std::in_place);
  Read read = read_entry(place, prefix, stamp, *key);
  if (read == Read::kHit) {
    count(&Counters::hits);
    *from_cache = true;
    return key;
  }
  count(&Counters::misses);
  if (read == Read::kBusy) return find_key_by_prefix(prefix);
  if (!admitted(h, place.tag)) {
    std::optional<StoredKey> found = find_key_by_prefix(prefix);
    if (found) note_miss(h, place.tag);
    return found;
  }

  std::uint64_t generation = pg_atomic_read_u64(&h.generation);
  pg_memory_barrier();  // the generation is read before the snapshot below is taken
  if (pg_atomic_read_u32(&h.writers) != 0) return find_key_by_prefix(prefix);
  std::optional<StoredKey> found = find_key_by_prefix_latest(prefix);
  if (found) fill(place, prefix, stamp, *found, generation);
  return found;
}

}  // namespace gateway::pg

using namespace gateway;
using namespace gateway::pg;

extern "C" {
PG_FUNCTION_INFO_V1(gateway_verify_cache_invalidate);
PG_FUNCTION_INFO_V1(gateway_verify_cache_stats);
}

namespace {

// Whether an UPDATE changed anything verify may read: every column but last_used_at (which the
// worker rewrites for keys in use) counts, so a column added later invalidates by default.
bool update_matters(Relation rel, HeapTuple old_row, HeapTuple new_row) {
  TupleDesc desc = RelationGetDescr(rel);
  for (int i = 0; i < desc->natts; ++i) {
    Form_pg_attribute attr = TupleDescAttr(desc, i);
    if (attr->attisdropped || std::strcmp(NameStr(attr->attname), "last_used_at") == 0) continue;
    bool old_null = false, new_null = false;
    Datum a = heap_getattr(old_row, i + 1, desc, &old_null);
    Datum b = heap_getattr(new_row, i + 1, desc, &new_null);
    if (old_null != new_null) return true;
    if (!old_null && !datum_image_eq(a, b, attr->attbyval, attr->attlen)) return true;
  }
  return false;
}

// Marks the set of the row's key prefix.
void mark_row(Relation rel, HeapTuple row) {
  bool has_prefix = false;
  std::uint32_t set = 0;
  pg_call([&] {
    int attnum = SPI_fnumber(RelationGetDescr(rel), "key_prefix");
    if (attnum <= 0) elog(ERROR, "gateway.api_keys.key_prefix is missing");
    bool isnull = false;
    Datum value = heap_getattr(row, attnum, RelationGetDescr(rel), &isnull);
    if (isnull) return;
    text* prefix = DatumGetTextPP(value);
    set = set_of(std::string_view(VARDATA_ANY(prefix), VARSIZE_ANY_EXHDR(prefix)), MyDatabaseId);
    has_prefix = true;
  });
  if (has_prefix) mark(set);
}

}  // namespace

// BEFORE INSERT/UPDATE/DELETE row trigger and BEFORE TRUNCATE statement trigger on
// gateway.api_keys (both ENABLE ALWAYS): marks the sets of the rows written until the
// transaction ends. Named zz_ so it runs after every other BEFORE trigger.
extern "C" Datum gateway_verify_cache_invalidate(PG_FUNCTION_ARGS) {
  if (!CALLED_AS_TRIGGER(fcinfo)) elog(ERROR, "_verify_cache_invalidate must be called as a trigger");
  auto* data = reinterpret_cast<TriggerData*>(fcinfo->context);
  return sql_function([&]() -> Datum {
    HeapTuple result = nullptr;
    if (shared == nullptr || shared->sets == 0) {
      // no cache: nothing to mark
    } else if (TRIGGER_FIRED_BY_TRUNCATE(data->tg_event)) {
      for (std::uint32_t s = 0; s < shared->sets; ++s) mark(s);
    } else if (TRIGGER_FIRED_BY_UPDATE(data->tg_event)) {
      bool matters = false;
      pg_call([&] { matters = update_matters(data->tg_relation, data->tg_trigtuple, data->tg_newtuple); });
      if (matters) {
        mark_row(data->tg_relation, data->tg_trigtuple);
        mark_row(data->tg_relation, data->tg_newtuple);
      }
    } else {
      mark_row(data->tg_relation, data->tg_trigtuple);
    }
    if (TRIGGER_FIRED_FOR_ROW(data->tg_event)) {
      result = TRIGGER_FIRED_BY_UPDATE(data->tg_event) ? data->tg_newtuple : data->tg_trigtuple;
    }
    return PointerGetDatum(result);
  });
}

// gateway._verify_cache_stats() -> one row: size, used, hits, misses, evictions, invalidations,
// memory_bytes (cluster-wide, since the server started).
extern "C" Datum gateway_verify_cache_stats(PG_FUNCTION_ARGS) {
  return sql_function([&]() -> Datum {
    std::uint64_t used = 0, hits = 0, misses = 0, evictions = 0, invalidations = 0;
    std::uint32_t sets = shared == nullptr ? 0 : shared->sets;
    for (std::size_t i = 0; i < static_cast<std::size_t>(sets) * kWays; ++i) {
      if (entries[i].stamp != 0) ++used;
    }
    for (std::uint32_t i = 0; shared != nullptr && i < shared->counter_slots; ++i) {
      hits += pg_atomic_read_u64(&counters[i].hits);
      misses += pg_atomic_read_u64(&counters[i].misses);
      evictions += pg_atomic_read_u64(&counters[i].evictions);
      invalidations += pg_atomic_read_u64(&counters[i].invalidations);
    }
    Datum out = 0;
    pg_call([&] {
      TupleDesc desc;
      if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE) {
        elog(ERROR, "function returning record called in a context that cannot accept it");
      }
      desc = BlessTupleDesc(desc);
      Datum values[7] = {Int64GetDatum(static_cast<std::int64_t>(sets) * kWays),
                         Int64GetDatum(static_cast<std::int64_t>(used)),
                         Int64GetDatum(static_cast<std::int64_t>(hits)),
                         Int64GetDatum(static_cast<std::int64_t>(misses)),
                         Int64GetDatum(static_cast<std::int64_t>(evictions)),
                         Int64GetDatum(static_cast<std::int64_t>(invalidations)),
                         Int64GetDatum(static_cast<std::int64_t>(sets == 0 ? 0 : shmem_size()))};
      bool nulls[7] = {false, false, false, false, false, false, false};
      out = HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
    });
    return out;
  });
}

// Small per-process set-associative tables: a set is a few ways, each entry carrying a recency
// that is 0 while the way is free. Shared by the verify path's per-backend memos (hash_memo.hpp,
// the recent-use table in src/pg/shared_state.cpp).
#pragma once

#include <cstddef>

namespace gateway {

// The way of `set` that holds what `holds` looks for, or nullptr.
template <typename Entry, typename Holds, typename Recency>
Entry* find_way(Entry* set, std::size_t ways, Holds holds, Recency recency) {
  for (std::size_t w = 0; w < ways; ++w) {
    if (recency(set[w]) != 0 && holds(set[w])) return &set[w];
  }
  return nullptr;
}

// The way to write: the one already holding it, else a free one, else the least recent.
template <typename Entry, typename Holds, typename Recency>
Entry* way_to_fill(Entry* set, std::size_t ways, Holds holds, Recency recency) {
  if (Entry* held = find_way(set, ways, holds, recency)) return held;
  Entry* target = &set[0];
  for (std::size_t w = 1; w < ways; ++w) {
    if (recency(set[w]) < recency(*target)) target = &set[w];
  }
  return target;
}

}  // namespace gateway

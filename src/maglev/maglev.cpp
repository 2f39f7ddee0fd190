#include "maglev/maglev.h"

#include <xxhash.h>

#include <algorithm>
#include <limits>
#include <map>

namespace xlb::maglev {
namespace {

// Marks a free slot while filling, and a member missing from the other table in disruption(). Never a
// member index: that would take 4 billion members.
constexpr uint32_t kEmpty = std::numeric_limits<uint32_t>::max();

// Distinct constants so that one seed string yields two unrelated hash seeds (offset and skip).
constexpr uint64_t kOffsetSeedSalt = 0x6d61676c65766f66;  // "maglevof"
constexpr uint64_t kSkipSeedSalt = 0x6d61676c6576736b;    // "maglevsk"

bool is_table_size(uint32_t size) {
  return std::find(kTableSizes.begin(), kTableSizes.end(), size) != kTableSizes.end();
}

std::string table_sizes_text() {
  std::string text;
  for (uint32_t size : kTableSizes) {
    if (!text.empty()) text += ", ";
    text += std::to_string(size);
  }
  return text;
}

Error not_a_table_size(std::string_view what, uint32_t size) {
  return Error{std::string(what) + " " + std::to_string(size) +
               " is not a Maglev table size; use one of " + table_sizes_text()};
}

uint64_t hash(std::string_view text, uint64_t seed) {
  return XXH64(text.data(), text.size(), seed);
}

// One weighted member's walk through its permutation. Kept small and flat: the fill loop touches
// these for every turn.
struct Walker {
  uint32_t next;    // the next slot of its permutation to try
  uint32_t skip;    // step of its permutation, in [1, M-1]
  uint32_t weight;  // > 0
  uint32_t index;   // index into Table::members
  uint64_t credit;  // accumulated weight not yet spent on turns; 64-bit so credit + weight fits
};

std::vector<Walker> make_walkers(const std::vector<Member>& sorted, uint32_t table_size,
                                 std::string_view seed) {
  const uint64_t offset_seed = hash(seed, kOffsetSeedSalt);
  const uint64_t skip_seed = hash(seed, kSkipSeedSalt);
  std::vector<Walker> walkers;
  walkers.reserve(sorted.size());
  for (size_t i = 0; i < sorted.size(); ++i) {
    if (sorted[i].weight == 0) continue;
    const auto offset = static_cast<uint32_t>(hash(sorted[i].key, offset_seed) % table_size);
    const auto skip = static_cast<uint32_t>(hash(sorted[i].key, skip_seed) % (table_size - 1) + 1);
    walkers.push_back({offset, skip, sorted[i].weight, static_cast<uint32_t>(i), 0});
  }
  return walkers;
}

// Claims the walker's next preferred free slot. The table is not full, so the walk ends: with M
// prime, the permutation visits every slot. Stepping by addition and one conditional subtraction
// avoids a modulo per probe (next + skip < 2M fits in 32 bits for every size in kTableSizes).
void claim(Walker& w, std::vector<uint32_t>& slots, uint32_t table_size) {
  uint32_t slot = w.next;
  while (slots[slot] != kEmpty) {
    slot += w.skip;
    if (slot >= table_size) slot -= table_size;
  }
  slots[slot] = w.index;
  slot += w.skip;
  if (slot >= table_size) slot -= table_size;
  w.next = slot;
}

// Rounds in key order: each walker adds its weight to its credit, and takes a turn whenever the
// credit reaches the largest weight. The heaviest walker thus takes a turn every round and a walker
// of weight w takes w/max of a turn per round, from the first round on, so shares follow weights.
// Since credit stays below max, nobody takes two turns in one round.
std::vector<uint32_t> fill(std::vector<Walker>& walkers, uint32_t table_size) {
  uint32_t max_weight = 0;
  for (const Walker& w : walkers) max_weight = std::max(max_weight, w.weight);
  std::vector<uint32_t> slots(table_size, kEmpty);
  uint32_t filled = 0;
  while (true) {
    for (Walker& w : walkers) {
      w.credit += w.weight;
      if (w.credit < max_weight) continue;
      w.credit -= max_weight;
      claim(w, slots, table_size);
      if (++filled == table_size) return slots;
    }
  }
}

}  // namespace

Result<uint32_t> choose_table_size(size_t member_count, SizeBounds bounds,
                                   std::optional<uint32_t> pinned) {
  if (pinned) {
    if (!is_table_size(*pinned)) return not_a_table_size("pinned table size", *pinned);
    return *pinned;
  }
  if (!is_table_size(bounds.min)) return not_a_table_size("min_table_size", bounds.min);
  if (!is_table_size(bounds.max)) return not_a_table_size("max_table_size", bounds.max);
  if (bounds.min > bounds.max) {
    return Error{"min_table_size " + std::to_string(bounds.min) + " is larger than max_table_size " +
                 std::to_string(bounds.max)};
  }
  // Divide rather than multiply so that a huge member_count cannot overflow.
  for (uint32_t size : kTableSizes) {
    if (size >= bounds.min && size / kSlotsPerMember >= member_count) return std::min(size, bounds.max);
  }
  return bounds.max;
}

std::vector<uint32_t> Table::slot_counts() const {
  std::vector<uint32_t> counts(members.size(), 0);
  for (uint32_t owner : slots) ++counts[owner];
  return counts;
}

Result<Table> build(std::vector<Member> members, uint32_t table_size, std::string_view seed) {
  if (!is_table_size(table_size)) return not_a_table_size("table size", table_size);

  // Sorting by key makes the result independent of the caller's order; keys are unique, so the
  // order is total.
  std::sort(members.begin(), members.end(),
            [](const Member& a, const Member& b) { return a.key < b.key; });
  auto duplicate = std::adjacent_find(members.begin(), members.end(),
                                      [](const Member& a, const Member& b) { return a.key == b.key; });
  if (duplicate != members.end()) return Error{"duplicate backend " + duplicate->key};

  std::vector<Walker> walkers = make_walkers(members, table_size, seed);
  // Otherwise some weighted members would silently get no slot at all.
  if (walkers.size() > table_size) {
    return Error{std::to_string(walkers.size()) + " backends with weight > 0 do not fit a Maglev table of " +
                 std::to_string(table_size) + " slots; use a larger table size"};
  }

  Table table;
  table.members.reserve(members.size());
  for (Member& m : members) table.members.push_back(std::move(m.key));
  if (!walkers.empty()) table.slots = fill(walkers, table_size);
  return table;
}

double disruption(const Table& before, const Table& after) {
  if (before.size() != after.size()) return 1.0;
  if (before.size() == 0) return 0.0;

  // Translate before's member indices to after's once, then compare slots as integers.
  std::map<std::string_view, uint32_t> after_index;
  for (uint32_t i = 0; i < after.members.size(); ++i) after_index.emplace(after.members[i], i);
  std::vector<uint32_t> to_after(before.members.size(), kEmpty);
  for (uint32_t i = 0; i < before.members.size(); ++i) {
    auto found = after_index.find(before.members[i]);
    if (found != after_index.end()) to_after[i] = found->second;
  }

  uint32_t changed = 0;
  for (uint32_t slot = 0; slot < before.size(); ++slot) {
    if (to_after[before.slots[slot]] != after.slots[slot]) ++changed;
  }
  return static_cast<double>(changed) / before.size();
}

}  // namespace xlb::maglev

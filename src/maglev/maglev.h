// Maglev consistent hashing (Eisenbud et al., NSDI 2016): the lookup table that the datapath indexes
// with a flow hash to pick a backend. The engine fills the BPF ring maps from it; the UI and CLI show
// how many slots each backend owns and how much a change moved.
//
// Every node must compute the same table from the same service, so a table depends only on the
// members' stable keys, their weights, the table size and a configured seed string.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace xlb::maglev {

// Table sizes are primes so that every skip in [1, M-1] visits every slot. A fixed list (roughly
// doubling) keeps tables comparable across nodes and versions, and lets a service with 3 backends
// use a 2 KiB ring instead of a 256 KiB one.
inline constexpr std::array<uint32_t, 10> kTableSizes{251,  509,   1021,  2039,  4093,
                                                      8191, 16381, 32749, 65521, 131071};

// Slots per member that keep the load within 1% of even (the paper's rule M >= 100 * N).
inline constexpr uint32_t kSlotsPerMember = 100;

struct Member {
  std::string key;  // stable identity, e.g. "10.0.1.2:8080/tcp"; decides order and hashes
  uint32_t weight = 1;  // relative share of slots; 0 keeps the member listed but gives it no slots
};

// Configured limits for choose_table_size. Both must be one of kTableSizes.
struct SizeBounds {
  uint32_t min = kTableSizes.front();
  uint32_t max = kTableSizes.back();
};

// The smallest size in kTableSizes that is >= kSlotsPerMember * member_count, clamped to bounds.
// member_count counts the members that can take slots (weight > 0): drained members do not need room.
// A pinned size wins over the bounds (a service asked for it explicitly) but must be in kTableSizes.
// Bounds that are not in kTableSizes are an error rather than silently rounded, so that the size a
// person configured is the size they get.
Result<uint32_t> choose_table_size(size_t member_count, SizeBounds bounds = {},
                                   std::optional<uint32_t> pinned = {});

struct Table {
  std::vector<std::string> members;  // all members' keys, sorted (weight 0 included)
  std::vector<uint32_t> slots;       // size M; each an index into members. Empty means "no ring".

  uint32_t size() const { return static_cast<uint32_t>(slots.size()); }
  std::vector<uint32_t> slot_counts() const;  // per member, parallel to members
};

// Populates a table of table_size slots. Members may come in any order.
// A service with no members, or whose members all have weight 0, gets an empty table (no slots):
// that is a normal state (scaled to zero, all drained) which the engine maps to "no ring", not an
// error. Errors: table_size not in kTableSizes, duplicate keys, more weighted members than slots.
//
// Cost: O(M log M) probes for equal weights. Uneven weights add O(N) credit updates per round, and
// there are at most M rounds, so an extreme weight spread costs up to O(M * N) cheap additions.
Result<Table> build(std::vector<Member> members, uint32_t table_size, std::string_view seed);

// Share of slots in [0, 1] whose owner (compared by key) differs between two tables, i.e. the share
// of new flows that would pick another backend. Tables of different sizes count as 1.0: the same
// flow hash lands on unrelated slots, so no slot-by-slot comparison means anything. Two empty
// tables count as 0.0.
double disruption(const Table& before, const Table& after);

}  // namespace xlb::maglev

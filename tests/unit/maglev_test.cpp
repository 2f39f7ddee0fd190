// Properties of Maglev tables: balance, disruption, determinism, weights, size choice and errors.
// Random inputs come from fixed-seed generators, so every run checks the same cases.
#include "maglev/maglev.h"

#include <gtest/gtest.h>
#include <xxhash.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

namespace xlb::maglev {
namespace {

constexpr std::string_view kSeed = "xlb-test-seed";

// n distinct keys shaped like the engine's ("10.a.b.c:port/tcp"), drawn from a random base so
// that different trials hash different keys.
std::vector<Member> make_members(size_t n, std::mt19937& rng) {
  const uint32_t base = std::uniform_int_distribution<uint32_t>(0, 1u << 23)(rng);
  const uint32_t port = std::uniform_int_distribution<uint32_t>(1024, 65535)(rng);
  std::vector<Member> members;
  for (size_t i = 0; i < n; ++i) {
    const uint32_t host = base + static_cast<uint32_t>(i);
    members.push_back({"10." + std::to_string(host >> 16 & 0xff) + "." + std::to_string(host >> 8 & 0xff) +
                           "." + std::to_string(host & 0xff) + ":" + std::to_string(port) + "/tcp",
                       1});
  }
  return members;
}

Table build_ok(std::vector<Member> members, uint32_t table_size, std::string_view seed = kSeed) {
  Result<Table> table = build(std::move(members), table_size, seed);
  EXPECT_TRUE(table.ok()) << table.error().message;
  return table.ok() ? std::move(table).value() : Table{};
}

uint32_t size_for(size_t member_count) {
  Result<uint32_t> size = choose_table_size(member_count);
  EXPECT_TRUE(size.ok()) << size.error().message;
  return size.ok() ? *size : 0;
}

// A hash of everything a table says, in a byte order fixed here, to compare tables across processes
// and against a constant.
uint64_t fingerprint(const Table& table) {
  XXH64_state_t* state = XXH64_createState();
  XXH64_reset(state, 0);
  for (const std::string& key : table.members) XXH64_update(state, key.c_str(), key.size() + 1);
  for (uint32_t owner : table.slots) {
    const unsigned char bytes[4] = {static_cast<unsigned char>(owner), static_cast<unsigned char>(owner >> 8),
                                    static_cast<unsigned char>(owner >> 16),
                                    static_cast<unsigned char>(owner >> 24)};
    XXH64_update(state, bytes, sizeof bytes);
  }
  const uint64_t digest = XXH64_digest(state);
  XXH64_freeState(state);
  return digest;
}

// The fixed input of the known-answer and cross-process tests.
Table reference_table() {
  return build_ok({{"10.0.1.1:8080/tcp", 1},
                   {"10.0.1.2:8080/tcp", 2},
                   {"10.0.1.3:8080/tcp", 1},
                   {"10.0.1.4:8080/tcp", 0},
                   {"[fd00::5]:8080/tcp", 3}},
                  509);
}

// Measured figures go both to the XML report and to the console, where a person reads them.
void report(const std::string& name, double value) {
  ::testing::Test::RecordProperty(name, std::to_string(value));
  std::printf("[ measured ] %s = %.4f\n", name.c_str(), value);
}

// ---- Table size choice ----

TEST(MaglevTableSize, PicksSmallestSizeWithHundredSlotsPerMember) {
  EXPECT_EQ(size_for(0), 251u);
  EXPECT_EQ(size_for(1), 251u);
  EXPECT_EQ(size_for(2), 251u);
  EXPECT_EQ(size_for(3), 509u);
  EXPECT_EQ(size_for(5), 509u);
  EXPECT_EQ(size_for(6), 1021u);
  EXPECT_EQ(size_for(100), 16381u);
  EXPECT_EQ(size_for(1000), 131071u);
}

TEST(MaglevTableSize, ClampsToBounds) {
  EXPECT_EQ(*choose_table_size(3, {.min = 4093, .max = 131071}), 4093u);
  EXPECT_EQ(*choose_table_size(1000, {.min = 251, .max = 1021}), 1021u);
  EXPECT_EQ(*choose_table_size(5000, {}), 131071u);
  EXPECT_EQ(*choose_table_size(3, {.min = 509, .max = 509}), 509u);
}

TEST(MaglevTableSize, PinnedSizeWinsOverCountAndBounds) {
  EXPECT_EQ(*choose_table_size(3, {}, 65521), 65521u);
  EXPECT_EQ(*choose_table_size(3, {.min = 251, .max = 1021}, 65521), 65521u);
  EXPECT_EQ(*choose_table_size(1000, {}, 251), 251u);
}

TEST(MaglevTableSize, PinnedSizeNotInListIsError) {
  Result<uint32_t> size = choose_table_size(3, {}, 65536);
  ASSERT_FALSE(size.ok());
  EXPECT_EQ(size.error().message,
            "pinned table size 65536 is not a Maglev table size; use one of 251, 509, 1021, 2039, 4093, "
            "8191, 16381, 32749, 65521, 131071");
}

TEST(MaglevTableSize, BoundsNotInListAreErrors) {
  Result<uint32_t> low = choose_table_size(3, {.min = 256, .max = 131071});
  ASSERT_FALSE(low.ok());
  EXPECT_TRUE(low.error().message.starts_with("min_table_size 256 is not a Maglev table size"))
      << low.error().message;
  Result<uint32_t> high = choose_table_size(3, {.min = 251, .max = 65536});
  ASSERT_FALSE(high.ok());
  EXPECT_TRUE(high.error().message.starts_with("max_table_size 65536 is not a Maglev table size"))
      << high.error().message;
}

TEST(MaglevTableSize, MinAboveMaxIsError) {
  Result<uint32_t> size = choose_table_size(3, {.min = 4093, .max = 1021});
  ASSERT_FALSE(size.ok());
  EXPECT_EQ(size.error().message, "min_table_size 4093 is larger than max_table_size 1021");
}

// ---- Errors and edge cases of build ----

TEST(MaglevBuild, TableSizeNotInListIsError) {
  Result<Table> table = build({{"10.0.1.2:8080/tcp", 1}}, 1000, kSeed);
  ASSERT_FALSE(table.ok());
  EXPECT_TRUE(table.error().message.starts_with("table size 1000 is not a Maglev table size; use one of 251"))
      << table.error().message;
}

TEST(MaglevBuild, DuplicateKeyIsError) {
  Result<Table> table =
      build({{"10.0.1.1:8080/tcp", 1}, {"10.0.1.2:8080/tcp", 1}, {"10.0.1.2:8080/tcp", 3}}, 251, kSeed);
  ASSERT_FALSE(table.ok());
  EXPECT_EQ(table.error().message, "duplicate backend 10.0.1.2:8080/tcp");
}

TEST(MaglevBuild, MoreMembersThanSlotsIsError) {
  std::mt19937 rng(1);
  Result<Table> table = build(make_members(252, rng), 251, kSeed);
  ASSERT_FALSE(table.ok());
  EXPECT_EQ(table.error().message,
            "252 backends with weight > 0 do not fit a Maglev table of 251 slots; use a larger table size");
}

TEST(MaglevBuild, MembersWithWeightZeroDoNotCountAgainstSlots) {
  std::mt19937 rng(2);
  std::vector<Member> members = make_members(300, rng);
  for (size_t i = 0; i < 100; ++i) members[i].weight = 0;
  Table table = build_ok(members, 251);
  EXPECT_EQ(table.members.size(), 300u);
  EXPECT_EQ(table.size(), 251u);
}

TEST(MaglevBuild, NoMembersGiveEmptyTable) {
  Table table = build_ok({}, 251);
  EXPECT_TRUE(table.members.empty());
  EXPECT_EQ(table.size(), 0u);
}

TEST(MaglevBuild, AllWeightsZeroGiveEmptyTableThatStillListsMembers) {
  Table table = build_ok({{"10.0.1.2:8080/tcp", 0}, {"10.0.1.1:8080/tcp", 0}}, 251);
  EXPECT_EQ(table.members, (std::vector<std::string>{"10.0.1.1:8080/tcp", "10.0.1.2:8080/tcp"}));
  EXPECT_EQ(table.size(), 0u);
  EXPECT_EQ(table.slot_counts(), (std::vector<uint32_t>{0, 0}));
}

TEST(MaglevBuild, OneMemberOwnsEverySlot) {
  for (uint32_t size : kTableSizes) {
    Table table = build_ok({{"10.0.1.2:8080/tcp", 7}}, size);
    ASSERT_EQ(table.size(), size);
    EXPECT_EQ(table.slot_counts(), std::vector<uint32_t>{size});
  }
}

TEST(MaglevBuild, MembersComeOutSortedByKey) {
  Table table = build_ok({{"b", 1}, {"c", 1}, {"a", 1}}, 251);
  EXPECT_EQ(table.members, (std::vector<std::string>{"a", "b", "c"}));
}

// ---- Weights ----

TEST(MaglevWeights, OneTwoThreeGetSixthsWithinOnePercent) {
  for (uint32_t size : kTableSizes) {
    Table table = build_ok({{"a:80/tcp", 1}, {"b:80/tcp", 2}, {"c:80/tcp", 3}}, size);
    std::vector<uint32_t> counts = table.slot_counts();
    for (size_t i = 0; i < 3; ++i) {
      const double expected = size * static_cast<double>(i + 1) / 6;
      EXPECT_NEAR(counts[i], expected, 0.01 * size) << "member " << i << " of M=" << size;
    }
  }
}

TEST(MaglevWeights, WeightZeroTakesNoSlots) {
  Table table = build_ok({{"a:80/tcp", 1}, {"b:80/tcp", 0}, {"c:80/tcp", 1}}, 1021);
  std::vector<uint32_t> counts = table.slot_counts();
  EXPECT_EQ(counts[1], 0u);
  EXPECT_EQ(counts[0] + counts[2], 1021u);
}

// The credit scheme gives member i about rounds * w_i / max slots, off by less than one turn; the
// last, partial round shifts the total by less than N turns. So each count stays within
// 1 + N * w_i / sum(w) of M * w_i / sum(w).
TEST(MaglevWeights, RandomWeightsGetProportionalShares) {
  std::mt19937 rng(3);
  for (int trial = 0; trial < 200; ++trial) {
    const size_t n = std::uniform_int_distribution<size_t>(1, 200)(rng);
    std::vector<Member> members = make_members(n, rng);
    uint64_t sum = 0;
    for (Member& m : members) sum += m.weight = std::uniform_int_distribution<uint32_t>(0, 100)(rng);
    if (sum == 0) continue;
    const uint32_t size = size_for(n);
    Table table = build_ok(members, size);
    std::vector<uint32_t> counts = table.slot_counts();
    std::sort(members.begin(), members.end(), [](const Member& a, const Member& b) { return a.key < b.key; });
    for (size_t i = 0; i < n; ++i) {
      const double share = static_cast<double>(members[i].weight) / static_cast<double>(sum);
      EXPECT_NEAR(counts[i], size * share, 1 + static_cast<double>(n) * share)
          << "trial " << trial << ", member " << i << " of " << n << ", M=" << size;
    }
  }
}

// ---- Balance ----

// With equal weights every member takes one turn per round, so counts differ by at most one and
// max/mean <= 1 + N/M <= 1.01 when M >= 100 N.
TEST(MaglevBalance, MaxOverMeanWithinOnePercentForOneToThousandMembers) {
  std::mt19937 rng(4);
  std::vector<size_t> sizes{1, 2, 3, 4, 5, 10, 99, 100, 101, 500, 998, 999, 1000};
  for (int i = 0; i < 40; ++i) sizes.push_back(std::uniform_int_distribution<size_t>(1, 1000)(rng));
  double worst = 0;
  for (size_t n : sizes) {
    const uint32_t size = size_for(n);
    ASSERT_GE(size, 100 * n);
    Table table = build_ok(make_members(n, rng), size);
    std::vector<uint32_t> counts = table.slot_counts();
    const double mean = static_cast<double>(size) / static_cast<double>(n);
    const double ratio = *std::max_element(counts.begin(), counts.end()) / mean;
    EXPECT_LE(ratio, 1.01) << "N=" << n << ", M=" << size;
    worst = std::max(worst, ratio);
  }
  report("worst_max_over_mean", worst);
}

// ---- Disruption ----

TEST(MaglevDisruption, SameTableIsZeroAndResizeIsOne) {
  std::mt19937 rng(5);
  std::vector<Member> members = make_members(10, rng);
  Table small = build_ok(members, 1021);
  EXPECT_EQ(disruption(small, small), 0.0);
  EXPECT_EQ(disruption(small, build_ok(members, 2039)), 1.0);
  EXPECT_EQ(disruption(Table{}, Table{}), 0.0);
  EXPECT_EQ(disruption(Table{}, small), 1.0);
}

TEST(MaglevDisruption, DrainingMovesAtLeastTheDrainedMembersSlots) {
  std::mt19937 rng(6);
  std::vector<Member> members = make_members(20, rng);
  Table before = build_ok(members, 4093);
  const std::string key = members[7].key;
  members[7].weight = 0;
  Table after = build_ok(members, 4093);
  const size_t index = std::find(before.members.begin(), before.members.end(), key) - before.members.begin();
  const double drained_share = static_cast<double>(before.slot_counts()[index]) / before.size();
  EXPECT_GE(disruption(before, after), drained_share);
  EXPECT_EQ(after.slot_counts()[index], 0u);
}

// Removing k of N members must move at least their k/N share. Maglev moves more: once a member is
// gone, survivors claim its slots and so reach their later preferences earlier, and the last rounds
// (long probes over a nearly full table) come out differently. That extra part grows with N at a fixed
// M/N and does not shrink with k, so the factor over the ideal is largest for one change among many
// members: about 6.5 for 1 of 1000 at M=131071, about 1.1 for 1 of 4 at M=509. The bound of 8 holds
// over N in 10..1000 and k up to 5%; the mean and worst factors are reported.
constexpr double kMaxDisruptionOverIdeal = 8.0;

TEST(MaglevDisruption, RemovingKOfNMembersMovesCloseToKOverN) {
  std::mt19937 rng(7);
  double worst = 0;
  double total = 0;
  const int trials = 60;
  for (int trial = 0; trial < trials; ++trial) {
    const size_t n = std::uniform_int_distribution<size_t>(10, 1000)(rng);
    const size_t k = std::uniform_int_distribution<size_t>(1, std::max<size_t>(1, n / 20))(rng);
    std::vector<Member> members = make_members(n, rng);
    const uint32_t size = size_for(n);
    Table before = build_ok(members, size);
    std::shuffle(members.begin(), members.end(), rng);
    members.resize(n - k);
    Table after = build_ok(members, size);
    const double ideal = static_cast<double>(k) / static_cast<double>(n);
    const double factor = disruption(before, after) / ideal;
    EXPECT_GE(factor, 0.99) << "N=" << n << ", k=" << k << ", M=" << size;
    EXPECT_LE(factor, kMaxDisruptionOverIdeal) << "N=" << n << ", k=" << k << ", M=" << size;
    worst = std::max(worst, factor);
    total += factor;
  }
  report("remove_k_of_n_mean_factor_over_ideal", total / trials);
  report("remove_k_of_n_worst_factor_over_ideal", worst);
}

// The paper's shape: 1% of 1000 backends leave a table of 65521 slots (~65 slots each); about 3%
// of slots change.
TEST(MaglevDisruption, OnePercentOfThousandLeavingAtM65521) {
  std::mt19937 rng(8);
  double total = 0;
  const int trials = 10;
  for (int trial = 0; trial < trials; ++trial) {
    std::vector<Member> members = make_members(1000, rng);
    Table before = build_ok(members, 65521);
    std::shuffle(members.begin(), members.end(), rng);
    members.resize(990);
    const double changed = disruption(before, build_ok(members, 65521));
    EXPECT_GT(changed, 0.01);
    EXPECT_LT(changed, 0.04);
    total += changed;
  }
  report("one_percent_of_1000_leave_m65521_changed_share", total / trials);
}

// The new member takes its 1/(N+1) share; survivors' slots shift as in removal (same bound).
TEST(MaglevDisruption, AddingOneMemberMovesAboutOneOverNPlusOne) {
  std::mt19937 rng(9);
  double worst = 0;
  double total = 0;
  const int trials = 60;
  for (int trial = 0; trial < trials; ++trial) {
    const size_t n = std::uniform_int_distribution<size_t>(1, 1000)(rng);
    std::vector<Member> members = make_members(n + 1, rng);
    const Member added = members.back();
    members.pop_back();
    const uint32_t size = size_for(n + 1);
    Table before = build_ok(members, size);
    members.push_back(added);
    Table after = build_ok(members, size);
    const double ideal = 1.0 / static_cast<double>(n + 1);
    const double factor = disruption(before, after) / ideal;
    EXPECT_GE(factor, 0.99) << "N=" << n << ", M=" << size;
    EXPECT_LE(factor, kMaxDisruptionOverIdeal) << "N=" << n << ", M=" << size;
    worst = std::max(worst, factor);
    total += factor;
  }
  report("add_one_mean_factor_over_ideal", total / trials);
  report("add_one_worst_factor_over_ideal", worst);
}

// ---- Determinism ----

TEST(MaglevDeterminism, MemberOrderDoesNotMatter) {
  std::mt19937 rng(10);
  for (int trial = 0; trial < 30; ++trial) {
    const size_t n = std::uniform_int_distribution<size_t>(1, 300)(rng);
    std::vector<Member> members = make_members(n, rng);
    for (Member& m : members) m.weight = std::uniform_int_distribution<uint32_t>(0, 5)(rng);
    const uint32_t size = size_for(n);
    Table first = build_ok(members, size);
    std::shuffle(members.begin(), members.end(), rng);
    Table second = build_ok(members, size);
    EXPECT_EQ(first.members, second.members);
    EXPECT_EQ(first.slots, second.slots);
  }
}

TEST(MaglevDeterminism, SeedChangesTable) {
  std::mt19937 rng(11);
  std::vector<Member> members = make_members(10, rng);
  EXPECT_NE(build_ok(members, 1021, "seed-a").slots, build_ok(members, 1021, "seed-b").slots);
}

// A change to the algorithm, the hash or the seed derivation changes this constant: on purpose,
// because every node of a cluster must run the same one. Update it only together with a note that
// mixed versions disagree on tables during an upgrade.
TEST(MaglevDeterminism, KnownAnswer) {
  Table table = reference_table();
  EXPECT_EQ(table.slot_counts(), (std::vector<uint32_t>{73, 146, 72, 0, 218}));
  EXPECT_EQ(fingerprint(table), 0x50ef013aa4087f8bull);
}

// Prints the reference fingerprint; SameTableInAnotherProcess runs this test in a child process.
TEST(MaglevDeterminism, PrintsFingerprint) {
  std::printf("maglev-fingerprint: %016llx\n", static_cast<unsigned long long>(fingerprint(reference_table())));
}

TEST(MaglevDeterminism, SameTableInAnotherProcess) {
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  const std::string command = "'" + self + "' --gtest_filter=MaglevDeterminism.PrintsFingerprint";
  FILE* child = popen(command.c_str(), "r");
  ASSERT_NE(child, nullptr) << command;
  unsigned long long child_fingerprint = 0;
  bool found = false;
  char line[512];
  while (std::fgets(line, sizeof line, child) != nullptr) {
    if (std::sscanf(line, "maglev-fingerprint: %llx", &child_fingerprint) == 1) found = true;
  }
  ASSERT_EQ(pclose(child), 0) << command;
  ASSERT_TRUE(found) << "no fingerprint line from " << command;
  EXPECT_EQ(child_fingerprint, fingerprint(reference_table()));
}

}  // namespace
}  // namespace xlb::maglev

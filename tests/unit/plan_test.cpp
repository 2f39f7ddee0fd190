#include "engine/plan.h"
#include "support/temp_dir.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <random>
#include <set>

namespace xlb::engine {
namespace {

namespace fs = std::filesystem;
using datapath::BackendEntry;
using datapath::FrontendEntry;
using datapath::FrontendKey;
using datapath::State;

// Maps in memory that check, at every single write, what the kernel side relies on: a frontend
// never points at a backend that is not there. Can fail on purpose at the Nth write, as a crash
// in the middle of a plan would.
class FakeMaps : public datapath::MapWriter {
 public:
  Result<State> read() const override { return state; }

  // A batch may stop half-way, as a real one may: each backend is one write here.
  Status upsert_backends(const std::vector<BackendEntry>& backends) override {
    ++backend_batches;
    for (const auto& b : backends) {
      if (auto s = step(); !s) return s;
      state.backends[b.id] = b;
    }
    return {};
  }
  Status remove_backend(datapath::BackendId id) override {
    if (auto s = step(); !s) return s;
    for (const auto& [key, f] : state.frontends)
      for (auto slot : f.ring)
        if (slot == id) ADD_FAILURE() << "backend " << id << " removed while " << key.to_string() << " uses it";
    state.backends.erase(id);
    return {};
  }
  // A batch may stop half-way, as a real one may: each frontend is one write here.
  Status upsert_frontends(const std::vector<FrontendEntry>& frontends) override {
    ++batches;
    for (const auto& f : frontends) {
      if (auto s = step(); !s) return s;
      for (auto slot : f.ring)
        if (!state.backends.count(slot)) ADD_FAILURE() << f.key.to_string() << " written before backend " << slot;
      state.frontends[f.key] = f;
    }
    return {};
  }
  Status remove_frontends(const std::vector<FrontendKey>& keys) override {
    ++batches;
    for (const auto& key : keys) {
      if (auto s = step(); !s) return s;
      state.frontends.erase(key);
    }
    return {};
  }

  State state;
  int fail_at = -1;  // the write that fails, counting from 0
  int writes = 0;
  int batches = 0;  // of frontends
  int backend_batches = 0;

 private:
  Status step() {
    if (writes++ == fail_at) return Error{"injected failure"};
    return {};
  }
};

model::IpAddress ip(std::string_view s) { return *model::IpAddress::parse(s); }

model::Service service(std::string name, std::string vip, std::vector<std::string> backends) {
  model::Service s;
  s.name = std::move(name);
  s.frontends.push_back({ip(vip), 80, model::Protocol::tcp, model::FrontendKind::vip});
  for (const auto& b : backends) s.backends.push_back({ip(b), 8080, 1, model::BackendState::active, "", ""});
  return s;
}

class PlanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_.emplace(store::Store::open(dir_ / "state.db").value());
  }

  // The engine's rings for a catalog, as the planner gets them.
  Services states(const model::Catalog& catalog) {
    Engine engine(*store_, log_);
    auto applied = engine.apply(catalog, "test");
    EXPECT_TRUE(applied.ok()) << applied.error().message;
    return engine.services();
  }

  State desired(const model::Catalog& catalog, const State& actual) {
    const Services services = states(catalog);
    auto d = desired_state(list_of(services), actual);
    EXPECT_TRUE(d.ok()) << d.error().message;
    return d.ok() ? *d : State{};
  }

  test::TempDir dir_{"xlb-plan"};
  std::optional<store::Store> store_;
  Logger log_{LogLevel::error};
};

TEST_F(PlanTest, FirstPlanWritesBackendsThenFrontends) {
  FakeMaps maps;
  const auto want = desired(model::Catalog{{service("web", "198.18.0.10", {"10.0.0.2", "10.0.0.3", "10.0.0.4"})}}, {});
  const Plan plan = make_plan(want, maps.state);
  ASSERT_EQ(plan.steps.size(), 4u);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(std::holds_alternative<UpsertBackend>(plan.steps[i]));
  EXPECT_TRUE(std::holds_alternative<UpsertFrontend>(plan.steps[3]));
  EXPECT_EQ(plan.summary(), "3 backends and 1 frontends written, 0 frontends and 0 backends removed");
  ASSERT_TRUE(execute(plan, maps).ok());
  EXPECT_EQ(maps.state, want);
  const auto& ring = want.frontends.begin()->second.ring;
  EXPECT_EQ(ring.size(), 509u);
  EXPECT_EQ(want.frontends.begin()->second.service_id, 1u);
  EXPECT_EQ((std::set<uint32_t>(ring.begin(), ring.end())), (std::set<uint32_t>{1, 2, 3}));
}

TEST_F(PlanTest, FrontendsAreWrittenInOneBatch) {
  FakeMaps maps;
  model::Catalog c;
  for (int i = 0; i < 50; ++i)
    c.services.push_back(service("svc-" + std::to_string(i), "198.18.1." + std::to_string(i + 1), {"10.0.0.2"}));
  ASSERT_TRUE(execute(make_plan(desired(c, {}), maps.state), maps).ok());
  EXPECT_EQ(maps.state.frontends.size(), 50u);
  EXPECT_EQ(maps.batches, 1);
}

TEST_F(PlanTest, BackendsAreWrittenInOneBatchBeforeTheFrontends) {
  FakeMaps maps;
  model::Catalog c;
  for (int i = 0; i < 50; ++i)
    c.services.push_back(service("svc-" + std::to_string(i), "198.18.1." + std::to_string(i + 1),
                                 {"10.0.1." + std::to_string(i + 1), "10.0.2." + std::to_string(i + 1)}));
  ASSERT_TRUE(execute(make_plan(desired(c, {}), maps.state), maps).ok());
  EXPECT_EQ(maps.state.backends.size(), 100u);
  EXPECT_EQ(maps.backend_batches, 1);
  EXPECT_EQ(maps.batches, 1);
}

TEST_F(PlanTest, AnUnchangedCatalogNeedsNoWrite) {
  FakeMaps maps;
  const model::Catalog c{{service("web", "198.18.0.10", {"10.0.0.2", "10.0.0.3"})}};
  ASSERT_TRUE(execute(make_plan(desired(c, {}), maps.state), maps).ok());
  EXPECT_TRUE(make_plan(desired(c, maps.state), maps.state).empty());
}

TEST_F(PlanTest, AddingABackendWritesItAndTheRingOnly) {
  FakeMaps maps;
  const model::Catalog before{{service("web", "198.18.0.10", {"10.0.0.2", "10.0.0.3"}),
                               service("api", "198.18.0.11", {"10.0.0.9"})}};
  ASSERT_TRUE(execute(make_plan(desired(before, {}), maps.state), maps).ok());
  const auto ids_before = maps.state.backends;

  const model::Catalog after{{service("web", "198.18.0.10", {"10.0.0.2", "10.0.0.3", "10.0.0.4"}),
                              service("api", "198.18.0.11", {"10.0.0.9"})}};
  const Plan plan = make_plan(desired(after, maps.state), maps.state);
  ASSERT_EQ(plan.steps.size(), 2u);
  ASSERT_TRUE(std::holds_alternative<UpsertBackend>(plan.steps[0]));
  EXPECT_EQ(std::get<UpsertBackend>(plan.steps[0]).backend.address.to_string(), "10.0.0.4");
  ASSERT_TRUE(std::holds_alternative<UpsertFrontend>(plan.steps[1]));
  EXPECT_EQ(std::get<UpsertFrontend>(plan.steps[1]).frontend.key.to_string(), "198.18.0.10:80/tcp");
  ASSERT_TRUE(execute(plan, maps).ok());
  for (const auto& [id, b] : ids_before) EXPECT_EQ(maps.state.backends.at(id), b) << "ids are stable";
}

TEST_F(PlanTest, RemovalsComeLastFrontendsBeforeBackends) {
  FakeMaps maps;
  ASSERT_TRUE(execute(make_plan(desired(model::Catalog{{service("web", "198.18.0.10", {"10.0.0.2"}),
                                                        service("old", "198.18.0.99", {"10.0.0.7", "10.0.0.8"})}},
                                        {}),
                                maps.state),
                      maps)
                  .ok());
  const Plan plan = make_plan(desired(model::Catalog{{service("web", "198.18.0.10", {"10.0.0.2"})}}, maps.state),
                              maps.state);
  ASSERT_EQ(plan.steps.size(), 3u);
  EXPECT_TRUE(std::holds_alternative<RemoveFrontend>(plan.steps[0]));
  EXPECT_TRUE(std::holds_alternative<RemoveBackend>(plan.steps[1]));
  EXPECT_TRUE(std::holds_alternative<RemoveBackend>(plan.steps[2]));
  ASSERT_TRUE(execute(plan, maps).ok());
  EXPECT_EQ(maps.state.frontends.size(), 1u);
  EXPECT_EQ(maps.state.backends.size(), 1u);
}

// A crash after any write leaves maps that hold no dangling reference, and a plan made from
// what they hold then finishes the work.
TEST_F(PlanTest, AFailureAtAnyStepIsSafeAndTheNextPlanConverges) {
  const model::Catalog before{{service("web", "198.18.0.10", {"10.0.0.2", "10.0.0.3"}),
                               service("old", "198.18.0.99", {"10.0.0.7"})}};
  const model::Catalog after{{service("web", "198.18.0.10", {"10.0.0.3", "10.0.0.4", "10.0.0.5"}),
                              service("new", "198.18.0.12", {"10.0.0.6", "10.0.0.2"})}};
  for (int fail_at = 0;; ++fail_at) {
    FakeMaps maps;
    ASSERT_TRUE(execute(make_plan(desired(before, {}), maps.state), maps).ok());
    maps.writes = 0;
    maps.fail_at = fail_at;
    const Plan plan = make_plan(desired(after, maps.state), maps.state);
    const bool failed = !execute(plan, maps).ok();
    maps.fail_at = -1;
    const State want = desired(after, maps.state);
    ASSERT_TRUE(execute(make_plan(want, maps.state), maps).ok());
    EXPECT_EQ(maps.state, want) << "after a failure at write " << fail_at;
    EXPECT_TRUE(make_plan(desired(after, maps.state), maps.state).empty());
    if (!failed) break;
  }
}

TEST_F(PlanTest, DrainedBackendStaysInTheMapWithoutSlots) {
  auto s = service("web", "198.18.0.10", {"10.0.0.2", "10.0.0.3"});
  s.backends[0].weight = 0;
  const State want = desired(model::Catalog{{s}}, {});
  ASSERT_EQ(want.backends.size(), 2u);
  const auto& drained = want.backends.at(1);
  EXPECT_EQ(drained.address.to_string(), "10.0.0.2");
  EXPECT_TRUE(drained.draining);
  EXPECT_FALSE(want.backends.at(2).draining);
  for (auto slot : want.frontends.begin()->second.ring) EXPECT_EQ(slot, 2u);
}

TEST_F(PlanTest, ABackendSharedByTwoServicesIsWrittenOnce) {
  auto a = service("a", "198.18.0.10", {"10.0.0.2"});
  auto b = service("b", "198.18.0.11", {"10.0.0.2"});
  b.backends[0].weight = 0;
  const State want = desired(model::Catalog{{a, b}}, {});
  ASSERT_EQ(want.backends.size(), 1u);
  EXPECT_FALSE(want.backends.begin()->second.draining) << "a still sends it new flows";
}

TEST_F(PlanTest, FlagsAndAffinityReachTheEntry) {
  auto s = service("web", "198.18.0.10", {"10.0.0.2"});
  s.mode = model::ForwardingMode::snat;
  s.affinity = {true, std::chrono::seconds(600)};
  const State want = desired(model::Catalog{{s}}, {});
  const auto& entry = want.frontends.begin()->second;
  EXPECT_TRUE(entry.snat);
  EXPECT_TRUE(entry.affinity);
  EXPECT_EQ(entry.affinity_timeout_s, 600u);
}

TEST_F(PlanTest, DsrReachesTheEntryAndNotTheOthers) {
  auto s = service("web", "198.18.0.10", {"10.0.0.2"});
  s.mode = model::ForwardingMode::dsr;
  s.backends[0].port = 80;
  const State want = desired(model::Catalog{{s, service("api", "198.18.0.11", {"10.0.0.3"})}}, {});
  ASSERT_EQ(want.frontends.size(), 2u);
  for (const auto& [key, entry] : want.frontends) {
    EXPECT_EQ(entry.dsr, key.address.to_string() == "198.18.0.10") << key.to_string();
    EXPECT_FALSE(entry.snat) << key.to_string();
  }
}

TEST_F(PlanTest, FreedIdsAreNotReusedAtOnce) {
  FakeMaps maps;
  ASSERT_TRUE(execute(make_plan(desired(model::Catalog{{service("web", "198.18.0.10", {"10.0.0.2", "10.0.0.3"})}}, {}),
                                maps.state),
                      maps)
                  .ok());
  ASSERT_TRUE(execute(make_plan(desired(model::Catalog{{service("web", "198.18.0.10", {"10.0.0.3"})}}, maps.state),
                                maps.state),
                      maps)
                  .ok());
  const State want = desired(model::Catalog{{service("web", "198.18.0.10", {"10.0.0.3", "10.0.0.9"})}}, maps.state);
  ASSERT_TRUE(want.backends.count(3)) << "a new backend takes a fresh id, not the freed id 1";
  EXPECT_EQ(want.backends.at(3).address.to_string(), "10.0.0.9");
}

TEST_F(PlanTest, EngineSyncsTheMapsAndResyncsAfterLoss) {
  FakeMaps maps;
  Engine engine(*store_, log_, {}, &maps);
  const model::Catalog c{{service("web", "198.18.0.10", {"10.0.0.2", "10.0.0.3"})}};
  auto first = engine.apply(c, "test");
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(first->map_writes, 3u);
  auto again = engine.apply(c, "test");
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->changed);
  EXPECT_EQ(again->map_writes, 0u);

  maps.state = {};  // the maps were lost (bpffs unmounted, a reboot): same catalog, writes again
  auto resync = engine.apply(c, "test");
  ASSERT_TRUE(resync.ok());
  EXPECT_FALSE(resync->changed);
  EXPECT_EQ(resync->map_writes, 3u);
  EXPECT_EQ(store_->revisions(10)->size(), 1u);
}

TEST_F(PlanTest, EngineEndsTheSocketsOfABackendThatLeft) {
  FakeMaps maps;
  std::vector<std::string> ended;
  Engine engine(*store_, log_, {}, &maps, [&](const std::vector<datapath::BackendEntry>& backends) -> Result<uint32_t> {
    for (const auto& b : backends) ended.push_back(b.address.to_string() + ":" + std::to_string(b.port));
    return static_cast<uint32_t>(backends.size());
  });
  ASSERT_TRUE(engine.apply(model::Catalog{{service("web", "198.18.0.10", {"10.0.0.2", "10.0.0.3"})}}, "test").ok());
  EXPECT_TRUE(ended.empty());
  auto drained = service("web", "198.18.0.10", {"10.0.0.2", "10.0.0.3"});
  drained.backends[1].weight = 0;  // draining keeps its established flows: nothing ended
  ASSERT_TRUE(engine.apply(model::Catalog{{drained}}, "test").ok());
  EXPECT_TRUE(ended.empty());
  ASSERT_TRUE(engine.apply(model::Catalog{{service("web", "198.18.0.10", {"10.0.0.2"})}}, "test").ok());
  EXPECT_EQ(ended, std::vector<std::string>{"10.0.0.3:8080"});
}

TEST_F(PlanTest, EngineRecordsNoRevisionWhenTheMapsRefuse) {
  FakeMaps maps;
  maps.fail_at = 1;
  Engine engine(*store_, log_, {}, &maps);
  auto r = engine.apply(model::Catalog{{service("web", "198.18.0.10", {"10.0.0.2", "10.0.0.3"})}}, "test");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message,
            "the catalog was not applied: writing the datapath's maps (2 backends and 1 frontends written, 0 frontends "
            "and 0 backends removed planned): injected failure");
  EXPECT_TRUE(store_->revisions(10)->empty());
  EXPECT_EQ(engine.revision(), 0);
}

// The maps are written before the revision is recorded (the change is in force sooner); a
// revision that cannot be recorded puts them back, on the whole-catalog path and on the
// incremental one.
TEST_F(PlanTest, EnginePutsTheMapsBackWhenTheRevisionCannotBeRecorded) {
  // A database of its own: desired() records in the fixture's.
  const test::TempDir dir("xlb-plan-refused");
  auto store = store::Store::open(dir.path() / "state.db");
  ASSERT_TRUE(store.ok()) << store.error().message;
  auto refuse_revisions = [&](bool refuse) {
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open((dir.path() / "state.db").c_str(), &raw), SQLITE_OK);
    const char* sql = refuse ? "CREATE TRIGGER refuse BEFORE INSERT ON revisions BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
                             : "DROP TRIGGER refuse";
    EXPECT_EQ(sqlite3_exec(raw, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(raw);
    sqlite3_close(raw);
  };
  FakeMaps maps;
  Engine engine(*store, log_, {}, &maps);
  const model::Catalog one{{service("web", "198.18.0.10", {"10.0.0.2", "10.0.0.3"})}};
  const model::Catalog two{{service("web", "198.18.0.10", {"10.0.0.2", "10.0.0.4"}), service("db", "198.18.0.11", {"10.0.0.5"})}};

  refuse_revisions(true);
  auto first = engine.apply(one, "test");
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.error().message, "the catalog was not applied: recording a revision: disk on fire");
  EXPECT_EQ(maps.state, State{}) << "the maps are put back to what the database holds: nothing";
  EXPECT_EQ(engine.revision(), 0);

  refuse_revisions(false);
  ASSERT_TRUE(engine.apply(one, "test").ok());
  refuse_revisions(true);
  auto second = engine.apply(two, "test");
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(maps.state, desired(one, maps.state)) << "the change is taken back out of the maps";
  EXPECT_EQ(engine.services().size(), 1u);

  refuse_revisions(false);
  ASSERT_TRUE(engine.apply(two, "test").ok());
  EXPECT_EQ(maps.state, desired(two, maps.state));
  auto revisions = store->revisions(10);
  ASSERT_TRUE(revisions.ok());
  EXPECT_EQ(revisions->size(), 2u);
}

// The incremental path (apply_changes, and every change once the maps are known) must leave the
// maps exactly as the whole-catalog path would: random changes, each checked against the
// desired state planned from the whole catalog, with FakeMaps checking every single write.
TEST_F(PlanTest, ChangesLeaveTheMapsAsAWholeSyncWould) {
  FakeMaps maps;
  Engine engine(*store_, log_, {}, &maps);
  std::mt19937 random(7);
  auto pick = [&](int n) { return static_cast<int>(random() % static_cast<unsigned>(n)); };
  // Services share backends (10.0.0.1-12) so that a backend's users and draining are tested.
  auto make = [&](int i) {
    std::vector<std::string> backends;
    for (int b = 0, n = pick(4); b < n; ++b) backends.push_back("10.0.0." + std::to_string(1 + pick(12)));
    std::sort(backends.begin(), backends.end());
    backends.erase(std::unique(backends.begin(), backends.end()), backends.end());
    auto s = service("svc" + std::to_string(i), "198.18.0." + std::to_string(i), backends);
    if (pick(3) == 0) s.frontends.push_back({ip("198.18.1." + std::to_string(i)), 53, model::Protocol::udp, model::FrontendKind::vip});
    for (auto& b : s.backends)
      if (pick(5) == 0) b.weight = 0;
    if (pick(6) == 0) s.mode = model::ForwardingMode::snat;
    return s;
  };
  model::Catalog first;
  for (int i = 1; i <= 8; ++i) first.services.push_back(make(i));
  ASSERT_TRUE(engine.apply(first, "test").ok());
  for (int round = 0; round < 200; ++round) {
    model::CatalogChanges changes;
    std::set<int> named;
    for (int n = 0, count = 1 + pick(3); n < count; ++n) {
      const int i = 1 + pick(12);
      if (!named.insert(i).second) continue;
      if (pick(4) == 0)
        changes.removed.push_back("svc" + std::to_string(i));
      else
        changes.upserted.push_back(make(i));
    }
    auto applied = engine.apply_changes(changes, "test");
    ASSERT_TRUE(applied.ok()) << "round " << round << ": " << applied.error().message;
    auto whole = desired_state(list_of(engine.services()), maps.state);
    ASSERT_TRUE(whole.ok()) << whole.error().message;
    ASSERT_EQ(maps.state, *whole) << "round " << round << ": " << applied->summary;
    ASSERT_EQ(engine.map_state(), maps.state) << "round " << round;
  }
  EXPECT_FALSE(HasFailure());
}

TEST_F(PlanTest, AChangeWritesOnlyWhatItChanges) {
  FakeMaps maps;
  Engine engine(*store_, log_, {}, &maps);
  model::Catalog c;
  for (int i = 1; i <= 50; ++i)
    c.services.push_back(service("svc" + std::to_string(i), "198.18.0." + std::to_string(i), {"10.0.0." + std::to_string(i)}));
  ASSERT_TRUE(engine.apply(c, "test").ok());
  maps.writes = 0;
  auto added = engine.apply_changes({{service("new", "198.18.2.1", {"10.0.2.1", "10.0.2.2"})}, {}}, "kubernetes");
  ASSERT_TRUE(added.ok()) << added.error().message;
  EXPECT_EQ(added->summary, "+new");
  EXPECT_EQ(added->plan, "2 backends and 1 frontends written, 0 frontends and 0 backends removed");
  EXPECT_EQ(maps.writes, 3);
  auto removed = engine.apply_changes({{}, {"svc7", "not-there"}}, "kubernetes");
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(removed->summary, "-svc7");
  EXPECT_EQ(removed->plan, "0 backends and 0 frontends written, 1 frontends and 1 backends removed");
  auto same = engine.apply_changes({{service("new", "198.18.2.1", {"10.0.2.1", "10.0.2.2"})}, {}}, "kubernetes");
  ASSERT_TRUE(same.ok());
  EXPECT_FALSE(same->changed);
  EXPECT_EQ(engine.counts().services, 50u);
  EXPECT_EQ(engine.counts().backends, 51u);
}

TEST_F(PlanTest, AChangeMayNotTakeAnotherServicesFrontend) {
  FakeMaps maps;
  Engine engine(*store_, log_, {}, &maps);
  ASSERT_TRUE(engine.apply(model::Catalog{{service("web", "198.18.0.10", {"10.0.0.2"})}}, "test").ok());
  const auto before = maps.state;
  auto taken = engine.apply_changes({{service("thief", "198.18.0.10", {"10.0.0.3"})}, {}}, "kubernetes");
  ASSERT_FALSE(taken.ok());
  EXPECT_EQ(taken.error().message,
            "the catalog was not applied: frontend 198.18.0.10:80/tcp of service \"thief\" is already service \"web\"'s");
  EXPECT_EQ(maps.state, before);
  EXPECT_EQ(engine.revision(), 1);
  EXPECT_EQ(store_->revisions(10)->size(), 1u);
  // Moved in one change, it is fine: the frontend keeps its id.
  auto moved = engine.apply_changes({{service("thief", "198.18.0.10", {"10.0.0.3"})}, {"web"}}, "kubernetes");
  ASSERT_TRUE(moved.ok()) << moved.error().message;
  EXPECT_EQ(maps.state.frontends.begin()->second.service_id, before.frontends.begin()->second.service_id);
  // And the next change is planned from the maps again, not from a book the failure spoiled.
  ASSERT_TRUE(engine.apply_changes({{service("web", "198.18.0.11", {"10.0.0.2"})}, {}}, "kubernetes").ok());
  EXPECT_EQ(maps.state, desired_state(list_of(engine.services()), maps.state).value());
}

TEST_F(PlanTest, ARestartAfterChangesRestoresTheSameCatalog) {
  FakeMaps maps;
  model::Catalog expected;
  {
    Engine engine(*store_, log_, {}, &maps);
    ASSERT_TRUE(engine.apply(model::Catalog{{service("web", "198.18.0.10", {"10.0.0.2"})}}, "test").ok());
    ASSERT_TRUE(engine.apply_changes({{service("api", "198.18.0.11", {"10.0.0.3"})}, {}}, "kubernetes").ok());
    ASSERT_TRUE(engine.apply_changes({{service("web", "198.18.0.10", {"10.0.0.4"})}, {"api"}}, "kubernetes").ok());
    ASSERT_TRUE(engine.apply_changes({{service("db", "198.18.0.12", {"10.0.0.5"})}, {}}, "kubernetes").ok());
    expected = engine.catalog();
  }
  Engine restarted(*store_, log_, {}, &maps);
  ASSERT_TRUE(restarted.restore().ok());
  EXPECT_EQ(restarted.revision(), 4);
  EXPECT_EQ(restarted.catalog(), expected);
  auto history = store_->revisions(10);
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 4u);
  EXPECT_EQ(history->front().summary, "+db");
  ASSERT_TRUE((*history)[1].changes);
  EXPECT_EQ((*history)[1].changes->size(), 2u);  // ~web, -api
}

}  // namespace
}  // namespace xlb::engine

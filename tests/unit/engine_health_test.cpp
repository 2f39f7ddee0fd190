// The engine's health overlay: a backend the probes find down leaves the ring (0 slots, the
// others keep theirs), comes back when it recovers, and each change is an event in the store.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "engine/engine.h"
#include "support/temp_dir.h"

namespace xlb::engine {
namespace {

namespace fs = std::filesystem;

model::IpAddress ip(std::string_view s) { return *model::IpAddress::parse(s); }

model::Catalog catalog(model::HealthCheckType type = model::HealthCheckType::tcp) {
  model::Service s;
  s.name = "web";
  s.health.type = type;
  s.maglev_table_size = 509;  // a fixed size: slots compare one to one across changes
  s.frontends.push_back({ip("198.18.0.10"), 80, model::Protocol::tcp, model::FrontendKind::vip});
  for (int i = 0; i < 3; ++i)
    s.backends.push_back({ip("10.0.0." + std::to_string(i + 2)), 8080, 1, model::BackendState::active, "", ""});
  return model::Catalog{{s}};
}

class EngineHealthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = store::Store::open(dir_ / "state.db");
    ASSERT_TRUE(s.ok()) << s.error().message;
    store_.emplace(std::move(*s));
  }

  std::vector<store::Event> health_events() {
    auto all = store_->events(100);
    EXPECT_TRUE(all.ok());
    std::vector<store::Event> health;
    for (auto& e : *all)
      if (e.kind == "health") health.push_back(e);
    std::reverse(health.begin(), health.end());  // oldest first
    return health;
  }

  test::TempDir dir_{"xlb-engine-health"};
  std::optional<store::Store> store_;
  Logger log_{LogLevel::error};
};

TEST_F(EngineHealthTest, ADownBackendsSocketsAreEndedAndADrainedOnesAreNot) {
  std::vector<std::string> ended;
  Engine engine(*store_, log_, {}, nullptr, [&](const std::vector<datapath::BackendEntry>& backends) -> Result<uint32_t> {
    for (const auto& b : backends) ended.push_back(b.address.to_string() + ":" + std::to_string(b.port));
    return 2u;
  });
  ASSERT_TRUE(engine.apply(catalog(), "test").ok());
  ASSERT_TRUE(engine.set_drained("web", "10.0.0.2:8080", true, "test").ok());
  EXPECT_TRUE(ended.empty()) << "a drained backend keeps its established clients";
  ASSERT_TRUE(engine.set_health("web", "10.0.0.3:8080", false, "connection refused").ok());
  EXPECT_EQ(ended, std::vector<std::string>{"10.0.0.3:8080"});
  ASSERT_TRUE(engine.set_health("web", "10.0.0.3:8080", true, "connected").ok());
  EXPECT_EQ(ended.size(), 1u);
}

TEST_F(EngineHealthTest, DownBackendLeavesTheRingAndComesBack) {
  Engine engine(*store_, log_);
  ASSERT_TRUE(engine.apply(catalog(), "test").ok());
  const auto before = engine.services().at("web").rings.at(0).table;
  const int64_t first = engine.revision();

  auto down = engine.set_health("web", "10.0.0.3:8080", false, "connection refused");
  ASSERT_TRUE(down.ok()) << down.error().message;
  EXPECT_TRUE(down->changed);
  EXPECT_GT(engine.revision(), first);
  const auto& state = engine.services().at("web");
  EXPECT_EQ(state.service.backends[1].state, model::BackendState::down);
  const auto& ring = state.rings.at(0).table;
  EXPECT_EQ(ring.members.size(), 3u);  // still listed: conntrack'd flows to it go on
  const auto counts = ring.slot_counts();
  EXPECT_EQ(counts[1], 0u);
  EXPECT_EQ(counts[0] + counts[2], ring.size());
  // Least disruption: the down backend's slots move, and Maglev keeps the others' slots but for a
  // few (the paper's near-minimal disruption; here 2 of 509).
  const auto old_counts = before.slot_counts();
  const double own_share = double(old_counts[1]) / ring.size();
  EXPECT_GE(state.last_disruption, own_share);
  EXPECT_LE(state.last_disruption, own_share + 0.02);
  size_t others_moved = 0;
  for (size_t i = 0; i < ring.size(); ++i)
    if (before.slots[i] != 1 && ring.slots[i] != before.slots[i]) ++others_moved;
  EXPECT_LE(others_moved, ring.size() / 50);

  auto up = engine.set_health("web", "10.0.0.3:8080", true, "connected");
  ASSERT_TRUE(up.ok()) << up.error().message;
  EXPECT_TRUE(up->changed);
  EXPECT_EQ(engine.services().at("web").service.backends[1].state, model::BackendState::active);
  EXPECT_EQ(engine.services().at("web").rings.at(0).table.slots, before.slots);  // Maglev gives back the same slots

  const auto events = health_events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].subject, "web/10.0.0.3:8080");
  EXPECT_EQ(events[0].message.rfind("down: connection refused; ", 0), 0u) << events[0].message;
  EXPECT_NE(events[0].message.find("% of ring slots moved"), std::string::npos) << events[0].message;
  EXPECT_EQ(events[1].message.rfind("up: connected; ", 0), 0u) << events[1].message;
}

TEST_F(EngineHealthTest, DownBackendKeepsTheRingSize) {
  // Sizes follow the backend count (3 -> 509, 2 -> 251); a down backend must not shrink the
  // table, or every slot would move.
  auto c = catalog();
  c.services[0].maglev_table_size.reset();
  Engine engine(*store_, log_);
  ASSERT_TRUE(engine.apply(c, "test").ok());
  EXPECT_EQ(engine.services().at("web").rings.at(0).table.size(), 509u);
  ASSERT_TRUE(engine.set_health("web", "10.0.0.2:8080", false, "connection refused").ok());
  EXPECT_EQ(engine.services().at("web").rings.at(0).table.size(), 509u);
  EXPECT_LT(engine.services().at("web").last_disruption, 0.4);
}

TEST_F(EngineHealthTest, RepeatedReportsChangeNothing) {
  Engine engine(*store_, log_);
  ASSERT_TRUE(engine.apply(catalog(), "test").ok());
  // Up while never down (the first report of every healthy backend): nothing to do.
  auto up = engine.set_health("web", "10.0.0.2:8080", true, "connected");
  ASSERT_TRUE(up.ok());
  EXPECT_FALSE(up->changed);
  ASSERT_TRUE(engine.set_health("web", "10.0.0.2:8080", false, "timeout after 1000 ms").ok());
  const int64_t revision = engine.revision();
  auto again = engine.set_health("web", "10.0.0.2:8080", false, "timeout after 1000 ms");
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->changed);
  EXPECT_EQ(engine.revision(), revision);
  EXPECT_EQ(health_events().size(), 1u);
}

TEST_F(EngineHealthTest, DownStaysAcrossReloadsAndDrains) {
  Engine engine(*store_, log_);
  ASSERT_TRUE(engine.apply(catalog(), "test").ok());
  ASSERT_TRUE(engine.set_health("web", "10.0.0.4:8080", false, "HTTP 503").ok());
  // A reload with another backend added: the down one stays down.
  auto bigger = catalog();
  bigger.services[0].backends.push_back({ip("10.0.0.9"), 8080, 1, model::BackendState::active, "", ""});
  ASSERT_TRUE(engine.apply(bigger, "test").ok());
  EXPECT_EQ(engine.services().at("web").service.backends[2].state, model::BackendState::down);
  // A drain of another backend re-applies the source catalog: still down.
  ASSERT_TRUE(engine.set_drained("web", "10.0.0.2:8080", true, "test").ok());
  EXPECT_EQ(engine.services().at("web").service.backends[0].state, model::BackendState::draining);
  EXPECT_EQ(engine.services().at("web").service.backends[2].state, model::BackendState::down);
}

TEST_F(EngineHealthTest, ServiceWithoutProbesIgnoresHealth) {
  // A reload that switched probes off must not leave a backend down for good.
  Engine engine(*store_, log_);
  ASSERT_TRUE(engine.apply(catalog(), "test").ok());
  ASSERT_TRUE(engine.set_health("web", "10.0.0.2:8080", false, "connection refused").ok());
  ASSERT_TRUE(engine.apply(catalog(model::HealthCheckType::none), "test").ok());
  EXPECT_EQ(engine.services().at("web").service.backends[0].state, model::BackendState::active);
}

TEST_F(EngineHealthTest, NeedsACatalogFirst) {
  Engine engine(*store_, log_);
  EXPECT_FALSE(engine.set_health("web", "10.0.0.2:8080", false, "connection refused").ok());
}

TEST_F(EngineHealthTest, ASlowBackendGetsAQuarterShareAndItsFullShareBack) {
  model::Catalog c = catalog(model::HealthCheckType::http);
  c.services[0].health.slow_factor = 3;
  Engine engine(*store_, log_);
  ASSERT_TRUE(engine.apply(c, "test").ok());
  auto slots_of = [&](size_t member) { return engine.services().at("web").rings.at(0).table.slot_counts().at(member); };
  const size_t even = slots_of(2);

  auto slow = engine.set_slow("web", "10.0.0.4:8080", true, "probes take 61.0 ms, peers' median 0.4 ms");
  ASSERT_TRUE(slow.ok()) << slow.error().message;
  EXPECT_TRUE(slow->changed);
  // 1 : 4 : 4 of 509 slots -> about 57 for the slow one, 226 for each peer.
  EXPECT_LT(slots_of(2), even / 2);
  EXPECT_GT(slots_of(2), 0u) << "never out of the ring: it still answers";
  EXPECT_NEAR(static_cast<double>(slots_of(0)) / static_cast<double>(slots_of(2)), 4.0, 0.5);
  EXPECT_FALSE(engine.set_slow("web", "10.0.0.4:8080", true, "again")->changed);

  ASSERT_TRUE(engine.set_slow("web", "10.0.0.4:8080", false, "probes take 0.5 ms, peers' median 0.4 ms").ok());
  EXPECT_EQ(slots_of(2), even);
  const auto events = health_events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].subject, "web/10.0.0.4:8080");
  EXPECT_NE(events[0].message.find("slow: probes take 61.0 ms, peers' median 0.4 ms; 1/4 of its share of new flows; "),
            std::string::npos)
      << events[0].message;
  EXPECT_NE(events[1].message.find("recovered: "), std::string::npos);
}

TEST_F(EngineHealthTest, SlownessIsIgnoredWhereTheServiceHasNoSlowFactor) {
  Engine engine(*store_, log_);
  ASSERT_TRUE(engine.apply(catalog(model::HealthCheckType::http), "test").ok());
  const auto before = engine.services().at("web").rings.at(0).table;
  ASSERT_TRUE(engine.set_slow("web", "10.0.0.4:8080", true, "slow").ok());
  EXPECT_EQ(engine.services().at("web").rings.at(0).table.slot_counts(), before.slot_counts());
}

}  // namespace
}  // namespace xlb::engine

#include "engine/engine.h"
#include "support/temp_dir.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <random>

namespace xlb::engine {
namespace {

namespace fs = std::filesystem;

model::IpAddress ip(std::string_view s) { return *model::IpAddress::parse(s); }

model::Service service(std::string name, int backends) {
  model::Service s;
  s.name = std::move(name);
  s.frontends.push_back({ip("198.18.0.10"), 80, model::Protocol::tcp, model::FrontendKind::vip});
  for (int i = 0; i < backends; ++i)
    s.backends.push_back({ip("10.0.0." + std::to_string(i + 2)), 8080, 1, model::BackendState::active, "", ""});
  return s;
}

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = store::Store::open(dir_ / "state.db");
    ASSERT_TRUE(s.ok()) << s.error().message;
    store_.emplace(std::move(*s));
  }

  test::TempDir dir_{"xlb-engine"};
  std::optional<store::Store> store_;
  Logger log_{LogLevel::error};
};

TEST_F(EngineTest, BuildsARightSizedRingPerFamily) {
  Engine engine(*store_, log_);
  model::Service s = service("web", 3);
  s.frontends.push_back({ip("2001:db8::10"), 80, model::Protocol::tcp, model::FrontendKind::vip});
  s.backends.push_back({ip("2001:db8:1::2"), 8080, 1, model::BackendState::active, "", ""});
  auto applied = engine.apply(model::Catalog{{s}}, "test");
  ASSERT_TRUE(applied.ok()) << applied.error().message;
  const auto& rings = engine.services().at("web").rings;
  ASSERT_EQ(rings.size(), 2u);
  EXPECT_EQ(rings[0].family, model::IpAddress::Family::v4);
  EXPECT_EQ(rings[0].table.size(), 509u);  // 3 backends -> smallest size >= 300
  EXPECT_EQ(rings[0].table.members.size(), 3u);
  EXPECT_EQ(rings[1].family, model::IpAddress::Family::v6);
  EXPECT_EQ(rings[1].table.size(), 251u);
  EXPECT_EQ(rings[1].table.members, std::vector<std::string>{"[2001:db8:1::2]:8080"});
}

TEST_F(EngineTest, DrainedAndDownBackendsTakeNoSlots) {
  Engine engine(*store_, log_);
  model::Service s = service("web", 3);
  s.backends[0].weight = 0;
  s.backends[1].state = model::BackendState::down;
  ASSERT_TRUE(engine.apply(model::Catalog{{s}}, "test").ok());
  const auto& ring = engine.services().at("web").rings.at(0).table;
  EXPECT_EQ(ring.slot_counts(), (std::vector<uint32_t>{0, 0, ring.size()}));
}

TEST_F(EngineTest, ServiceWithoutBackendsHasAnEmptyRing) {
  Engine engine(*store_, log_);
  ASSERT_TRUE(engine.apply(model::Catalog{{service("web", 0)}}, "test").ok());
  EXPECT_EQ(engine.services().at("web").rings.at(0).table.size(), 0u);
}

TEST_F(EngineTest, RecordsDisruptionOfTheLastChange) {
  // Pinned sizes keep each ring's size across the changes, so slots compare one to one.
  auto web = [](int backends) {
    auto s = service("web", backends);
    s.maglev_table_size = 509;
    return s;
  };
  Engine engine(*store_, log_);
  ASSERT_TRUE(engine.apply(model::Catalog{{web(4), service("api", 2)}}, "test").ok());
  EXPECT_EQ(engine.services().at("web").last_disruption, 0.0);  // a new service moved no flow

  ASSERT_TRUE(engine.apply(model::Catalog{{web(5), service("api", 2)}}, "test").ok());
  const double moved = engine.services().at("web").last_disruption;
  EXPECT_GT(moved, 0.15);  // the new backend takes about 1/5 of the slots
  EXPECT_LT(moved, 0.35);

  ASSERT_TRUE(engine.apply(model::Catalog{{web(5), service("api", 3)}}, "test").ok());
  EXPECT_EQ(engine.services().at("web").last_disruption, moved) << "web did not change: it keeps its figure";
  EXPECT_GT(engine.services().at("api").last_disruption, 0.0);
}

TEST_F(EngineTest, NothingChangesWhenARingCannotBeBuilt) {
  Engine engine(*store_, log_);
  ASSERT_TRUE(engine.apply(model::Catalog{{service("web", 2)}}, "test").ok());
  auto broken = service("web", 3);
  broken.maglev_table_size = 1000;  // not a Maglev size: the config layer rejects it, the engine must too
  auto r = engine.apply(model::Catalog{{broken}}, "test");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message,
            "the catalog was not applied: service \"web\": pinned table size 1000 is not a Maglev table size; use one "
            "of 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071");
  EXPECT_EQ(engine.revision(), 1);
  EXPECT_EQ(engine.catalog().services.at(0).backends.size(), 2u);
  EXPECT_EQ(store_->revisions(10)->size(), 1u);
}

TEST_F(EngineTest, RestoreRebuildsRingsFromTheStore) {
  {
    Engine engine(*store_, log_);
    ASSERT_TRUE(engine.apply(model::Catalog{{service("web", 3)}}, "test").ok());
  }
  Engine engine(*store_, log_);
  ASSERT_TRUE(engine.restore().ok());
  EXPECT_EQ(engine.revision(), 1);
  ASSERT_EQ(engine.services().size(), 1u);
  EXPECT_EQ(engine.services().at("web").rings.at(0).table.size(), 509u);
  auto again = engine.apply(model::Catalog{{service("web", 3)}}, "test");
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->changed);
}

}  // namespace
}  // namespace xlb::engine

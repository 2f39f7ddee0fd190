// Drains in the engine: a drained backend keeps its place with no ring slots, through reloads and
// restarts, until it is undrained.
#include "engine/engine.h"
#include "support/temp_dir.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <random>

namespace xlb::engine {
namespace {

namespace fs = std::filesystem;

model::IpAddress ip(std::string_view s) { return *model::IpAddress::parse(s); }

model::Catalog catalog(int backends) {
  model::Service s;
  s.name = "web";
  s.frontends.push_back({ip("198.18.0.10"), 80, model::Protocol::tcp, model::FrontendKind::vip});
  for (int i = 0; i < backends; ++i)
    s.backends.push_back({ip("10.0.0." + std::to_string(i + 2)), 8080, 1, model::BackendState::active, "", ""});
  return {{s}};
}

uint32_t slots_of(const Engine& engine, const std::string& key) {
  const auto& table = engine.services().at("web").rings.at(0).table;
  const auto counts = table.slot_counts();
  for (size_t i = 0; i < table.members.size(); ++i)
    if (table.members[i] == key) return counts[i];
  ADD_FAILURE() << key << " is not in the ring";
  return 0;
}

class DrainsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = store::Store::open(dir_ / "state.db");
    ASSERT_TRUE(s.ok()) << s.error().message;
    store_.emplace(std::move(*s));
  }

  test::TempDir dir_{"xlb-drains"};
  std::optional<store::Store> store_;
  Logger log_{LogLevel::error};
};

TEST_F(DrainsTest, ADrainedBackendKeepsItsPlaceWithNoSlotsAndARevisionSaysWho) {
  Engine engine(*store_, log_);
  ASSERT_TRUE(engine.restore().ok());
  ASSERT_TRUE(engine.apply(catalog(3), "toml").ok());
  ASSERT_GT(slots_of(engine, "10.0.0.2:8080"), 0u);

  auto applied = engine.set_drained("web", "10.0.0.2:8080", true, "api: drained by alice");
  ASSERT_TRUE(applied.ok()) << applied.error().message;
  EXPECT_TRUE(applied->changed);
  EXPECT_EQ(applied->revision, 2);
  EXPECT_EQ(engine.catalog().services[0].backends[0].state, model::BackendState::draining);
  EXPECT_EQ(slots_of(engine, "10.0.0.2:8080"), 0u);
  EXPECT_EQ(engine.services().at("web").rings[0].table.members.size(), 3u);
  auto latest = store_->latest_revision();
  ASSERT_TRUE(latest.ok() && *latest);
  EXPECT_EQ((*latest)->source, "api: drained by alice");
  EXPECT_EQ((*latest)->summary, "~web (~backend 10.0.0.2:8080 -> 10.0.0.2:8080 draining)");
}

TEST_F(DrainsTest, ADrainOutlivesReloadsAndRestartsUntilUndrained) {
  {
    Engine engine(*store_, log_);
    ASSERT_TRUE(engine.restore().ok());
    ASSERT_TRUE(engine.apply(catalog(3), "toml").ok());
    ASSERT_TRUE(engine.set_drained("web", "10.0.0.3:8080", true, "api").ok());
    // A reload with a changed source keeps the drain.
    auto applied = engine.apply(catalog(4), "toml");
    ASSERT_TRUE(applied.ok());
    EXPECT_EQ(applied->summary, "~web (+backend 10.0.0.5:8080)");
    EXPECT_EQ(engine.catalog().services[0].backends[1].state, model::BackendState::draining);
  }
  Engine engine(*store_, log_);
  ASSERT_TRUE(engine.restore().ok());
  EXPECT_TRUE(engine.drains().contains("web", "10.0.0.3:8080"));
  auto applied = engine.apply(catalog(4), "toml");
  ASSERT_TRUE(applied.ok());
  EXPECT_FALSE(applied->changed) << "the restored catalog already had the drain: " << applied->summary;

  applied = engine.set_drained("web", "10.0.0.3:8080", false, "api");
  ASSERT_TRUE(applied.ok());
  EXPECT_TRUE(applied->changed);
  EXPECT_EQ(engine.catalog().services[0].backends[1].state, model::BackendState::active);
  EXPECT_GT(slots_of(engine, "10.0.0.3:8080"), 0u);
  auto reloaded = Drains::load(*store_);
  ASSERT_TRUE(reloaded.ok());
  EXPECT_FALSE(reloaded->contains("web", "10.0.0.3:8080"));
}

TEST_F(DrainsTest, AskingForTheCurrentStateChangesNothing) {
  Engine engine(*store_, log_);
  ASSERT_TRUE(engine.apply(catalog(2), "toml").ok());
  auto applied = engine.set_drained("web", "10.0.0.2:8080", false, "api");
  ASSERT_TRUE(applied.ok());
  EXPECT_FALSE(applied->changed);
  EXPECT_EQ(engine.revision(), 1);
}

TEST_F(DrainsTest, NothingToDrainBeforeTheFirstApply) {
  Engine engine(*store_, log_);
  auto applied = engine.set_drained("web", "10.0.0.2:8080", true, "api");
  ASSERT_FALSE(applied.ok());
  EXPECT_EQ(applied.error().message, "no catalog has been applied yet");
  EXPECT_FALSE(engine.drains().contains("web", "10.0.0.2:8080"));
}

TEST_F(DrainsTest, ADamagedSettingIsAClearError) {
  ASSERT_TRUE(store_->set_setting("drains", "{oops").ok());
  Engine engine(*store_, log_);
  const Status s = engine.restore();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("setting \"drains\" in the state database) are damaged"), std::string::npos)
      << s.error().message;
}

TEST(DrainsOverlayTest, OnlyActiveBackendsBecomeDraining) {
  Drains drains;
  auto c = catalog(3);
  c.services[0].backends[1].state = model::BackendState::down;
  EXPECT_TRUE(drains.set("web", "10.0.0.2:8080", true));
  EXPECT_TRUE(drains.set("web", "10.0.0.3:8080", true));
  EXPECT_FALSE(drains.set("web", "10.0.0.3:8080", true));
  const auto out = drains.overlay(c);
  EXPECT_EQ(out.services[0].backends[0].state, model::BackendState::draining);
  EXPECT_EQ(out.services[0].backends[1].state, model::BackendState::down);
  EXPECT_EQ(out.services[0].backends[2].state, model::BackendState::active);
}

}  // namespace
}  // namespace xlb::engine

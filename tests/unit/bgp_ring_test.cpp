// ECMP consistency: two xlb nodes with the same catalog and [maglev] seed build byte-identical
// rings, whatever the history of changes each went through, so a flow that the routers move from
// one node to another lands on the same ring slot and the same backend.
#include "engine/engine.h"
#include "support/temp_dir.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace xlb::engine {
namespace {

model::IpAddress ip(std::string_view s) { return *model::IpAddress::parse(s); }

model::Service web(int backends) {
  model::Service s;
  s.name = "web";
  s.mode = model::ForwardingMode::dsr;
  s.frontends.push_back({ip("198.18.0.10"), 80, model::Protocol::tcp, model::FrontendKind::vip});
  s.frontends.push_back({ip("2001:db8::10"), 80, model::Protocol::tcp, model::FrontendKind::vip});
  for (int i = 0; i < backends; ++i) {
    s.backends.push_back({ip("10.0.1." + std::to_string(i + 2)), 80, static_cast<uint32_t>(1 + i % 3),
                          model::BackendState::active, "", ""});
    s.backends.push_back({ip("2001:db8:1::" + std::to_string(i + 2)), 80, 1, model::BackendState::active, "", ""});
  }
  return s;
}

// engine.services() lists ServiceStates, or maps names to them.
template <class Entry>
const ServiceState& state_of(const Entry& entry) {
  if constexpr (requires { entry.second; })
    return entry.second;
  else
    return entry;
}

// A node: its own state database and engine (no maps), the seed of its [maglev].
struct Node {
  explicit Node(const std::string& seed) {
    auto s = store::Store::open(dir / "state.db");
    EXPECT_TRUE(s.ok()) << s.error().message;
    store.emplace(std::move(*s));
    engine.emplace(*store, log, MaglevSettings{seed, {}});
  }
  void apply(const model::Catalog& c) {
    auto applied = engine->apply(c, "test");
    ASSERT_TRUE(applied.ok()) << applied.error().message;
  }
  // Every ring as bytes: family, size, then each slot's backend key, as the datapath resolves it
  // (backend ids are each node's own; the address and port behind each slot are what must agree).
  std::string rings() const {
    std::string out;
    for (const auto& entry : engine->services())
      for (const auto& service = state_of(entry); const auto& ring : service.rings) {
        out += service.service.name + (ring.family == model::IpAddress::Family::v4 ? " v4 " : " v6 ") +
               std::to_string(ring.table.size()) + ":";
        for (uint32_t slot : ring.table.slots) out += ring.table.members.at(slot) + ",";
        out += "\n";
      }
    return out;
  }

  test::TempDir dir{"xlb-ring"};
  Logger log{LogLevel::error};
  std::optional<store::Store> store;
  std::optional<Engine> engine;
};

TEST(EcmpRings, SameCatalogAndSeedGiveByteIdenticalRingsWhateverTheHistory) {
  Node a("fleet-seed"), b("fleet-seed");
  // a saw the backends come one by one, one go down and back, and the order of the list change;
  // b starts with the final catalog.
  for (int n = 1; n <= 5; ++n) a.apply(model::Catalog{{web(n)}});
  ASSERT_TRUE(a.engine->set_health("web", "10.0.1.3:80", false, "probe failed").ok());
  ASSERT_TRUE(a.engine->set_health("web", "10.0.1.3:80", true, "probe passed").ok());
  model::Service reversed = web(5);
  std::reverse(reversed.backends.begin(), reversed.backends.end());
  a.apply(model::Catalog{{reversed}});
  b.apply(model::Catalog{{web(5)}});

  const std::string ra = a.rings(), rb = b.rings();
  ASSERT_FALSE(ra.empty());
  EXPECT_EQ(ra.size(), rb.size());
  EXPECT_TRUE(ra == rb) << "the rings differ between two nodes with the same catalog and seed";
  // Two families, each a full ring.
  const ServiceState& state = state_of(*a.engine->services().begin());
  ASSERT_EQ(state.rings.size(), 2u);
  EXPECT_EQ(state.rings[0].table.size(), 509u);  // 5 backends per family: the smallest size >= 500

  // A backend down on both nodes: still identical.
  ASSERT_TRUE(a.engine->set_health("web", "10.0.1.4:80", false, "probe failed").ok());
  ASSERT_TRUE(b.engine->set_health("web", "10.0.1.4:80", false, "probe failed").ok());
  EXPECT_TRUE(a.rings() == b.rings());
}

TEST(EcmpRings, ADifferentSeedGivesADifferentRing) {
  // The test above could not fail if the seed did not matter.
  Node a("fleet-seed"), b("other-seed");
  a.apply(model::Catalog{{web(5)}});
  b.apply(model::Catalog{{web(5)}});
  EXPECT_NE(a.rings(), b.rings()) << "every node of an ECMP group needs the same [maglev] seed";
}

}  // namespace
}  // namespace xlb::engine

// The loader on the real kernel: maps pinned and adopted by the next load (what a restart of
// xlbd relies on), what BpfMaps writes read back the same, and the bookkeeping maps the XDP
// program needs (frontend addresses) kept in step with the frontends.
#include <bpf/bpf.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "base/unique_fd.h"
#include "datapath/datapath.h"
#include "datapath/local_addresses.h"
#include "support/command.h"
#include "support/netns.h"
#include "support/requirements.h"
#include "support/status.h"
#include "xlb_abi.h"

namespace xlb::datapath {
namespace {

namespace fs = std::filesystem;

model::IpAddress ip(std::string_view s) { return model::IpAddress::parse(s).value(); }

FrontendEntry frontend(std::string_view address, uint16_t port, ServiceId id, std::vector<BackendId> ring) {
  FrontendEntry f;
  f.key = {ip(address), port, model::Protocol::tcp};
  f.service_id = id;
  f.ring = std::move(ring);
  return f;
}

class DatapathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    XLB_REQUIRE(test::missing_capabilities({test::kCapBpf, test::kCapNetAdmin, test::kCapSysAdmin}));
    if (!fs::exists("/sys/fs/bpf") || ::system("mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf") != 0)
      GTEST_FAIL() << "bpffs is not mounted at /sys/fs/bpf and could not be mounted";
    pins_ = fs::path("/sys/fs/bpf") / ("xlb-test-" + std::to_string(std::random_device{}())) / "v1";
  }
  void TearDown() override {
    if (!pins_.empty()) fs::remove_all(pins_.parent_path());
  }

  // How many frontends xlb_frontend_addrs counts at an address, 0 when it has no entry.
  uint32_t frontends_at(std::string_view address) const {
    const UniqueFd map(bpf_obj_get((pins_ / "xlb_frontend_addrs").c_str()));
    EXPECT_TRUE(map) << "xlb_frontend_addrs is not pinned";
    xlb_frontend_addr_key key{};
    const auto a = ip(address);
    std::memcpy(key.address, a.bytes().data(), a.is_v4() ? 4 : 16);
    key.family = a.is_v4() ? XLB_AF_INET : XLB_AF_INET6;
    uint32_t count = 0;
    return bpf_map_lookup_elem(map.get(), &key, &count) == 0 ? count : 0;
  }

  fs::path pins_;
};

TEST_F(DatapathTest, WhatIsWrittenReadsBackAndOutlivesTheLoader) {
  State written;
  {
    auto datapath = Datapath::load({pins_});
    XLB_ASSERT_OK(datapath);
    auto& maps = datapath->maps();
    for (BackendId id : {1u, 2u, 3u}) {
      BackendEntry b{id, ip("10.0.0." + std::to_string(id + 1)), 8080, id == 3};
      XLB_ASSERT_OK(maps.upsert_backend(b));
      written.backends[id] = b;
    }
    BackendEntry v6{4, ip("fd00::2"), 8443, false};
    XLB_ASSERT_OK(maps.upsert_backend(v6));
    written.backends[4] = v6;
    auto web = frontend("198.18.0.10", 80, 1, {1, 2, 1, 2, 1});
    web.snat = true;
    auto api = frontend("198.18.0.10", 443, 2, {});
    api.dsr = true;
    auto six = frontend("2001:db8::10", 443, 3, {4, 4, 4});
    six.affinity = true;
    six.affinity_timeout_s = 600;
    XLB_ASSERT_OK(maps.upsert_frontends({web, api, six}));
    for (const auto& f : {web, api, six}) written.frontends[f.key] = f;
  }
  // A new loader, as after a restart: it adopts the pinned maps.
  auto datapath = Datapath::load({pins_});
  XLB_ASSERT_OK(datapath);
  auto read = datapath->maps().read();
  XLB_ASSERT_OK(read);
  EXPECT_EQ(*read, written);
}

TEST_F(DatapathTest, FrontendAddressesAreCountedUpAndDown) {
  auto datapath = Datapath::load({pins_});
  XLB_ASSERT_OK(datapath);
  auto& maps = datapath->maps();
  XLB_ASSERT_OK(maps.upsert_backend({1, ip("10.0.0.2"), 8080, false}));
  const auto a = frontend("198.18.0.10", 80, 1, {1});
  const auto b = frontend("198.18.0.10", 443, 2, {1});
  XLB_ASSERT_OK(maps.upsert_frontends({a, b}));
  EXPECT_EQ(frontends_at("198.18.0.10"), 2u);
  XLB_ASSERT_OK(maps.upsert_frontends({a}));  // rewriting one does not count it twice
  EXPECT_EQ(frontends_at("198.18.0.10"), 2u);
  XLB_ASSERT_OK(maps.remove_frontends({a.key}));
  EXPECT_EQ(frontends_at("198.18.0.10"), 1u);
  XLB_ASSERT_OK(maps.remove_frontends({b.key, b.key}));  // removing what is gone is fine
  EXPECT_EQ(frontends_at("198.18.0.10"), 0u);
}

TEST_F(DatapathTest, ManyRingsInOneBatch) {
  auto datapath = Datapath::load({pins_});
  XLB_ASSERT_OK(datapath);
  auto& maps = datapath->maps();
  XLB_ASSERT_OK(maps.upsert_backend({1, ip("10.0.0.2"), 8080, false}));
  std::vector<FrontendEntry> many;
  for (uint16_t i = 0; i < 2000; ++i)
    many.push_back(frontend("198.18." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1), 80,
                            static_cast<ServiceId>(i + 1), std::vector<BackendId>(251, 1)));
  XLB_ASSERT_OK(maps.upsert_frontends(many));
  auto read = maps.read();
  XLB_ASSERT_OK(read);
  EXPECT_EQ(read->frontends.size(), 2000u);
  // Shrink half of them to no ring: their entries stay, their rings go.
  for (size_t i = 0; i < many.size(); i += 2) many[i].ring.clear();
  XLB_ASSERT_OK(maps.upsert_frontends(many));
  read = maps.read();
  XLB_ASSERT_OK(read);
  size_t empty = 0;
  for (const auto& [key, f] : read->frontends) empty += f.ring.empty();
  EXPECT_EQ(empty, 1000u);
}

// An xlbd of this ABI version from before a new drop reason pinned a shorter xlb_reason_stats:
// the next one drops and recreates that counter map, and adopts every map that holds state.
TEST_F(DatapathTest, ACounterMapOfAnOlderLayoutIsMadeAnewAndStateIsKept) {
  {
    auto datapath = Datapath::load({pins_});
    XLB_ASSERT_OK(datapath);
    XLB_ASSERT_OK(datapath->maps().upsert_backend({1, ip("10.0.0.2"), 8080, false}));
  }
  const auto pin = pins_ / "xlb_reason_stats";
  ASSERT_TRUE(fs::remove(pin));
  const UniqueFd old(bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "xlb_reason_stats", 4, sizeof(xlb_stats), 14, nullptr));
  ASSERT_TRUE(old);
  ASSERT_EQ(bpf_obj_pin(old.get(), pin.c_str()), 0);

  auto datapath = Datapath::load({pins_});
  XLB_ASSERT_OK(datapath);
  const UniqueFd now(bpf_obj_get(pin.c_str()));
  ASSERT_TRUE(now);
  bpf_map_info info{};
  __u32 length = sizeof info;
  ASSERT_EQ(bpf_obj_get_info_by_fd(now.get(), &info, &length), 0);
  EXPECT_EQ(info.max_entries, static_cast<__u32>(XLB_REASON_SLOTS));
  auto state = datapath->maps().read();
  XLB_ASSERT_OK(state);
  EXPECT_EQ(state->backends.size(), 1u) << "the backends map was adopted";
}

// A backend node of dsr services (decap on) has their frontend addresses on lo, marked as xlb's,
// for as long as the maps have them in dsr mode; an operator's own address is never touched.
TEST_F(DatapathTest, DecapMakesTheDsrFrontendsLocal) {
  XLB_ASSERT_OK(test::enter_private_netns());
  XLB_ASSERT_OK(test::run_command({"/usr/sbin/ip", "address", "add", "198.18.0.12/32", "dev", "lo"}));
  auto datapath = Datapath::load({pins_});
  XLB_ASSERT_OK(datapath);
  auto& maps = datapath->maps();
  XLB_ASSERT_OK(maps.upsert_backend({1, ip("10.0.0.2"), 80, false}));
  XLB_ASSERT_OK(maps.upsert_backend({2, ip("fd00::2"), 80, false}));
  auto web = frontend("198.18.0.10", 80, 1, {1});
  web.dsr = true;
  auto six = frontend("2001:db8::10", 80, 2, {2});
  six.dsr = true;
  auto nat = frontend("198.18.0.11", 80, 3, {1});
  auto operators = frontend("198.18.0.12", 80, 4, {1});
  operators.dsr = true;
  XLB_ASSERT_OK(maps.upsert_frontends({web, six, nat, operators}));
  auto none = local_addresses();
  XLB_ASSERT_OK(none);
  EXPECT_TRUE(none->empty()) << "decap is off: no address is xlb's";

  NodeSettings node;
  node.decap = true;
  XLB_ASSERT_OK(datapath->write_node(node));
  auto local = local_addresses();
  XLB_ASSERT_OK(local);
  EXPECT_EQ(*local, (std::set{ip("198.18.0.10"), ip("2001:db8::10")}));

  XLB_ASSERT_OK(maps.remove_frontends({web.key, operators.key}));
  local = local_addresses();
  XLB_ASSERT_OK(local);
  EXPECT_EQ(*local, (std::set{ip("2001:db8::10")}));
  test::ChildProcess ip_tool({"/usr/sbin/ip", "-o", "address", "show", "dev", "lo"});
  ASSERT_TRUE(ip_tool.read_to_end(std::chrono::seconds(10)));
  const std::string output = ip_tool.seen();
  EXPECT_NE(output.find("198.18.0.12/32"), std::string::npos) << "the operator's address stays:\n" << output;
  EXPECT_EQ(output.find("198.18.0.10/32"), std::string::npos) << output;

  XLB_ASSERT_OK(Datapath::cleanup(pins_, {}));
  local = local_addresses();
  XLB_ASSERT_OK(local);
  EXPECT_TRUE(local->empty());
}

}  // namespace
}  // namespace xlb::datapath

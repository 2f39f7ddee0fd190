// The loader on the real kernel: maps pinned and adopted by the next load (what a restart of
// xlbd relies on), what BpfMaps writes read back the same, and the bookkeeping maps the XDP
// program needs (frontend addresses) kept in step with the frontends.
#include <bpf/bpf.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "base/unique_fd.h"
#include "datapath/datapath.h"
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

}  // namespace
}  // namespace xlb::datapath

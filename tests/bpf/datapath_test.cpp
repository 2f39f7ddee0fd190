// The loader on the real kernel: maps pinned and adopted by the next load (what a restart of
// xlbd relies on), what BpfMaps writes read back the same, and the bookkeeping maps the XDP
// program needs (frontend addresses) kept in step with the frontends.
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <filesystem>
#include <optional>
#include <random>
#include <set>

#include "base/unique_fd.h"
#include "datapath/datapath.h"
#include "datapath/local_addresses.h"
#include "support/command.h"
#include "support/lb_netns.h"
#include "support/netns.h"
#include "support/packet.h"
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
    pins_ = fs::path("/sys/fs/bpf") / ("xlb-test-" + std::to_string(std::random_device{}())) / ("v" + std::to_string(XLB_ABI_VERSION));
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

  // Whether the frontend filter's bit of a TCP frontend is set (xlb_abi.h); `set` to write it.
  bool filter_bit(std::string_view address, uint16_t port, std::optional<bool> set = std::nullopt) const {
    const UniqueFd map(bpf_obj_get((pins_ / "xlb_frontend_filter").c_str()));
    EXPECT_TRUE(map) << "xlb_frontend_filter is not pinned";
    __be32 words[4] = {};
    const auto a = ip(address);
    std::memcpy(words, a.bytes().data(), a.is_v4() ? 4 : 16);
    const __u32 bit = xlb_frontend_filter_bit(words, htons(port), IPPROTO_TCP);
    const __u32 word = bit / 64;
    __u64 bits = 0;
    EXPECT_EQ(bpf_map_lookup_elem(map.get(), &word, &bits), 0);
    const __u64 mask = 1ULL << (bit % 64);
    if (set) {
      bits = *set ? bits | mask : bits & ~mask;
      EXPECT_EQ(bpf_map_update_elem(map.get(), &word, &bits, BPF_ANY), 0);
    }
    return (bits & mask) != 0;
  }

  uint32_t frontend_epoch() const {
    const UniqueFd map(bpf_obj_get((pins_ / "xlb_frontend_epoch").c_str()));
    EXPECT_TRUE(map) << "xlb_frontend_epoch is not pinned";
    const __u32 zero = 0;
    __u32 epoch = 0;
    EXPECT_EQ(bpf_map_lookup_elem(map.get(), &zero, &epoch), 0);
    return epoch;
  }

  uint32_t ct_seed() const {
    const UniqueFd map(bpf_obj_get((pins_ / "xlb_node").c_str()));
    EXPECT_TRUE(map) << "xlb_node is not pinned";
    const __u32 zero = 0;
    xlb_node_config node{};
    EXPECT_EQ(bpf_map_lookup_elem(map.get(), &zero, &node), 0);
    return node.ct_seed;
  }

  fs::path pins_;
};

// Conntrack's sets depend on the seed: a new datapath makes one, and every later writer of the
// node's settings, also after a restart, keeps it (another seed would lose every flow).
TEST_F(DatapathTest, ConntrackSeedIsMadeOnceAndKeptAcrossRestarts) {
  uint32_t made = 0;
  {
    auto datapath = Datapath::load({pins_});
    XLB_ASSERT_OK(datapath);
    EXPECT_EQ(ct_seed(), 0U) << "before the node's settings are written";
    XLB_ASSERT_OK(datapath->write_node(NodeSettings{}));
    made = ct_seed();
    EXPECT_NE(made, 0U);
    NodeSettings changed;
    changed.events_per_second = 7;
    XLB_ASSERT_OK(datapath->write_node(changed));
    EXPECT_EQ(ct_seed(), made);
  }
  auto datapath = Datapath::load({pins_});
  XLB_ASSERT_OK(datapath);
  XLB_ASSERT_OK(datapath->write_node(NodeSettings{}));
  EXPECT_EQ(ct_seed(), made) << "a restart adopts the seed with the maps";
}

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

// The programs ask the frontend filter before the services maps: a frontend's bit is set while
// it exists, whatever a previous xlbd left, and every change of the frontends moves the epoch
// that the XDP program's flow cache is trusted in.
TEST_F(DatapathTest, TheFrontendFilterAndEpochFollowTheFrontends) {
  const auto a = frontend("198.18.0.10", 80, 1, {1});
  const auto b = frontend("2001:db8::10", 443, 2, {1});
  {
    auto datapath = Datapath::load({pins_});
    XLB_ASSERT_OK(datapath);
    auto& maps = datapath->maps();
    const uint32_t opened = frontend_epoch();
    EXPECT_NE(opened, 0U) << "the epoch moves when the maps are opened";
    XLB_ASSERT_OK(maps.upsert_backend({1, ip("10.0.0.2"), 8080, false}));
    EXPECT_EQ(frontend_epoch(), opened) << "backends are not frontends";
    ASSERT_FALSE(filter_bit("198.18.0.10", 80));
    XLB_ASSERT_OK(maps.upsert_frontends({a, b}));
    EXPECT_EQ(frontend_epoch(), opened + 1);
    EXPECT_TRUE(filter_bit("198.18.0.10", 80));
    EXPECT_TRUE(filter_bit("2001:db8::10", 443));
    XLB_ASSERT_OK(maps.remove_frontends({a.key}));
    EXPECT_EQ(frontend_epoch(), opened + 2);
    EXPECT_FALSE(filter_bit("198.18.0.10", 80)) << "the bit of a removed frontend is cleared";
    EXPECT_TRUE(filter_bit("2001:db8::10", 443));
    XLB_ASSERT_OK(maps.remove_frontends({a.key}));
    EXPECT_EQ(frontend_epoch(), opened + 2) << "removing nothing changes nothing";
  }
  // What a crash or another xlbd may leave: b's bit cleared and a stray bit set.
  filter_bit("2001:db8::10", 443, false);
  filter_bit("198.18.0.99", 8080, true);
  auto datapath = Datapath::load({pins_});
  XLB_ASSERT_OK(datapath);
  EXPECT_TRUE(filter_bit("2001:db8::10", 443)) << "the filter is rebuilt from the services maps";
  EXPECT_FALSE(filter_bit("198.18.0.99", 8080));
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

// Where the entry of frontend 198.18.0.N:80/tcp says its ring is: (ring_offset, ring_size).
std::pair<uint32_t, uint32_t> ring_range(const fs::path& pins, uint32_t n) {
  const UniqueFd services(bpf_obj_get((pins / "xlb_services_v4").c_str()));
  EXPECT_TRUE(services) << "xlb_services_v4 is not pinned";
  xlb_service_key_v4 key{};
  key.address = htonl(0xc6120000 | n);
  key.port = htons(80);
  key.protocol = IPPROTO_TCP;
  xlb_service_value value{};
  EXPECT_EQ(bpf_map_lookup_elem(services.get(), &key, &value), 0) << "no entry for 198.18.0." << n;
  return {value.ring_offset, value.ring_size};
}

// An endpoint change keeps the ring's size: it is rewritten where it is; a change of size moves
// the ring to a range of its own, written before the entry points at it.
TEST_F(DatapathTest, ARingOfTheSameSizeKeepsItsOffsetAndANewSizeMovesIt) {
  auto datapath = Datapath::load({pins_});
  XLB_ASSERT_OK(datapath);
  auto& maps = datapath->maps();
  for (BackendId id : {1u, 2u, 3u}) XLB_ASSERT_OK(maps.upsert_backend({id, ip("10.0.0." + std::to_string(id + 1)), 8080, false}));
  XLB_ASSERT_OK(maps.upsert_frontends({frontend("198.18.0.10", 80, 1, {1, 2, 1, 2, 1})}));
  const auto first = ring_range(pins_, 10);
  EXPECT_EQ(first.second, 5u);

  const auto same_size = frontend("198.18.0.10", 80, 1, {1, 2, 3, 2, 3});
  XLB_ASSERT_OK(maps.upsert_frontends({same_size}));
  EXPECT_EQ(ring_range(pins_, 10), first);
  auto read = maps.read();
  XLB_ASSERT_OK(read);
  EXPECT_EQ(read->frontends.at(same_size.key).ring, same_size.ring);

  const auto bigger = frontend("198.18.0.10", 80, 1, {1, 2, 3, 1, 2, 3, 1});
  XLB_ASSERT_OK(maps.upsert_frontends({bigger}));
  EXPECT_NE(ring_range(pins_, 10).first, first.first);
  EXPECT_EQ(ring_range(pins_, 10).second, 7u);
  read = maps.read();
  XLB_ASSERT_OK(read);
  EXPECT_EQ(read->frontends.at(bigger.key).ring, bigger.ring);

  XLB_ASSERT_OK(maps.upsert_frontends({frontend("198.18.0.10", 80, 1, {})}));
  EXPECT_EQ(ring_range(pins_, 10).second, 0u) << "an emptied ring has no slots";
  read = maps.read();
  XLB_ASSERT_OK(read);
  EXPECT_TRUE(read->frontends.at(bigger.key).ring.empty());
}

// The range a ring leaves (moved, emptied or removed) is taken again only by a later write, never
// by a ring of the same write: a program that still reads the old ring sees it unchanged.
TEST_F(DatapathTest, AFreedRangeIsReusedOnlyByALaterWrite) {
  auto datapath = Datapath::load({pins_});
  XLB_ASSERT_OK(datapath);
  auto& maps = datapath->maps();
  for (BackendId id : {1u, 2u}) XLB_ASSERT_OK(maps.upsert_backend({id, ip("10.0.0." + std::to_string(id + 1)), 8080, false}));
  XLB_ASSERT_OK(maps.upsert_frontends({frontend("198.18.0.1", 80, 1, {1, 2, 1, 2, 1}),
                                       frontend("198.18.0.2", 80, 2, {2, 1, 2, 1, 2, 1, 2})}));
  const auto a = ring_range(pins_, 1);
  const auto b = ring_range(pins_, 2);
  ASSERT_EQ(a, std::pair(0u, 5u)) << "first fit in empty maps";
  ASSERT_EQ(b, std::pair(5u, 7u));

  // .1 moves to a ring of 3 slots; .3 is new with 5: neither may take .1's old range [0, 5).
  XLB_ASSERT_OK(maps.upsert_frontends({frontend("198.18.0.1", 80, 1, {1, 2, 1}),
                                       frontend("198.18.0.3", 80, 3, {1, 1, 1, 1, 1})}));
  EXPECT_EQ(ring_range(pins_, 1), std::pair(12u, 3u));
  EXPECT_EQ(ring_range(pins_, 3), std::pair(15u, 5u));

  // The next write takes it: first fit.
  XLB_ASSERT_OK(maps.upsert_frontends({frontend("198.18.0.4", 80, 4, {2, 2, 2, 2, 2})}));
  EXPECT_EQ(ring_range(pins_, 4), std::pair(0u, 5u));

  // A removal frees the same way: .2's range [5, 12) waits for the next write.
  XLB_ASSERT_OK(maps.remove_frontends({frontend("198.18.0.2", 80, 2, {}).key}));
  XLB_ASSERT_OK(maps.upsert_frontends({frontend("198.18.0.5", 80, 5, std::vector<BackendId>(7, 1))}));
  EXPECT_EQ(ring_range(pins_, 5), std::pair(5u, 7u));

  auto read = maps.read();
  XLB_ASSERT_OK(read);
  EXPECT_EQ(read->frontends.at(frontend("198.18.0.1", 80, 1, {}).key).ring, (std::vector<BackendId>{1, 2, 1}));
  EXPECT_EQ(read->frontends.at(frontend("198.18.0.3", 80, 3, {}).key).ring, (std::vector<BackendId>(5, 1)));
  EXPECT_EQ(read->frontends.at(frontend("198.18.0.4", 80, 4, {}).key).ring, (std::vector<BackendId>(5, 2)));
  EXPECT_EQ(read->frontends.at(frontend("198.18.0.5", 80, 5, {}).key).ring, (std::vector<BackendId>(7, 1)));

  // After a restart, the ranges the entries hold are in use: a new ring goes after them.
  datapath = Datapath::load({pins_});
  XLB_ASSERT_OK(datapath);
  XLB_ASSERT_OK(datapath->maps().upsert_frontends({frontend("198.18.0.6", 80, 6, {1, 2})}));
  EXPECT_EQ(ring_range(pins_, 6), std::pair(20u, 2u));
  read = datapath->maps().read();
  XLB_ASSERT_OK(read);
  EXPECT_EQ(read->frontends.at(frontend("198.18.0.4", 80, 4, {}).key).ring, (std::vector<BackendId>(5, 2)));
}

// A ring that does not fit in the free slots is refused with the key to raise; nothing of the
// write points at a slot it did not get.
TEST_F(DatapathTest, RingSlotsFullSaysWhatToChange) {
  auto datapath = Datapath::load({pins_, 16, 8, 12});
  XLB_ASSERT_OK(datapath);
  EXPECT_EQ(datapath->capacity().ring_slots, 12u);
  auto& maps = datapath->maps();
  XLB_ASSERT_OK(maps.upsert_backend({1, ip("10.0.0.2"), 8080, false}));
  XLB_ASSERT_OK(maps.upsert_frontends({frontend("198.18.0.1", 80, 1, std::vector<BackendId>(5, 1)),
                                       frontend("198.18.0.2", 80, 2, std::vector<BackendId>(5, 1))}));
  auto refused = maps.upsert_frontends({frontend("198.18.0.3", 80, 3, std::vector<BackendId>(5, 1))});
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("ring slots are full"), std::string::npos) << refused.error().message;
  EXPECT_NE(refused.error().message.find("Raise [node] max_ring_slots"), std::string::npos) << refused.error().message;
  // Room again once a ring is gone (from the next write on).
  XLB_ASSERT_OK(maps.remove_frontends({frontend("198.18.0.1", 80, 1, {}).key}));
  XLB_ASSERT_OK(maps.upsert_frontends({frontend("198.18.0.3", 80, 3, std::vector<BackendId>(5, 1))}));
  EXPECT_EQ(ring_range(pins_, 3), std::pair(0u, 5u));
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

// The runs of the XDP program of a loaded datapath on one frame (BPF_PROG_TEST_RUN), in this
// thread's network namespace.
struct XdpRun {
  int action = -1;
  test::Bytes out;
};
XdpRun run_xdp(const Datapath& datapath, const test::Bytes& frame, int ingress_ifindex) {
  XdpRun run;
  run.out.resize(frame.size() + 256);
  xdp_md ctx{};
  ctx.data_end = static_cast<__u32>(frame.size());
  ctx.ingress_ifindex = static_cast<__u32>(ingress_ifindex);
  bpf_test_run_opts opts{};
  opts.sz = sizeof opts;
  opts.data_in = frame.data();
  opts.data_size_in = static_cast<__u32>(frame.size());
  opts.data_out = run.out.data();
  opts.data_size_out = static_cast<__u32>(run.out.size());
  opts.ctx_in = &ctx;
  opts.ctx_size_in = sizeof ctx;
  opts.repeat = 1;
  EXPECT_EQ(bpf_prog_test_run_opts(datapath.program_fd("xlb_xdp"), &opts), 0) << "test run of xlb_xdp";
  run.action = static_cast<int>(opts.retval);
  run.out.resize(opts.data_size_out);
  return run;
}

// 10,000 Services of 10 endpoints are 100,000 backends: more than the 65,536 ids the maps once
// had. They are written through BpfMaps, a frontend under a service id above 65,536 sends its
// flows to the backend with the highest id, and the counters of both count them.
TEST_F(DatapathTest, MoreThan65536BackendsAreWrittenAndForwardedTo) {
  XLB_ASSERT_OK(test::enter_private_netns());
  XLB_ASSERT_OK(test::lbnet::build());
  auto datapath = Datapath::load({pins_});
  XLB_ASSERT_OK(datapath);
  EXPECT_GE(datapath->capacity().backends, 100000u);
  auto& maps = datapath->maps();
  constexpr BackendId kBackends = 100000;
  for (BackendId id = 1; id < kBackends; ++id)
    XLB_ASSERT_OK(maps.upsert_backend({id, ip("10." + std::to_string(id >> 16) + "." + std::to_string((id >> 8) & 255) +
                                               "." + std::to_string(id & 255)),
                                       8080, false}));
  const test::lbnet::Family f = test::lbnet::v4();
  XLB_ASSERT_OK(maps.upsert_backend({kBackends, ip(f.backend[1].str()), 8080, false}));
  constexpr ServiceId kService = 70000;
  XLB_ASSERT_OK(maps.upsert_frontends({frontend(f.frontend.str(), 80, kService, std::vector<BackendId>(251, kBackends))}));
  auto state = maps.read();
  XLB_ASSERT_OK(state);
  EXPECT_EQ(state->backends.size(), kBackends);

  test::PacketSpec in;
  in.eth_src = test::lbnet::kClientMac;
  in.eth_dst = test::lbnet::kClientLinkMac;
  in.src = f.client;
  in.dst = f.frontend;
  in.protocol = IPPROTO_TCP;
  in.sport = 40000;
  in.dport = 80;
  in.payload = test::Bytes{'h', 'i'};
  const XdpRun run = run_xdp(*datapath, test::build_frame(in), test::lbnet::ifindex(test::lbnet::kClientLink));
  EXPECT_EQ(run.action, XDP_REDIRECT);
  test::PacketSpec out = in;
  out.eth_src = test::lbnet::kBackendLinkMac;
  out.eth_dst = test::lbnet::backend_mac(1);
  out.dst = f.backend[1];
  out.dport = 8080;
  out.ttl = static_cast<uint8_t>(in.ttl - 1);
  EXPECT_EQ(run.out, test::build_frame(out)) << "not translated to backend " << kBackends;

  auto counters = datapath->read_counters();
  XLB_ASSERT_OK(counters);
  EXPECT_EQ(counters->backends[kBackends].packets, 1u);
  EXPECT_EQ(counters->backends[kBackends].new_flows, 1u);
  EXPECT_EQ(counters->services[kService].new_flows, 1u);

  // A removed backend takes its counters with it; a new one with its id starts from zero.
  XLB_ASSERT_OK(maps.upsert_frontends({frontend(f.frontend.str(), 80, kService, {})}));
  XLB_ASSERT_OK(maps.remove_backend(kBackends));
  XLB_ASSERT_OK(maps.upsert_backend({kBackends, ip(f.backend[2].str()), 8080, false}));
  counters = datapath->read_counters();
  XLB_ASSERT_OK(counters);
  EXPECT_EQ(counters->backends.count(kBackends), 0u);
}

// The maps hold what [node] max_services / max_backends say; one more is refused with words an
// operator can act on, and a restart with other sizes adopts the pinned maps as they are.
TEST_F(DatapathTest, TheConfiguredCapacityIsHeldAndTheErrorAboveItSaysWhatToChange) {
  {
    auto datapath = Datapath::load({pins_, 16, 8});
    XLB_ASSERT_OK(datapath);
    EXPECT_EQ(datapath->capacity().services, 16u);
    EXPECT_EQ(datapath->capacity().backends, 8u);
    EXPECT_EQ(datapath->capacity().note, "");
    auto& maps = datapath->maps();
    for (BackendId id = 1; id <= 8; ++id)
      XLB_ASSERT_OK(maps.upsert_backend({id + 100000, ip("10.0.0." + std::to_string(id)), 80, false}));
    const Status refused = maps.upsert_backend({200000, ip("10.0.0.99"), 80, false});
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().message,
              "write backend 200000 (10.0.0.99:80): the datapath is full: it holds at most 8 "
              "backends. Raise [node] max_backends in the configuration; the maps pinned now keep their size until "
              "xlbd --cleanup (which interrupts traffic) and the next start");
    auto state = maps.read();
    XLB_ASSERT_OK(state);
    EXPECT_EQ(state->backends.size(), 8u) << "nothing of the refused backend stays";
    std::vector<FrontendEntry> frontends;
    for (ServiceId id = 1; id <= 17; ++id)
      frontends.push_back(frontend("198.18.0." + std::to_string(id), 80, id + 100000, {100001}));
    const Status full = maps.upsert_frontends(frontends);
    ASSERT_FALSE(full);
    EXPECT_NE(full.error().message.find("the datapath is full: it holds at most 16 frontends (service ids). Raise [node] "
                                        "max_services"),
              std::string::npos)
        << full.error().message;
  }
  auto datapath = Datapath::load({pins_, 1000, 2000});
  XLB_ASSERT_OK(datapath);
  const Capacity capacity = datapath->capacity();
  EXPECT_EQ(capacity.services, 16u);
  EXPECT_EQ(capacity.backends, 8u);
  EXPECT_EQ(capacity.note,
            "the pinned maps hold 16 services, adopted as they are: max_services 1000 takes effect after xlbd --cleanup "
            "(which interrupts traffic) and a start; the pinned maps hold 8 backends, adopted as they are: max_backends "
            "2000 takes effect after xlbd --cleanup (which interrupts traffic) and a start");
  auto state = datapath->maps().read();
  XLB_ASSERT_OK(state);
  EXPECT_EQ(state->backends.size(), 8u);
  EXPECT_FALSE(Datapath::load({{}, 0, 10})) << "a capacity of 0";
}

// A batch of backends is one write; one that would pass the capacity is refused whole, and the
// counter slots it would have taken stay free for the next.
TEST_F(DatapathTest, ABatchOfBackendsPastTheCapacityWritesNoneAndTakesNoSlot) {
  auto datapath = Datapath::load({pins_, 16, 8});
  XLB_ASSERT_OK(datapath);
  auto& maps = datapath->maps();
  std::vector<BackendEntry> batch;
  for (BackendId id = 1; id <= 9; ++id) batch.push_back({id, ip("10.0.0." + std::to_string(id)), 80, id % 2 == 0});
  const Status refused = maps.upsert_backends(batch);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message.rfind("write backend 9 (10.0.0.9:80): the datapath is full: it holds at most 8 backends", 0),
            0u)
      << refused.error().message;
  auto state = maps.read();
  XLB_ASSERT_OK(state);
  EXPECT_TRUE(state->backends.empty());

  batch.pop_back();
  XLB_ASSERT_OK(maps.upsert_backends(batch));
  state = maps.read();
  XLB_ASSERT_OK(state);
  ASSERT_EQ(state->backends.size(), 8u);
  for (const auto& b : batch) EXPECT_EQ(state->backends.at(b.id), b);
  const UniqueFd backends(bpf_obj_get((pins_ / "xlb_backends").c_str()));
  ASSERT_TRUE(backends);
  std::set<uint32_t> slots;
  for (BackendId id = 1; id <= 8; ++id) {
    xlb_backend value{};
    ASSERT_EQ(bpf_map_lookup_elem(backends.get(), &id, &value), 0);
    slots.insert(value.stats_slot);
  }
  EXPECT_EQ(slots, (std::set<uint32_t>{1, 2, 3, 4, 5, 6, 7, 8})) << "each backend has a counter slot of its own";
}

// Entries an xlbd from before counter slots wrote hold slot 0 (its xlb_backend.reserved, the
// high bits of its flags): the next start gives each a slot of its own and writes it back.
TEST_F(DatapathTest, EntriesWithoutACounterSlotGetOneWhenAdopted) {
  {
    auto datapath = Datapath::load({pins_});
    XLB_ASSERT_OK(datapath);
    XLB_ASSERT_OK(datapath->maps().upsert_backend({7, ip("10.0.0.7"), 80, false}));
    XLB_ASSERT_OK(datapath->maps().upsert_backend({9, ip("10.0.0.9"), 80, false}));
    XLB_ASSERT_OK(datapath->maps().upsert_frontends({frontend("198.18.0.10", 80, 5, {7, 9})}));
  }
  const UniqueFd backends(bpf_obj_get((pins_ / "xlb_backends").c_str()));
  const UniqueFd services(bpf_obj_get((pins_ / "xlb_services_v4").c_str()));
  ASSERT_TRUE(backends && services);
  for (BackendId id : {7u, 9u}) {
    xlb_backend value{};
    ASSERT_EQ(bpf_map_lookup_elem(backends.get(), &id, &value), 0);
    EXPECT_NE(value.stats_slot, 0u);
    value.stats_slot = 0;
    ASSERT_EQ(bpf_map_update_elem(backends.get(), &id, &value, BPF_ANY), 0);
  }
  xlb_service_key_v4 key{};
  key.address = htonl(0xc6120000 | 10);  // 198.18.0.10
  key.port = htons(80);
  key.protocol = IPPROTO_TCP;
  xlb_service_value service{};
  ASSERT_EQ(bpf_map_lookup_elem(services.get(), &key, &service), 0);
  EXPECT_NE(XLB_SERVICE_STATS_SLOT(service.flags), 0u);
  service.flags &= XLB_SERVICE_FLAGS_MASK;
  ASSERT_EQ(bpf_map_update_elem(services.get(), &key, &service, BPF_ANY), 0);

  auto datapath = Datapath::load({pins_});
  XLB_ASSERT_OK(datapath);
  std::set<uint32_t> slots;
  for (BackendId id : {7u, 9u}) {
    xlb_backend value{};
    ASSERT_EQ(bpf_map_lookup_elem(backends.get(), &id, &value), 0);
    EXPECT_NE(value.stats_slot, 0u) << "backend " << id;
    slots.insert(value.stats_slot);
  }
  EXPECT_EQ(slots.size(), 2u) << "each backend a slot of its own";
  ASSERT_EQ(bpf_map_lookup_elem(services.get(), &key, &service), 0);
  EXPECT_NE(XLB_SERVICE_STATS_SLOT(service.flags), 0u);
  auto state = datapath->maps().read();
  XLB_ASSERT_OK(state);
  EXPECT_EQ(state->frontends.begin()->second.ring, (std::vector<BackendId>{7, 9}));
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

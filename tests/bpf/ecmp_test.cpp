// ECMP across xlb nodes (issue 14): when the routers move an established flow to another node,
// that node has no conntrack entry for it. Its packets (ACKs with data, not SYNs) must then be
// sent by the ring to the backend the first node chose, exactly as a new flow would be, never
// dropped or reset. Here "another node" is this program after the flow's conntrack entry is
// deleted: the same maps (the same rings, which every node builds alike: unit/bgp_ring_test.cpp),
// no state for the flow.
#include <gtest/gtest.h>

#include <algorithm>

#include "bpf/lb_fixture.h"
#include "datapath/flow_hash.h"

namespace xlb::test {
namespace {

constexpr uint32_t kService = 9;

struct Case {
  bool v6;
  bool dsr;
};

void PrintTo(const Case& c, std::ostream* os) { *os << (c.v6 ? "IPv6 " : "IPv4 ") << (c.dsr ? "dsr" : "nat"); }

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  return std::string(info.param.v6 ? "IPv6" : "IPv4") + (info.param.dsr ? "Dsr" : "Nat");
}

class EcmpTakeover : public LbTest, public ::testing::WithParamInterface<Case> {
 protected:
  void SetUp() override {
    LbTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    xlb_dsr_config dsr{};
    dsr.src_v4 = ip("10.99.0.0").words()[0];
    copy_addr(dsr.src_v6, ip("fd00:99::"));
    dsr.src_v4_prefix_len = 16;
    dsr.src_v6_prefix_len = 64;
    const __u32 zero = 0;
    ASSERT_EQ(bpf_map_update_elem(lb_->fd(lb_->xdp()->maps.xlb_dsr), &zero, &dsr, BPF_ANY), 0);
  }

  // What a node that never saw the flow knows of it: nothing in conntrack, nor in the CPUs'
  // flow caches.
  void forget(const xlb_flow_key& key) {
    XLB_ASSERT_OK(lb_->forget_conntrack(key));
    XLB_ASSERT_OK(lb_->clear_flow_cache());
  }

  // Where a frame sent toward a backend goes: the destination of its (outer, for dsr) IP header.
  static IpAddr destination(const Bytes& frame, bool v6) {
    IpAddr a;
    a.family = v6 ? AF_INET6 : AF_INET;
    const size_t at = 14 + (v6 ? 24 : 16);
    if (frame.size() >= at + a.size()) std::copy_n(frame.begin() + static_cast<long>(at), a.size(), a.bytes.begin());
    return a;
  }
};

INSTANTIATE_TEST_SUITE_P(AllModes, EcmpTakeover,
                         ::testing::Values(Case{false, false}, Case{false, true}, Case{true, false}, Case{true, true}),
                         case_name);

TEST_P(EcmpTakeover, AnEstablishedFlowWithoutConntrackGoesByTheRingToItsBackend) {
  const auto [v6, dsr] = GetParam();
  const lbnet::Family f = lbnet::family(v6);
  std::vector<uint32_t> ring(251);
  for (size_t slot = 0; slot < ring.size(); ++slot) ring[slot] = kBackend + static_cast<uint32_t>(slot % 3);
  serve(v6, kTcp, kService, ring, dsr ? XLB_SERVICE_F_DSR : 0);

  std::set<uint32_t> backends;
  for (uint16_t sport = 47000; sport < 47012; ++sport) {
    const xlb_flow_key key = flow_key(f.client, sport, f.frontend, kFrontendPort, kTcp);
    // The SYN on the first node.
    const PacketSpec syn = from_client(v6, kTcp, sport, "");
    const TestRun first = xdp(build_frame(syn));
    ASSERT_NE(xdp_action(first.action), "XDP_DROP");
    const std::optional<xlb_ct_entry> ct = lb_->conntrack(key);
    ASSERT_TRUE(ct.has_value());
    const uint32_t chosen = ct->backend_id;
    backends.insert(chosen);

    // A later segment of the flow on a node that never saw it.
    forget(key);
    PacketSpec data = from_client(v6, kTcp, sport, "GET / HTTP/1.1\r\n");
    data.tcp_flags = 0x18;  // PSH ACK
    data.seq = 1001;
    data.ack = 5001;
    const TestRun later = xdp(build_frame(data));
    const std::string action = xdp_action(later.action);
    EXPECT_TRUE(action == "XDP_REDIRECT" || action == "XDP_TX") << "port " << sport << ": " << action;
    const uint32_t slot = datapath::flow_hash(key) % 251;
    EXPECT_EQ(ring[slot] + (v6 ? kV6 : 0), chosen) << "the SYN took the ring's slot too";
    const int i = static_cast<int>(ring[slot] - kBackend);
    EXPECT_EQ(destination(later.out, v6), f.backend[i]) << "port " << sport << ": not toward the flow's backend";
    if (dsr) {
      // The client's packet, unchanged, inside: the backend answers it as its own.
      const Bytes inner = build_ip(data);
      ASSERT_GE(later.out.size(), inner.size());
      EXPECT_TRUE(std::equal(inner.begin(), inner.end(), later.out.end() - static_cast<long>(inner.size())))
          << "port " << sport << ": the inner packet changed";
    } else {
      EXPECT_EQ(hex(later.out), hex(build_frame(to_backend(data, i)))) << "port " << sport;
    }
    // The new node now keeps the flow on that backend like the first did.
    const std::optional<xlb_ct_entry> again = lb_->conntrack(key);
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(again->backend_id, chosen);
  }
  EXPECT_GE(backends.size(), 2u) << "12 flows should reach more than one backend";
}

}  // namespace
}  // namespace xlb::test

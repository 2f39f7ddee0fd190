// The tc balancer (bpf/xlb_tc.bpf.c: xlb_tc_lb, for [node] xdp_mode = "tc") on the real kernel:
// what xdp_test.cpp checks of the XDP program, on an skb (dsr: dsr_test.cpp). Packets from the
// client link in, the verdict and the exact bytes out (support/packet.h computes every checksum
// from scratch), and the same maps written as XDP writes them.
#include <gtest/gtest.h>

#include "bpf/lb_fixture.h"

namespace xlb::test {
namespace {

struct Case {
  bool v6;
  uint8_t protocol;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << (c.v6 ? "IPv6 " : "IPv4 ") << (c.protocol == kTcp ? "TCP" : "UDP");
}

class TcBalance : public LbTest, public ::testing::WithParamInterface<Case> {};

INSTANTIATE_TEST_SUITE_P(AllFamilies, TcBalance,
                         ::testing::Values(Case{false, kTcp}, Case{false, kUdp}, Case{true, kTcp}, Case{true, kUdp}),
                         [](const ::testing::TestParamInfo<Case>& p) {
                           return std::string(p.param.v6 ? "IPv6" : "IPv4") +
                                  (p.param.protocol == kTcp ? "Tcp" : "Udp");
                         });

// IPv4 TCP (DNAT, IP and TCP checksums) and IPv6 UDP among the four.
TEST_P(TcBalance, NatTranslatesToTheBackendAndRedirectsToItsLink) {
  const auto [v6, protocol] = GetParam();
  serve(v6, protocol, 7, {kBackend + 1});
  const PacketSpec in = from_client(v6, protocol, 40000);

  const TestRun run = tc_lb(build_frame(in));

  EXPECT_EQ(tc_action(run.action), "TC_ACT_REDIRECT");
  EXPECT_EQ(hex(run.out), hex(build_frame(to_backend(in, 1))));
  const lbnet::Family f = lbnet::family(v6);
  const std::optional<xlb_ct_entry> ct = lb_->conntrack(flow_key(f.client, 40000, f.frontend, kFrontendPort, protocol));
  ASSERT_TRUE(ct.has_value()) << "no conntrack entry for the flow";
  EXPECT_EQ(ct->backend_id, id(v6, kBackend + 1));
  EXPECT_EQ(ct->service_id, 7U);
  EXPECT_EQ(ct->snat_port, 0);
  EXPECT_FALSE(lb_->reverse_nat(flow_key(f.backend[1], kBackendPort, f.client, 40000, protocol)).has_value())
      << "a nat reply finds its flow in conntrack";

  const uint64_t bytes = build_frame(in).size();
  EXPECT_EQ(lb_->service(7).packets, 1U);
  EXPECT_EQ(lb_->service(7).bytes, bytes);
  EXPECT_EQ(lb_->service(7).new_flows, 1U);
  EXPECT_EQ(lb_->backend(id(v6, kBackend + 1)).packets, 1U);
  EXPECT_EQ(reason_packets(XLB_REASON_FORWARDED), 1U);
}

TEST_P(TcBalance, SecondPacketTakesTheCachedRouteWithTheSameBytes) {
  const auto [v6, protocol] = GetParam();
  serve(v6, protocol, 7, {kBackend});
  PacketSpec in = from_client(v6, protocol, 40100);
  ASSERT_EQ(tc_action(tc_lb(build_frame(in)).action), "TC_ACT_REDIRECT");
  in.seq = 1006;
  in.tcp_flags = 0x10;
  in.payload = text("second packet");

  const TestRun run = tc_lb(build_frame(in));

  EXPECT_EQ(tc_action(run.action), "TC_ACT_REDIRECT");
  EXPECT_EQ(hex(run.out), hex(build_frame(to_backend(in, 0))));
  EXPECT_EQ(lb_->service(7).packets, 2U);
  EXPECT_EQ(lb_->service(7).new_flows, 1U);
}

// A train of segments (GSO, from a veth or GRO) is measured by its segments against the route
// to the backend: sent on whole when they fit, left to the stack when they do not.
TEST_P(TcBalance, GsoTrainIsSentOnWhenItsSegmentsFitTheRoute) {
  const auto [v6, protocol] = GetParam();
  serve(v6, protocol, 7, {kBackend + 1});
  const PacketSpec train = from_client(v6, protocol, 40000, std::string(2800, 'x'));
  constexpr uint32_t kSegment = 1400;
  const int balancer = bpf_program__fd(lb_->tc()->progs.xlb_tc_lb);

  Result<TestRun> run = lb_->run_tc(build_frame(train), client_link_, balancer, kSegment);
  XLB_ASSERT_OK(run);
  EXPECT_EQ(tc_action(run->action), "TC_ACT_REDIRECT");
  EXPECT_EQ(hex(run->out), hex(build_frame(to_backend(train, 1))));

  XLB_ASSERT_OK(run_command({"/usr/sbin/ip", "link", "set", lbnet::kBackendLink, "mtu", "1280"}));
  XLB_ASSERT_OK(lb_->age_backend_cache(id(v6, kBackend + 1)));
  run = lb_->run_tc(build_frame(train), client_link_, balancer, kSegment);
  XLB_ASSERT_OK(run);
  EXPECT_EQ(tc_action(run->action), "TC_ACT_OK");
  EXPECT_EQ(reason_packets(XLB_PASS_FRAG_NEEDED), 1U);
}

TEST_P(TcBalance, SnatTranslatesSourceToTheNodeAndAPortOfItsRange) {
  const auto [v6, protocol] = GetParam();
  const lbnet::Family f = lbnet::family(v6);
  serve(v6, protocol, 9, {kBackend + 2}, XLB_SERVICE_F_SNAT);
  const PacketSpec in = from_client(v6, protocol, 41000);

  const TestRun run = tc_lb(build_frame(in));

  EXPECT_EQ(tc_action(run.action), "TC_ACT_REDIRECT");
  const std::optional<xlb_ct_entry> ct = lb_->conntrack(flow_key(f.client, 41000, f.frontend, kFrontendPort, protocol));
  ASSERT_TRUE(ct.has_value());
  const uint16_t port = ntohs(ct->snat_port);
  EXPECT_GE(port, kSnatPortMin);
  EXPECT_LE(port, kSnatPortMax);
  PacketSpec out = to_backend(in, 2);
  out.src = f.node;
  out.sport = port;
  EXPECT_EQ(hex(run.out), hex(build_frame(out)));

  // The reply, through the same program (the link's only xlb program at tc ingress).
  const PacketSpec reply = from_backend(v6, protocol, 2, f.node, port);
  const TestRun back = lb_->run_tc(build_frame(reply), backend_link_, bpf_program__fd(lb_->tc()->progs.xlb_tc_lb)).value();
  EXPECT_EQ(tc_action(back.action), "TC_ACT_REDIRECT");
  EXPECT_EQ(hex(back.out), hex(build_frame(to_client(reply, f.client, 41000))));
}

TEST_P(TcBalance, PacketNotForAFrontendPassesUnchanged) {
  const auto [v6, protocol] = GetParam();
  serve(v6, protocol, 7, {kBackend});
  PacketSpec in = from_client(v6, protocol, 40200);
  in.dport = kFrontendPort + 1;  // the frontend's address, another port
  const Bytes frame = build_frame(in);

  const TestRun run = tc_lb(frame);

  EXPECT_EQ(tc_action(run.action), "TC_ACT_OK");
  EXPECT_EQ(hex(run.out), hex(frame));
  EXPECT_EQ(reason_packets(XLB_PASS_NOT_SERVICE), 1U);
  EXPECT_EQ(lb_->service(7).packets, 0U);
}

TEST_P(TcBalance, EstablishedFlowKeepsItsBackendWhenTheRingChanges) {
  const auto [v6, protocol] = GetParam();
  serve(v6, protocol, 7, std::vector<uint32_t>(251, kBackend));
  const PacketSpec old_flow = from_client(v6, protocol, 44000);
  ASSERT_EQ(hex(tc_lb(build_frame(old_flow)).out), hex(build_frame(to_backend(old_flow, 0))));

  // Every slot now names backend 2: a new pick could only give 2. The route cache is emptied
  // so that the established flow goes through conntrack, not only the cache.
  serve(v6, protocol, 7, std::vector<uint32_t>(251, kBackend + 1));
  XLB_ASSERT_OK(lb_->clear_backend_cache(id(v6, kBackend)));

  EXPECT_EQ(hex(tc_lb(build_frame(old_flow)).out), hex(build_frame(to_backend(old_flow, 0))))
      << "the established flow moved";
  const PacketSpec new_flow = from_client(v6, protocol, 44001);
  EXPECT_EQ(hex(tc_lb(build_frame(new_flow)).out), hex(build_frame(to_backend(new_flow, 1))))
      << "a new flow must follow the new ring";
}

// As in XDP (xdp_test.cpp): a SYN on a reused client port leaves a draining backend.
TEST_P(TcBalance, SynOnAReusedPortIsANewFlowWhenItsOldBackendDrains) {
  const auto [v6, protocol] = GetParam();
  if (protocol != kTcp) GTEST_SKIP() << "only TCP says which packet opens a connection";
  serve(v6, protocol, 7, {kBackend});
  const PacketSpec syn = from_client(v6, protocol, 44002);
  PacketSpec ack = syn;
  ack.tcp_flags = 0x10;
  ASSERT_EQ(hex(tc_lb(build_frame(syn)).out), hex(build_frame(to_backend(syn, 0))));

  XLB_ASSERT_OK(lb_->upsert_backend(id(v6, kBackend), lbnet::family(v6).backend[0], kBackendPort,
                                    XLB_BACKEND_DRAINING));
  serve(v6, protocol, 7, {kBackend + 1});

  EXPECT_EQ(hex(tc_lb(build_frame(ack)).out), hex(build_frame(to_backend(ack, 0))));
  EXPECT_EQ(hex(tc_lb(build_frame(syn)).out), hex(build_frame(to_backend(syn, 1))));
}

TEST_P(TcBalance, EmptyRingDropsAndCountsNoBackend) {
  const auto [v6, protocol] = GetParam();
  serve(v6, protocol, 7, {});

  const TestRun run = tc_lb(build_frame(from_client(v6, protocol, 40300)));

  EXPECT_EQ(tc_action(run.action), "TC_ACT_SHOT");
  EXPECT_EQ(reason_packets(XLB_DROP_NO_BACKEND), 1U);
}

TEST_P(TcBalance, UnresolvedNeighbourIsLeftToTheStackTranslated) {
  const auto [v6, protocol] = GetParam();
  serve(v6, protocol, 7, {kUnresolvedBackend});
  const lbnet::Family f = lbnet::family(v6);
  const PacketSpec in = from_client(v6, protocol, 40500);

  const TestRun run = tc_lb(build_frame(in));

  EXPECT_EQ(tc_action(run.action), "TC_ACT_OK");
  PacketSpec out = in;  // translated, MACs and TTL as they came: the stack forwards it
  out.dst = f.unresolved_backend;
  out.dport = kBackendPort;
  EXPECT_EQ(hex(run.out), hex(build_frame(out)));
  EXPECT_EQ(reason_packets(XLB_PASS_NO_NEIGHBOUR), 1U);
}

// Not IP at all (ARP): untouched.
TEST_F(LbTest, TcBalancerPassesArpUntouched) {
  PacketSpec in = from_client(false, kUdp, 40600);
  in.ethertype = 0x0806;
  const Bytes frame = build_frame(in);

  const TestRun run = tc_lb(frame);

  EXPECT_EQ(tc_action(run.action), "TC_ACT_OK");
  EXPECT_EQ(hex(run.out), hex(frame));
  EXPECT_EQ(reason_packets(XLB_PASS_NOT_IP), 1U);
}

}  // namespace
}  // namespace xlb::test

// The tc program (bpf/xlb_tc.bpf.c) on the real kernel: replies from backends, translated by
// what the XDP program recorded for their flows (nat: conntrack; snat: the reverse-NAT entry),
// so that the client only ever sees the frontend. Exact bytes out, as in xdp_test.cpp.
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

class TcReply : public LbTest, public ::testing::WithParamInterface<Case> {};

INSTANTIATE_TEST_SUITE_P(AllFamilies, TcReply,
                         ::testing::Values(Case{false, kTcp}, Case{false, kUdp}, Case{true, kTcp}, Case{true, kUdp}),
                         [](const ::testing::TestParamInfo<Case>& p) {
                           return std::string(p.param.v6 ? "IPv6" : "IPv4") +
                                  (p.param.protocol == kTcp ? "Tcp" : "Udp");
                         });

TEST_P(TcReply, NatReplyComesFromTheFrontend) {
  const auto [v6, protocol] = GetParam();
  const lbnet::Family f = lbnet::family(v6);
  serve(v6, protocol, 7, {kBackend});
  ASSERT_EQ(xdp_action(xdp(build_frame(from_client(v6, protocol, 40000))).action), "XDP_REDIRECT");
  const PacketSpec reply = from_backend(v6, protocol, 0, f.client, 40000);

  const TestRun run = tc(build_frame(reply));

  EXPECT_EQ(tc_action(run.action), "TC_ACT_REDIRECT");
  EXPECT_EQ(hex(run.out), hex(build_frame(to_client(reply, f.client, 40000))));
  EXPECT_EQ(lb_->service(7).packets, 2U) << "the request and the reply";
  EXPECT_EQ(lb_->service(7).new_flows, 1U);
  EXPECT_EQ(lb_->backend(id(v6, kBackend)).packets, 2U);
  EXPECT_EQ(reason_packets(XLB_REASON_FORWARDED), 2U);
}

TEST_P(TcReply, SnatReplyGoesBackToTheClientFromTheFrontend) {
  const auto [v6, protocol] = GetParam();
  const lbnet::Family f = lbnet::family(v6);
  serve(v6, protocol, 9, {kBackend + 2}, XLB_SERVICE_F_SNAT);
  ASSERT_EQ(xdp_action(xdp(build_frame(from_client(v6, protocol, 41000))).action), "XDP_REDIRECT");
  const uint16_t port = ntohs(lb_->conntrack(flow_key(f.client, 41000, f.frontend, kFrontendPort, protocol))->snat_port);
  const PacketSpec reply = from_backend(v6, protocol, 2, f.node, port);

  const TestRun run = tc(build_frame(reply));

  EXPECT_EQ(tc_action(run.action), "TC_ACT_REDIRECT");
  EXPECT_EQ(hex(run.out), hex(build_frame(to_client(reply, f.client, 41000))));
  EXPECT_EQ(lb_->backend(id(v6, kBackend + 2)).packets, 2U);
}

TEST_P(TcReply, PacketsThatAreNoReplyOfABalancedFlowLeaveUntouchedAndUncounted) {
  const auto [v6, protocol] = GetParam();
  const lbnet::Family f = lbnet::family(v6);
  serve(v6, protocol, 7, {kBackend});
  ASSERT_EQ(xdp_action(xdp(build_frame(from_client(v6, protocol, 40000))).action), "XDP_REDIRECT");

  PacketSpec other_client_port = from_backend(v6, protocol, 0, f.client, 40001);
  PacketSpec other_backend = from_backend(v6, protocol, 1, f.client, 40000);
  PacketSpec other_backend_port = from_backend(v6, protocol, 0, f.client, 40000);
  other_backend_port.sport = kBackendPort + 1;
  PacketSpec request_passing_through = from_client(v6, protocol, 40000);
  for (const PacketSpec& spec : {other_client_port, other_backend, other_backend_port, request_passing_through}) {
    const Bytes frame = build_frame(spec);
    const TestRun run = tc(frame);
    EXPECT_EQ(tc_action(run.action), "TC_ACT_OK");
    EXPECT_EQ(hex(run.out), hex(frame));
  }
  EXPECT_EQ(reason_packets(XLB_REASON_FORWARDED), 1U) << "only the request";
  EXPECT_EQ(reason_packets(XLB_PASS_NOT_SERVICE), 0U);
}

TEST_P(TcReply, TtlOfOneLeavesUntranslatedForTheKernelToAnswer) {
  const auto [v6, protocol] = GetParam();
  const lbnet::Family f = lbnet::family(v6);
  serve(v6, protocol, 7, {kBackend});
  ASSERT_EQ(xdp_action(xdp(build_frame(from_client(v6, protocol, 40000))).action), "XDP_REDIRECT");
  PacketSpec reply = from_backend(v6, protocol, 0, f.client, 40000);
  reply.ttl = 1;
  const Bytes frame = build_frame(reply);

  const TestRun run = tc(frame);

  EXPECT_EQ(tc_action(run.action), "TC_ACT_OK");
  EXPECT_EQ(hex(run.out), hex(frame));
  EXPECT_EQ(reason_packets(XLB_PASS_TTL_EXPIRED), 1U);
}

TEST_P(TcReply, ClientWhoseMacIsUnknownGetsTheReplyThroughTheStack) {
  const auto [v6, protocol] = GetParam();
  const IpAddr client = ip(v6 ? "2001:db8:c::77" : "192.0.2.77");  // no neighbour entry
  serve(v6, protocol, 7, {kBackend});
  PacketSpec request = from_client(v6, protocol, 40000);
  request.src = client;
  ASSERT_EQ(xdp_action(xdp(build_frame(request)).action), "XDP_REDIRECT");
  const PacketSpec reply = from_backend(v6, protocol, 0, client, 40000);

  const TestRun run = tc(build_frame(reply));

  // Translated; MACs and TTL as they came, for the stack's forwarding to handle.
  PacketSpec expected = reply;
  expected.src = lbnet::family(v6).frontend;
  expected.sport = kFrontendPort;
  EXPECT_EQ(tc_action(run.action), "TC_ACT_OK");
  EXPECT_EQ(hex(run.out), hex(build_frame(expected)));
  EXPECT_EQ(reason_packets(XLB_PASS_NO_NEIGHBOUR), 1U);
}

// A reply takes the route its CPU kept for replies from the same frontend to the same client
// (bpf/lib/route_cache.h) while it is less than a second old: the first reply asked the kernel,
// the second is sent by the kept answer even though the client's MAC changed in between.
TEST_P(TcReply, ChangedClientNeighbourIsFollowedWhenTheRouteCacheIsASecondOld) {
  const auto [v6, protocol] = GetParam();
  const lbnet::Family f = lbnet::family(v6);
  serve(v6, protocol, 7, {kBackend});
  ASSERT_EQ(xdp_action(xdp(build_frame(from_client(v6, protocol, 40000))).action), "XDP_REDIRECT");
  const PacketSpec reply = from_backend(v6, protocol, 0, f.client, 40000);
  const OnThisCpu pinned;
  ASSERT_EQ(hex(tc(build_frame(reply)).out), hex(build_frame(to_client(reply, f.client, 40000))));
  const Mac moved{0x02, 0, 0, 0, 0x0c, 0x99};
  XLB_ASSERT_OK(run_command({"/usr/sbin/ip", "neigh", "replace", f.client.str(), "lladdr", lbnet::mac_text(moved),
                             "nud", "permanent", "dev", lbnet::kClientLink}));

  EXPECT_EQ(hex(tc(build_frame(reply)).out), hex(build_frame(to_client(reply, f.client, 40000))))
      << "within the second, the route the first reply found";

  XLB_ASSERT_OK(lb_->clear_route_cache());
  PacketSpec expected = to_client(reply, f.client, 40000);
  expected.eth_dst = moved;
  EXPECT_EQ(hex(tc(build_frame(reply)).out), hex(build_frame(expected)));
  EXPECT_EQ(reason_packets(XLB_REASON_FORWARDED), 4U) << "the request and three replies";
}

TEST_P(TcReply, ReplyLongerThanTheCachedRouteAllowedAsksAgain) {
  const auto [v6, protocol] = GetParam();
  const lbnet::Family f = lbnet::family(v6);
  serve(v6, protocol, 7, {kBackend});
  ASSERT_EQ(xdp_action(xdp(build_frame(from_client(v6, protocol, 40000))).action), "XDP_REDIRECT");
  ASSERT_EQ(tc_action(tc(build_frame(from_backend(v6, protocol, 0, f.client, 40000))).action), "TC_ACT_REDIRECT");
  XLB_ASSERT_OK(run_command({"/usr/sbin/ip", "link", "set", lbnet::kClientLink, "mtu", "1280"}));

  // The kept answer was for a short reply: a long one must meet the smaller MTU.
  const TestRun run = tc(build_frame(from_backend(v6, protocol, 0, f.client, 40000, std::string(1300, 'x'))));

  EXPECT_EQ(tc_action(run.action), "TC_ACT_OK");
  EXPECT_EQ(reason_packets(XLB_PASS_FRAG_NEEDED), 1U);
}

// A backend on a veth sends trains of segments (GSO): each segment, not the train, must fit the
// route back to the client; then the train is sent on whole (its segments are cut on the way
// out) instead of through the stack.
TEST_P(TcReply, GsoTrainIsSentOnWhenItsSegmentsFitTheRoute) {
  const auto [v6, protocol] = GetParam();
  const lbnet::Family f = lbnet::family(v6);
  serve(v6, protocol, 7, {kBackend});
  ASSERT_EQ(xdp_action(xdp(build_frame(from_client(v6, protocol, 40000))).action), "XDP_REDIRECT");
  const PacketSpec train = from_backend(v6, protocol, 0, f.client, 40000, std::string(2800, 'x'));
  constexpr uint32_t kSegment = 1400;  // payload bytes a segment: 1460 (IPv4 TCP) to 1448 (IPv6 UDP) of IP

  Result<TestRun> run = lb_->run_tc(build_frame(train), backend_link_, -1, kSegment);
  XLB_ASSERT_OK(run);
  EXPECT_EQ(tc_action(run->action), "TC_ACT_REDIRECT");
  EXPECT_EQ(hex(run->out), hex(build_frame(to_client(train, f.client, 40000))));

  // Segments that no longer fit the link are the stack's to forward (and answer).
  XLB_ASSERT_OK(run_command({"/usr/sbin/ip", "link", "set", lbnet::kClientLink, "mtu", "1280"}));
  XLB_ASSERT_OK(lb_->clear_route_cache());
  run = lb_->run_tc(build_frame(train), backend_link_, -1, kSegment);
  XLB_ASSERT_OK(run);
  EXPECT_EQ(tc_action(run->action), "TC_ACT_OK");
  EXPECT_EQ(reason_packets(XLB_PASS_FRAG_NEEDED), 1U);
}

// Routes chosen by source (policy routing) are kept apart: replies from two frontends to one
// client go the ways the node's rules give each, whichever asked first.
TEST_P(TcReply, RepliesFromAnotherFrontendTakeTheirOwnRoute) {
  const auto [v6, protocol] = GetParam();
  const lbnet::Family f = lbnet::family(v6);
  serve(v6, protocol, 7, {kBackend});
  serve(v6, protocol, 8, {kBackend}, 0, 0, f.other_frontend);
  const std::string family = v6 ? "-6" : "-4";
  XLB_ASSERT_OK(run_command({"/usr/sbin/ip", family, "rule", "add", "from", f.other_frontend.str(), "lookup", "100"}));
  XLB_ASSERT_OK(run_command({"/usr/sbin/ip", family, "route", "add", f.client.str(), "via", f.backend[1].str(), "dev",
                             lbnet::kBackendLink, "table", "100"}));
  PacketSpec to_other = from_client(v6, protocol, 40001);
  to_other.dst = f.other_frontend;
  ASSERT_EQ(xdp_action(xdp(build_frame(from_client(v6, protocol, 40000))).action), "XDP_REDIRECT");
  ASSERT_EQ(xdp_action(xdp(build_frame(to_other)).action), "XDP_REDIRECT");
  const PacketSpec reply = from_backend(v6, protocol, 0, f.client, 40000);
  const OnThisCpu pinned;  // the second reply finds what the first one kept
  ASSERT_EQ(hex(tc(build_frame(reply)).out), hex(build_frame(to_client(reply, f.client, 40000))));

  const PacketSpec other_reply = from_backend(v6, protocol, 0, f.client, 40001);
  const TestRun run = tc(build_frame(other_reply));

  PacketSpec expected = to_client(other_reply, f.client, 40001);
  expected.src = f.other_frontend;
  expected.eth_src = lbnet::kBackendLinkMac;
  expected.eth_dst = lbnet::backend_mac(1);
  EXPECT_EQ(tc_action(run.action), "TC_ACT_REDIRECT");
  EXPECT_EQ(hex(run.out), hex(build_frame(expected)));
}

// A nat reply is known by its client and its backend (conntrack.h): one client port to two
// frontends, served by two backends, gets each reply back from its own frontend.
TEST_P(TcReply, OneClientPortToTwoFrontendsGetsEachReplyFromItsOwn) {
  const auto [v6, protocol] = GetParam();
  const lbnet::Family f = lbnet::family(v6);
  serve(v6, protocol, 7, {kBackend});
  serve(v6, protocol, 8, {kBackend + 1}, 0, 0, f.other_frontend);
  PacketSpec to_other = from_client(v6, protocol, 40000);
  to_other.dst = f.other_frontend;
  ASSERT_EQ(xdp_action(xdp(build_frame(from_client(v6, protocol, 40000))).action), "XDP_REDIRECT");
  ASSERT_EQ(xdp_action(xdp(build_frame(to_other)).action), "XDP_REDIRECT");
  const PacketSpec reply = from_backend(v6, protocol, 0, f.client, 40000);
  const PacketSpec other_reply = from_backend(v6, protocol, 1, f.client, 40000);
  PacketSpec other_expected = to_client(other_reply, f.client, 40000);
  other_expected.src = f.other_frontend;

  EXPECT_EQ(hex(tc(build_frame(reply)).out), hex(build_frame(to_client(reply, f.client, 40000))));
  EXPECT_EQ(hex(tc(build_frame(other_reply)).out), hex(build_frame(other_expected)));
  EXPECT_EQ(lb_->service(7).packets, 2U);
  EXPECT_EQ(lb_->service(8).packets, 2U);
  EXPECT_EQ(lb_->backend(id(v6, kBackend + 1)).packets, 2U);
}

// ---- UDP without a checksum ------------------------------------------------------------------

class UdpWithoutChecksum : public LbTest {};

TEST_F(UdpWithoutChecksum, StaysWithoutOneBothWays) {
  const lbnet::Family f = lbnet::v4();
  serve(false, kUdp, 7, {kBackend});
  PacketSpec request = from_client(false, kUdp, 40000);
  request.udp_no_checksum = true;

  const TestRun forward = xdp(build_frame(request));
  EXPECT_EQ(xdp_action(forward.action), "XDP_REDIRECT");
  EXPECT_EQ(hex(forward.out), hex(build_frame(to_backend(request, 0))));

  PacketSpec reply = from_backend(false, kUdp, 0, f.client, 40000);
  reply.udp_no_checksum = true;
  const TestRun back = tc(build_frame(reply));
  EXPECT_EQ(tc_action(back.action), "TC_ACT_REDIRECT");
  EXPECT_EQ(hex(back.out), hex(build_frame(to_client(reply, f.client, 40000))));
}

}  // namespace
}  // namespace xlb::test

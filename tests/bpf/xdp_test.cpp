// The XDP program (bpf/xlb_xdp.bpf.c) on the real kernel, by BPF_PROG_TEST_RUN: hand-made
// packets in, and out the action and the exact bytes, built independently by
// support/packet.h (checksums from scratch). Route lookups see the links of support/lb_netns.h
// in a private network namespace per test.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <set>

#include "bpf/lb_fixture.h"
#include "datapath/flow_hash.h"

namespace xlb::test {
namespace {

struct Case {
  bool v6;
  uint8_t protocol;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << (c.v6 ? "IPv6 " : "IPv4 ") << (c.protocol == kTcp ? "TCP" : "UDP");
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  return std::string(info.param.v6 ? "IPv6" : "IPv4") + (info.param.protocol == kTcp ? "Tcp" : "Udp");
}

class XdpBalance : public LbTest, public ::testing::WithParamInterface<Case> {};

INSTANTIATE_TEST_SUITE_P(AllFamilies, XdpBalance,
                         ::testing::Values(Case{false, kTcp}, Case{false, kUdp}, Case{true, kTcp}, Case{true, kUdp}),
                         case_name);

// ---- nat ------------------------------------------------------------------------------------

TEST_P(XdpBalance, NatTranslatesToTheBackendAndRedirectsToItsLink) {
  const auto [v6, protocol] = GetParam();
  serve(v6, protocol, 7, {kBackend + 1});
  const PacketSpec in = from_client(v6, protocol, 40000);

  const TestRun run = xdp(build_frame(in));

  EXPECT_EQ(xdp_action(run.action), "XDP_REDIRECT");
  EXPECT_EQ(hex(run.out), hex(build_frame(to_backend(in, 1))));
  const lbnet::Family f = lbnet::family(v6);
  const std::optional<xlb_ct_entry> ct = lb_->conntrack(flow_key(f.client, 40000, f.frontend, kFrontendPort, protocol));
  ASSERT_TRUE(ct.has_value()) << "no conntrack entry for the flow";
  EXPECT_EQ(ct->backend_id, id(v6, kBackend + 1));
  EXPECT_EQ(ct->service_id, 7U);
  EXPECT_EQ(ct->snat_port, 0);

  // A nat reply finds its flow in conntrack (xlb_tc's xlb_nat_reply): no reverse entry.
  EXPECT_FALSE(lb_->reverse_nat(flow_key(f.backend[1], kBackendPort, f.client, 40000, protocol)).has_value());

  const uint64_t bytes = build_frame(in).size();
  EXPECT_EQ(lb_->service(7).packets, 1U);
  EXPECT_EQ(lb_->service(7).bytes, bytes);
  EXPECT_EQ(lb_->service(7).new_flows, 1U);
  EXPECT_EQ(lb_->backend(id(v6, kBackend + 1)).packets, 1U);
  EXPECT_EQ(lb_->backend(id(v6, kBackend + 1)).new_flows, 1U);
  EXPECT_EQ(reason_packets(XLB_REASON_FORWARDED), 1U);
}

TEST_P(XdpBalance, LaterPacketsOfTheFlowAreNotNewFlows) {
  const auto [v6, protocol] = GetParam();
  serve(v6, protocol, 7, {kBackend});
  PacketSpec in = from_client(v6, protocol, 40000);
  ASSERT_EQ(xdp_action(xdp(build_frame(in)).action), "XDP_REDIRECT");

  in.seq = 1006;
  in.tcp_flags = 0x10;  // ACK
  in.payload = text("second packet");
  const TestRun run = xdp(build_frame(in));

  EXPECT_EQ(xdp_action(run.action), "XDP_REDIRECT");
  EXPECT_EQ(hex(run.out), hex(build_frame(to_backend(in, 0))));
  EXPECT_EQ(lb_->service(7).packets, 2U);
  EXPECT_EQ(lb_->service(7).new_flows, 1U);
}

TEST_P(XdpBalance, BackendOnTheIngressLinkIsReachedByXdpTx) {
  const auto [v6, protocol] = GetParam();
  serve(v6, protocol, 7, {kLocalBackend});
  const PacketSpec in = from_client(v6, protocol, 40001);

  const TestRun run = xdp(build_frame(in));

  PacketSpec expected = in;
  expected.eth_src = lbnet::kClientLinkMac;
  expected.eth_dst = lbnet::kLocalBackendMac;
  expected.dst = lbnet::family(v6).local_backend;
  expected.dport = kBackendPort;
  expected.ttl = 63;
  EXPECT_EQ(xdp_action(run.action), "XDP_TX");
  EXPECT_EQ(hex(run.out), hex(build_frame(expected)));
}

TEST_P(XdpBalance, UnknownNeighbourIsPassedTranslatedForTheStackToForward) {
  const auto [v6, protocol] = GetParam();
  serve(v6, protocol, 7, {kUnresolvedBackend});
  const PacketSpec in = from_client(v6, protocol, 40002);

  const TestRun run = xdp(build_frame(in));

  // Translated, but MACs and TTL as they came: the stack routes it and decrements the TTL.
  PacketSpec expected = in;
  expected.dst = lbnet::family(v6).unresolved_backend;
  expected.dport = kBackendPort;
  EXPECT_EQ(xdp_action(run.action), "XDP_PASS");
  EXPECT_EQ(hex(run.out), hex(build_frame(expected)));
  EXPECT_EQ(reason_packets(XLB_PASS_NO_NEIGHBOUR), 1U);
  EXPECT_EQ(lb_->service(7).packets, 1U);
}

TEST_P(XdpBalance, NoRouteToTheBackendIsDropped) {
  const auto [v6, protocol] = GetParam();
  serve(v6, protocol, 7, {kUnroutableBackend});
  const Bytes in = build_frame(from_client(v6, protocol, 40003));

  const TestRun run = xdp(in);

  EXPECT_EQ(xdp_action(run.action), "XDP_DROP");
  EXPECT_EQ(reason_packets(XLB_DROP_NO_ROUTE), 1U);
  EXPECT_EQ(lb_->service(7).packets, 0U);
}

TEST_P(XdpBalance, SmallerMtuTowardTheBackendIsLeftToTheStack) {
  const auto [v6, protocol] = GetParam();
  XLB_ASSERT_OK(run_command({"/usr/sbin/ip", "link", "set", lbnet::kBackendLink, "mtu", "1280"}));
  serve(v6, protocol, 7, {kBackend});
  const PacketSpec in = from_client(v6, protocol, 40004, std::string(1300, 'x'));

  const TestRun run = xdp(build_frame(in));

  PacketSpec expected = in;
  expected.dst = lbnet::family(v6).backend[0];
  expected.dport = kBackendPort;
  EXPECT_EQ(xdp_action(run.action), "XDP_PASS");
  EXPECT_EQ(hex(run.out), hex(build_frame(expected)));
  EXPECT_EQ(reason_packets(XLB_PASS_FRAG_NEEDED), 1U);
}

TEST_P(XdpBalance, VlanTaggedPacketIsBalancedWithItsTag) {
  const auto [v6, protocol] = GetParam();
  serve(v6, protocol, 7, {kBackend + 2});
  PacketSpec in = from_client(v6, protocol, 40005);
  in.vlan_tci = 100;

  const TestRun run = xdp(build_frame(in));

  EXPECT_EQ(xdp_action(run.action), "XDP_REDIRECT");
  EXPECT_EQ(hex(run.out), hex(build_frame(to_backend(in, 2))));
}

TEST_P(XdpBalance, TtlOfOneIsPassedUntouchedForTheKernelToAnswer) {
  const auto [v6, protocol] = GetParam();
  serve(v6, protocol, 7, {kBackend});
  PacketSpec in = from_client(v6, protocol, 40006);
  in.ttl = 1;
  const Bytes frame = build_frame(in);

  const TestRun run = xdp(frame);

  EXPECT_EQ(xdp_action(run.action), "XDP_PASS");
  EXPECT_EQ(hex(run.out), hex(frame));
  EXPECT_EQ(reason_packets(XLB_PASS_TTL_EXPIRED), 1U);
}

// ---- snat -----------------------------------------------------------------------------------

TEST_P(XdpBalance, SnatTranslatesTheSourceToTheNodeAndAPortThatStaysWithTheFlow) {
  const auto [v6, protocol] = GetParam();
  const lbnet::Family f = lbnet::family(v6);
  serve(v6, protocol, 9, {kBackend}, XLB_SERVICE_F_SNAT);
  PacketSpec in = from_client(v6, protocol, 41000);

  const TestRun first = xdp(build_frame(in));

  ASSERT_EQ(xdp_action(first.action), "XDP_REDIRECT");
  const std::optional<xlb_ct_entry> ct = lb_->conntrack(flow_key(f.client, 41000, f.frontend, kFrontendPort, protocol));
  ASSERT_TRUE(ct.has_value());
  const uint16_t port = ntohs(ct->snat_port);
  EXPECT_GE(port, kSnatPortMin);
  EXPECT_LE(port, kSnatPortMax);
  PacketSpec expected = to_backend(in, 0);
  expected.src = f.node;
  expected.sport = port;
  EXPECT_EQ(hex(first.out), hex(build_frame(expected)));

  const std::optional<xlb_reverse_nat> reverse = lb_->reverse_nat(flow_key(f.backend[0], kBackendPort, f.node, port, protocol));
  ASSERT_TRUE(reverse.has_value()) << "no reverse entry for backend -> node:" << port;
  EXPECT_EQ(IpAddr(f.client).words(), std::to_array(reverse->client));
  EXPECT_EQ(ntohs(reverse->client_port), 41000);
  EXPECT_EQ(IpAddr(f.frontend).words(), std::to_array(reverse->frontend));
  EXPECT_EQ(ntohs(reverse->frontend_port), kFrontendPort);

  in.payload = text("the flow's second packet");
  const TestRun second = xdp(build_frame(in));
  expected = to_backend(in, 0);
  expected.src = f.node;
  expected.sport = port;
  EXPECT_EQ(xdp_action(second.action), "XDP_REDIRECT");
  EXPECT_EQ(hex(second.out), hex(build_frame(expected))) << "the second packet must keep the port";
}

TEST_P(XdpBalance, SnatGivesConcurrentFlowsDistinctPorts) {
  const auto [v6, protocol] = GetParam();
  const lbnet::Family f = lbnet::family(v6);
  serve(v6, protocol, 9, {kBackend}, XLB_SERVICE_F_SNAT);

  std::set<uint16_t> ports;
  for (uint16_t sport = 42000; sport < 42050; ++sport) {
    ASSERT_EQ(xdp_action(xdp(build_frame(from_client(v6, protocol, sport))).action), "XDP_REDIRECT");
    const std::optional<xlb_ct_entry> ct = lb_->conntrack(flow_key(f.client, sport, f.frontend, kFrontendPort, protocol));
    ASSERT_TRUE(ct.has_value());
    ports.insert(ntohs(ct->snat_port));
  }
  EXPECT_EQ(ports.size(), 50U);
}

TEST_P(XdpBalance, SnatWithEveryPortTakenDropsTheNewFlow) {
  const auto [v6, protocol] = GetParam();
  xlb_node_config node{};
  node.snat_v4 = lbnet::v4().node.words()[0];
  copy_addr(node.snat_v6, lbnet::v6().node);
  node.snat_port_min = node.snat_port_max = 20000;  // one port
  node.events_per_second = 10;
  XLB_ASSERT_OK(lb_->set_node(node));
  serve(v6, protocol, 9, {kBackend}, XLB_SERVICE_F_SNAT);

  ASSERT_EQ(xdp_action(xdp(build_frame(from_client(v6, protocol, 43000))).action), "XDP_REDIRECT");
  const TestRun second_flow = xdp(build_frame(from_client(v6, protocol, 43001)));

  EXPECT_EQ(xdp_action(second_flow.action), "XDP_DROP");
  EXPECT_EQ(reason_packets(XLB_DROP_SNAT_PORTS_EXHAUSTED), 1U);
  // The first flow still has its port.
  EXPECT_EQ(xdp_action(xdp(build_frame(from_client(v6, protocol, 43000))).action), "XDP_REDIRECT");
}

// ---- conntrack, affinity, draining ----------------------------------------------------------

TEST_P(XdpBalance, EstablishedFlowKeepsItsBackendWhenTheRingChanges) {
  const auto [v6, protocol] = GetParam();
  serve(v6, protocol, 7, std::vector<uint32_t>(251, kBackend));
  const PacketSpec old_flow = from_client(v6, protocol, 44000);
  ASSERT_EQ(hex(xdp(build_frame(old_flow)).out), hex(build_frame(to_backend(old_flow, 0))));

  // Every slot now names backend 2: a new pick could only give 2.
  serve(v6, protocol, 7, std::vector<uint32_t>(251, kBackend + 1));

  EXPECT_EQ(hex(xdp(build_frame(old_flow)).out), hex(build_frame(to_backend(old_flow, 0))))
      << "the established flow moved";
  const PacketSpec new_flow = from_client(v6, protocol, 44001);
  EXPECT_EQ(hex(xdp(build_frame(new_flow)).out), hex(build_frame(to_backend(new_flow, 1))))
      << "a new flow must follow the new ring";
}

// An established flow finds its backend and the route to it in the CPU's backend cache
// (bpf/lib/backend_cache.h), which is at most a second old. A removed backend's flows are
// balanced again when its slot is cleared (what xlbd does) or, at the latest, a second later.
TEST_P(XdpBalance, FlowWhoseBackendIsGoneIsBalancedAgainOnceTheCacheForgetsIt) {
  const auto [v6, protocol] = GetParam();
  serve(v6, protocol, 7, {kBackend});
  const PacketSpec flow = from_client(v6, protocol, 44100);
  ASSERT_EQ(xdp_action(xdp(build_frame(flow)).action), "XDP_REDIRECT");
  serve(v6, protocol, 7, {kBackend + 1});
  XLB_ASSERT_OK(lb_->remove_backend(id(v6, kBackend)));

  // (Until then, for up to a second, the flow still goes to the removed backend: not
  // asserted, since a slow machine may take a second between two packets.)
  XLB_ASSERT_OK(lb_->clear_backend_cache(id(v6, kBackend)));
  const TestRun run = xdp(build_frame(flow));

  EXPECT_EQ(hex(run.out), hex(build_frame(to_backend(flow, 1))));
  EXPECT_EQ(lb_->service(7).new_flows, 2U);
  const lbnet::Family f = lbnet::family(v6);
  EXPECT_EQ(lb_->conntrack(flow_key(f.client, 44100, f.frontend, kFrontendPort, protocol))->backend_id,
            id(v6, kBackend + 1));
}

TEST_P(XdpBalance, FlowWhoseBackendIsGoneIsBalancedAgainWhenTheCacheIsASecondOld) {
  const auto [v6, protocol] = GetParam();
  serve(v6, protocol, 7, {kBackend});
  const PacketSpec flow = from_client(v6, protocol, 44150);
  ASSERT_EQ(xdp_action(xdp(build_frame(flow)).action), "XDP_REDIRECT");
  serve(v6, protocol, 7, {kBackend + 1});
  XLB_ASSERT_OK(lb_->remove_backend(id(v6, kBackend)));

  XLB_ASSERT_OK(lb_->age_backend_cache(id(v6, kBackend)));

  EXPECT_EQ(hex(xdp(build_frame(flow)).out), hex(build_frame(to_backend(flow, 1))));
}

TEST_P(XdpBalance, ChangedNeighbourIsFollowedWhenTheCacheIsASecondOld) {
  const auto [v6, protocol] = GetParam();
  const lbnet::Family f = lbnet::family(v6);
  serve(v6, protocol, 7, {kBackend});
  const PacketSpec flow = from_client(v6, protocol, 44160);
  ASSERT_EQ(hex(xdp(build_frame(flow)).out), hex(build_frame(to_backend(flow, 0))));
  const Mac moved{0x02, 0, 0, 0, 0x0b, 0x99};
  XLB_ASSERT_OK(run_command({"/usr/sbin/ip", "neigh", "replace", f.backend[0].str(), "lladdr", lbnet::mac_text(moved),
                             "nud", "permanent", "dev", lbnet::kBackendLink}));

  XLB_ASSERT_OK(lb_->age_backend_cache(id(v6, kBackend)));
  PacketSpec expected = to_backend(flow, 0);
  expected.eth_dst = moved;
  EXPECT_EQ(hex(xdp(build_frame(flow)).out), hex(build_frame(expected)));
}

TEST_P(XdpBalance, PacketLongerThanTheCachedRouteAllowedAsksAgain) {
  const auto [v6, protocol] = GetParam();
  serve(v6, protocol, 7, {kBackend});
  ASSERT_EQ(xdp_action(xdp(build_frame(from_client(v6, protocol, 44170))).action), "XDP_REDIRECT");
  XLB_ASSERT_OK(run_command({"/usr/sbin/ip", "link", "set", lbnet::kBackendLink, "mtu", "1280"}));

  // The cached answer was for a short packet: a long one must meet the smaller MTU.
  const PacketSpec long_packet = from_client(v6, protocol, 44170, std::string(1300, 'x'));
  const TestRun run = xdp(build_frame(long_packet));

  EXPECT_EQ(xdp_action(run.action), "XDP_PASS");
  EXPECT_EQ(reason_packets(XLB_PASS_FRAG_NEEDED), 1U);
}

// A route lookup is made as for a packet received on a link, so its answer is reused only for
// packets of that link: another link may route differently (here IPv4 forwarding is off on
// it, which IPv6 only has for all links at once).
TEST_P(XdpBalance, CachedRouteIsOnlyReusedForTheLinkItWasFoundFor) {
  const auto [v6, protocol] = GetParam();
  serve(v6, protocol, 7, {kBackend});
  ASSERT_EQ(xdp_action(xdp(build_frame(from_client(v6, protocol, 44180))).action), "XDP_REDIRECT");
  if (!v6) XLB_ASSERT_OK(lbnet::write_sysctl("/proc/sys/net/ipv4/conf/xlb1/forwarding", "0"));

  // A client behind the backend link.
  PacketSpec in = from_client(v6, protocol, 44181);
  in.src = ip(v6 ? "2001:db8:b::50" : "198.51.100.50");
  in.eth_dst = lbnet::kBackendLinkMac;
  Result<TestRun> run = lb_->run_xdp(build_frame(in), backend_link_);
  XLB_ASSERT_OK(run);

  if (v6) {
    EXPECT_EQ(xdp_action(run->action), "XDP_TX") << "the backend is on the link it came in on";
    EXPECT_EQ(hex(run->out), hex(build_frame(to_backend(in, 0))));
  } else {
    EXPECT_EQ(xdp_action(run->action), "XDP_DROP") << "the kernel does not forward from this link";
    EXPECT_EQ(reason_packets(XLB_DROP_NO_ROUTE), 1U);
  }
}

// The LRU table may drop a quiet snat flow's reverse-NAT entry; the flow's next packet after a
// second writes it again if nobody took the port meanwhile. A nat flow has none to lose (its
// replies are found in conntrack); its packet refreshes the conntrack entry all the same.
TEST_P(XdpBalance, ReverseEntryLostWhileTheFlowWasQuietIsWrittenAgain) {
  const auto [v6, protocol] = GetParam();
  const lbnet::Family f = lbnet::family(v6);
  for (const bool snat : {false, true}) {
    const uint16_t sport = snat ? 44191 : 44190;
    serve(v6, protocol, 7, {kBackend}, snat ? XLB_SERVICE_F_SNAT : 0);
    const PacketSpec flow = from_client(v6, protocol, sport);
    ASSERT_EQ(xdp_action(xdp(build_frame(flow)).action), "XDP_REDIRECT");
    const xlb_flow_key ct_key = flow_key(f.client, sport, f.frontend, kFrontendPort, protocol);
    xlb_ct_entry ct = *lb_->conntrack(ct_key);
    const xlb_flow_key reply_key = flow_key(f.backend[0], kBackendPort, snat ? f.node : f.client,
                                            snat ? ntohs(ct.snat_port) : sport, protocol);
    ASSERT_EQ(lb_->reverse_nat(reply_key).has_value(), snat);

    if (snat) {
      ASSERT_EQ(bpf_map_delete_elem(lb_->fd(lb_->xdp()->maps.xlb_reverse_nat), &reply_key), 0);
    }
    ct.last_seen_ticks = 0;  // a second (and more) ago
    XLB_ASSERT_OK(lb_->set_conntrack(ct_key, ct));
    XLB_ASSERT_OK(lb_->clear_flow_cache());  // which 100 ms empty too
    ASSERT_EQ(xdp_action(xdp(build_frame(flow)).action), "XDP_REDIRECT");
    const std::optional<xlb_reverse_nat> restored = lb_->reverse_nat(reply_key);
    ASSERT_EQ(restored.has_value(), snat);
    if (snat) {
      EXPECT_EQ(ntohs(restored->client_port), sport);
    }
    EXPECT_NE(lb_->conntrack(ct_key)->last_seen_ticks, 0U) << (snat ? "snat" : "nat");
  }
}

// Conntrack keeps a flow in one of the XLB_CT_WAYS ways of its client's set: a new flow that
// finds them all taken takes the way seen longest ago, and the other flows keep theirs.
TEST_P(XdpBalance, NewFlowInAFullConntrackSetTakesTheWaySeenLongestAgo) {
  const auto [v6, protocol] = GetParam();
  const lbnet::Family f = lbnet::family(v6);
  serve(v6, protocol, 7, {kBackend});
  const xlb_flow_key key = flow_key(f.client, 46000, f.frontend, kFrontendPort, protocol);
  const uint32_t first = lb_->conntrack_set(key);
  // Its set full of other flows, last seen 1, 2, 5 and 3 ticks (last_seen_ticks) before the
  // newest, which a flow just made has.
  ASSERT_EQ(xdp_action(xdp(build_frame(from_client(v6, protocol, 45000))).action), "XDP_REDIRECT");
  const uint32_t newest = lb_->conntrack(flow_key(f.client, 45000, f.frontend, kFrontendPort, protocol))->last_seen_ticks;
  const std::array<uint32_t, XLB_CT_WAYS> ticks_ago{1, 2, 5, 3};
  for (uint32_t i = 0; i < XLB_CT_WAYS; ++i) {
    xlb::datapath::ConntrackWay way{first + i, {}};
    way.way.flow = flow_key(f.client, static_cast<uint16_t>(47000 + i), f.frontend, kFrontendPort, protocol);
    way.way.entry.backend_id = id(v6, kBackend);
    way.way.entry.last_seen_ticks = newest - ticks_ago[i];
    XLB_ASSERT_OK(lb_->write_conntrack_way(way));
  }

  ASSERT_EQ(xdp_action(xdp(build_frame(from_client(v6, protocol, 46000))).action), "XDP_REDIRECT");

  for (uint32_t i = 0; i < XLB_CT_WAYS; ++i) {
    const std::optional<xlb::datapath::ConntrackWay> way = lb_->conntrack_way_at(first + i);
    ASSERT_TRUE(way.has_value());
    EXPECT_EQ(ntohs(way->way.flow.sport), i == 2 ? 46000 : 47000 + i) << "way " << i;
  }
}

TEST_P(XdpBalance, DrainingBackendKeepsItsFlowsButGetsNoNewOnes) {
  const auto [v6, protocol] = GetParam();
  serve(v6, protocol, 7, {kBackend});
  ASSERT_EQ(xdp_action(xdp(build_frame(from_client(v6, protocol, 44200))).action), "XDP_REDIRECT");
  PacketSpec established = from_client(v6, protocol, 44200);
  established.tcp_flags = 0x10;  // ACK: the connection's next packet

  XLB_ASSERT_OK(lb_->upsert_backend(id(v6, kBackend), lbnet::family(v6).backend[0], kBackendPort,
                                    XLB_BACKEND_DRAINING));

  EXPECT_EQ(hex(xdp(build_frame(established)).out), hex(build_frame(to_backend(established, 0))));
  EXPECT_EQ(xdp_action(xdp(build_frame(from_client(v6, protocol, 44201))).action), "XDP_DROP")
      << "a ring slot naming a draining backend must not give it a new flow";
  EXPECT_EQ(reason_packets(XLB_DROP_NO_BACKEND), 1U);
}

// A client port used again for a new connection (after TIME_WAIT, or behind a NAT) while
// conntrack still names the old connection's backend: its SYN is a new flow if that backend
// takes no new ones, where the old connection's packets would still go.
TEST_P(XdpBalance, SynOnAReusedPortIsANewFlowWhenItsOldBackendDrains) {
  const auto [v6, protocol] = GetParam();
  if (protocol != kTcp) GTEST_SKIP() << "only TCP says which packet opens a connection";
  serve(v6, protocol, 7, {kBackend});
  const PacketSpec syn = from_client(v6, protocol, 44250);
  PacketSpec ack = syn;
  ack.tcp_flags = 0x10;
  ASSERT_EQ(hex(xdp(build_frame(syn)).out), hex(build_frame(to_backend(syn, 0))));
  ASSERT_EQ(hex(xdp(build_frame(syn)).out), hex(build_frame(to_backend(syn, 0))))
      << "a retransmitted SYN goes where the first went";
  for (int i = 0; i < 3; ++i) ASSERT_EQ(hex(xdp(build_frame(ack)).out), hex(build_frame(to_backend(ack, 0))));

  XLB_ASSERT_OK(lb_->upsert_backend(id(v6, kBackend), lbnet::family(v6).backend[0], kBackendPort,
                                    XLB_BACKEND_DRAINING));
  serve(v6, protocol, 7, {kBackend + 1});

  EXPECT_EQ(hex(xdp(build_frame(ack)).out), hex(build_frame(to_backend(ack, 0))))
      << "the old connection keeps its draining backend";
  EXPECT_EQ(hex(xdp(build_frame(syn)).out), hex(build_frame(to_backend(syn, 1))))
      << "a new connection on the same port goes by the ring";
  const lbnet::Family f = lbnet::family(v6);
  EXPECT_EQ(lb_->conntrack(flow_key(f.client, 44250, f.frontend, kFrontendPort, protocol))->backend_id,
            id(v6, kBackend + 1));
  EXPECT_EQ(lb_->service(7).new_flows, 2U);
}

TEST_P(XdpBalance, AffinitySendsEveryFlowOfAClientToOneBackendUntilItTimesOut) {
  const auto [v6, protocol] = GetParam();
  const lbnet::Family f = lbnet::family(v6);
  std::vector<uint32_t> ring(251);
  for (size_t slot = 0; slot < ring.size(); ++slot) ring[slot] = kBackend + static_cast<uint32_t>(slot % 3);
  serve(v6, protocol, 7, ring, XLB_SERVICE_F_AFFINITY, 60);

  // Many source ports: without affinity they would spread over the three backends.
  std::set<uint32_t> backends;
  for (uint16_t sport = 45000; sport < 45020; ++sport) {
    ASSERT_EQ(xdp_action(xdp(build_frame(from_client(v6, protocol, sport))).action), "XDP_REDIRECT");
    backends.insert(lb_->conntrack(flow_key(f.client, sport, f.frontend, kFrontendPort, protocol))->backend_id);
  }
  ASSERT_EQ(backends.size(), 1U) << "one client, one backend";
  const uint32_t chosen = *backends.begin();

  // A new ring without the chosen backend's slots... the entry still holds while fresh.
  const uint32_t other = chosen == id(v6, kBackend) ? kBackend + 1 : kBackend;
  serve(v6, protocol, 7, std::vector<uint32_t>(251, other), XLB_SERVICE_F_AFFINITY, 60);
  ASSERT_EQ(xdp_action(xdp(build_frame(from_client(v6, protocol, 45100))).action), "XDP_REDIRECT");
  EXPECT_EQ(lb_->conntrack(flow_key(f.client, 45100, f.frontend, kFrontendPort, protocol))->backend_id, chosen)
      << "within the timeout the client stays";

  // Time passes: the entry was last seen long ago.
  xlb_affinity_key key{};
  copy_addr(key.client, f.client);
  key.service_id = 7;
  key.family = abi_family(f.client);
  std::optional<xlb_affinity_entry> entry = lb_->lookup<xlb_affinity_entry>(lb_->xdp()->maps.xlb_affinity, key);
  ASSERT_TRUE(entry.has_value());
  EXPECT_EQ(entry->backend_id, chosen);
  entry->last_seen_ns = 0;
  ASSERT_EQ(bpf_map_update_elem(lb_->fd(lb_->xdp()->maps.xlb_affinity), &key, &*entry, BPF_ANY), 0);

  ASSERT_EQ(xdp_action(xdp(build_frame(from_client(v6, protocol, 45101))).action), "XDP_REDIRECT");
  EXPECT_EQ(lb_->conntrack(flow_key(f.client, 45101, f.frontend, kFrontendPort, protocol))->backend_id, id(v6, other))
      << "after the timeout the client is balanced again";
  EXPECT_EQ(lb_->conntrack(flow_key(f.client, 45000, f.frontend, kFrontendPort, protocol))->backend_id, chosen)
      << "established flows keep their backend";
}

// The slot a flow takes is the documented hash (datapath/flow_hash.h predicts it).
TEST_P(XdpBalance, NewFlowsTakeTheRingSlotOfTheDocumentedFlowHash) {
  const auto [v6, protocol] = GetParam();
  const lbnet::Family f = lbnet::family(v6);
  std::vector<uint32_t> ring(251);
  for (size_t slot = 0; slot < ring.size(); ++slot) ring[slot] = kBackend + static_cast<uint32_t>(slot % 3);
  serve(v6, protocol, 7, ring);

  std::set<uint32_t> seen;
  for (uint16_t sport = 46000; sport < 46030; ++sport) {
    const PacketSpec in = from_client(v6, protocol, sport);
    const uint32_t slot = datapath::flow_hash(flow_key(f.client, sport, f.frontend, kFrontendPort, protocol)) % 251;
    const int backend = static_cast<int>(ring[slot] - kBackend);
    EXPECT_EQ(hex(xdp(build_frame(in)).out), hex(build_frame(to_backend(in, backend)))) << "source port " << sport;
    seen.insert(ring[slot]);
  }
  EXPECT_EQ(seen.size(), 3U) << "30 flows should reach all three backends";
}

// ---- not for us -----------------------------------------------------------------------------

TEST_P(XdpBalance, PacketsNotForAFrontendPassUntouched) {
  const auto [v6, protocol] = GetParam();
  const lbnet::Family f = lbnet::family(v6);
  serve(v6, protocol, 7, {kBackend});

  PacketSpec other_port = from_client(v6, protocol, 47000);
  other_port.dport = 81;
  PacketSpec other_protocol = from_client(v6, protocol == kTcp ? kUdp : kTcp, 47000);
  PacketSpec other_address = from_client(v6, protocol, 47000);
  other_address.dst = f.not_frontend;
  PacketSpec reply_passing_through = from_backend(v6, protocol, 0, f.client, 47000);

  uint64_t expected = 0;
  for (const PacketSpec& spec : {other_port, other_protocol, other_address, reply_passing_through}) {
    const Bytes frame = build_frame(spec);
    const TestRun run = xdp(frame);
    EXPECT_EQ(xdp_action(run.action), "XDP_PASS");
    EXPECT_EQ(hex(run.out), hex(frame));
    EXPECT_EQ(reason_packets(XLB_PASS_NOT_SERVICE), ++expected);
  }
  EXPECT_EQ(lb_->service(7).packets, 0U);
}

// A flow the CPU has cached skips the frontend lookup (bpf/lib/flow_cache.h) only while the
// frontends' epoch stays the same: removing its frontend ends it with the next packet.
TEST_P(XdpBalance, CachedFlowIsPassedWithTheFirstPacketAfterItsFrontendIsRemoved) {
  const auto [v6, protocol] = GetParam();
  serve(v6, protocol, 7, {kBackend});
  const PacketSpec in = from_client(v6, protocol, 47100);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(xdp_action(xdp(build_frame(in)).action), "XDP_REDIRECT");  // cached by the 2nd

  XLB_ASSERT_OK(lb_->remove_service(lbnet::family(v6).frontend, kFrontendPort, protocol));
  const Bytes frame = build_frame(in);
  const TestRun run = xdp(frame);

  EXPECT_EQ(xdp_action(run.action), "XDP_PASS");
  EXPECT_EQ(hex(run.out), hex(frame));
  EXPECT_EQ(reason_packets(XLB_PASS_NOT_SERVICE), 1U);
  EXPECT_EQ(lb_->service(7).packets, 3U);
}

// The frontend filter (xlb_abi.h) is asked first: a frontend whose bit is clear is not looked
// up, which is why xlbd sets a frontend's bit before it writes the frontend.
TEST_P(XdpBalance, AFrontendWhoseFilterBitIsClearIsNotLookedUp) {
  const auto [v6, protocol] = GetParam();
  serve(v6, protocol, 7, {kBackend});
  XLB_ASSERT_OK(lb_->set_filter_bit(lbnet::family(v6).frontend, kFrontendPort, protocol, false));
  const Bytes frame = build_frame(from_client(v6, protocol, 47200));

  EXPECT_EQ(xdp_action(xdp(frame).action), "XDP_PASS");
  EXPECT_EQ(reason_packets(XLB_PASS_NOT_SERVICE), 1U);

  XLB_ASSERT_OK(lb_->set_filter_bit(lbnet::family(v6).frontend, kFrontendPort, protocol));
  EXPECT_EQ(xdp_action(xdp(frame).action), "XDP_REDIRECT");
}

TEST_P(XdpBalance, EmptyRingDropsWithAnEventNamingTheFlow) {
  const auto [v6, protocol] = GetParam();
  const lbnet::Family f = lbnet::family(v6);
  serve(v6, protocol, 7, {});
  const Bytes frame = build_frame(from_client(v6, protocol, 48000));

  std::vector<xlb_event> events;
  ring_buffer* rb = ring_buffer__new(
      lb_->fd(lb_->xdp()->maps.xlb_events),
      [](void* ctx, void* data, size_t size) {
        if (size >= sizeof(xlb_event)) static_cast<std::vector<xlb_event>*>(ctx)->push_back(*static_cast<xlb_event*>(data));
        return 0;
      },
      &events, nullptr);
  ASSERT_NE(rb, nullptr);
  const TestRun run = xdp(frame);
  ring_buffer__consume(rb);
  ring_buffer__free(rb);

  EXPECT_EQ(xdp_action(run.action), "XDP_DROP");
  EXPECT_EQ(reason_packets(XLB_DROP_NO_BACKEND), 1U);
  ASSERT_EQ(events.size(), 1U);
  EXPECT_EQ(events[0].reason, static_cast<__u32>(XLB_DROP_NO_BACKEND));
  EXPECT_EQ(events[0].ifindex, static_cast<__u32>(client_link_));
  EXPECT_NE(events[0].timestamp_ns, 0U);
  const xlb_flow_key expected = flow_key(f.client, 48000, f.frontend, kFrontendPort, protocol);
  EXPECT_EQ(std::memcmp(&events[0].flow, &expected, sizeof expected), 0) << "the event's 5-tuple";
}

}  // namespace
}  // namespace xlb::test

// Direct server return on the real kernel, by BPF_PROG_TEST_RUN: IP-in-IP encapsulation
// (bpf/lib/dsr.h) and the ICMP answer to packets too big once encapsulated, every case run by
// the XDP program and again by the tc balancer (xdp_mode "tc"), and the tc program's
// decapsulation on a backend node (bpf/lib/decap.h). Expected packets are built independently
// (support/packet.h, the outer header by hand here), checksums from scratch.
#include <gtest/gtest.h>

#include "bpf/lb_fixture.h"
#include "datapath/flow_hash.h"

namespace xlb::test {
namespace {

// The outer sources: a /16 and a /64, so both whole and partial host words are exercised.
const IpAddr kDsrPrefixV4 = ip("10.99.0.0");
constexpr uint8_t kDsrPrefixLenV4 = 16;
const IpAddr kDsrPrefixV6 = ip("fd00:99::");
constexpr uint8_t kDsrPrefixLenV6 = 64;
constexpr uint32_t kService = 9;

struct Case {
  bool v6;
  uint8_t protocol;
  bool tc = false;  // encapsulated by the tc balancer (xdp_mode "tc") instead of XDP
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << (c.tc ? "tc " : "") << (c.v6 ? "IPv6 " : "IPv4 ") << (c.protocol == kTcp ? "TCP" : "UDP");
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  return std::string(info.param.tc ? "Tc" : "") + (info.param.v6 ? "IPv6" : "IPv4") +
         (info.param.protocol == kTcp ? "Tcp" : "Udp");
}

// What the documentation of xlb_dsr_config says the outer source is: the prefix, with each
// 32-bit word's host bits taken from the flow hash.
IpAddr outer_source(const PacketSpec& in) {
  const bool v6 = in.src.v6();
  const IpAddr prefix = v6 ? kDsrPrefixV6 : kDsrPrefixV4;
  const unsigned length = v6 ? kDsrPrefixLenV6 : kDsrPrefixLenV4;
  const uint32_t hash = datapath::flow_hash(flow_key(in.src, in.sport, in.dst, in.dport, in.protocol));
  IpAddr out = prefix;
  for (unsigned word = 0; word < (v6 ? 4U : 1U); ++word) {
    const unsigned fixed = length > word * 32 ? std::min(32U, length - word * 32) : 0;
    const uint32_t mask = fixed == 0 ? 0 : fixed == 32 ? 0xffffffffU : ~(0xffffffffU >> fixed);
    uint32_t value;
    std::memcpy(&value, prefix.bytes.data() + word * 4, 4);
    value = htonl((ntohl(value) & mask) | (hash & ~mask));
    std::memcpy(out.bytes.data() + word * 4, &value, 4);
  }
  return out;
}

void put16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}

// The client's packet inside an outer header outer_src -> outer_dst, in a frame between these
// MACs: what the load balancer sends toward the backend.
Bytes encapsulated(const PacketSpec& inner, const IpAddr& outer_src, const IpAddr& outer_dst, const Mac& eth_src,
                   const Mac& eth_dst) {
  const Bytes packet = build_ip(inner);
  Bytes frame(eth_dst.begin(), eth_dst.end());
  frame.insert(frame.end(), eth_src.begin(), eth_src.end());
  Bytes outer;
  if (inner.src.v6()) {
    put16(frame, 0x86dd);
    put16(outer, static_cast<uint16_t>(0x6000 | inner.tos << 4));  // version, traffic class
    put16(outer, 0);                                                // flow label
    put16(outer, static_cast<uint16_t>(packet.size()));
    outer.push_back(41);  // IPv6 in IPv6
    outer.push_back(64);  // hop limit
    outer.insert(outer.end(), outer_src.bytes.begin(), outer_src.bytes.end());
    outer.insert(outer.end(), outer_dst.bytes.begin(), outer_dst.bytes.end());
  } else {
    put16(frame, 0x0800);
    outer.push_back(0x45);
    outer.push_back(inner.tos);
    put16(outer, static_cast<uint16_t>(20 + packet.size()));
    put16(outer, 0);       // id
    put16(outer, 0x4000);  // DF
    outer.push_back(64);   // TTL
    outer.push_back(4);    // IPv4 in IPv4
    put16(outer, 0);       // checksum, below
    outer.insert(outer.end(), outer_src.bytes.begin(), outer_src.bytes.begin() + 4);
    outer.insert(outer.end(), outer_dst.bytes.begin(), outer_dst.bytes.begin() + 4);
    const uint16_t check = detail::internet_checksum({&outer});
    outer[10] = static_cast<uint8_t>(check >> 8);
    outer[11] = static_cast<uint8_t>(check);
  }
  frame.insert(frame.end(), outer.begin(), outer.end());
  frame.insert(frame.end(), packet.begin(), packet.end());
  return frame;
}

class Dsr : public LbTest, public ::testing::WithParamInterface<Case> {
 protected:
  void SetUp() override {
    LbTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    xlb_dsr_config dsr{};
    dsr.src_v4 = kDsrPrefixV4.words()[0];
    copy_addr(dsr.src_v6, kDsrPrefixV6);
    dsr.src_v4_prefix_len = kDsrPrefixLenV4;
    dsr.src_v6_prefix_len = kDsrPrefixLenV6;
    XLB_ASSERT_OK(set_dsr(dsr));
  }

  // The balancing program under test, and its verdicts' names.
  TestRun balance(const Bytes& frame) { return GetParam().tc ? tc_lb(frame) : xdp(frame); }
  static std::string action(const TestRun& run) {
    return GetParam().tc ? tc_action(run.action) : xdp_action(run.action);
  }
  static std::string redirected() { return GetParam().tc ? "TC_ACT_REDIRECT" : "XDP_REDIRECT"; }
  static std::string passed() { return GetParam().tc ? "TC_ACT_OK" : "XDP_PASS"; }
  static std::string dropped() { return GetParam().tc ? "TC_ACT_SHOT" : "XDP_DROP"; }
  // Sent back out of the link it came in on: XDP_TX, a redirect for tc.
  static std::string answered() { return GetParam().tc ? "TC_ACT_REDIRECT" : "XDP_TX"; }

  Status set_dsr(const xlb_dsr_config& dsr) {
    const __u32 zero = 0;
    if (bpf_map_update_elem(lb_->fd(lb_->xdp()->maps.xlb_dsr), &zero, &dsr, BPF_ANY) != 0)
      return Error{std::string("write xlb_dsr: ") + std::strerror(errno)};
    return {};
  }

  Status enable_decap() {
    xlb_dsr_config dsr{};
    const __u32 zero = 0;
    bpf_map_lookup_elem(lb_->fd(lb_->xdp()->maps.xlb_dsr), &zero, &dsr);
    dsr.decap = 1;
    return set_dsr(dsr);
  }

  // The client's packet as XDP must send it to backend[i] on the backend link.
  static Bytes to_backend_dsr(const PacketSpec& in, int i) {
    return encapsulated(in, outer_source(in), lbnet::family(in.src.v6()).backend[i], lbnet::kBackendLinkMac,
                        lbnet::backend_mac(i));
  }

  // The ICMP error that tells the client its packet `in` does not fit: from the frontend,
  // quoting the IP header and 8 bytes, back out of the client link.
  static Bytes too_big(const PacketSpec& in, uint16_t mtu) {
    const Bytes quoted = build_ip(in);
    const bool v6 = in.src.v6();
    PacketSpec icmp;
    icmp.eth_src = lbnet::kClientLinkMac;
    icmp.eth_dst = lbnet::kClientMac;
    icmp.src = in.dst;
    icmp.dst = in.src;
    icmp.protocol = v6 ? kIcmpv6 : kIcmp;
    icmp.ttl = 64;
    icmp.ip_id = 0;
    icmp.frag = 0;
    icmp.icmp_type = v6 ? 2 : 3;
    icmp.icmp_code = v6 ? 0 : 4;
    icmp.icmp_rest = mtu;
    icmp.payload.assign(quoted.begin(), quoted.begin() + (v6 ? 48 : 28));
    return build_frame(icmp);
  }
};

// Decapsulation is the tc program's alone (on a backend node): no balancing program to choose.
class DsrDecap : public Dsr {};

INSTANTIATE_TEST_SUITE_P(AllFamilies, Dsr,
                         ::testing::Values(Case{false, kTcp}, Case{false, kUdp}, Case{true, kTcp}, Case{true, kUdp},
                                           Case{false, kTcp, true}, Case{false, kUdp, true}, Case{true, kTcp, true},
                                           Case{true, kUdp, true}),
                         case_name);
INSTANTIATE_TEST_SUITE_P(AllFamilies, DsrDecap,
                         ::testing::Values(Case{false, kTcp}, Case{false, kUdp}, Case{true, kTcp}, Case{true, kUdp}),
                         case_name);

// ---- encapsulation ---------------------------------------------------------------------------

TEST_P(Dsr, EncapsulatesTheUnchangedPacketToTheBackend) {
  const auto [v6, protocol, at_tc] = GetParam();
  serve(v6, protocol, kService, {kBackend + 2}, XLB_SERVICE_F_DSR);
  const PacketSpec in = from_client(v6, protocol, 41000);

  const TestRun run = balance(build_frame(in));

  EXPECT_EQ(action(run), redirected());
  EXPECT_EQ(hex(run.out), hex(to_backend_dsr(in, 2)));
  const lbnet::Family f = lbnet::family(v6);
  const std::optional<xlb_ct_entry> ct = lb_->conntrack(flow_key(f.client, 41000, f.frontend, kFrontendPort, protocol));
  ASSERT_TRUE(ct.has_value()) << "no conntrack entry for the flow";
  EXPECT_EQ(ct->backend_id, id(v6, kBackend + 2));
  EXPECT_EQ(ct->service_id, kService);
  // The backend answers the client itself: there is no reply to restore.
  EXPECT_FALSE(lb_->reverse_nat(flow_key(f.backend[2], kFrontendPort, f.client, 41000, protocol)).has_value());
  EXPECT_FALSE(lb_->reverse_nat(flow_key(f.backend[2], kBackendPort, f.client, 41000, protocol)).has_value());

  const uint64_t bytes = build_frame(in).size();
  EXPECT_EQ(lb_->service(kService).packets, 1U);
  EXPECT_EQ(lb_->service(kService).bytes, bytes);
  EXPECT_EQ(lb_->service(kService).new_flows, 1U);
  EXPECT_EQ(lb_->backend(id(v6, kBackend + 2)).packets, 1U);
  EXPECT_EQ(lb_->backend(id(v6, kBackend + 2)).new_flows, 1U);
  EXPECT_EQ(reason_packets(XLB_REASON_FORWARDED), 1U);
}

TEST_P(Dsr, LaterPacketsKeepTheBackendAndTheOuterSourceWhenTheRingChanges) {
  const auto [v6, protocol, at_tc] = GetParam();
  serve(v6, protocol, kService, {kBackend}, XLB_SERVICE_F_DSR);
  PacketSpec in = from_client(v6, protocol, 41001);
  ASSERT_EQ(hex(balance(build_frame(in)).out), hex(to_backend_dsr(in, 0)));

  serve(v6, protocol, kService, {kBackend + 1}, XLB_SERVICE_F_DSR);
  in.seq = 1006;
  in.tcp_flags = 0x10;
  in.payload = text("second packet");
  // XDP: once by its per-CPU cache, once by the general path.
  EXPECT_EQ(hex(balance(build_frame(in)).out), hex(to_backend_dsr(in, 0)));
  XLB_ASSERT_OK(lb_->age_backend_cache(id(v6, kBackend)));
  EXPECT_EQ(hex(balance(build_frame(in)).out), hex(to_backend_dsr(in, 0)));

  EXPECT_EQ(lb_->service(kService).packets, 3U);
  EXPECT_EQ(lb_->service(kService).new_flows, 1U);
  // A new flow takes the new ring.
  const PacketSpec other = from_client(v6, protocol, 41002);
  EXPECT_EQ(hex(balance(build_frame(other)).out), hex(to_backend_dsr(other, 1)));
}

// A backend's route is kept per CPU for a second (bpf/lib/backend_cache.h), and a new flow to the
// backend takes it too: the second flow here still goes to the MAC the first one found.
TEST_P(Dsr, NewFlowsTakeTheRouteKeptForTheirBackendUntilItIsASecondOld) {
  const auto [v6, protocol, at_tc] = GetParam();
  const lbnet::Family f = lbnet::family(v6);
  serve(v6, protocol, kService, {kBackend}, XLB_SERVICE_F_DSR);
  const OnThisCpu pinned;
  const PacketSpec first = from_client(v6, protocol, 41010);
  ASSERT_EQ(hex(balance(build_frame(first)).out), hex(to_backend_dsr(first, 0)));
  const Mac moved{0x02, 0, 0, 0, 0x0b, 0x99};
  XLB_ASSERT_OK(run_command({"/usr/sbin/ip", "neigh", "replace", f.backend[0].str(), "lladdr", lbnet::mac_text(moved),
                             "nud", "permanent", "dev", lbnet::kBackendLink}));

  const PacketSpec second = from_client(v6, protocol, 41011);
  EXPECT_EQ(hex(balance(build_frame(second)).out), hex(to_backend_dsr(second, 0)))
      << "within the second, the route the first flow found";

  XLB_ASSERT_OK(lb_->age_backend_cache(id(v6, kBackend)));
  const PacketSpec third = from_client(v6, protocol, 41012);
  EXPECT_EQ(hex(balance(build_frame(third)).out),
            hex(encapsulated(third, outer_source(third), f.backend[0], lbnet::kBackendLinkMac, moved)));
}

// As for nat (xdp_test.cpp): a SYN on a reused client port leaves a draining backend.
TEST_P(Dsr, SynOnAReusedPortIsANewFlowWhenItsOldBackendDrains) {
  const auto [v6, protocol, at_tc] = GetParam();
  if (protocol != kTcp) GTEST_SKIP() << "only TCP says which packet opens a connection";
  serve(v6, protocol, kService, {kBackend}, XLB_SERVICE_F_DSR);
  const PacketSpec syn = from_client(v6, protocol, 41003);
  PacketSpec ack = syn;
  ack.tcp_flags = 0x10;
  for (int i = 0; i < 3; ++i) ASSERT_EQ(hex(balance(build_frame(ack)).out), hex(to_backend_dsr(ack, 0)));

  XLB_ASSERT_OK(lb_->upsert_backend(id(v6, kBackend), lbnet::family(v6).backend[0], kBackendPort,
                                    XLB_BACKEND_DRAINING));
  serve(v6, protocol, kService, {kBackend + 1}, XLB_SERVICE_F_DSR);

  EXPECT_EQ(hex(balance(build_frame(ack)).out), hex(to_backend_dsr(ack, 0)));
  EXPECT_EQ(hex(balance(build_frame(syn)).out), hex(to_backend_dsr(syn, 1)));
}

TEST_P(Dsr, FlowsSpreadOverTheOuterSourcePrefix) {
  const auto [v6, protocol, at_tc] = GetParam();
  serve(v6, protocol, kService, {kBackend}, XLB_SERVICE_F_DSR);
  std::set<std::string> sources;
  for (uint16_t sport = 42000; sport < 42016; ++sport) {
    const PacketSpec in = from_client(v6, protocol, sport);
    const TestRun run = balance(build_frame(in));
    ASSERT_EQ(hex(run.out), hex(to_backend_dsr(in, 0))) << "source port " << sport;
    sources.insert(outer_source(in).str());
  }
  EXPECT_EQ(sources.size(), 16U) << "16 flows should have 16 outer sources";
}

TEST_P(Dsr, WithoutAPrefixForTheFamilyPacketsAreDropped) {
  const auto [v6, protocol, at_tc] = GetParam();
  XLB_ASSERT_OK(set_dsr(xlb_dsr_config{}));
  serve(v6, protocol, kService, {kBackend}, XLB_SERVICE_F_DSR);

  const TestRun run = balance(build_frame(from_client(v6, protocol, 41003)));

  EXPECT_EQ(action(run), dropped());
  EXPECT_EQ(reason_packets(XLB_DROP_NO_DSR_SOURCE), 1U);
  EXPECT_EQ(lb_->service(kService).packets, 0U);
}

TEST_P(Dsr, UnresolvedNextHopGoesToTheStackEncapsulated) {
  const auto [v6, protocol, at_tc] = GetParam();
  serve(v6, protocol, kService, {kUnresolvedBackend}, XLB_SERVICE_F_DSR);
  const PacketSpec in = from_client(v6, protocol, 41004);

  const TestRun run = balance(build_frame(in));

  EXPECT_EQ(action(run), passed());
  // The MACs stay as they arrived: the stack forwards the packet and writes them.
  EXPECT_EQ(hex(run.out), hex(encapsulated(in, outer_source(in), lbnet::family(v6).unresolved_backend,
                                           lbnet::kClientMac, lbnet::kClientLinkMac)));
  EXPECT_EQ(reason_packets(XLB_PASS_NO_NEIGHBOUR), 1U);
}

// XDP keeps the tag; at tc ingress the kernel has taken the first tag off already, and a frame
// that still carries one (a second) is dropped rather than encapsulated with its tag lost.
TEST_P(Dsr, EncapsulationKeepsTheVlanTagOrDropsTheFrameAtTc) {
  const auto [v6, protocol, at_tc] = GetParam();
  serve(v6, protocol, kService, {kBackend}, XLB_SERVICE_F_DSR);
  PacketSpec in = from_client(v6, protocol, 41005);
  in.vlan_tci = 42;

  const TestRun run = balance(build_frame(in));

  if (at_tc) {
    EXPECT_EQ(action(run), dropped());
    EXPECT_EQ(reason_packets(XLB_DROP_DSR_UNSUPPORTED), 1U);
    return;
  }
  Bytes expected = to_backend_dsr(in, 0);
  const uint8_t tag[] = {0x81, 0x00, 0x00, 42};
  expected.insert(expected.begin() + 12, std::begin(tag), std::end(tag));
  EXPECT_EQ(action(run), redirected());
  EXPECT_EQ(hex(run.out), hex(expected));
}

TEST_P(Dsr, TooBigOnceEncapsulatedIsAnsweredWithTheMtuLeftForTheInnerPacket) {
  const auto [v6, protocol, at_tc] = GetParam();
  XLB_ASSERT_OK(run_command({"/usr/sbin/ip", "link", "set", lbnet::kBackendLink, "mtu", "1400"}));
  serve(v6, protocol, kService, {kBackend}, XLB_SERVICE_F_DSR);
  // Fits the link unencapsulated (1400 bytes of IP), not with the outer header.
  const size_t headers = (v6 ? 40 : 20) + (protocol == kTcp ? 20 : 8);
  const PacketSpec in = from_client(v6, protocol, 41006, std::string(1400 - headers, 'x'));

  const TestRun run = balance(build_frame(in));

  EXPECT_EQ(action(run), answered());
  EXPECT_EQ(hex(run.out), hex(too_big(in, static_cast<uint16_t>(1400 - (v6 ? 40 : 20)))));
  EXPECT_EQ(reason_packets(XLB_TX_ICMP_TOO_BIG), 1U);

  // One byte less than the inner MTU the message announced passes.
  const PacketSpec smaller = from_client(v6, protocol, 41006, std::string(1400 - (v6 ? 40 : 20) - headers, 'x'));
  EXPECT_EQ(hex(balance(build_frame(smaller)).out), hex(to_backend_dsr(smaller, 0)));
}

// A router fragments what does not fit unless DF says not to; xlb does not fragment, and has
// no ICMP answer to give for a packet that allows it.
TEST_P(Dsr, TooBigIpv4WithoutDontFragmentIsDropped) {
  const auto [v6, protocol, at_tc] = GetParam();
  if (v6) GTEST_SKIP() << "IPv6 has no DF bit: no router fragments it";
  XLB_ASSERT_OK(run_command({"/usr/sbin/ip", "link", "set", lbnet::kBackendLink, "mtu", "1400"}));
  serve(v6, protocol, kService, {kBackend}, XLB_SERVICE_F_DSR);
  PacketSpec in = from_client(v6, protocol, 41007, std::string(1400 - 28, 'x'));
  in.frag = 0;

  const TestRun run = balance(build_frame(in));

  EXPECT_EQ(action(run), dropped());
  EXPECT_EQ(reason_packets(XLB_DROP_TOO_BIG), 1U);
}

// ---- decapsulation (tc, on a backend node) ---------------------------------------------------

TEST_P(DsrDecap, DecapsulatesWhatTheLoadBalancerSentToADsrFrontend) {
  const auto [v6, protocol, at_tc] = GetParam();
  XLB_ASSERT_OK(enable_decap());
  serve(v6, protocol, kService, {kBackend}, XLB_SERVICE_F_DSR);
  const PacketSpec in = from_client(v6, protocol, 41010);
  const Bytes arrived = to_backend_dsr(in, 0);

  const TestRun run = tc(arrived);

  // The frame as the backend's stack then sees it: the same link layer, the client's packet.
  PacketSpec inner = in;
  inner.eth_src = lbnet::kBackendLinkMac;
  inner.eth_dst = lbnet::backend_mac(0);
  EXPECT_EQ(tc_action(run.action), "TC_ACT_OK");
  EXPECT_EQ(hex(run.out), hex(build_frame(inner)));
  EXPECT_EQ(reason_packets(XLB_DECAPSULATED), 1U);
  EXPECT_EQ(lb_->service(kService).packets, 1U);
}

// The stack takes a VLAN tag off into skb->vlan_tci before tc ingress; one still in the
// frame is a second tag, which the program does not step over.
TEST_P(DsrDecap, LeavesATaggedFrameAlone) {
  const auto [v6, protocol, at_tc] = GetParam();
  XLB_ASSERT_OK(enable_decap());
  serve(v6, protocol, kService, {kBackend}, XLB_SERVICE_F_DSR);
  Bytes arrived = to_backend_dsr(from_client(v6, protocol, 41011), 0);
  const uint8_t tag[] = {0x81, 0x00, 0x00, 7};
  arrived.insert(arrived.begin() + 12, std::begin(tag), std::end(tag));

  const TestRun run = tc(arrived);

  EXPECT_EQ(tc_action(run.action), "TC_ACT_OK");
  EXPECT_EQ(hex(run.out), hex(arrived));
  EXPECT_EQ(reason_packets(XLB_DECAPSULATED), 0U);
}

TEST_P(DsrDecap, LeavesIpInIpAloneWhenDecapIsOffOrTheInnerPacketIsNoDsrFrontend) {
  const auto [v6, protocol, at_tc] = GetParam();
  serve(v6, protocol, kService, {kBackend}, XLB_SERVICE_F_DSR);
  serve(v6, protocol, kService + 1, {kBackend}, 0, 0, lbnet::family(v6).other_frontend);
  const PacketSpec in = from_client(v6, protocol, 41012);

  // Decap off on this node.
  const Bytes to_dsr = to_backend_dsr(in, 0);
  EXPECT_EQ(hex(tc(to_dsr).out), hex(to_dsr));

  XLB_ASSERT_OK(enable_decap());
  // To a nat frontend, and to no frontend at all.
  for (const IpAddr& vip : {lbnet::family(v6).other_frontend, lbnet::family(v6).not_frontend}) {
    PacketSpec other = in;
    other.dst = vip;
    const Bytes frame = to_backend_dsr(other, 0);
    const TestRun run = tc(frame);
    EXPECT_EQ(tc_action(run.action), "TC_ACT_OK");
    EXPECT_EQ(hex(run.out), hex(frame)) << "to " << vip.str();
  }
  EXPECT_EQ(reason_packets(XLB_DECAPSULATED), 0U);
}

}  // namespace
}  // namespace xlb::test

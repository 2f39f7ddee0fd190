// The XDP program's rule for malformed input and other protocols (see the top of
// bpf/xlb_xdp.bpf.c), ICMP errors about balanced flows (XDP and the tc balancer), and the event
// rate limit.
#include <gtest/gtest.h>

#include <functional>

#include "bpf/lb_fixture.h"

namespace xlb::test {
namespace {

constexpr size_t kEth = 14;

// ---- not recognisable as IP: passed untouched -----------------------------------------------

class XdpNotIp : public LbTest {};

TEST_F(XdpNotIp, FramesThatAreNotReadableIpPassUntouched) {
  serve(false, kTcp, 7, {kBackend});
  serve(true, kTcp, 8, {kBackend});
  const Bytes v4 = build_frame(from_client(false, kTcp, 40000));
  const Bytes v6 = build_frame(from_client(true, kTcp, 40000));

  Bytes arp = v4;  // an EtherType that is not IP
  arp[12] = 0x08;
  arp[13] = 0x06;
  PacketSpec qinq_spec = from_client(false, kTcp, 40000);  // a second tag behind the first
  qinq_spec.vlan_tpid = 0x88a8;
  qinq_spec.vlan_tci = 10;
  qinq_spec.ethertype = 0x8100;
  const Bytes qinq = build_frame(qinq_spec);
  Bytes cut_vlan(v4.begin(), v4.begin() + 12);  // a VLAN tag cut short (test runs need 14 bytes)
  cut_vlan.insert(cut_vlan.end(), {0x81, 0x00, 0x00});
  const Bytes cut_ipv4(v4.begin(), v4.begin() + kEth + 19);
  const Bytes cut_ipv6(v6.begin(), v6.begin() + kEth + 39);

  uint64_t count = 0;
  for (const auto& [name, frame] : std::vector<std::pair<std::string, Bytes>>{
           {"ARP", arp}, {"QinQ", qinq}, {"VLAN tag cut short", cut_vlan}, {"IPv4 header cut short", cut_ipv4},
           {"IPv6 header cut short", cut_ipv6}}) {
    const TestRun run = xdp(frame);
    EXPECT_EQ(xdp_action(run.action), "XDP_PASS") << name;
    EXPECT_EQ(hex(run.out), hex(frame)) << name;
    EXPECT_EQ(reason_packets(XLB_PASS_NOT_IP), ++count) << name;
  }
}

// ---- malformed IP: dropped when to a frontend address, else passed untouched --------------

struct Malformed {
  std::string name;
  bool v6;
  uint32_t reason;
  std::function<Bytes(const PacketSpec&)> make;  // from a well-formed packet's spec
};

void set16(Bytes& b, size_t at, uint16_t v) {
  b[at] = static_cast<uint8_t>(v >> 8);
  b[at + 1] = static_cast<uint8_t>(v);
}

std::vector<Malformed> malformed_cases() {
  return {
      {"TcpHeaderCutShort", false, XLB_DROP_TRUNCATED,
       [](const PacketSpec& s) {
         Bytes f = build_frame(s);
         f.resize(kEth + 20 + 10);
         set16(f, kEth + 2, 30);  // the IP length agrees: the TCP header itself is short
         return f;
       }},
      {"UdpHeaderCutShort", false, XLB_DROP_TRUNCATED,
       [](PacketSpec s) {
         s.protocol = kUdp;
         Bytes f = build_frame(s);
         f.resize(kEth + 20 + 4);
         set16(f, kEth + 2, 24);
         return f;
       }},
      {"FrameShorterThanTheIpLength", false, XLB_DROP_TRUNCATED,
       [](const PacketSpec& s) {
         Bytes f = build_frame(s);
         f.resize(f.size() - 3);
         return f;
       }},
      {"ZeroIpLength", false, XLB_DROP_TRUNCATED,
       [](const PacketSpec& s) {
         Bytes f = build_frame(s);
         set16(f, kEth + 2, 0);
         return f;
       }},
      {"Ipv4Options", false, XLB_DROP_IPV4_OPTIONS,
       [](PacketSpec s) {
         s.ip_options = {0x01, 0x01, 0x01, 0x00};  // NOP NOP NOP EOL
         return build_frame(s);
       }},
      {"FirstFragment", false, XLB_DROP_FRAGMENT,
       [](PacketSpec s) {
         s.frag = 0x2000;  // MF
         return build_frame(s);
       }},
      {"LaterFragment", false, XLB_DROP_FRAGMENT,
       [](PacketSpec s) {
         s.frag = 185;  // offset 1480 bytes, no MF: the last fragment
         return build_frame(s);
       }},
      {"IhlBelowFive", false, XLB_DROP_BAD_IHL,
       [](const PacketSpec& s) {
         Bytes f = build_frame(s);
         f[kEth] = 0x44;
         return f;
       }},
      {"VersionNotFour", false, XLB_DROP_BAD_IHL,
       [](const PacketSpec& s) {
         Bytes f = build_frame(s);
         f[kEth] = 0x65;
         return f;
       }},
      {"Ipv6FragmentHeader", true, XLB_DROP_FRAGMENT,
       [](PacketSpec s) {
         s.protocol = 44;
         s.payload = {kTcp, 0, 0x00, 0x01, 0, 0, 0, 42};  // fragment header, offset 0, MF
         return build_frame(s);
       }},
      {"Ipv6ZeroPayloadLength", true, XLB_DROP_TRUNCATED,
       [](const PacketSpec& s) {
         Bytes f = build_frame(s);
         set16(f, kEth + 4, 0);
         return f;
       }},
      {"Ipv6UdpHeaderCutShort", true, XLB_DROP_TRUNCATED,
       [](PacketSpec s) {
         s.protocol = kUdp;
         Bytes f = build_frame(s);
         f.resize(kEth + 40 + 6);
         set16(f, kEth + 4, 6);
         return f;
       }},
      {"Ipv6VersionNotSix", true, XLB_DROP_BAD_IHL,
       [](const PacketSpec& s) {
         Bytes f = build_frame(s);
         f[kEth] = 0x40;
         return f;
       }},
  };
}

void PrintTo(const Malformed& c, std::ostream* os) { *os << c.name; }

class XdpMalformed : public LbTest, public ::testing::WithParamInterface<Malformed> {};

INSTANTIATE_TEST_SUITE_P(Classes, XdpMalformed, ::testing::ValuesIn(malformed_cases()),
                         [](const ::testing::TestParamInfo<Malformed>& p) { return p.param.name; });

TEST_P(XdpMalformed, ToAFrontendAddressIsDroppedAndCountedWithItsReason) {
  const Malformed& c = GetParam();
  serve(c.v6, kTcp, 7, {kBackend});
  const Bytes frame = c.make(from_client(c.v6, kTcp, 40000));

  const TestRun run = xdp(frame);

  EXPECT_EQ(xdp_action(run.action), "XDP_DROP");
  EXPECT_EQ(reason_packets(c.reason), 1U);
  EXPECT_EQ(lb_->reason(c.reason).bytes, frame.size());
  EXPECT_EQ(lb_->service(7).packets, 0U);
}

TEST_P(XdpMalformed, ToAnyOtherAddressPassesUntouched) {
  const Malformed& c = GetParam();
  serve(c.v6, kTcp, 7, {kBackend});
  PacketSpec spec = from_client(c.v6, kTcp, 40000);
  spec.dst = lbnet::family(c.v6).not_frontend;
  const Bytes frame = c.make(spec);

  const TestRun run = xdp(frame);

  EXPECT_EQ(xdp_action(run.action), "XDP_PASS");
  EXPECT_EQ(hex(run.out), hex(frame));
  EXPECT_EQ(reason_packets(XLB_PASS_NOT_SERVICE), 1U);
  EXPECT_EQ(reason_packets(c.reason), 0U);
}

// ---- other protocols ------------------------------------------------------------------------

class XdpOtherProtocols : public LbTest, public ::testing::WithParamInterface<bool> {};

INSTANTIATE_TEST_SUITE_P(Families, XdpOtherProtocols, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& p) { return p.param ? "IPv6" : "IPv4"; });

TEST_P(XdpOtherProtocols, PassUntouchedCountedByWhetherTheAddressIsAFrontend) {
  const bool v6 = GetParam();
  serve(v6, kTcp, 7, {kBackend});
  PacketSpec gre = from_client(v6, kTcp, 0);
  gre.protocol = 47;
  gre.payload = {0, 0, 0x08, 0x00};
  PacketSpec ping = from_client(v6, kTcp, 0);
  ping.protocol = v6 ? kIcmpv6 : kIcmp;
  ping.icmp_type = v6 ? 128 : 8;  // echo request
  ping.icmp_rest = 0x00010001;

  for (PacketSpec spec : {gre, ping}) {
    Bytes frame = build_frame(spec);
    TestRun run = xdp(frame);
    EXPECT_EQ(xdp_action(run.action), "XDP_PASS");
    EXPECT_EQ(hex(run.out), hex(frame));
    spec.dst = lbnet::family(v6).not_frontend;
    frame = build_frame(spec);
    run = xdp(frame);
    EXPECT_EQ(xdp_action(run.action), "XDP_PASS");
    EXPECT_EQ(hex(run.out), hex(frame));
  }
  EXPECT_EQ(reason_packets(XLB_PASS_NOT_TCP_UDP), 2U);
  EXPECT_EQ(reason_packets(XLB_PASS_NOT_SERVICE), 2U);
}

// ---- ICMP errors about a balanced flow ------------------------------------------------------

struct IcmpCase {
  std::string name;
  bool v6;
  uint8_t protocol;
  size_t embedded_l4_bytes;  // how much of the reply's TCP/UDP header and payload the error carries
  bool snat;
  bool tc = false;  // the tc balancer (xdp_mode "tc") instead of XDP
};

void PrintTo(const IcmpCase& c, std::ostream* os) { *os << c.name; }

// XDP's cases, and each again for the tc balancer.
std::vector<IcmpCase> icmp_cases(std::vector<IcmpCase> xdp) {
  std::vector<IcmpCase> all = xdp;
  for (IcmpCase c : xdp) {
    c.name = "Tc" + c.name;
    c.tc = true;
    all.push_back(c);
  }
  return all;
}

class IcmpError : public LbTest, public ::testing::WithParamInterface<IcmpCase> {
 protected:
  // The program under test, and its verdicts' names.
  TestRun balance(const Bytes& frame) { return GetParam().tc ? tc_lb(frame) : xdp(frame); }
  static std::string action(const TestRun& run) {
    return GetParam().tc ? tc_action(run.action) : xdp_action(run.action);
  }
  static std::string redirected() { return GetParam().tc ? "TC_ACT_REDIRECT" : "XDP_REDIRECT"; }
  static std::string passed() { return GetParam().tc ? "TC_ACT_OK" : "XDP_PASS"; }

  // A router on the client's side says that the reply (frontend -> client) was too big.
  static PacketSpec too_big(bool v6, const Bytes& embedded) {
    const lbnet::Family f = lbnet::family(v6);
    PacketSpec s;
    s.eth_src = lbnet::kClientMac;
    s.eth_dst = lbnet::kClientLinkMac;
    s.src = ip(v6 ? "2001:db8:c::fe" : "192.0.2.254");
    s.dst = f.frontend;
    s.protocol = v6 ? kIcmpv6 : kIcmp;
    s.icmp_type = v6 ? 2 : 3;          // packet too big / destination unreachable
    s.icmp_code = v6 ? 0 : 4;          // - / fragmentation needed
    s.icmp_rest = v6 ? 1280 : 1400;    // the next hop's MTU
    s.payload = embedded;
    return s;
  }

  static Bytes first_bytes(const PacketSpec& packet, size_t l4_bytes) {
    Bytes b = build_ip(packet);
    b.resize((packet.src.v6() ? 40 : 20) + l4_bytes);
    return b;
  }
};

INSTANTIATE_TEST_SUITE_P(
    Errors, IcmpError,
    ::testing::ValuesIn(icmp_cases({IcmpCase{"FragNeededTcpWholeHeader", false, kTcp, 20 + 5, false},
                                    IcmpCase{"FragNeededTcpFirst8Bytes", false, kTcp, 8, false},
                                    IcmpCase{"FragNeededUdp", false, kUdp, 8 + 5, false},
                                    IcmpCase{"FragNeededTcpSnat", false, kTcp, 20 + 5, true},
                                    IcmpCase{"PacketTooBigTcp", true, kTcp, 20 + 5, false},
                                    IcmpCase{"PacketTooBigUdp", true, kUdp, 8 + 5, false},
                                    IcmpCase{"PacketTooBigTcpSnat", true, kTcp, 20 + 5, true}})),
    [](const ::testing::TestParamInfo<IcmpCase>& p) { return p.param.name; });

TEST_P(IcmpError, GoesToTheFlowsBackendAsAnErrorAboutItsOwnPacket) {
  const IcmpCase& c = GetParam();
  const lbnet::Family f = lbnet::family(c.v6);
  serve(c.v6, c.protocol, 7, {kBackend + 1}, c.snat ? XLB_SERVICE_F_SNAT : 0);
  ASSERT_EQ(action(balance(build_frame(from_client(c.v6, c.protocol, 40000)))), redirected());
  const uint16_t snat_port =
      ntohs(lb_->conntrack(flow_key(f.client, 40000, f.frontend, kFrontendPort, c.protocol))->snat_port);

  // The reply as the client's path saw it, and as the backend sent it.
  PacketSpec reply = from_backend(c.v6, c.protocol, 1, f.client, 40000, "world");
  reply.src = f.frontend;
  reply.sport = kFrontendPort;
  PacketSpec sent = from_backend(c.v6, c.protocol, 1, c.snat ? f.node : f.client, c.snat ? snat_port : 40000, "world");
  const PacketSpec in = too_big(c.v6, first_bytes(reply, c.embedded_l4_bytes));

  const TestRun run = balance(build_frame(in));

  PacketSpec expected = too_big(c.v6, first_bytes(sent, c.embedded_l4_bytes));
  expected.eth_src = lbnet::kBackendLinkMac;
  expected.eth_dst = lbnet::backend_mac(1);
  expected.dst = f.backend[1];
  if (c.snat) expected.src = f.node;
  expected.ttl = 63;
  EXPECT_EQ(action(run), redirected());
  EXPECT_EQ(hex(run.out), hex(build_frame(expected)));
  EXPECT_EQ(lb_->backend(id(c.v6, kBackend + 1)).packets, 2U);
  EXPECT_EQ(reason_packets(XLB_REASON_FORWARDED), 2U);
}

TEST_P(IcmpError, AboutAFlowXlbDoesNotKnowPassesUntouched) {
  const IcmpCase& c = GetParam();
  const lbnet::Family f = lbnet::family(c.v6);
  serve(c.v6, c.protocol, 7, {kBackend + 1});
  PacketSpec reply = from_backend(c.v6, c.protocol, 1, f.client, 40000);
  reply.src = f.frontend;
  reply.sport = kFrontendPort;
  const Bytes frame = build_frame(too_big(c.v6, first_bytes(reply, c.embedded_l4_bytes)));

  const TestRun run = balance(frame);

  EXPECT_EQ(action(run), passed());
  EXPECT_EQ(hex(run.out), hex(frame));
  EXPECT_EQ(reason_packets(XLB_PASS_NOT_TCP_UDP), 1U);
}

TEST_P(IcmpError, AboutABalancedFlowButToAnotherHostPassesUntouched) {
  const IcmpCase& c = GetParam();
  const lbnet::Family f = lbnet::family(c.v6);
  serve(c.v6, c.protocol, 7, {kBackend + 1}, c.snat ? XLB_SERVICE_F_SNAT : 0);
  ASSERT_EQ(action(balance(build_frame(from_client(c.v6, c.protocol, 40000)))), redirected());
  PacketSpec reply = from_backend(c.v6, c.protocol, 1, f.client, 40000, "world");
  reply.src = f.frontend;
  reply.sport = kFrontendPort;
  PacketSpec in = too_big(c.v6, first_bytes(reply, c.embedded_l4_bytes));
  in.dst = ip(c.v6 ? "2001:db8:c::77" : "192.0.2.77");  // not the frontend the quoted packet came from
  const Bytes frame = build_frame(in);

  const TestRun run = balance(frame);

  EXPECT_EQ(action(run), passed());
  EXPECT_EQ(hex(run.out), hex(frame));
  EXPECT_EQ(lb_->backend(id(c.v6, kBackend + 1)).packets, 1U);  // the first packet only
}

// ---- events ---------------------------------------------------------------------------------

class XdpEvents : public LbTest {
 protected:
  size_t consume_events() {
    size_t count = 0;
    ring_buffer* rb = ring_buffer__new(
        lb_->fd(lb_->xdp()->maps.xlb_events),
        [](void* ctx, void*, size_t) {
          ++*static_cast<size_t*>(ctx);
          return 0;
        },
        &count, nullptr);
    if (rb == nullptr) return 0;
    ring_buffer__consume(rb);
    ring_buffer__free(rb);
    return count;
  }
  // Drops held back, summed over CPUs (xlb_event_budget.unreported).
  uint64_t unreported() {
    std::vector<xlb_event_budget> budgets(static_cast<size_t>(libbpf_num_possible_cpus()));
    const __u32 zero = 0;
    if (bpf_map_lookup_elem(lb_->fd(lb_->xdp()->maps.xlb_event_budget), &zero, budgets.data()) != 0) return 0;
    uint64_t sum = 0;
    for (const auto& b : budgets) sum += b.unreported;
    return sum;
  }
};

TEST_F(XdpEvents, AtMostEventsPerSecondPerCpuWhileEveryDropIsCounted) {
  xlb_node_config node{};
  node.events_per_second = 3;
  XLB_ASSERT_OK(lb_->set_node(node));
  serve(false, kUdp, 7, {});  // no backend: every packet is dropped
  const Bytes frame = build_frame(from_client(false, kUdp, 40000));

  for (int i = 0; i < 5; ++i) ASSERT_EQ(xdp_action(xdp(frame).action), "XDP_DROP");

  EXPECT_EQ(reason_packets(XLB_DROP_NO_BACKEND), 5U);
  EXPECT_EQ(consume_events(), 3U);
  EXPECT_EQ(unreported(), 2U) << "what the budget held back is counted";

  // A second later (the window's start moved into the past): a new budget.
  XLB_ASSERT_OK(lb_->set_percpu(lb_->xdp()->maps.xlb_event_budget, 0, xlb_event_budget{}));
  ASSERT_EQ(xdp_action(xdp(frame).action), "XDP_DROP");
  EXPECT_EQ(consume_events(), 1U);
}

TEST_F(XdpEvents, NoneWhenTheNodeAsksForNone) {
  xlb_node_config node{};
  node.events_per_second = 0;
  XLB_ASSERT_OK(lb_->set_node(node));
  serve(false, kUdp, 7, {});

  ASSERT_EQ(xdp_action(xdp(build_frame(from_client(false, kUdp, 40000))).action), "XDP_DROP");

  EXPECT_EQ(consume_events(), 0U);
  EXPECT_EQ(reason_packets(XLB_DROP_NO_BACKEND), 1U);
}

}  // namespace
}  // namespace xlb::test

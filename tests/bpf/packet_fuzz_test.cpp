// Packet fuzzing of the XDP and tc programs through BPF_PROG_TEST_RUN: random frames, and frames
// mutated from the valid packets of the other tests (requests to frontends in nat, snat and dsr,
// replies from backends, IP-in-IP for a backend node, ICMP errors, VLAN tags), a bounded number
// of each. Whatever arrives:
//   - XDP answers only XDP_PASS, XDP_DROP, XDP_TX or XDP_REDIRECT (never XDP_ABORTED), and a
//     frame not addressed to a frontend leaves with XDP_PASS, byte for byte as it came (the rule
//     at the top of bpf/xlb_xdp.bpf.c);
//   - tc answers only TC_ACT_OK, TC_ACT_SHOT or TC_ACT_REDIRECT, and a frame that neither comes
//     from a backend nor carries a packet to a frontend inside IP-in-IP (decap is on) leaves
//     with TC_ACT_OK, untouched (bpf/xlb_tc.bpf.c, bpf/lib/decap.h).
// The run is deterministic: XLB_PACKET_FUZZ_SEED (default 1) and XLB_PACKET_FUZZ_FRAMES (per
// program, default 20000) replay it. It prints how many frames were tried.
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "bpf/lb_fixture.h"

namespace xlb::test {
namespace {

constexpr size_t kEth = 14;
constexpr size_t kMaxFrame = 1514;

uint64_t env_number(const char* name, uint64_t fallback) {
  const char* text = std::getenv(name);
  return text && *text ? std::strtoull(text, nullptr, 10) : fallback;
}

// Where an IP header may sit after the frame's own: none (the frame's), inside IP-in-IP (after
// an outer header of the same family), or inside an ICMP error (after the outer header and 8
// bytes of ICMP).
enum class Nested { no, ip_in_ip, icmp_error };

// Does `frame` hold one of `addresses` where an IP header's source (at 12 in IPv4, 8 in IPv6)
// or destination (16, 24) would be, right after the Ethernet header or after one VLAN tag?
// Read at every place the programs might, whatever the EtherType and protocol say: a superset
// of what they could take for that address, so that "not there" really means they cannot see it.
bool holds_address(const Bytes& frame, const std::vector<IpAddr>& addresses, bool source, Nested nested = Nested::no) {
  for (const size_t l3 : {kEth, kEth + 4})
    for (const IpAddr& a : addresses) {
      const size_t outer = nested == Nested::no ? 0 : a.v6() ? 40 : 20;
      const size_t header = outer + (nested == Nested::icmp_error ? 8 : 0);
      const size_t at = l3 + header + (a.v6() ? (source ? 8 : 24) : (source ? 12 : 16));
      if (frame.size() >= at + a.size() && std::equal(a.bytes.begin(), a.bytes.begin() + a.size(), frame.begin() + at))
        return true;
    }
  return false;
}

// The kernel's test run of a tc program refuses (EINVAL) a frame whose EtherType is IPv4 or
// IPv6 but that is shorter than that IP header: such frames cannot be tried through it.
bool tc_test_run_refuses(const Bytes& frame) {
  const uint16_t type = static_cast<uint16_t>(frame[12] << 8 | frame[13]);
  return (type == 0x0800 && frame.size() < kEth + 20) || (type == 0x86dd && frame.size() < kEth + 40);
}

class PacketFuzz : public LbTest {
 protected:
  void SetUp() override {
    LbTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    for (const bool v6 : {false, true}) {
      const lbnet::Family f = lbnet::family(v6);
      const uint32_t base = v6 ? 20 : 10;
      // nat for TCP, snat for UDP; a second address with ClientIP affinity, and one with no
      // backend at all (its packets are dropped).
      serve(v6, kTcp, base + 1, {kBackend, kBackend + 1, kBackend + 2});
      serve(v6, kUdp, base + 2, {kBackend, kBackend + 1, kLocalBackend}, XLB_SERVICE_F_SNAT);
      serve(v6, kTcp, base + 3, {kBackend + 1, kBackend + 2}, XLB_SERVICE_F_AFFINITY, 60, f.other_frontend);
      serve(v6, kUdp, base + 4, {kBackend, kBackend + 1}, XLB_SERVICE_F_DSR, 0, f.other_frontend);
      serve(v6, kTcp, base + 5, {}, 0, 0, no_backend(v6));
      frontends_.insert(frontends_.end(), {f.frontend, f.other_frontend, no_backend(v6)});
      backends_.insert(backends_.end(), {f.backend[0], f.backend[1], f.backend[2], f.local_backend,
                                         f.unresolved_backend, f.unroutable_backend});
    }
    // dsr encapsulates from these prefixes; with decap on, tc also takes IP-in-IP to a dsr
    // frontend apart, as on a backend node.
    xlb_dsr_config dsr{};
    dsr.src_v4 = ip("10.99.0.0").words()[0];
    copy_addr(dsr.src_v6, ip("fd00:99::"));
    dsr.src_v4_prefix_len = 16;
    dsr.src_v6_prefix_len = 64;
    dsr.decap = 1;
    const __u32 zero = 0;
    ASSERT_EQ(bpf_map_update_elem(lb_->fd(lb_->xdp()->maps.xlb_dsr), &zero, &dsr, BPF_ANY), 0) << std::strerror(errno);
    make_seeds();
  }

  static IpAddr no_backend(bool v6) { return ip(v6 ? "2001:db8:f::12" : "203.0.113.12"); }

  // The valid packets that mutations start from; running the requests once first gives the
  // replies their conntrack and reverse-NAT entries.
  void make_seeds() {
    for (const bool v6 : {false, true}) {
      const lbnet::Family f = lbnet::family(v6);
      std::vector<PacketSpec> requests = {from_client(v6, kTcp, 40000), from_client(v6, kUdp, 40001)};
      PacketSpec affinity = from_client(v6, kTcp, 40002);
      affinity.dst = f.other_frontend;
      PacketSpec tagged = from_client(v6, kTcp, 40003);
      tagged.vlan_tci = 10;
      requests.insert(requests.end(), {affinity, tagged});
      for (const PacketSpec& r : requests) {
        const Bytes frame = build_frame(r);
        ASSERT_NE(xdp_action(xdp(frame).action), "XDP_ABORTED");
        xdp_seeds_.push_back(frame);
        const auto ct = lb_->conntrack(flow_key(r.src, r.sport, r.dst, r.dport, r.protocol));
        if (!ct) continue;  // the tagged one: its flow is the untagged one's
        const int backend = static_cast<int>(ct->backend_id - id(v6, kBackend));
        if (backend < 0 || backend > 2) continue;  // the local backend answers on the client link
        const bool snat = ct->snat_port != 0;
        tc_seeds_.push_back(build_frame(from_backend(v6, r.protocol, backend, snat ? f.node : f.client,
                                                     snat ? ntohs(ct->snat_port) : r.sport)));
      }
      // dsr: one that fits once encapsulated (its encapsulated form is what a backend node's tc
      // takes apart), and one too big for that.
      PacketSpec dsr = from_client(v6, kUdp, 40005);
      dsr.dst = f.other_frontend;
      const Bytes dsr_frame = build_frame(dsr);
      const TestRun encapsulated = xdp(dsr_frame);
      ASSERT_NE(encapsulated.out, dsr_frame) << "the dsr request was not encapsulated";
      tc_seeds_.push_back(encapsulated.out);
      dsr.sport = 40006;
      dsr.payload.assign(v6 ? 1440 : 1460, 'x');
      xdp_seeds_.insert(xdp_seeds_.end(), {dsr_frame, build_frame(dsr)});
      PacketSpec other = from_client(v6, kTcp, 40004);  // to an address no frontend has
      other.dst = f.not_frontend;
      PacketSpec ping = from_client(v6, v6 ? kIcmpv6 : kIcmp, 0);
      ping.icmp_type = v6 ? 128 : 8;
      ping.icmp_rest = 0x00010001;
      // "Too big" about the TCP flow's reply, as a router near the client sends it.
      PacketSpec reply = from_client(v6, kTcp, 0);
      reply.src = f.frontend;
      reply.sport = kFrontendPort;
      reply.dst = f.client;
      reply.dport = 40000;
      Bytes embedded = build_ip(reply);
      embedded.resize((v6 ? 40 : 20) + 8);
      PacketSpec too_big = from_client(v6, v6 ? kIcmpv6 : kIcmp, 0);
      too_big.src = ip(v6 ? "2001:db8:c::fe" : "192.0.2.254");
      too_big.icmp_type = v6 ? 2 : 3;
      too_big.icmp_code = v6 ? 0 : 4;
      too_big.icmp_rest = v6 ? 1280 : 1400;
      too_big.payload = embedded;
      for (const PacketSpec& s : {other, ping, too_big}) xdp_seeds_.push_back(build_frame(s));
      // A backend's packet that belongs to no flow, and one from a stranger.
      tc_seeds_.push_back(build_frame(from_backend(v6, kTcp, 1, f.client, 49999)));
      PacketSpec stranger = from_backend(v6, kUdp, 0, f.client, 40001);
      stranger.src = f.not_frontend;
      tc_seeds_.push_back(build_frame(stranger));
    }
    Bytes arp = xdp_seeds_.front();
    arp[12] = 0x08;
    arp[13] = 0x06;
    xdp_seeds_.push_back(arp);
  }

  // One frame to try: mostly a seed with a few changes, sometimes noise.
  Bytes next_frame(const std::vector<Bytes>& seeds) {
    auto below = [&](size_t n) { return static_cast<size_t>(rng_() % n); };
    auto byte = [&] { return static_cast<uint8_t>(rng_()); };
    if (below(8) == 0) {  // noise, half the time with an IP EtherType and a frontend's address
      Bytes f(kEth + below(below(4) == 0 ? kMaxFrame - kEth : 120));
      for (auto& b : f) b = byte();
      if (below(2) == 0) {
        const IpAddr& to = frontends_[below(frontends_.size())];
        f[12] = to.v6() ? 0x86 : 0x08;
        f[13] = to.v6() ? 0xdd : 0x00;
        const size_t at = kEth + (to.v6() ? 24 : 16);
        if (f.size() >= at + to.size()) std::copy(to.bytes.begin(), to.bytes.begin() + to.size(), f.begin() + at);
      }
      return f;
    }
    Bytes f = seeds[below(seeds.size())];
    const size_t edits = 1 + below(4);
    for (size_t e = 0; e < edits; ++e) {
      switch (below(6)) {
        case 0:
        case 1: {  // a byte, mostly in the headers
          const size_t at = below(4) ? below(std::min<size_t>(f.size(), kEth + 4 + 40 + 20 + 8)) : below(f.size());
          f[at] = byte();
          break;
        }
        case 2:  // a bit
          f[below(f.size())] ^= static_cast<uint8_t>(1u << below(8));
          break;
        case 3: {  // a 16-bit field set to an edge value
          static constexpr uint16_t kEdges[] = {0, 1, 5, 0x0f, 0x40, 0x45, 0x3fff, 0x7fff, 0x8000, 0xffff};
          const size_t at = below(std::max<size_t>(f.size() - 1, 1));
          const uint16_t v = kEdges[below(std::size(kEdges))];
          f[at] = static_cast<uint8_t>(v >> 8);
          if (at + 1 < f.size()) f[at + 1] = static_cast<uint8_t>(v);
          break;
        }
        case 4:  // cut short (test runs need the Ethernet header)
          f.resize(kEth + below(f.size() - kEth + 1));
          break;
        case 5:  // longer
          for (size_t n = below(64); n > 0 && f.size() < kMaxFrame; --n) f.push_back(byte());
          break;
      }
    }
    return f;
  }

  std::vector<IpAddr> frontends_;
  std::vector<IpAddr> backends_;
  std::vector<Bytes> xdp_seeds_;
  std::vector<Bytes> tc_seeds_;
  std::mt19937_64 rng_{env_number("XLB_PACKET_FUZZ_SEED", 1)};
};

TEST_F(PacketFuzz, NoAbortNoStrayActionAndOtherTrafficUntouched) {
  const uint64_t frames = env_number("XLB_PACKET_FUZZ_FRAMES", 20000);
  std::map<std::string, uint64_t> xdp_actions, tc_actions;
  uint64_t xdp_untouched_checked = 0, tc_untouched_checked = 0, tc_refused = 0;
  uint64_t tc_decapsulated = 0;  // changed but left to the stack: dsr's decapsulation

  for (uint64_t i = 0; i < frames; ++i) {
    const Bytes frame = next_frame(xdp_seeds_);
    const TestRun run = xdp(frame);
    const std::string action = xdp_action(run.action);
    ++xdp_actions[action];
    ASSERT_TRUE(action == "XDP_PASS" || action == "XDP_DROP" || action == "XDP_TX" || action == "XDP_REDIRECT")
        << action << " for XDP frame " << i << ":\n" << hex(frame);
    if (!holds_address(frame, frontends_, false)) {
      ++xdp_untouched_checked;
      ASSERT_EQ(action, "XDP_PASS") << "XDP frame " << i << " is not to a frontend:\n" << hex(frame);
      ASSERT_EQ(hex(run.out), hex(frame)) << "XDP frame " << i << " is not to a frontend";
    }
  }
  for (uint64_t i = 0; i < frames; ++i) {
    const Bytes frame = next_frame(tc_seeds_);
    if (tc_test_run_refuses(frame)) {
      ++tc_refused;
      continue;
    }
    const TestRun run = tc(frame);
    const std::string action = tc_action(run.action);
    ++tc_actions[action];
    if (action == "TC_ACT_OK" && run.out != frame) ++tc_decapsulated;
    ASSERT_TRUE(action == "TC_ACT_OK" || action == "TC_ACT_SHOT" || action == "TC_ACT_REDIRECT")
        << action << " for tc frame " << i << ":\n" << hex(frame);
    if (!holds_address(frame, backends_, true) && !holds_address(frame, frontends_, false, Nested::ip_in_ip)) {
      ++tc_untouched_checked;
      ASSERT_EQ(action, "TC_ACT_OK") << "tc frame " << i << " is neither a reply nor for dsr:\n" << hex(frame);
      ASSERT_EQ(hex(run.out), hex(frame)) << "tc frame " << i << " is neither a reply nor for dsr";
    }
  }

  auto summary = [](const std::map<std::string, uint64_t>& actions) {
    std::string out;
    for (const auto& [name, count] : actions) out += " " + name + "=" + std::to_string(count);
    return out;
  };
  std::printf("packet fuzz (seed %llu): %llu XDP frames (%llu not to a frontend, checked untouched):%s\n",
              static_cast<unsigned long long>(env_number("XLB_PACKET_FUZZ_SEED", 1)),
              static_cast<unsigned long long>(frames), static_cast<unsigned long long>(xdp_untouched_checked),
              summary(xdp_actions).c_str());
  std::printf("packet fuzz: %llu tc frames (%llu too short for the test run; %llu neither a reply nor for "
              "dsr, checked untouched; %llu decapsulated):%s\n",
              static_cast<unsigned long long>(frames), static_cast<unsigned long long>(tc_refused),
              static_cast<unsigned long long>(tc_untouched_checked), static_cast<unsigned long long>(tc_decapsulated),
              summary(tc_actions).c_str());
  // The rule is only tested if both kinds of frame were tried, and the programs did more than pass.
  EXPECT_GT(xdp_untouched_checked, frames / 20);
  EXPECT_GT(xdp_actions["XDP_REDIRECT"] + xdp_actions["XDP_DROP"], frames / 20);
  EXPECT_GT(tc_untouched_checked, frames / 20);
  EXPECT_GT(tc_actions["TC_ACT_REDIRECT"], 0u);
  EXPECT_GT(tc_decapsulated, 0u);
}

}  // namespace
}  // namespace xlb::test

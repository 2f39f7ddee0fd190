// The fixture of the XDP and tc program tests: a private network namespace with the links of
// support/lb_netns.h, both programs loaded with shared maps, this node's settings written,
// and helpers that build the packets a client and a backend would send.
#pragma once

#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <sched.h>

#include <memory>
#include <string>
#include <vector>

#include "support/lb_netns.h"
#include "support/lb_programs.h"
#include "support/netns.h"
#include "support/packet.h"
#include "support/requirements.h"
#include "support/status.h"

namespace xlb::test {

inline constexpr uint16_t kFrontendPort = 80;
inline constexpr uint16_t kBackendPort = 8080;
inline constexpr uint16_t kSnatPortMin = 20000;
inline constexpr uint16_t kSnatPortMax = 29999;

// Backend ids: kBackend + i for backend[i] of lb_netns.h, then the special ones. IPv6
// backends are the same plus kV6.
inline constexpr uint32_t kBackend = 1;
inline constexpr uint32_t kLocalBackend = 4;
inline constexpr uint32_t kUnresolvedBackend = 5;
inline constexpr uint32_t kUnroutableBackend = 6;
inline constexpr uint32_t kV6 = 100;

inline Bytes text(const std::string& s) { return Bytes(s.begin(), s.end()); }

// Keeps the calling thread on the CPU it runs on, for tests of what a per-CPU cache kept: a test
// run happens on the caller's CPU, and another CPU has a cache of its own.
class OnThisCpu {
 public:
  OnThisCpu() {
    ::sched_getaffinity(0, sizeof before_, &before_);
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(::sched_getcpu(), &one);
    ::sched_setaffinity(0, sizeof one, &one);
  }
  ~OnThisCpu() { ::sched_setaffinity(0, sizeof before_, &before_); }
  OnThisCpu(const OnThisCpu&) = delete;
  OnThisCpu& operator=(const OnThisCpu&) = delete;

 private:
  cpu_set_t before_{};
};

class LbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    XLB_REQUIRE(missing_capabilities({kCapBpf, kCapNetAdmin, kCapSysAdmin}));
    XLB_ASSERT_OK(enter_private_netns());
    XLB_ASSERT_OK(lbnet::build());
    client_link_ = lbnet::ifindex(lbnet::kClientLink);
    backend_link_ = lbnet::ifindex(lbnet::kBackendLink);
    ASSERT_GT(client_link_, 0);
    ASSERT_GT(backend_link_, 0);

    Result<std::unique_ptr<LbPrograms>> loaded = LbPrograms::load({});
    XLB_ASSERT_OK(loaded);
    lb_ = std::move(loaded).value();

    xlb_node_config node{};
    node.snat_v4 = lbnet::v4().node.words()[0];
    copy_addr(node.snat_v6, lbnet::v6().node);
    node.snat_port_min = kSnatPortMin;
    node.snat_port_max = kSnatPortMax;
    node.events_per_second = 1000;
    node.ct_seed = 0x5eed1234;  // as xlbd writes one: the programs and the tests' helpers must agree
    XLB_ASSERT_OK(lb_->set_node(node));

    for (const bool v6 : {false, true}) {
      const lbnet::Family f = lbnet::family(v6);
      const uint32_t base = v6 ? kV6 : 0;
      for (uint32_t i = 0; i < 3; ++i) XLB_ASSERT_OK(lb_->upsert_backend(base + kBackend + i, f.backend[i], kBackendPort));
      XLB_ASSERT_OK(lb_->upsert_backend(base + kLocalBackend, f.local_backend, kBackendPort));
      XLB_ASSERT_OK(lb_->upsert_backend(base + kUnresolvedBackend, f.unresolved_backend, kBackendPort));
      XLB_ASSERT_OK(lb_->upsert_backend(base + kUnroutableBackend, f.unroutable_backend, kBackendPort));
    }
  }

  // A frontend at the family's frontend address whose ring is `ring` (backend ids, before
  // the IPv6 offset), under `service_id`.
  void serve(bool v6, uint8_t protocol, uint32_t service_id, const std::vector<uint32_t>& ring, uint32_t flags = 0,
             uint32_t affinity_timeout_s = 0, const std::optional<IpAddr>& address = std::nullopt) {
    std::vector<uint32_t> ids = ring;
    for (uint32_t& id : ids) id += v6 ? kV6 : 0;
    uint32_t offset = 0;
    if (!ids.empty()) {
      auto written = lb_->set_ring(ids);
      ASSERT_TRUE(written) << written.error().message;
      offset = *written;
    }
    const xlb_service_value value{.service_id = service_id,
                                  .ring_size = static_cast<__u32>(ids.size()),
                                  .flags = flags,
                                  .affinity_timeout_s = affinity_timeout_s,
                                  .ring_offset = offset};
    XLB_ASSERT_OK(lb_->upsert_service(address.value_or(lbnet::family(v6).frontend), kFrontendPort, protocol, value));
  }

  static uint32_t id(bool v6, uint32_t backend) { return backend + (v6 ? kV6 : 0); }

  // What a client on the client link sends to the frontend.
  static PacketSpec from_client(bool v6, uint8_t protocol, uint16_t sport, const std::string& payload = "hello") {
    const lbnet::Family f = lbnet::family(v6);
    PacketSpec s;
    s.eth_src = lbnet::kClientMac;
    s.eth_dst = lbnet::kClientLinkMac;
    s.src = f.client;
    s.dst = f.frontend;
    s.protocol = protocol;
    s.sport = sport;
    s.dport = kFrontendPort;
    s.payload = text(payload);
    return s;
  }

  // The same packet as xlb sends it on toward backend[i] on the backend link (nat).
  static PacketSpec to_backend(PacketSpec s, int i) {
    const lbnet::Family f = lbnet::family(s.src.v6());
    s.eth_src = lbnet::kBackendLinkMac;
    s.eth_dst = lbnet::backend_mac(i);
    s.dst = f.backend[i];
    s.dport = kBackendPort;
    s.ttl = static_cast<uint8_t>(s.ttl - 1);
    return s;
  }

  // A reply from backend[i] to `to`:`dport`, arriving on the backend link.
  static PacketSpec from_backend(bool v6, uint8_t protocol, int i, const IpAddr& to, uint16_t dport,
                                 const std::string& payload = "world") {
    const lbnet::Family f = lbnet::family(v6);
    PacketSpec s;
    s.eth_src = lbnet::backend_mac(i);
    s.eth_dst = lbnet::kBackendLinkMac;
    s.src = f.backend[i];
    s.sport = kBackendPort;
    s.dst = to;
    s.dport = dport;
    s.protocol = protocol;
    s.seq = 5000;
    s.ack = 1001;
    s.tcp_flags = 0x12;  // SYN ACK
    s.payload = text(payload);
    return s;
  }

  // The reply as the client must receive it: from the frontend, out of the client link.
  static PacketSpec to_client(PacketSpec reply, const IpAddr& client, uint16_t client_port) {
    const lbnet::Family f = lbnet::family(reply.src.v6());
    reply.eth_src = lbnet::kClientLinkMac;
    reply.eth_dst = lbnet::kClientMac;
    reply.src = f.frontend;
    reply.sport = kFrontendPort;
    reply.dst = client;
    reply.dport = client_port;
    reply.ttl = static_cast<uint8_t>(reply.ttl - 1);
    return reply;
  }

  TestRun xdp(const Bytes& frame) {
    Result<TestRun> run = lb_->run_xdp(frame, client_link_);
    EXPECT_TRUE(run.ok()) << (run.ok() ? "" : run.error().message);
    return run.ok() ? run.value() : TestRun{};
  }
  TestRun tc(const Bytes& frame) {
    Result<TestRun> run = lb_->run_tc(frame, backend_link_);
    EXPECT_TRUE(run.ok()) << (run.ok() ? "" : run.error().message);
    return run.ok() ? run.value() : TestRun{};
  }

  // The tc balancer (xlb_tc_lb, xdp_mode "tc") on a frame from the client link.
  TestRun tc_lb(const Bytes& frame) {
    Result<TestRun> run = lb_->run_tc(frame, client_link_, bpf_program__fd(lb_->tc()->progs.xlb_tc_lb));
    EXPECT_TRUE(run.ok()) << (run.ok() ? "" : run.error().message);
    return run.ok() ? run.value() : TestRun{};
  }

  uint64_t reason_packets(uint32_t reason) const { return lb_->reason(reason).packets; }

  int client_link_ = 0;
  int backend_link_ = 0;
  std::unique_ptr<LbPrograms> lb_;
};

// Readable action names for failure messages.
inline std::string xdp_action(int action) {
  switch (action) {
    case XDP_ABORTED: return "XDP_ABORTED";
    case XDP_DROP: return "XDP_DROP";
    case XDP_PASS: return "XDP_PASS";
    case XDP_TX: return "XDP_TX";
    case XDP_REDIRECT: return "XDP_REDIRECT";
    default: return "XDP action " + std::to_string(action);
  }
}

inline std::string tc_action(int action) {
  switch (action) {
    case TC_ACT_OK: return "TC_ACT_OK";
    case TC_ACT_SHOT: return "TC_ACT_SHOT";
    case TC_ACT_REDIRECT: return "TC_ACT_REDIRECT";
    default: return "tc action " + std::to_string(action);
  }
}

}  // namespace xlb::test

// xlbctl trace's answer (datapath/trace.h) from maps and flow tables given here: the decision the
// XDP program makes, in the same order (conntrack, affinity, ring), without a kernel. The BPF
// tests check the flow hash against the programs; tests/integration checks trace against them.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <map>

#include "datapath/flow_hash.h"
#include "datapath/trace.h"

namespace xlb::datapath {
namespace {

model::IpAddress ip(std::string_view text) { return *model::IpAddress::parse(text); }

class FakeFlows final : public FlowReader {
 public:
  Result<std::optional<ConntrackEntry>> conntrack(const Flow&) const override { return ct; }
  Result<std::optional<AffinityEntry>> affinity(const model::IpAddress&, ServiceId) const override { return client; }

  std::optional<ConntrackEntry> ct;
  std::optional<AffinityEntry> client;
};

constexpr uint32_t kRingSize = 7;

class TraceTest : public ::testing::Test {
 protected:
  TraceTest() {
    maps_.backends[1] = {1, ip("10.0.0.1"), 8080, false};
    maps_.backends[2] = {2, ip("10.0.0.2"), 8080, false};
    FrontendEntry f;
    f.key = {ip("198.18.0.10"), 80, model::Protocol::tcp};
    f.service_id = 9;
    for (uint32_t slot = 0; slot < kRingSize; ++slot) f.ring.push_back(slot % 2 ? 2 : 1);
    maps_.frontends[f.key] = f;
  }

  FrontendEntry& frontend() { return maps_.frontends.begin()->second; }

  Trace trace(uint16_t client_port = 40000) {
    auto t = trace_flow(maps_, flow(client_port), flows_);
    EXPECT_TRUE(t.ok());
    return *t;
  }

  static Flow flow(uint16_t client_port) {
    return {ip("10.1.0.1"), client_port, ip("198.18.0.10"), 80, model::Protocol::tcp};
  }

  // The slot the XDP program takes for a new flow: the flow key's hash modulo the ring size.
  static uint32_t expected_slot(uint16_t client_port) {
    xlb_flow_key key{};
    key.src[0] = inet_addr("10.1.0.1");
    key.dst[0] = inet_addr("198.18.0.10");
    key.sport = htons(client_port);
    key.dport = htons(80);
    key.protocol = IPPROTO_TCP;
    key.family = XLB_AF_INET;
    return flow_hash(key) % kRingSize;
  }

  State maps_;
  FakeFlows flows_;
};

TEST_F(TraceTest, ANewFlowTakesTheRingSlotOfItsHash) {
  for (uint16_t port = 40000; port < 40020; ++port) {
    const Trace t = trace(port);
    const uint32_t slot = expected_slot(port);
    EXPECT_EQ(t.verdict, Trace::Verdict::ring);
    EXPECT_EQ(t.slot, slot);
    ASSERT_TRUE(t.backend);
    EXPECT_EQ(t.backend->id, frontend().ring[slot]);
    EXPECT_NE(t.why.find("ring slot " + std::to_string(slot) + " of 7"), std::string::npos) << t.why;
  }
}

TEST_F(TraceTest, AnIpv6FlowHashesItsWholeAddresses) {
  maps_.backends[3] = {3, ip("2001:db8:1::3"), 8080, false};
  maps_.backends[4] = {4, ip("2001:db8:1::4"), 8080, false};
  FrontendEntry f;
  f.key = {ip("2001:db8::10"), 443, model::Protocol::udp};
  for (uint32_t slot = 0; slot < kRingSize; ++slot) f.ring.push_back(slot % 2 ? 4 : 3);
  maps_.frontends[f.key] = f;

  xlb_flow_key key{};
  inet_pton(AF_INET6, "2001:db8::1", key.src);
  inet_pton(AF_INET6, "2001:db8::10", key.dst);
  key.sport = htons(5353);
  key.dport = htons(443);
  key.protocol = IPPROTO_UDP;
  key.family = XLB_AF_INET6;
  auto t = trace_flow(maps_, {ip("2001:db8::1"), 5353, ip("2001:db8::10"), 443, model::Protocol::udp}, flows_);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->verdict, Trace::Verdict::ring);
  EXPECT_EQ(t->slot, flow_hash(key) % kRingSize);
  EXPECT_EQ(t->backend->id, f.ring[t->slot]);

  // An IPv4 client of an IPv6 frontend address is no flow xlb balances.
  t = trace_flow(maps_, {ip("10.1.0.1"), 5353, ip("2001:db8::10"), 443, model::Protocol::udp}, flows_);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->verdict, Trace::Verdict::not_a_frontend);
}

TEST_F(TraceTest, AnotherAddressPortOrProtocolIsNotAFrontend) {
  for (const Flow& f : {Flow{ip("10.1.0.1"), 1, ip("198.18.0.11"), 80, model::Protocol::tcp},
                        Flow{ip("10.1.0.1"), 1, ip("198.18.0.10"), 81, model::Protocol::tcp},
                        Flow{ip("10.1.0.1"), 1, ip("198.18.0.10"), 80, model::Protocol::udp}}) {
    auto t = trace_flow(maps_, f, flows_);
    ASSERT_TRUE(t.ok());
    EXPECT_EQ(t->verdict, Trace::Verdict::not_a_frontend);
    EXPECT_FALSE(t->backend);
  }
}

TEST_F(TraceTest, ConntrackKeepsAnEstablishedFlowOnItsBackendEvenDraining) {
  const uint16_t port = 40000;
  const BackendId other = frontend().ring[expected_slot(port)] == 1 ? 2 : 1;
  maps_.backends[other].draining = true;
  flows_.ct = ConntrackEntry{other, 9, 0, 3'000'000'000};
  const Trace t = trace(port);
  EXPECT_EQ(t.verdict, Trace::Verdict::conntrack);
  ASSERT_TRUE(t.backend);
  EXPECT_EQ(t.backend->id, other);
  EXPECT_NE(t.why.find("last seen 3 s ago"), std::string::npos) << t.why;
  EXPECT_NE(t.why.find("a new connection from this port (a SYN) goes by the ring"), std::string::npos) << t.why;
}

TEST_F(TraceTest, AConntrackEntryWhoseBackendIsGoneOrOfAnotherModeIsBalancedAgain) {
  flows_.ct = ConntrackEntry{5, 9, 0, 0};  // backend 5 is not in the maps
  Trace t = trace();
  EXPECT_EQ(t.verdict, Trace::Verdict::ring);
  EXPECT_TRUE(t.conntrack);
  EXPECT_NE(t.why.find("is gone"), std::string::npos) << t.why;

  flows_.ct = ConntrackEntry{1, 9, 20000, 0};  // began as snat; the service is nat now
  t = trace();
  EXPECT_EQ(t.verdict, Trace::Verdict::ring);
  EXPECT_NE(t.why.find("another mode"), std::string::npos) << t.why;
}

TEST_F(TraceTest, AffinityGivesTheClientsRecentBackendUntilItsTimeout) {
  frontend().affinity = true;
  frontend().affinity_timeout_s = 60;
  flows_.client = AffinityEntry{2, 10'000'000'000};
  Trace t = trace();
  EXPECT_EQ(t.verdict, Trace::Verdict::affinity);
  EXPECT_EQ(t.backend->id, 2u);

  // Expired: the slot of the client address's hash, the same for every port of the client.
  flows_.client = AffinityEntry{2, 61'000'000'000};
  t = trace(40000);
  const Trace other_port = trace(50000);
  EXPECT_EQ(t.verdict, Trace::Verdict::ring);
  EXPECT_TRUE(t.client_address_hash);
  EXPECT_EQ(t.slot, other_port.slot);
  __be32 client[4] = {inet_addr("10.1.0.1"), 0, 0, 0};
  EXPECT_EQ(t.slot, address_hash(client) % kRingSize);
  EXPECT_NE(t.why.find("affinity expired"), std::string::npos) << t.why;
}

TEST_F(TraceTest, AnEmptyRingOrADrainingSlotIsNoBackend) {
  const uint32_t slot = expected_slot(40000);
  maps_.backends[frontend().ring[slot]].draining = true;
  EXPECT_EQ(trace().verdict, Trace::Verdict::no_backend);

  frontend().ring.clear();
  const Trace t = trace();
  EXPECT_EQ(t.verdict, Trace::Verdict::no_backend);
  EXPECT_NE(t.why.find("ring is empty"), std::string::npos) << t.why;
}

}  // namespace
}  // namespace xlb::datapath

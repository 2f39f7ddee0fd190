#include <gtest/gtest.h>

#include "model/diff.h"
#include "model/json.h"
#include "model/model.h"

namespace xlb::model {
namespace {

IpAddress ip(std::string_view s) {
  auto a = IpAddress::parse(s);
  EXPECT_TRUE(a.ok()) << s;
  return a.ok() ? *a : IpAddress{};
}

Service web() {
  Service s;
  s.name = "web";
  s.frontends.push_back({ip("198.18.0.10"), 80, Protocol::tcp, FrontendKind::vip});
  s.backends.push_back({ip("10.0.1.2"), 8080, 1, BackendState::active, "", ""});
  s.backends.push_back({ip("10.0.1.3"), 8080, 2, BackendState::active, "n1", "z1"});
  return s;
}

std::vector<std::string> messages(const Catalog& c) {
  std::vector<std::string> out;
  for (const auto& p : validate(c)) out.push_back(p.location.describe(c) + ": " + p.message);
  return out;
}

TEST(IpAddress, ParsesAndPrintsBothFamilies) {
  EXPECT_EQ(ip("10.0.0.1").to_string(), "10.0.0.1");
  EXPECT_TRUE(ip("10.0.0.1").is_v4());
  EXPECT_EQ(ip("2001:DB8::1").to_string(), "2001:db8::1");
  EXPECT_FALSE(ip("::1").is_v4());
  EXPECT_EQ(IpAddress::v4(0xc6120001).to_string(), "198.18.0.1");
  EXPECT_TRUE(ip("0.0.0.0").is_unspecified());
  EXPECT_TRUE(ip("::").is_unspecified());
  EXPECT_TRUE(ip("239.1.1.1").is_multicast());
  EXPECT_TRUE(ip("ff02::1").is_multicast());
  EXPECT_LT(ip("10.0.0.1"), ip("10.0.0.2"));
}

TEST(IpAddress, RejectsWithTheInputInTheMessage) {
  for (auto bad : {"", "10.0.0", "10.0.0.256", "1.2.3.4/32", "fe80::1%eth0", " 10.0.0.1", "host.example"}) {
    auto r = IpAddress::parse(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().message, "\"" + std::string(bad) + "\" is not an IPv4 or IPv6 address");
  }
}

TEST(Names, RoundTrip) {
  for (auto k : {FrontendKind::vip, FrontendKind::cluster_ip, FrontendKind::node_port, FrontendKind::load_balancer,
                 FrontendKind::external_ip})
    EXPECT_EQ(parse_frontend_kind(to_string(k)), k);
  EXPECT_EQ(to_string(FrontendKind::cluster_ip), "cluster-ip");
  EXPECT_EQ(parse_forwarding_mode("dsr"), ForwardingMode::dsr);
  EXPECT_EQ(parse_protocol("sctp"), std::nullopt);
}

TEST(Validate, AValidCatalogHasNoProblems) {
  Catalog c{{web()}};
  EXPECT_TRUE(validate(c).empty());
  EXPECT_EQ(c.frontend_count(), 1u);
  EXPECT_EQ(c.backend_count(), 2u);
}

TEST(Validate, ReportsEveryProblemWithItsPlace) {
  Service s = web();
  s.frontends[0].port = 0;
  s.backends[0].address = ip("0.0.0.0");
  s.backends[1] = s.backends[0];
  s.backends[1].weight = 70000;
  Service nameless;
  nameless.frontends.push_back({ip("198.18.0.11"), 53, Protocol::udp, FrontendKind::vip});
  Catalog c{{s, nameless}};
  EXPECT_EQ(messages(c), (std::vector<std::string>{
                             "service \"web\" frontend 1: port must be between 1 and 65535",
                             "service \"web\" backend 1: address 0.0.0.0 cannot be a backend (unspecified or multicast)",
                             "service \"web\" backend 2: address 0.0.0.0 cannot be a backend (unspecified or multicast)",
                             "service \"web\" backend 2: weight 70000 is above the maximum 65535",
                             "service \"web\" backend 2: duplicate backend 0.0.0.0:8080",
                             "service #2: a service needs a name",
                         }));
}

TEST(Validate, DuplicatesAcrossServices) {
  Service a = web();
  Service b = web();
  b.backends.clear();
  Catalog c{{a, b}};
  EXPECT_EQ(messages(c), (std::vector<std::string>{
                             "service \"web\": duplicate service name \"web\" (also service #1)",
                             "service \"web\" frontend 1: duplicate frontend 198.18.0.10:80/tcp: already service "
                             "\"web\" frontend 1",
                         }));
}

TEST(Validate, SameAddressAndPortWithAnotherProtocolIsFine) {
  Service a = web();
  Service b = web();
  b.name = "web-udp";
  b.frontends[0].protocol = Protocol::udp;
  EXPECT_TRUE(validate(Catalog{{a, b}}).empty());
}

TEST(Validate, NoNat46) {
  Service s = web();
  s.frontends.push_back({ip("2001:db8::10"), 80, Protocol::tcp, FrontendKind::vip});
  EXPECT_EQ(messages(Catalog{{s}}),
            (std::vector<std::string>{"service \"web\" frontend 2: no backend is IPv6 like frontend "
                                      "[2001:db8::10]:80/tcp; xlb does not translate between IPv4 and IPv6"}));
  s.backends.push_back({ip("2001:db8:1::2"), 8080, 1, BackendState::active, "", ""});
  EXPECT_TRUE(validate(Catalog{{s}}).empty());
}

TEST(Validate, HealthTimeoutWithinInterval) {
  Service s = web();
  s.health = {HealthCheckType::tcp, std::chrono::milliseconds(1000), std::chrono::milliseconds(2000)};
  EXPECT_EQ(messages(Catalog{{s}}),
            (std::vector<std::string>{"service \"web\" health: timeout must not be longer than interval"}));
}

TEST(Validate, NameWithSpacesOrControlCharacters) {
  Service s = web();
  s.name = "my web";
  EXPECT_EQ(messages(Catalog{{s}}),
            (std::vector<std::string>{"service \"my web\": name must not contain spaces or control characters"}));
}

TEST(Diff, SummarisesAddsRemovesAndChanges) {
  Service a = web();
  Service old;
  old.name = "old";
  old.frontends.push_back({ip("198.18.0.99"), 80, Protocol::tcp, FrontendKind::vip});
  Catalog before{{a, old}};

  Service changed = a;
  changed.mode = ForwardingMode::dsr;
  changed.backends[0].weight = 0;
  changed.backends[0].state = BackendState::draining;
  changed.backends.erase(changed.backends.begin() + 1);
  changed.backends.push_back({ip("10.0.1.9"), 8080, 1, BackendState::active, "", ""});
  Service added;
  added.name = "new";
  Catalog after{{changed, added}};

  const auto d = diff(before, after);
  EXPECT_EQ(d.summary(),
            "~web (mode nat -> dsr, ~backend 10.0.1.2:8080 -> 10.0.1.2:8080 weight 0 draining, +backend 10.0.1.9:8080, "
            "-backend 10.0.1.3:8080 weight 2); +new; -old");
  EXPECT_TRUE(diff(after, after).empty());
  EXPECT_EQ(diff(after, after).summary(), "no change");
}

TEST(Diff, SummaryOfABigChangeStaysOneShortLine) {
  Catalog after;
  for (int i = 0; i < 25; ++i) {
    Service s;
    s.name = "s" + std::to_string(i);
    after.services.push_back(s);
  }
  EXPECT_EQ(diff(Catalog{}, after).summary(), "+s0; +s1; +s2; +s3; +s4; +s5; +s6; +s7; +s8; +s9; and 15 more services");
}

TEST(Json, CatalogRoundTrips) {
  Service s = web();
  s.maglev_table_size = 1021;
  s.health.type = HealthCheckType::http;
  s.frontends.push_back({ip("2001:db8::1"), 443, Protocol::udp, FrontendKind::external_ip});
  Catalog c{{s}};
  auto back = catalog_from_json(to_json(c));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, c);
}

TEST(Json, MalformedSnapshotIsAnError) {
  auto r = catalog_from_json(nlohmann::json::parse(R"({"services":[{"name":"x","mode":"teleport"}]})"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "malformed catalog snapshot: mode \"teleport\" is not known");
}

}  // namespace
}  // namespace xlb::model

// kube-proxy's rules (both layouts, written by tests/support/kube_proxy_rules.h from kube-proxy's
// layout) read back into the model, and compared with the catalog xlb translates from the same
// Services and EndpointSlices.
#include <gtest/gtest.h>

#include <algorithm>

#include "k8s/translate.h"
#include "kubeproxy/kubeproxy.h"
#include "support/kube_proxy_rules.h"

namespace xlb::kubeproxy {
namespace {

k8s::Endpoint endpoint(const std::string& ip, const std::string& node) {
  k8s::Endpoint e;
  e.addresses = {ip};
  e.conditions.ready = true;
  e.node_name = node;
  return e;
}

k8s::EndpointSlice slice(const std::string& service, std::vector<k8s::Endpoint> endpoints, std::vector<k8s::EndpointPort> ports) {
  k8s::EndpointSlice s;
  s.ns = "default";
  s.name = service + "-abc12";
  s.service_name = service;
  s.address_type = "IPv4";
  s.endpoints = std::move(endpoints);
  s.ports = std::move(ports);
  return s;
}

k8s::Service service(const std::string& name, const std::string& type, const std::string& cluster_ip,
                     std::vector<k8s::ServicePort> ports) {
  k8s::Service s;
  s.ns = "default";
  s.name = name;
  s.type = type;
  s.cluster_ips = {cluster_ip};
  s.ports = std::move(ports);
  return s;
}

// A cluster with every shape the diff must read: a plain ClusterIP with three endpoints, DNS on
// UDP and TCP, a NodePort with an external IP and externalTrafficPolicy Local, a LoadBalancer
// with ClientIP affinity, an unnamed port, and a Service with no endpoints.
class KubeProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    services = {
        service("web", "ClusterIP", "10.96.0.20", {{"http", "TCP", 80, 0}}),
        service("dns", "ClusterIP", "10.96.0.10", {{"dns", "UDP", 53, 0}, {"dns-tcp", "TCP", 53, 0}}),
        service("shop", "NodePort", "10.96.0.30", {{"http", "TCP", 80, 30080}}),
        service("api", "LoadBalancer", "10.96.0.40", {{"https", "TCP", 443, 31443}}),
        service("plain", "ClusterIP", "10.96.0.50", {{"", "TCP", 8080, 0}}),
        service("empty", "ClusterIP", "10.96.0.60", {{"http", "TCP", 80, 0}}),
    };
    services[2].external_ips = {"192.0.2.10"};
    services[2].external_traffic_local = true;
    services[3].load_balancer_ips = {"198.51.100.7"};
    services[3].session_affinity_client_ip = true;
    services[3].session_affinity_timeout = 600;
    slices = {
        slice("web", {endpoint("10.244.1.2", "node-a"), endpoint("10.244.2.3", "node-b"), endpoint("10.244.2.4", "node-b")},
              {{"http", "TCP", 8080}}),
        slice("dns", {endpoint("10.244.1.9", "node-a"), endpoint("10.244.2.9", "node-b")},
              {{"dns", "UDP", 53}, {"dns-tcp", "TCP", 53}}),
        slice("shop", {endpoint("10.244.1.5", "node-a"), endpoint("10.244.2.5", "node-b")}, {{"http", "TCP", 8080}}),
        slice("api", {endpoint("10.244.1.6", "node-a"), endpoint("10.244.2.6", "node-b")}, {{"https", "TCP", 8443}}),
        slice("plain", {endpoint("10.244.2.7", "node-b")}, {{"", "TCP", 9090}}),
    };
  }

  model::Catalog xlb_catalog() const {
    k8s::TranslateOptions options;
    options.node_name = "node-a";
    options.node_addresses = {*model::IpAddress::parse("192.168.1.10"), *model::IpAddress::parse("192.168.1.11")};
    return k8s::translate(services, slices, options).catalog;
  }

  static Rules parsed(const Result<Rules>& rules) {
    EXPECT_TRUE(rules.ok()) << rules.error().message;
    return rules.ok() ? *rules : Rules{};
  }
  Rules iptables() const { return parsed(parse(test::kube_proxy_iptables(services, slices))); }
  Rules nft() const { return parsed(parse(test::kube_proxy_nft(services, slices))); }

  static std::vector<std::string> backends(const model::Service& s) {
    std::vector<std::string> out;
    for (const auto& b : s.backends) out.push_back(b.key());
    return out;
  }
  static std::vector<std::string> frontends(const model::Service& s) {
    std::vector<std::string> out;
    for (const auto& f : s.frontends) out.push_back(f.to_string() + " " + std::string(model::to_string(f.kind)));
    return out;
  }
  static std::string describe(const std::vector<Finding>& findings) {
    std::string out;
    for (const auto& f : findings)
      out += std::string(to_string(f.kind)) + " " + f.service + " " + f.frontend + ": " + f.message + "\n";
    return out;
  }

  std::vector<k8s::Service> services;
  std::vector<k8s::EndpointSlice> slices;
};

TEST_F(KubeProxyTest, GeneratedRulesHaveKubeProxysHashedChains) {
  const std::string text = test::kube_proxy_iptables(services, slices);
  // kube-proxy's own name for kube-dns's dns-tcp port (base32 of SHA-256 of "kube-system/kube-dns:dns-tcptcp").
  EXPECT_EQ(test::kp_detail::base32_sha256("kube-system/kube-dns:dns-tcptcp").substr(0, 16), "ERIFXISQEP7F7OF4");
  EXPECT_EQ(test::kp_detail::base32_sha256("kube-system/kube-dns:dnsudp").substr(0, 16), "TCOU7JCQXEZGVUNU");
  EXPECT_NE(text.find(":KUBE-SEP-"), std::string::npos);
  EXPECT_NE(text.find("-m recent --name KUBE-SEP-"), std::string::npos);
  EXPECT_NE(text.find("--probability 0.3333333333"), std::string::npos);
}

TEST_F(KubeProxyTest, IptablesLayoutReadsEveryFrontendAndEndpoint) {
  const Rules rules = iptables();
  EXPECT_EQ(rules.layout, Layout::iptables);
  EXPECT_TRUE(rules.warnings.empty()) << rules.warnings.front();
  const model::Service* web = rules.catalog.find("default/web:http");
  ASSERT_NE(web, nullptr);
  EXPECT_EQ(frontends(*web), std::vector<std::string>{"10.96.0.20:80/tcp cluster-ip"});
  EXPECT_EQ(backends(*web), (std::vector<std::string>{"10.244.1.2:8080", "10.244.2.3:8080", "10.244.2.4:8080"}));
  EXPECT_FALSE(web->affinity.client_ip);

  const model::Service* dns = rules.catalog.find("default/dns:dns");
  ASSERT_NE(dns, nullptr);
  EXPECT_EQ(frontends(*dns), std::vector<std::string>{"10.96.0.10:53/udp cluster-ip"});

  // Policy Local: the NodePort and external IP reach only node-a's endpoint; the cluster IP all.
  const model::Service* shop = rules.catalog.find("default/shop:http");
  ASSERT_NE(shop, nullptr);
  EXPECT_EQ(frontends(*shop), std::vector<std::string>{"10.96.0.30:80/tcp cluster-ip"});
  EXPECT_EQ(backends(*shop), (std::vector<std::string>{"10.244.1.5:8080", "10.244.2.5:8080"}));
  const model::Service* shop_local = rules.catalog.find("default/shop:http/local");
  ASSERT_NE(shop_local, nullptr);
  EXPECT_EQ(frontends(*shop_local),
            (std::vector<std::string>{"0.0.0.0:30080/tcp node-port", "192.0.2.10:80/tcp external-ip"}));
  EXPECT_EQ(backends(*shop_local), std::vector<std::string>{"10.244.1.5:8080"});

  const model::Service* api = rules.catalog.find("default/api:https");
  ASSERT_NE(api, nullptr);
  EXPECT_TRUE(api->affinity.client_ip);
  EXPECT_EQ(api->affinity.timeout, std::chrono::seconds(600));
  EXPECT_EQ(frontends(*api), (std::vector<std::string>{"10.96.0.40:443/tcp cluster-ip", "0.0.0.0:31443/tcp node-port",
                                                       "198.51.100.7:443/tcp load-balancer"}));

  ASSERT_NE(rules.catalog.find("default/plain"), nullptr);  // kube-proxy's name for an unnamed port
  EXPECT_EQ(rules.catalog.find("default/empty:http"), nullptr);  // no endpoints: no nat rule
}

TEST_F(KubeProxyTest, NftablesLayoutReadsTheSameServices) {
  const Rules from_nft = nft();
  EXPECT_EQ(from_nft.layout, Layout::nftables);
  EXPECT_TRUE(from_nft.warnings.empty()) << from_nft.warnings.front();
  const Rules from_iptables = iptables();
  ASSERT_EQ(from_nft.catalog.services.size(), from_iptables.catalog.services.size());
  for (const model::Service& s : from_iptables.catalog.services) {
    const model::Service* n = from_nft.catalog.find(s.name);
    ASSERT_NE(n, nullptr) << s.name;
    EXPECT_EQ(backends(*n), backends(s)) << s.name;
    EXPECT_EQ(n->affinity, s.affinity) << s.name;
    EXPECT_EQ(n->frontends.size(), s.frontends.size()) << s.name;
  }
}

TEST_F(KubeProxyTest, RulesOfTheSameObjectsAgreeWithXlb) {
  EXPECT_EQ(describe(compare(iptables(), xlb_catalog())), "");
  EXPECT_EQ(describe(compare(nft(), xlb_catalog())), "");
}

TEST_F(KubeProxyTest, ConfigFileServicesAreNotKubeProxys) {
  model::Catalog catalog = xlb_catalog();
  model::Service own;
  own.name = "own";
  own.frontends = {{*model::IpAddress::parse("198.18.0.10"), 80, model::Protocol::tcp, model::FrontendKind::vip}};
  own.backends = {{*model::IpAddress::parse("10.0.0.2"), 80, 1, model::BackendState::active, "", ""}};
  catalog.services.push_back(own);
  EXPECT_EQ(describe(compare(iptables(), catalog)), "");
}

TEST_F(KubeProxyTest, AMissingEndpointIsNamed) {
  model::Catalog catalog = xlb_catalog();
  for (auto& s : catalog.services)
    if (s.name == "default/web:http") std::erase_if(s.backends, [](const auto& b) { return b.key() == "10.244.2.4:8080"; });
  for (const Rules& rules : {iptables(), nft()}) {
    const auto findings = compare(rules, catalog);
    ASSERT_EQ(findings.size(), 1u) << describe(findings);
    EXPECT_EQ(findings[0].kind, Finding::Kind::endpoints);
    EXPECT_EQ(findings[0].service, "default/web:http");
    EXPECT_EQ(findings[0].frontend, "10.96.0.20:80/tcp");
    EXPECT_NE(findings[0].message.find("endpoints missing in xlb: 10.244.2.4:8080"), std::string::npos)
        << findings[0].message;
  }
}

TEST_F(KubeProxyTest, AnExtraServiceIsNamed) {
  model::Catalog catalog = xlb_catalog();
  model::Service extra;
  extra.name = "default/new:http";
  extra.source = "kubernetes";
  extra.frontends = {{*model::IpAddress::parse("10.96.0.99"), 80, model::Protocol::tcp, model::FrontendKind::cluster_ip}};
  extra.backends = {{*model::IpAddress::parse("10.244.1.99"), 8080, 1, model::BackendState::active, "", ""}};
  catalog.services.push_back(extra);
  const auto findings = compare(iptables(), catalog);
  ASSERT_EQ(findings.size(), 1u) << describe(findings);
  EXPECT_EQ(findings[0].kind, Finding::Kind::only_xlb);
  EXPECT_EQ(findings[0].service, "default/new:http");
  EXPECT_NE(findings[0].message.find("kube-proxy has no rule for it"), std::string::npos);
}

TEST_F(KubeProxyTest, AServiceXlbLacksIsNamed) {
  model::Catalog catalog = xlb_catalog();
  std::erase_if(catalog.services, [](const auto& s) { return s.name == "default/plain:8080"; });
  const auto findings = compare(nft(), catalog);
  ASSERT_EQ(findings.size(), 1u) << describe(findings);
  EXPECT_EQ(findings[0].kind, Finding::Kind::only_kube_proxy);
  EXPECT_EQ(findings[0].service, "default/plain");
  EXPECT_EQ(findings[0].frontend, "10.96.0.50:8080/tcp");
  EXPECT_NE(findings[0].message.find("xlb does not"), std::string::npos);
}

TEST_F(KubeProxyTest, ADifferentPortIsOneFinding) {
  model::Catalog catalog = xlb_catalog();
  for (auto& s : catalog.services)
    if (s.name == "default/web:http") s.frontends[0].port = 8081;
  const auto findings = compare(iptables(), catalog);
  ASSERT_EQ(findings.size(), 1u) << describe(findings);
  EXPECT_EQ(findings[0].kind, Finding::Kind::port);
  EXPECT_NE(findings[0].message.find("port differs: kube-proxy serves 10.96.0.20:80/tcp, xlb 10.96.0.20:8081/tcp"),
            std::string::npos)
      << findings[0].message;
}

TEST_F(KubeProxyTest, ADifferentNodePortIsOneFinding) {
  model::Catalog catalog = xlb_catalog();
  for (auto& s : catalog.services)
    for (auto& f : s.frontends)
      if (f.kind == model::FrontendKind::node_port && f.port == 31443) f.port = 31444;
  const auto findings = compare(nft(), catalog);
  ASSERT_EQ(findings.size(), 1u) << describe(findings);
  EXPECT_EQ(findings[0].kind, Finding::Kind::port);
  EXPECT_NE(findings[0].message.find("kube-proxy serves *:31443/tcp, xlb *:31444/tcp"), std::string::npos);
}

TEST_F(KubeProxyTest, ADifferentEndpointPortIsOneFinding) {
  model::Catalog catalog = xlb_catalog();
  for (auto& s : catalog.services)
    if (s.name == "default/plain:8080") s.backends[0].port = 9091;
  const auto findings = compare(iptables(), catalog);
  ASSERT_EQ(findings.size(), 1u) << describe(findings);
  EXPECT_EQ(findings[0].kind, Finding::Kind::port);
  EXPECT_NE(findings[0].message.find("kube-proxy sends it to 10.244.2.7:9090, xlb to 10.244.2.7:9091"), std::string::npos);
}

TEST_F(KubeProxyTest, ATrafficPolicyDifferenceIsNamedAsSuch) {
  const Rules rules = iptables();  // shop: externalTrafficPolicy Local
  services[2].external_traffic_local = false;
  const auto findings = compare(rules, xlb_catalog());
  ASSERT_EQ(findings.size(), 2u) << describe(findings);  // the NodePort and the external IP
  for (const auto& f : findings) {
    EXPECT_EQ(f.kind, Finding::Kind::traffic_policy);
    EXPECT_NE(f.message.find("only to this node's endpoints (policy Local: 10.244.1.5:8080)"), std::string::npos)
        << f.message;
  }
}

TEST_F(KubeProxyTest, XlbsLocalPolicyWhereKubeProxyHasClusterIsNamedToo) {
  services[2].external_traffic_local = false;
  const Rules rules = nft();
  services[2].external_traffic_local = true;
  const auto findings = compare(rules, xlb_catalog());
  ASSERT_EQ(findings.size(), 2u) << describe(findings);
  EXPECT_EQ(findings[0].kind, Finding::Kind::traffic_policy);
  EXPECT_NE(findings[0].message.find("xlb sends it only to this node's endpoints"), std::string::npos);
}

TEST_F(KubeProxyTest, AnAffinityDifferenceIsNamed) {
  const Rules rules = iptables();
  services[3].session_affinity_client_ip = false;
  const auto findings = compare(rules, xlb_catalog());
  ASSERT_FALSE(findings.empty());
  EXPECT_EQ(findings[0].kind, Finding::Kind::affinity);
  EXPECT_NE(findings[0].message.find("kube-proxy ClientIP for 600s, xlb none"), std::string::npos);
}

TEST_F(KubeProxyTest, CleanupRemovesKubeProxysChainsAndJumpsAndKeepsKubelets) {
  const std::string text = test::kube_proxy_iptables(services, slices);
  const IptablesScripts scripts = iptables_scripts(text);
  EXPECT_GT(scripts.chains, 10u);
  const std::string& remove = scripts.remove;
  EXPECT_TRUE(remove.starts_with("*nat\n")) << remove;
  EXPECT_TRUE(remove.ends_with("COMMIT\n"));
  EXPECT_NE(remove.find("-D PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"),
            std::string::npos);
  EXPECT_NE(remove.find("-D OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"),
            std::string::npos);
  EXPECT_NE(remove.find("-D POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n"),
            std::string::npos);
  EXPECT_NE(remove.find("-X KUBE-NODEPORTS\n"), std::string::npos);
  // Chains are flushed before any is deleted: they jump to each other.
  EXPECT_LT(remove.rfind("-F "), remove.find("-X "));
  for (const std::string prefix : {"KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-SEP-"})
    EXPECT_NE(remove.find("-X " + prefix), std::string::npos) << prefix;
  EXPECT_EQ(remove.find("KUBE-MARK-MASQ"), std::string::npos);  // kubelet's too: left alone

  // The restore script holds kube-proxy's rules whole: read back, they still agree with xlb.
  auto restored = parse(scripts.restore);
  ASSERT_TRUE(restored.ok()) << restored.error().message;
  EXPECT_EQ(describe(compare(*restored, xlb_catalog())), "");
  EXPECT_NE(scripts.restore.find("-I PREROUTING 1 -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"),
            std::string::npos);
}

TEST(KubeProxyParse, CleanupOfATableWithoutKubeProxyIsEmpty) {
  const IptablesScripts scripts = iptables_scripts("*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-MARK-MASQ - [0:0]\nCOMMIT\n");
  EXPECT_EQ(scripts.chains, 0u);
  EXPECT_EQ(scripts.remove, "");
  EXPECT_EQ(scripts.restore, "");
}

TEST(KubeProxyParse, IptablesAndIp6tablesSavesTogetherKeepEachFamilysEndpoints) {
  // Dual stack: the same service port has chains of the same names in both nat tables.
  auto rules = parse_iptables_save(
      "*nat\n-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m comment --comment \"a/b:c cluster IP\" -m tcp --dport 80 -j KUBE-SVC-A\n"
      "-A KUBE-SVC-A -j KUBE-SEP-A\n-A KUBE-SEP-A -p tcp -j DNAT --to-destination 10.0.0.1:80\nCOMMIT\n"
      "*nat\n-A KUBE-SERVICES -d fd00::1/128 -p tcp -m comment --comment \"a/b:c cluster IP\" -m tcp --dport 80 -j KUBE-SVC-A\n"
      "-A KUBE-SVC-A -j KUBE-SEP-B\n-A KUBE-SEP-B -p tcp -j DNAT --to-destination [fd00::10]:80\nCOMMIT\n");
  ASSERT_TRUE(rules.ok()) << rules.error().message;
  EXPECT_TRUE(rules->warnings.empty());
  model::Catalog xlb;
  for (const auto& [frontend, backend] : {std::pair{"10.96.0.1", "10.0.0.1"}, {"fd00::1", "fd00::10"}}) {
    model::Service s;
    s.name = std::string("a/b:c ") + frontend;
    s.source = "kubernetes";
    s.frontends = {{*model::IpAddress::parse(frontend), 80, model::Protocol::tcp, model::FrontendKind::cluster_ip}};
    s.backends = {{*model::IpAddress::parse(backend), 80, 1, model::BackendState::active, "", ""}};
    xlb.services.push_back(s);
  }
  EXPECT_TRUE(compare(*rules, xlb).empty());
}

TEST(KubeProxyParse, TextOfNeitherLayoutIsRefusedWithWords) {
  auto rules = parse("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n");
  ASSERT_FALSE(rules.ok());
  EXPECT_NE(rules.error().message.find("neither kube-proxy's iptables layout"), std::string::npos);
  EXPECT_FALSE(parse_iptables_save("*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n").ok());
  EXPECT_FALSE(parse_nft("table ip filter {\n}\n").ok());
}

TEST(KubeProxyParse, ABadDnatIsAnErrorWithItsLine) {
  auto rules = parse_iptables_save(
      "*nat\n-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-A\n"
      "-A KUBE-SVC-A -j KUBE-SEP-A\n-A KUBE-SEP-A -p tcp -j DNAT --to-destination 10.0.0.1\nCOMMIT\n");
  ASSERT_FALSE(rules.ok());
  EXPECT_EQ(rules.error().message, "line 4: DNAT --to-destination \"10.0.0.1\" has no port");
}

TEST(KubeProxyParse, UnequalSharesAndUnknownChainsAreWarnings) {
  auto rules = parse_iptables_save(
      "*nat\n-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m comment --comment \"a/b:c cluster IP\" -m tcp --dport 80 -j KUBE-SVC-A\n"
      "-A KUBE-SVC-A -m statistic --mode random --probability 0.9 -j KUBE-SEP-A\n-A KUBE-SVC-A -j KUBE-SEP-B\n"
      "-A KUBE-SVC-A -j KUBE-SEP-C\n"
      "-A KUBE-SEP-A -p tcp -j DNAT --to-destination 10.0.0.1:80\n-A KUBE-SEP-B -p tcp -j DNAT --to-destination 10.0.0.2:80\n"
      "COMMIT\n");
  ASSERT_TRUE(rules.ok()) << rules.error().message;
  ASSERT_EQ(rules->warnings.size(), 2u);
  EXPECT_EQ(rules->warnings[0], "chain KUBE-SVC-A gives its endpoints unequal shares; xlb gives each the same");
  EXPECT_EQ(rules->warnings[1], "chain KUBE-SEP-C is jumped to but not defined");
  ASSERT_EQ(rules->catalog.services.size(), 1u);
  EXPECT_EQ(rules->catalog.services[0].name, "a/b:c");
}

}  // namespace
}  // namespace xlb::kubeproxy

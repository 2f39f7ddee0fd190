// Services and EndpointSlices, shaped as a real API server returns them, into the model.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "k8s/objects.h"
#include "k8s/translate.h"
#include "support/k8s_objects.h"

namespace xlb::k8s {
namespace {

using nlohmann::json;
using test::endpoint;
using test::http_port;
using test::service_json;
using test::slice_json;

class TranslateTest : public ::testing::Test {
 protected:
  void add_service(const json& j) {
    auto s = parse_service(j);
    ASSERT_TRUE(s.ok()) << s.error().message;
    services.push_back(*s);
  }
  void add_slice(const json& j) {
    auto s = parse_endpoint_slice(j);
    ASSERT_TRUE(s.ok()) << s.error().message;
    slices.push_back(*s);
  }
  Translation run() { return translate(services, slices, options); }
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

  std::vector<Service> services;
  std::vector<EndpointSlice> slices;
  TranslateOptions options{.node_name = "node-a", .zone = "", .node_addresses = {}, .service_proxy_name = ""};
};

TEST_F(TranslateTest, ClusterIpServiceWithReadyEndpoints) {
  add_service(service_json("web", {{"clusterIP", "10.96.0.10"}, {"clusterIPs", {"10.96.0.10"}}, {"ports", {http_port()}}}));
  add_slice(slice_json("web-abc12", "web", {endpoint("10.244.1.5"), endpoint("10.244.2.7", true, "node-b")}));
  auto t = run();
  ASSERT_EQ(t.catalog.services.size(), 1u);
  const auto& s = t.catalog.services[0];
  EXPECT_EQ(s.name, "default/web:http");
  EXPECT_EQ(frontends(s), std::vector<std::string>{"10.96.0.10:80/tcp cluster-ip"});
  EXPECT_EQ(backends(s), (std::vector<std::string>{"10.244.1.5:8080", "10.244.2.7:8080"}));
  EXPECT_EQ(s.backends[1].node, "node-b");
  EXPECT_TRUE(t.skipped.empty());
  EXPECT_TRUE(model::validate(t.catalog).empty());
}

TEST_F(TranslateTest, UnnamedPortIsNamedByNumberAndUdpKept) {
  add_service(service_json("dns", {{"clusterIP", "10.96.0.53"},
                                   {"ports", {{{"port", 53}, {"protocol", "UDP"}, {"targetPort", 53}}}}}));
  add_slice(slice_json("dns-1", "dns", {endpoint("10.244.1.2")}, {{{"port", 53}, {"protocol", "UDP"}}}));
  auto t = run();
  ASSERT_EQ(t.catalog.services.size(), 1u);
  EXPECT_EQ(t.catalog.services[0].name, "default/dns:53");
  EXPECT_EQ(frontends(t.catalog.services[0]), std::vector<std::string>{"10.96.0.53:53/udp cluster-ip"});
  EXPECT_EQ(backends(t.catalog.services[0]), std::vector<std::string>{"10.244.1.2:53"});
}

TEST_F(TranslateTest, DualStackClusterIps) {
  add_service(service_json("web", {{"clusterIP", "10.96.0.10"},
                                   {"clusterIPs", {"10.96.0.10", "fd00:10:96::a"}},
                                   {"ipFamilies", {"IPv4", "IPv6"}},
                                   {"ports", {http_port()}}}));
  add_slice(slice_json("web-v4", "web", {endpoint("10.244.1.5")}));
  add_slice(slice_json("web-v6", "web", {endpoint("fd00:10:244:1::5")}, json::array({{{"name", "http"}, {"port", 8080}, {"protocol", "TCP"}}}), "IPv6"));
  auto t = run();
  ASSERT_EQ(t.catalog.services.size(), 1u);
  EXPECT_EQ(frontends(t.catalog.services[0]),
            (std::vector<std::string>{"10.96.0.10:80/tcp cluster-ip", "[fd00:10:96::a]:80/tcp cluster-ip"}));
  EXPECT_EQ(backends(t.catalog.services[0]), (std::vector<std::string>{"10.244.1.5:8080", "[fd00:10:244:1::5]:8080"}));
  EXPECT_TRUE(model::validate(t.catalog).empty());
}

TEST_F(TranslateTest, DualStackFrontendWaitsForItsFamily) {
  add_service(service_json("web", {{"clusterIPs", {"10.96.0.10", "fd00:10:96::a"}}, {"ports", {http_port()}}}));
  add_slice(slice_json("web-v4", "web", {endpoint("10.244.1.5")}));
  auto t = run();
  ASSERT_EQ(t.catalog.services.size(), 1u);
  EXPECT_EQ(frontends(t.catalog.services[0]), std::vector<std::string>{"10.96.0.10:80/tcp cluster-ip"});
  ASSERT_EQ(t.skipped.size(), 1u);
  EXPECT_NE(t.skipped[0].reason.find("no endpoint of its address family"), std::string::npos);
  EXPECT_TRUE(model::validate(t.catalog).empty());
}

TEST_F(TranslateTest, NodePortOnNodeAddressesLoadBalancerAndExternalIps) {
  options.node_addresses = {*model::IpAddress::parse("192.0.2.11"), *model::IpAddress::parse("2001:db8::11")};
  json svc = service_json("shop", {{"type", "LoadBalancer"},
                                   {"clusterIP", "10.96.1.1"},
                                   {"externalIPs", {"198.51.100.7"}},
                                   {"externalTrafficPolicy", "Cluster"},
                                   {"ports", {http_port(30080)}}});
  svc["status"]["loadBalancer"]["ingress"] = {{{"ip", "203.0.113.9"}, {"ipMode", "VIP"}}};
  add_service(svc);
  add_slice(slice_json("shop-1", "shop", {endpoint("10.244.1.5")}));
  auto t = run();
  ASSERT_EQ(t.catalog.services.size(), 1u);
  // The IPv6 node address waits: the service has IPv4 endpoints only.
  EXPECT_EQ(frontends(t.catalog.services[0]),
            (std::vector<std::string>{"10.96.1.1:80/tcp cluster-ip", "192.0.2.11:30080/tcp node-port",
                                      "203.0.113.9:80/tcp load-balancer", "198.51.100.7:80/tcp external-ip"}));
}

TEST_F(TranslateTest, NodePortTypeWithoutNodeAddressesHasOnlyClusterIp) {
  add_service(service_json("np", {{"type", "NodePort"}, {"clusterIP", "10.96.1.2"}, {"ports", {http_port(30081)}}}));
  add_slice(slice_json("np-1", "np", {endpoint("10.244.1.5")}));
  auto t = run();
  ASSERT_EQ(t.catalog.services.size(), 1u);
  EXPECT_EQ(frontends(t.catalog.services[0]), std::vector<std::string>{"10.96.1.2:80/tcp cluster-ip"});
}

TEST_F(TranslateTest, ExternalTrafficPolicyLocalSplitsTheExternalFrontends) {
  options.node_addresses = {*model::IpAddress::parse("192.0.2.11")};
  add_service(service_json("np", {{"type", "NodePort"},
                                  {"clusterIP", "10.96.1.2"},
                                  {"externalTrafficPolicy", "Local"},
                                  {"ports", {http_port(30081)}}}));
  add_slice(slice_json("np-1", "np", {endpoint("10.244.1.5", true, "node-a"), endpoint("10.244.2.5", true, "node-b")}));
  auto t = run();
  ASSERT_EQ(t.catalog.services.size(), 2u);
  EXPECT_EQ(t.catalog.services[0].name, "default/np:http");
  EXPECT_EQ(backends(t.catalog.services[0]), (std::vector<std::string>{"10.244.1.5:8080", "10.244.2.5:8080"}));
  EXPECT_EQ(t.catalog.services[1].name, "default/np:http/external");
  EXPECT_EQ(frontends(t.catalog.services[1]), std::vector<std::string>{"192.0.2.11:30081/tcp node-port"});
  EXPECT_EQ(backends(t.catalog.services[1]), std::vector<std::string>{"10.244.1.5:8080"});
  EXPECT_TRUE(model::validate(t.catalog).empty());
}

TEST_F(TranslateTest, InternalTrafficPolicyLocalWithNoLocalEndpointHasNoBackend) {
  add_service(service_json("loc", {{"clusterIP", "10.96.1.3"}, {"internalTrafficPolicy", "Local"}, {"ports", {http_port()}}}));
  add_slice(slice_json("loc-1", "loc", {endpoint("10.244.2.5", true, "node-b")}));
  auto t = run();
  ASSERT_EQ(t.catalog.services.size(), 1u);
  EXPECT_TRUE(t.catalog.services[0].backends.empty());  // as kube-proxy: no local endpoint, no service
}

TEST_F(TranslateTest, TerminatingEndpointsServeOnlyWhenNoneIsReady) {
  add_service(service_json("web", {{"clusterIP", "10.96.0.10"}, {"ports", {http_port()}}}));
  json terminating = endpoint("10.244.1.6", false);
  terminating["conditions"] = {{"ready", false}, {"serving", true}, {"terminating", true}};
  json gone = endpoint("10.244.1.7", false);
  gone["conditions"] = {{"ready", false}, {"serving", false}, {"terminating", true}};
  add_slice(slice_json("web-1", "web", {endpoint("10.244.1.5"), terminating, gone}));
  EXPECT_EQ(backends(run().catalog.services[0]), std::vector<std::string>{"10.244.1.5:8080"});

  slices.clear();
  add_slice(slice_json("web-1", "web", {terminating, gone, endpoint("10.244.1.8", false)}));
  EXPECT_EQ(backends(run().catalog.services[0]), std::vector<std::string>{"10.244.1.6:8080"});
}

TEST_F(TranslateTest, AbsentConditionsCountAsReady) {
  add_service(service_json("web", {{"clusterIP", "10.96.0.10"}, {"ports", {http_port()}}}));
  json e = endpoint("10.244.1.5");
  e.erase("conditions");
  add_slice(slice_json("web-1", "web", {e}));
  EXPECT_EQ(backends(run().catalog.services[0]), std::vector<std::string>{"10.244.1.5:8080"});
}

TEST_F(TranslateTest, ZoneHintsFollowedOnlyWhenEveryEndpointHasThem) {
  options.zone = "zone-a";
  add_service(service_json("web", {{"clusterIP", "10.96.0.10"}, {"ports", {http_port()}}}));
  json a = endpoint("10.244.1.5", true, "node-a", "zone-a");
  a["hints"] = {{"forZones", {{{"name", "zone-a"}}}}};
  json b = endpoint("10.244.2.5", true, "node-b", "zone-b");
  b["hints"] = {{"forZones", {{{"name", "zone-b"}}}}};
  add_slice(slice_json("web-1", "web", {a, b}));
  EXPECT_EQ(backends(run().catalog.services[0]), std::vector<std::string>{"10.244.1.5:8080"});

  json c = endpoint("10.244.3.5", true, "node-c", "zone-c");  // no hints: the controller is mid-way
  slices.clear();
  add_slice(slice_json("web-1", "web", {a, b, c}));
  EXPECT_EQ(backends(run().catalog.services[0]).size(), 3u);
}

TEST_F(TranslateTest, PreferCloseWithoutHintsPrefersThisZone) {
  options.zone = "zone-b";
  add_service(service_json("web", {{"clusterIP", "10.96.0.10"}, {"trafficDistribution", "PreferClose"}, {"ports", {http_port()}}}));
  add_slice(slice_json("web-1", "web", {endpoint("10.244.1.5", true, "node-a", "zone-a"), endpoint("10.244.2.5", true, "node-b", "zone-b")}));
  EXPECT_EQ(backends(run().catalog.services[0]), std::vector<std::string>{"10.244.2.5:8080"});
  options.zone = "zone-z";  // no endpoint close: all of them
  EXPECT_EQ(backends(run().catalog.services[0]).size(), 2u);
}

TEST_F(TranslateTest, SeveralSlicesMergedAndDuplicatesCountedOnce) {
  add_service(service_json("web", {{"clusterIP", "10.96.0.10"}, {"ports", {http_port()}}}));
  add_slice(slice_json("web-1", "web", {endpoint("10.244.1.5"), endpoint("10.244.1.6", false)}));
  add_slice(slice_json("web-2", "web", {endpoint("10.244.1.6"), endpoint("10.244.1.7")}));
  add_slice(slice_json("other-1", "other", {endpoint("10.244.9.9")}));
  EXPECT_EQ(backends(run().catalog.services[0]),
            (std::vector<std::string>{"10.244.1.5:8080", "10.244.1.6:8080", "10.244.1.7:8080"}));
}

TEST_F(TranslateTest, PortsMatchedByNameAcrossMultiPortService) {
  json ports = {http_port(), {{"name", "metrics"}, {"port", 9090}, {"protocol", "TCP"}, {"targetPort", "metrics"}}};
  add_service(service_json("web", {{"clusterIP", "10.96.0.10"}, {"ports", ports}}));
  add_slice(slice_json("web-1", "web", {endpoint("10.244.1.5")},
                       {{{"name", "metrics"}, {"port", 9100}, {"protocol", "TCP"}}, {{"name", "http"}, {"port", 8080}, {"protocol", "TCP"}}}));
  auto t = run();
  ASSERT_EQ(t.catalog.services.size(), 2u);
  EXPECT_EQ(t.catalog.services[0].name, "default/web:http");
  EXPECT_EQ(backends(t.catalog.services[0]), std::vector<std::string>{"10.244.1.5:8080"});
  EXPECT_EQ(t.catalog.services[1].name, "default/web:metrics");
  EXPECT_EQ(backends(t.catalog.services[1]), std::vector<std::string>{"10.244.1.5:9100"});
}

TEST_F(TranslateTest, HeadlessExternalNameAndFqdnSlicesSkipped) {
  add_service(service_json("headless", {{"clusterIP", "None"}, {"clusterIPs", {"None"}}, {"ports", {http_port()}}}));
  add_service(service_json("ext", {{"type", "ExternalName"}, {"externalName", "example.com"}}));
  add_service(service_json("web", {{"clusterIP", "10.96.0.10"}, {"ports", {http_port()}}}));
  add_slice(slice_json("headless-1", "headless", {endpoint("10.244.1.5")}));
  json fqdn_endpoint = {{"addresses", {"db.example.com"}}, {"conditions", {{"ready", true}}}};
  add_slice(slice_json("web-fqdn", "web", {fqdn_endpoint}, json::array({{{"name", "http"}, {"port", 8080}, {"protocol", "TCP"}}}), "FQDN"));
  auto t = run();
  ASSERT_EQ(t.catalog.services.size(), 1u);
  EXPECT_EQ(t.catalog.services[0].name, "default/web:http");
  EXPECT_TRUE(t.catalog.services[0].backends.empty());
  EXPECT_TRUE(t.skipped.empty());
}

TEST_F(TranslateTest, ServiceProxyNameLabel) {
  add_service(service_json("ours", {{"clusterIP", "10.96.0.11"}, {"ports", {http_port()}}}));
  add_service(service_json("theirs", {{"clusterIP", "10.96.0.12"}, {"ports", {http_port()}}},
                           {{"labels", {{"service.kubernetes.io/service-proxy-name", "xlb"}}}}));
  auto names = [&] {
    std::vector<std::string> out;
    for (const auto& s : run().catalog.services) out.push_back(s.name);
    return out;
  };
  EXPECT_EQ(names(), std::vector<std::string>{"default/ours:http"});
  options.service_proxy_name = "xlb";
  EXPECT_EQ(names(), std::vector<std::string>{"default/theirs:http"});
}

TEST_F(TranslateTest, SessionAffinityClientIpWithTimeout) {
  add_service(service_json("sticky", {{"clusterIP", "10.96.0.13"},
                                      {"sessionAffinity", "ClientIP"},
                                      {"sessionAffinityConfig", {{"clientIP", {{"timeoutSeconds", 600}}}}},
                                      {"ports", {http_port()}}}));
  auto t = run();
  ASSERT_EQ(t.catalog.services.size(), 1u);
  EXPECT_TRUE(t.catalog.services[0].affinity.client_ip);
  EXPECT_EQ(t.catalog.services[0].affinity.timeout, std::chrono::seconds(600));
}

TEST_F(TranslateTest, SctpPortSkippedWithReasonOthersKept) {
  json ports = {http_port(), {{"name", "sig"}, {"port", 3868}, {"protocol", "SCTP"}}};
  add_service(service_json("mixed", {{"clusterIP", "10.96.0.14"}, {"ports", ports}}));
  auto t = run();
  ASSERT_EQ(t.catalog.services.size(), 1u);
  ASSERT_EQ(t.skipped.size(), 1u);
  EXPECT_EQ(t.skipped[0].object, "Service default/mixed");
  EXPECT_NE(t.skipped[0].reason.find("SCTP"), std::string::npos);
}

TEST_F(TranslateTest, ForwardingModeAnnotation) {
  add_service(service_json("d", {{"clusterIP", "10.96.0.15"}, {"ports", {http_port()}}},
                           {{"annotations", {{"xlb.io/forwarding-mode", "snat"}}}}));
  add_service(service_json("bad", {{"clusterIP", "10.96.0.16"}, {"ports", {http_port()}}},
                           {{"annotations", {{"xlb.io/forwarding-mode", "magic"}}}}));
  auto t = run();
  ASSERT_EQ(t.catalog.services.size(), 1u);
  EXPECT_EQ(t.catalog.services[0].mode, model::ForwardingMode::snat);
  ASSERT_EQ(t.skipped.size(), 1u);
  EXPECT_NE(t.skipped[0].reason.find("magic"), std::string::npos);
}

TEST_F(TranslateTest, OrderOfObjectsDoesNotMatter) {
  add_service(service_json("b", {{"clusterIP", "10.96.0.2"}, {"ports", {http_port()}}}));
  add_service(service_json("a", {{"clusterIP", "10.96.0.1"}, {"ports", {http_port()}}}));
  add_slice(slice_json("a-1", "a", {endpoint("10.244.1.2"), endpoint("10.244.1.1")}));
  auto first = run().catalog;
  std::reverse(services.begin(), services.end());
  EXPECT_EQ(run().catalog, first);
  EXPECT_EQ(first.services[0].name, "default/a:http");
}

TEST(K8sObjects, MalformedObjectsNameTheField) {
  auto bad_port = parse_service(service_json("web", {{"ports", {{{"name", "http"}, {"port", 70000}}}}}));
  ASSERT_FALSE(bad_port.ok());
  EXPECT_EQ(bad_port.error().message,
            "Service default/web: spec.ports[0].port must be a port number, 1-65535 (it is 70000)");

  auto no_name = parse_service(json{{"metadata", {{"namespace", "default"}}}, {"spec", json::object()}});
  ASSERT_FALSE(no_name.ok());
  EXPECT_NE(no_name.error().message.find("needs a namespace and a name"), std::string::npos);

  json slice = slice_json("web-1", "web", {endpoint("10.244.1.5")});
  slice["endpoints"][0]["conditions"]["ready"] = "yes";
  auto bad_slice = parse_endpoint_slice(slice);
  ASSERT_FALSE(bad_slice.ok());
  EXPECT_EQ(bad_slice.error().message, "EndpointSlice default/web-1: endpoints[0].conditions.ready must be true or false");

  EXPECT_FALSE(parse_service(json::array()).ok());
  EXPECT_FALSE(parse_service(json("text")).ok());
}

TEST_F(TranslateTest, BadAddressesSkippedWithReason) {
  add_service(service_json("web", {{"clusterIP", "10.96.0.10"}, {"externalIPs", {"not-an-ip"}}, {"ports", {http_port()}}}));
  add_slice(slice_json("web-1", "web", {endpoint("10.244.1.5"), endpoint("10.244.1.300")}));
  auto t = run();
  ASSERT_EQ(t.catalog.services.size(), 1u);
  EXPECT_EQ(backends(t.catalog.services[0]), std::vector<std::string>{"10.244.1.5:8080"});
  EXPECT_EQ(t.skipped.size(), 2u);
}

TEST_F(TranslateTest, HealthCheckAnnotationAddsProbesOnTopOfReadiness) {
  add_service(service_json("probed", {{"clusterIP", "10.96.0.17"}, {"ports", {http_port()}}},
                           {{"annotations", {{"xlb.io/health-check", "http"}, {"xlb.io/health-check-path", "/healthz"}}}}));
  add_service(service_json("wrong", {{"clusterIP", "10.96.0.18"}, {"ports", {http_port()}}},
                           {{"annotations", {{"xlb.io/health-check", "icmp"}}}}));
  add_service(service_json("plain", {{"clusterIP", "10.96.0.19"}, {"ports", {http_port()}}}));
  auto t = run();
  ASSERT_EQ(t.catalog.services.size(), 2u);
  EXPECT_EQ(t.catalog.services[0].name, "default/plain:http");
  EXPECT_EQ(t.catalog.services[0].health.type, model::HealthCheckType::none);
  EXPECT_EQ(t.catalog.services[1].name, "default/probed:http");
  EXPECT_EQ(t.catalog.services[1].health.type, model::HealthCheckType::http);
  EXPECT_EQ(t.catalog.services[1].health.http_path, "/healthz");
  ASSERT_EQ(t.skipped.size(), 1u);
  EXPECT_NE(t.skipped[0].reason.find("\"icmp\" is not tcp, http, https, udp or none"), std::string::npos);
}

}  // namespace
}  // namespace xlb::k8s

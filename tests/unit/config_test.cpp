#include "config/config.h"

#include <gtest/gtest.h>

#include <fstream>

namespace xlb::config {
namespace {

// A minimal valid service that tests append to or break.
constexpr std::string_view kWeb = R"(
[[service]]
name = "web"

  [[service.frontend]]
  address = "198.18.0.10"
  port = 80

  [[service.backend]]
  address = "10.0.1.2"
  port = 8080
)";

std::string errors_of(std::string_view text) {
  auto r = parse(text, "xlb.toml");
  EXPECT_FALSE(r.ok()) << "expected the config to be rejected";
  return r.ok() ? "" : r.error().message;
}

TEST(Config, ShippedExampleIsValid) {
  auto r = load(std::string(XLB_SOURCE_DIR) + "/config/xlb.toml");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->catalog.services.size(), 2u);
  EXPECT_EQ(r->api.listen, "127.0.0.1:9180");
}

TEST(Config, ReadsEveryKey) {
  auto r = parse(R"(
[node]
interfaces = ["eth0", "eth1"]
xdp_mode = "generic"
cgroup = "/sys/fs/cgroup"
dsr_source_ipv4 = "10.99.0.0/16"
dsr_source_ipv6 = "fd00:99::/64"
decap = true
[api]
listen = "[::1]:9200"
[maglev]
seed = "s1"
min_table_size = 509
max_table_size = 8191
[[service]]
name = "dns"
mode = "dsr"
maglev_table_size = 1021
  [[service.frontend]]
  address = "2001:db8::53"
  port = 53
  protocol = "udp"
  kind = "load-balancer"
  [[service.backend]]
  address = "2001:db8:1::2"
  port = 53
  weight = 3
  node = "n1"
  zone = "z1"
  [[service.backend]]
  address = "2001:db8:1::3"
  port = 53
  weight = 0
  [service.health]
  type = "http"
  interval = "500ms"
  timeout = "250ms"
  rise = 4
  fall = 5
)",
                 "t.toml");
  ASSERT_TRUE(r.ok()) << r.error().message;
  const Config& c = *r;
  EXPECT_EQ(c.node.interfaces, (std::vector<std::string>{"eth0", "eth1"}));
  EXPECT_EQ(c.node.xdp_mode, XdpMode::generic);
  EXPECT_EQ(c.node.cgroup, "/sys/fs/cgroup");
  ASSERT_TRUE(c.node.dsr_source_ipv4.has_value());
  EXPECT_EQ(c.node.dsr_source_ipv4->to_string(), "10.99.0.0/16");
  ASSERT_TRUE(c.node.dsr_source_ipv6.has_value());
  EXPECT_EQ(c.node.dsr_source_ipv6->to_string(), "fd00:99::/64");
  EXPECT_TRUE(c.node.decap);
  EXPECT_EQ(c.api.listen, "[::1]:9200");
  EXPECT_EQ(c.maglev.seed, "s1");
  EXPECT_EQ(c.maglev.min_table_size, 509u);
  EXPECT_EQ(c.maglev.max_table_size, 8191u);
  const auto& s = c.catalog.services.at(0);
  EXPECT_EQ(s.mode, model::ForwardingMode::dsr);
  EXPECT_EQ(s.maglev_table_size, 1021u);
  EXPECT_EQ(s.frontends.at(0).to_string(), "[2001:db8::53]:53/udp");
  EXPECT_EQ(s.frontends.at(0).kind, model::FrontendKind::load_balancer);
  EXPECT_EQ(s.backends.at(0).weight, 3u);
  EXPECT_EQ(s.backends.at(0).node, "n1");
  EXPECT_EQ(s.backends.at(0).zone, "z1");
  EXPECT_EQ(s.backends.at(1).state, model::BackendState::draining);
  EXPECT_EQ(s.health.type, model::HealthCheckType::http);
  EXPECT_EQ(s.health.interval, std::chrono::milliseconds(500));
  EXPECT_EQ(s.health.timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(s.health.rise, 4u);
  EXPECT_EQ(s.health.fall, 5u);
}

TEST(Config, AffinityAndSnat) {
  std::string text = "[node]\nsnat_ipv4 = \"10.0.0.1\"\nsnat_ipv6 = \"fd00::1\"\nsnat_port_min = 20000\nsnat_port_max = 20099\n";
  text += kWeb;
  text.replace(text.find("name = \"web\""), 12, "name = \"web\"\naffinity = \"client-ip\"\naffinity_timeout = \"10m\"");
  auto r = parse(text, "t.toml");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->node.snat_ipv4->to_string(), "10.0.0.1");
  EXPECT_EQ(r->node.snat_ipv6->to_string(), "fd00::1");
  EXPECT_EQ(r->node.snat_port_min, 20000);
  EXPECT_EQ(r->node.snat_port_max, 20099);
  EXPECT_TRUE(r->catalog.services[0].affinity.client_ip);
  EXPECT_EQ(r->catalog.services[0].affinity.timeout, std::chrono::seconds(600));
}

TEST(ConfigErrors, SnatAddressOfTheWrongFamily) {
  EXPECT_EQ(errors_of("[node]\nsnat_ipv4 = \"fd00::1\"\nsnat_port_min = 3000\nsnat_port_max = 2000\n"),
            "xlb.toml:1:1: node: snat_port_min 3000 is larger than snat_port_max 2000\n"
            "xlb.toml:2:13: node: key \"snat_ipv4\": must be an IPv4 address");
}

TEST(ConfigErrors, SnatNeedsTheNodeAddress) {
  std::string text(kWeb);
  text.replace(text.find("name = \"web\""), 12, "name = \"web\"\nmode = \"snat\"");
  EXPECT_EQ(errors_of(text),
            "xlb.toml:6:3: service \"web\" frontend 1: mode snat needs [node] snat_ipv4, the address this node sends "
            "from toward the backends");
  EXPECT_TRUE(parse("[node]\nsnat_ipv4 = \"10.0.0.1\"\n" + text, "t.toml").ok());
}

TEST(Config, DefaultsWhenSectionsAreAbsent) {
  auto r = parse(kWeb, "t.toml");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->node.xdp_mode, XdpMode::native);
  EXPECT_EQ(r->node.cgroup, "auto");
  EXPECT_EQ(r->catalog.services[0].frontends[0].protocol, model::Protocol::tcp);
  EXPECT_EQ(r->catalog.services[0].frontends[0].kind, model::FrontendKind::vip);
  EXPECT_EQ(r->catalog.services[0].backends[0].weight, 1u);
}

TEST(Config, EmptyFileIsAnEmptyCatalog) {
  auto r = parse("", "t.toml");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->catalog.services.empty());
}

TEST(ConfigErrors, MissingKey) {
  EXPECT_EQ(errors_of("[[service]]\n[[service.frontend]]\naddress = \"198.18.0.1\"\nport = 80\n"),
            "xlb.toml:1:1: service 1: missing required key \"name\"");
}

TEST(ConfigErrors, BackendWithoutPort) {
  EXPECT_EQ(errors_of(std::string(kWeb) + "  [[service.backend]]\n  address = \"10.0.1.3\"\n"),
            "xlb.toml:12:3: service \"web\" backend 2: missing required key \"port\"");
}

TEST(ConfigErrors, WrongType) {
  EXPECT_EQ(errors_of("[[service]]\nname = 7\n"),
            "xlb.toml:1:1: service 1: missing required key \"frontend\"\n"
            "xlb.toml:2:8: service 1: key \"name\": must be a string, not an integer");
  EXPECT_EQ(errors_of("[node]\ninterfaces = \"eth0\"\n"),
            "xlb.toml:2:14: node: key \"interfaces\": must be an array, not a string");
}

TEST(ConfigErrors, BadAddress) {
  std::string text(kWeb);
  text.replace(text.find("198.18.0.10"), 11, "198.18.0.300");
  EXPECT_EQ(errors_of(text),
            "xlb.toml:6:13: service \"web\" frontend 1: key \"address\": \"198.18.0.300\" is not an IPv4 or "
            "IPv6 address");
}

TEST(ConfigErrors, PortOutOfRange) {
  std::string text(kWeb);
  text.replace(text.find("port = 80\n"), 9, "port = 65536");
  EXPECT_EQ(errors_of(text), "xlb.toml:7:10: service \"web\" frontend 1: key \"port\": 65536 is out of range 1..65535");
  text.replace(text.find("65536"), 5, "0");
  EXPECT_EQ(errors_of(text), "xlb.toml:7:10: service \"web\" frontend 1: key \"port\": 0 is out of range 1..65535");
}

TEST(ConfigErrors, DuplicateFrontendAcrossServices) {
  std::string second(kWeb);
  second.replace(second.find("\"web\""), 5, "\"api\"");
  EXPECT_EQ(errors_of(std::string(kWeb) + second),
            "xlb.toml:16:3: service \"api\" frontend 1: duplicate frontend 198.18.0.10:80/tcp: already service "
            "\"web\" frontend 1");
}

TEST(ConfigErrors, UnknownKeyWithSuggestion) {
  EXPECT_EQ(errors_of("[node]\ninterfacs = [\"eth0\"]\n"),
            "xlb.toml:2:1: node: unknown key \"interfacs\"; did you mean \"interfaces\"?");
}

TEST(ConfigErrors, UnknownKeyListsKnownOnes) {
  EXPECT_EQ(errors_of(std::string(kWeb) + "  colour = \"blue\"\n"),
            "xlb.toml:12:3: service \"web\" backend 1: unknown key \"colour\" (known keys: address port weight "
            "node zone)");
  EXPECT_EQ(errors_of("[nodes]\n"), "xlb.toml:1:2: unknown key \"nodes\"; did you mean \"node\"?");
}

TEST(ConfigErrors, SyntaxError) {
  EXPECT_EQ(errors_of("[node\n"), "xlb.toml:1:6: syntax error: Error while parsing table header: expected ']', saw '\\n'");
}

// The input's control characters are escaped where a message quotes it, so that every problem
// stays on one line (tests/fuzz found raw newlines there).
TEST(ConfigErrors, ControlCharactersOfTheInputAreEscaped) {
  EXPECT_EQ(errors_of("[node]\ndecap = t\n"),
            "xlb.toml:2:10: syntax error: Error while parsing boolean: expected 'true', saw 't\\n'");
  EXPECT_EQ(errors_of("\"a\\nb\" = 1\n"), "xlb.toml:1:1: unknown key \"a\\nb\"; did you mean \"api\"?");
}

TEST(ConfigErrors, EveryProblemIsReportedInOnePass) {
  const std::string text =
      "[node]\nxdp_mode = \"fast\"\n[[service]]\nname = \"a\"\n[[service.frontend]]\naddress = \"x\"\nport = "
      "80\n[service.health]\ninterval = \"soon\"\n";
  EXPECT_EQ(errors_of(text),
            "xlb.toml:2:12: node: key \"xdp_mode\": \"fast\" is not one of native, generic, off, tc\n"
            "xlb.toml:6:11: service \"a\" frontend 1: key \"address\": \"x\" is not an IPv4 or IPv6 address\n"
            "xlb.toml:9:12: service \"a\" health: key \"interval\": \"soon\" is not a duration like \"500ms\", \"2s\" "
            "or \"1m\"");
}

TEST(ConfigErrors, RiseAndFallNeedAtLeastOneProbe) {
  const std::string text =
      "[[service]]\nname = \"a\"\n[[service.frontend]]\naddress = \"198.18.0.1\"\nport = 80\n[service.health]\n"
      "type = \"tcp\"\nrise = 0\n";
  EXPECT_EQ(errors_of(text), "xlb.toml:8:8: service \"a\" health: key \"rise\": 0 is out of range 1..100");
}

TEST(ConfigErrors, RingSizesMustBeFromTheList) {
  EXPECT_EQ(errors_of("[maglev]\nmin_table_size = 1000\n"),
            "xlb.toml:2:18: maglev: key \"min_table_size\": 1000 is not one of the ring sizes 251, 509, 1021, 2039, "
            "4093, 8191, 16381, 32749, 65521, 131071");
  EXPECT_EQ(errors_of("[maglev]\nmin_table_size = 8191\nmax_table_size = 251\n"),
            "xlb.toml:1:1: maglev: min_table_size 8191 is larger than max_table_size 251");
}

TEST(ConfigErrors, ModelRulesPointAtTheLine) {
  std::string text(kWeb);
  text += "  [[service.backend]]\n  address = \"10.0.1.2\"\n  port = 8080\n";
  EXPECT_EQ(errors_of(text), "xlb.toml:12:3: service \"web\" backend 2: duplicate backend 10.0.1.2:8080");
}

TEST(ConfigErrors, DsrBackendMustUseTheFrontendPort) {
  std::string text = "[node]\ndsr_source_ipv4 = \"10.99.0.0/16\"\n" + std::string(kWeb);
  text.replace(text.find("name = \"web\""), 12, "name = \"web\"\nmode = \"dsr\"");
  EXPECT_EQ(errors_of(text),
            "xlb.toml:14:10: service \"web\" backend 1: key \"port\": port 8080 differs from frontend port 80; in "
            "dsr mode the packet reaches the backend unchanged, so it must listen on the frontend's port");
}

// The kWeb service in dsr mode, its backend on the frontend's port, after `node`.
std::string dsr_web(const std::string& node) {
  std::string text = node + std::string(kWeb);
  text.replace(text.find("name = \"web\""), 12, "name = \"web\"\nmode = \"dsr\"");
  text.replace(text.find("port = 8080"), 11, "port = 80");
  return text;
}

TEST(ConfigErrors, DsrNeedsASourcePrefixUnlessTheNodeOnlyDecapsulates) {
  EXPECT_EQ(errors_of(dsr_web("")),
            "xlb.toml:6:3: service \"web\" frontend 1: mode dsr needs [node] dsr_source_ipv4, the prefix of the outer "
            "source addresses toward the backends (a node that only decapsulates sets decap = true and xdp_mode = "
            "\"off\")");
  EXPECT_TRUE(parse(dsr_web("[node]\ninterfaces = [\"eth0\"]\ndecap = true\nxdp_mode = \"off\"\n"), "xlb.toml").ok());
  EXPECT_TRUE(parse(dsr_web("[node]\ndsr_source_ipv4 = \"10.99.0.0/16\"\n"), "xlb.toml").ok());
}

// xdp_mode = "tc": the tc ingress balancer translates (nat, snat) and encapsulates (dsr) as XDP
// does, so dsr needs its outer source prefix there too.
TEST(ConfigErrors, TcBalancerTakesEveryModeAndDsrNeedsItsSource) {
  auto tc = parse("[node]\ninterfaces = [\"eth0\"]\nxdp_mode = \"tc\"\n" + std::string(kWeb), "xlb.toml");
  ASSERT_TRUE(tc.ok());
  EXPECT_EQ(tc->node.xdp_mode, XdpMode::tc);
  EXPECT_TRUE(parse(dsr_web("[node]\nxdp_mode = \"tc\"\ndsr_source_ipv4 = \"10.99.0.0/16\"\n"), "xlb.toml").ok());
  EXPECT_NE(errors_of(dsr_web("[node]\nxdp_mode = \"tc\"\n")).find("mode dsr needs [node] dsr_source_ipv4"),
            std::string::npos);
}

TEST(ConfigErrors, DsrSourceMustBeAPrefixOfItsFamily) {
  EXPECT_EQ(errors_of("[node]\ndsr_source_ipv4 = \"10.99.0.0\"\n"),
            "xlb.toml:2:19: node: key \"dsr_source_ipv4\": must be an IPv4 prefix such as \"10.99.0.0/16\"");
  EXPECT_EQ(errors_of("[node]\ndsr_source_ipv6 = \"10.99.0.0/16\"\n"),
            "xlb.toml:2:19: node: key \"dsr_source_ipv6\": must be an IPv6 prefix such as \"fd00:99::/64\"");
  EXPECT_EQ(errors_of("[node]\ndsr_source_ipv4 = \"10.99.0.0/33\"\n"),
            "xlb.toml:2:19: node: key \"dsr_source_ipv4\": prefix length 33 is out of range 1..32");
  EXPECT_EQ(errors_of("[node]\ndsr_source_ipv4 = \"10.99.1.0/16\"\n"),
            "xlb.toml:2:19: node: key \"dsr_source_ipv4\": has host bits set after /16; did you mean 10.99.1.0/16?");
  EXPECT_EQ(errors_of("[node]\ndecap = \"yes\"\n"), "xlb.toml:2:9: node: key \"decap\": must be a boolean, not a string");
  EXPECT_EQ(errors_of("[node]\ndecap = true\n"),
            "xlb.toml:2:9: node: key \"decap\": needs [node] interfaces: the links where the load balancers' packets "
            "arrive");
}

TEST(Config, DefaultModeAppliesToServicesThatSetNone) {
  std::string text = "[node]\ndsr_source_ipv4 = \"10.99.0.0/16\"\n[defaults]\nmode = \"dsr\"\n" + std::string(kWeb);
  text.replace(text.find("port = 8080"), 11, "port = 80");
  text += "[[service]]\nname = \"api\"\nmode = \"nat\"\n[[service.frontend]]\naddress = \"198.18.0.11\"\nport = 80\n";
  auto r = parse(text, "xlb.toml");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->catalog.services.at(0).mode, model::ForwardingMode::dsr);
  EXPECT_EQ(r->catalog.services.at(1).mode, model::ForwardingMode::nat);
  EXPECT_NE(errors_of("[defaults]\nmode = \"fast\"\n").find("defaults: key \"mode\""), std::string::npos)
      << errors_of("[defaults]\nmode = \"fast\"\n");
}

TEST(ConfigErrors, ApiListenMustBeAddressAndPort) {
  EXPECT_EQ(errors_of("[api]\nlisten = \"localhost:9180\"\n"),
            "xlb.toml:2:10: api: key \"listen\": \"localhost:9180\" is not ADDRESS:PORT (e.g. 127.0.0.1:9180 or "
            "[::1]:9180) or \"off\"");
}

TEST(ConfigFile, MissingFileSaysSo) {
  auto r = load("/nonexistent/xlb.toml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "/nonexistent/xlb.toml: cannot open: No such file or directory");
}

TEST(ConfigFile, HugeFileIsRefusedWithoutParsing) {
  const std::string path = ::testing::TempDir() + "/huge.toml";
  {
    std::ofstream out(path);
    const std::string line(1023, '#');
    for (int i = 0; i < 17 * 1024; ++i) out << line << "\n";
  }
  auto r = load(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, path + ": larger than 16 MiB; refusing to read it");
}

TEST(Config, KubernetesSection) {
  auto r = parse(R"([kubernetes]
enabled = true
kubeconfig = "/etc/kubernetes/kubelet.conf"
node_name = "node-a"
node_addresses = ["192.0.2.11", "2001:db8::11"]
zone = "zone-a"
service_proxy_name = "xlb"
forwarding_mode = "snat"
watch_silence_timeout = 60
)", "xlb.toml");
  ASSERT_TRUE(r.ok()) << r.error().message;
  const KubernetesConfig& k = r->kubernetes;
  EXPECT_TRUE(k.enabled);
  EXPECT_EQ(k.kubeconfig, "/etc/kubernetes/kubelet.conf");
  EXPECT_EQ(k.node_name, "node-a");
  ASSERT_EQ(k.node_addresses.size(), 2u);
  EXPECT_EQ(k.node_addresses[1].to_string(), "2001:db8::11");
  EXPECT_EQ(k.zone, "zone-a");
  EXPECT_EQ(k.service_proxy_name, "xlb");
  EXPECT_EQ(k.forwarding_mode, model::ForwardingMode::snat);
  EXPECT_EQ(k.silence_timeout_s, 60u);
  EXPECT_FALSE(parse("", "xlb.toml")->kubernetes.enabled);
}

TEST(ConfigErrors, KubernetesSection) {
  auto text = errors_of("[kubernetes]\nenabled = \"yes\"\nnode_addresses = [\"node-a\"]\nforwarding_mode = \"fast\"\nkubconfig = \"x\"\n");
  EXPECT_NE(text.find("xlb.toml:2:11: kubernetes: key \"enabled\": must be a boolean, not a string"), std::string::npos) << text;
  EXPECT_NE(text.find("xlb.toml:3:19: kubernetes: key \"node_addresses\""), std::string::npos) << text;
  EXPECT_NE(text.find("\"fast\" is not one of nat, snat, dsr"), std::string::npos) << text;
  EXPECT_NE(text.find("unknown key \"kubconfig\"; did you mean \"kubeconfig\"?"), std::string::npos) << text;
}

TEST(Config, HealthProbePortPathAndLatencyAwareness) {
  auto r = parse(std::string(kWeb) + "[service.health]\ntype = \"https\"\npath = \"/healthz\"\nport = 8081\nexpect_status = 204\nslow_factor = 3\n",
                 "xlb.toml");
  ASSERT_TRUE(r.ok()) << r.error().message;
  const auto& h = r->catalog.services.at(0).health;
  EXPECT_EQ(h.http_path, "/healthz");
  EXPECT_EQ(h.port, 8081);
  EXPECT_EQ(h.type, model::HealthCheckType::https);
  EXPECT_EQ(h.expect_status, 204);
  EXPECT_EQ(h.slow_factor, 3u);
  const std::string text = errors_of(std::string(kWeb) +
                                     "[service.health]\ntype = \"http\"\npath = \"healthz\"\nslow_factor = 1\n");
  EXPECT_NE(text.find("path must start with /"), std::string::npos) << text;
  EXPECT_NE(text.find("slow_factor must be 0 (off) or between 2 and 100"), std::string::npos) << text;
}

}  // namespace
}  // namespace xlb::config

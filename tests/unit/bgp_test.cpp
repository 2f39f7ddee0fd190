// The announcer's policy (which VIPs), bird's include file and `show protocols` as text, the
// [bgp] section of xlb.toml, and the include file driven into a real bird2 over its control socket.
#include "bgp/bgp.h"
#include "bgp/bird_control.h"
#include "support/temp_dir.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

namespace xlb::bgp {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

model::IpAddress ip(std::string_view s) { return *model::IpAddress::parse(s); }

model::Service service(std::string name, std::string_view vip, int active, model::FrontendKind kind = model::FrontendKind::vip) {
  model::Service s;
  s.name = std::move(name);
  s.mode = model::ForwardingMode::dsr;
  s.frontends.push_back({ip(vip), 80, model::Protocol::tcp, kind});
  for (int i = 0; i < active; ++i)
    s.backends.push_back({ip("10.0.0." + std::to_string(i + 2)), 80, 1, model::BackendState::active, "", ""});
  return s;
}

const NodeInputs kServing{true, std::nullopt};

// ---- policy ----------------------------------------------------------------------------------

TEST(BgpPolicy, AnnouncesEachVipWithAnActiveBackendOnce) {
  model::Catalog c{{service("web", "198.18.0.10", 2), service("web-tls", "198.18.0.10", 1),
                    service("v6", "2001:db8::10", 1)}};
  c.services[1].frontends[0].port = 443;
  const auto vips = plan_vips(c, kServing);
  ASSERT_EQ(vips.size(), 2u);
  EXPECT_EQ(vips[0].address, ip("198.18.0.10"));
  EXPECT_TRUE(vips[0].announced);
  EXPECT_EQ(vips[0].services, (std::vector<std::string>{"web", "web-tls"}));
  EXPECT_EQ(vips[1].address, ip("2001:db8::10"));
  EXPECT_TRUE(vips[1].announced);
}

TEST(BgpPolicy, WithdrawsAVipWhoseOnlyBackendIsDownDrainedOrWeightless) {
  for (auto change : {+[](model::Backend& b) { b.state = model::BackendState::down; },
                      +[](model::Backend& b) { b.state = model::BackendState::draining; },
                      +[](model::Backend& b) { b.weight = 0; }}) {
    model::Catalog c{{service("solo", "198.18.0.20", 1), service("web", "198.18.0.10", 1)}};
    change(c.services[0].backends[0]);
    const auto vips = plan_vips(c, kServing);
    ASSERT_EQ(vips.size(), 2u);
    EXPECT_TRUE(vips[0].announced) << "198.18.0.10 still serves";
    EXPECT_FALSE(vips[1].announced);
    EXPECT_THAT(vips[1].reason, HasSubstr("no backend takes new flows"));
  }
  model::Catalog none{{service("empty", "198.18.0.30", 0)}};
  EXPECT_FALSE(plan_vips(none, kServing).at(0).announced);
}

TEST(BgpPolicy, AVipSharedWithAServiceThatCanServeStays) {
  model::Catalog c{{service("a", "198.18.0.10", 0), service("b", "198.18.0.10", 1)}};
  c.services[1].frontends[0].port = 8443;
  EXPECT_TRUE(plan_vips(c, kServing).at(0).announced);
}

TEST(BgpPolicy, OnlyAddressesOfTheirOwnAreAnnounced) {
  model::Catalog c{{service("cluster", "10.96.0.10", 1, model::FrontendKind::cluster_ip),
                    service("nodeport", "192.0.2.11", 1, model::FrontendKind::node_port),
                    service("lb", "198.18.0.40", 1, model::FrontendKind::load_balancer),
                    service("ext", "198.18.0.41", 1, model::FrontendKind::external_ip)}};
  const auto vips = plan_vips(c, kServing);
  ASSERT_EQ(vips.size(), 2u);
  EXPECT_EQ(vips[0].address, ip("198.18.0.40"));
  EXPECT_EQ(vips[1].address, ip("198.18.0.41"));
}

TEST(BgpPolicy, NothingIsAnnouncedWithoutTheDatapathOrWhileWithdrawing) {
  model::Catalog c{{service("web", "198.18.0.10", 2)}};
  auto detached = plan_vips(c, NodeInputs{false, std::nullopt});
  EXPECT_FALSE(detached.at(0).announced);
  EXPECT_THAT(detached.at(0).reason, HasSubstr("datapath is not attached"));
  auto stopping = plan_vips(c, NodeInputs{true, "xlbd is stopping"});
  EXPECT_FALSE(stopping.at(0).announced);
  EXPECT_EQ(stopping.at(0).reason, "xlbd is stopping");
}

// ---- bird's include file ---------------------------------------------------------------------

config::BgpConfig bgp_config() {
  config::BgpConfig b;
  b.enabled = true;
  b.local_asn = 65001;
  b.router_id = ip("10.1.1.2");
  b.peers.push_back({ip("10.1.1.1"), 65000, 3, false, 179});
  b.peers.push_back({ip("fd00:1::1"), 65000, 0, true, 1179});
  b.communities = {"65001:100", "65001:7:9"};
  return b;
}

TEST(BirdConfig, RoutesForAnnouncedVipsOnlyAndASessionPerPeer) {
  model::Catalog c{{service("web", "198.18.0.10", 1), service("solo", "198.18.0.20", 0), service("v6", "2001:db8::10", 1)}};
  const std::string text = bird_config(bgp_config(), plan_vips(c, kServing));
  EXPECT_THAT(text, HasSubstr("router id 10.1.1.2;"));
  EXPECT_THAT(text, HasSubstr("route 198.18.0.10/32 blackhole;"));
  EXPECT_THAT(text, HasSubstr("route 2001:db8::10/128 blackhole;"));
  EXPECT_THAT(text, Not(HasSubstr("route 198.18.0.20/32")));
  EXPECT_THAT(text, HasSubstr("# held back: 198.18.0.20: no backend takes new flows"));
  EXPECT_THAT(text, HasSubstr("bgp_community.add((65001,100));"));
  EXPECT_THAT(text, HasSubstr("bgp_large_community.add((65001,7,9));"));
  EXPECT_THAT(text, HasSubstr("protocol bgp xlb_10_1_1_1 {"));
  EXPECT_THAT(text, HasSubstr("neighbor 10.1.1.1 as 65000;"));
  EXPECT_THAT(text, HasSubstr("hold time 3;\n  keepalive time 1;"));
  EXPECT_THAT(text, HasSubstr("protocol bgp xlb_fd00_1__1 {"));
  EXPECT_THAT(text, HasSubstr("neighbor fd00:1::1 port 1179 as 65000;"));
  EXPECT_THAT(text, HasSubstr("bfd on;"));
  EXPECT_THAT(text, HasSubstr("protocol bfd xlb_bfd"));
}

// ---- show protocols --------------------------------------------------------------------------

TEST(BirdProtocols, ReadsXlbsBgpSessionsFromTheSocketOrBirdc) {
  const std::string socket_reply =
      "2002-Name       Proto      Table      State  Since         Info\n"
      "1002-device1    Device     ---        up     13:20:41.123  \n"
      " xlb_10_1_1_1 BGP        ---        up     13:20:44.000  Established   \n"
      " xlb_fd00__1 BGP        ---        start  2026-11-25 13:20:44  Active        Socket: Connection refused\n"
      " other      BGP        ---        up     13:20:44.000  Established   \n"
      " xlb_vips4  Static     master4    up     13:20:41.123  \n"
      "0000 \n";
  const auto peers = parse_protocols(socket_reply);
  ASSERT_EQ(peers.size(), 2u);
  EXPECT_EQ(peers[0].name, "xlb_10_1_1_1");
  EXPECT_TRUE(peers[0].established());
  EXPECT_EQ(peers[1].state, "start");
  EXPECT_EQ(peers[1].since, "2026-11-25 13:20:44");
  EXPECT_EQ(peers[1].info, "Active        Socket: Connection refused");
  EXPECT_FALSE(peers[1].established());

  const std::string birdc =
      "BIRD 2.0.12 ready.\nName       Proto      Table      State  Since         Info\n"
      "xlb_10_1_1_1 BGP        ---        up     13:20:44.000  Established\n";
  ASSERT_EQ(parse_protocols(birdc).size(), 1u);
}

// ---- [bgp] in xlb.toml -----------------------------------------------------------------------

TEST(BgpConfigFile, ReadsEveryKey) {
  auto c = config::parse(R"([bgp]
enabled = true
local_asn = 65001
router_id = "10.1.1.2"
communities = ["65001:100", "1:2:3"]
bird_socket = "/run/bird/bird.ctl"
bird_include = "/etc/bird/xlb.conf"
drain_time = "3s"
[[bgp.peer]]
address = "10.1.1.1"
asn = 65000
hold_time = 3
bfd = true
)", "xlb.toml");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_TRUE(c->bgp.enabled);
  EXPECT_EQ(c->bgp.local_asn, 65001u);
  EXPECT_EQ(c->bgp.router_id, ip("10.1.1.2"));
  ASSERT_EQ(c->bgp.peers.size(), 1u);
  EXPECT_EQ(c->bgp.peers[0].hold_time_s, 3u);
  EXPECT_TRUE(c->bgp.peers[0].bfd);
  EXPECT_EQ(c->bgp.communities.size(), 2u);
  EXPECT_EQ(c->bgp.bird_include, "/etc/bird/xlb.conf");
  EXPECT_EQ(c->bgp.drain_time, std::chrono::seconds(3));
}

TEST(BgpConfigFile, EveryMistakeIsNamedWithItsLine) {
  auto c = config::parse(R"([bgp]
enabled = true
router_id = "fd00::1"
communities = ["65001:70000", "x"]
bird_include = "relative.conf"
drain_time = "forever"
[[bgp.peer]]
address = "10.1.1.1"
asn = 65000
hold_time = 2
[[bgp.peer]]
address = "10.1.1.1"
asn = 65000
)", "xlb.toml");
  ASSERT_FALSE(c.ok());
  const std::string& m = c.error().message;
  EXPECT_THAT(m, HasSubstr("xlb.toml:1:1: bgp: missing required key \"local_asn\""));
  EXPECT_THAT(m, HasSubstr("xlb.toml:3:13: bgp: key \"router_id\": \"fd00::1\" is not an IPv4 address"));
  EXPECT_THAT(m, HasSubstr("xlb.toml:4:16: bgp: key \"communities\": each community must be"));
  EXPECT_THAT(m, HasSubstr("xlb.toml:4:31: bgp: key \"communities\""));
  EXPECT_THAT(m, HasSubstr("xlb.toml:5:16: bgp: key \"bird_include\": must be an absolute path"));
  EXPECT_THAT(m, HasSubstr("xlb.toml:6:14: bgp: key \"drain_time\""));
  EXPECT_THAT(m, HasSubstr("xlb.toml:10:13: bgp peer 1: key \"hold_time\": 2 is below 3"));
  EXPECT_THAT(m, HasSubstr("bgp peer 2: address 10.1.1.1 is listed twice"));

  auto no_peer = config::parse("[bgp]\nenabled = true\nlocal_asn = 65001\n", "xlb.toml");
  ASSERT_FALSE(no_peer.ok());
  EXPECT_THAT(no_peer.error().message, HasSubstr("needs at least one [[bgp.peer]]"));
  auto typo = config::parse("[bgp]\nlocal_asm = 1\n", "xlb.toml");
  ASSERT_FALSE(typo.ok());
  EXPECT_THAT(typo.error().message, HasSubstr("unknown key \"local_asm\"; did you mean \"local_asn\"?"));
  auto off = config::parse("[bgp]\nenabled = false\n", "xlb.toml");
  EXPECT_TRUE(off.ok()) << off.error().message;
}

// ---- a real bird2 ----------------------------------------------------------------------------

// bird in the foreground with a config that includes xlb's file, its control socket in `dir`.
class RealBird : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access("/usr/sbin/bird", X_OK) != 0) {
      if (const char* ci = std::getenv("CI"); ci && std::string(ci) == "true") FAIL() << "no /usr/sbin/bird (apt-get install bird2)";
      GTEST_SKIP() << "no /usr/sbin/bird (apt-get install bird2)";
    }
    config_ = bgp_config();
    config_.peers.resize(1);
    config_.peers[0].address = ip("127.0.0.1");
    config_.peers[0].port = 1;  // nothing listens: the session stays down, which is all we read
    config_.bird_socket = dir_ / "bird.ctl";
    config_.bird_include = dir_ / "xlb.conf";
    std::ofstream(dir_ / "bird.conf") << "protocol device {}\ninclude \"" << config_.bird_include.string() << "\";\n";
    std::ofstream(config_.bird_include) << "";
    pid_ = ::fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      const std::string conf = (dir_ / "bird.conf").string(), sock = config_.bird_socket.string();
      ::execl("/usr/sbin/bird", "bird", "-f", "-c", conf.c_str(), "-s", sock.c_str(), "-P",
              (dir_ / "bird.pid").c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    for (int i = 0; i < 100 && !bird_command(config_.bird_socket, "show status").ok(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ASSERT_TRUE(bird_command(config_.bird_socket, "show status").ok()) << "bird did not start";
  }
  void TearDown() override {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  test::TempDir dir_{"xlb-bird"};
  config::BgpConfig config_;
  pid_t pid_ = -1;
};

TEST_F(RealBird, AcceptsTheIncludeFileAndListsTheRoutesAndTheSession) {
  model::Catalog c{{service("web", "198.18.0.10", 1), service("solo", "198.18.0.20", 0), service("v6", "2001:db8::10", 1)}};
  const auto status = configure_bird(config_, plan_vips(c, kServing));
  ASSERT_TRUE(status.ok()) << status.error().message;
  auto routes = bird_command(config_.bird_socket, "show route");
  ASSERT_TRUE(routes.ok()) << routes.error().message;
  EXPECT_THAT(*routes, HasSubstr("198.18.0.10/32"));
  EXPECT_THAT(*routes, HasSubstr("2001:db8::10/128"));
  EXPECT_THAT(*routes, Not(HasSubstr("198.18.0.20")));
  auto protocols = bird_command(config_.bird_socket, "show protocols");
  ASSERT_TRUE(protocols.ok()) << protocols.error().message;
  const auto peers = parse_protocols(*protocols);
  ASSERT_EQ(peers.size(), 1u);
  EXPECT_EQ(peers[0].name, "xlb_127_0_0_1");
  EXPECT_FALSE(peers[0].established());

  // Withdrawing every VIP leaves bird without xlb's routes.
  ASSERT_TRUE(configure_bird(config_, plan_vips(c, NodeInputs{true, "stopping"})).ok());
  routes = bird_command(config_.bird_socket, "show route");
  ASSERT_TRUE(routes.ok());
  EXPECT_THAT(*routes, Not(HasSubstr("198.18.0.10/32")));
}

TEST_F(RealBird, ARefusalAndAMissingSocketAreReportedInBirdsWords) {
  auto refused = bird_command(config_.bird_socket, "configure \"" + (dir_ / "nonexistent.conf").string() + "\"");
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.error().message, HasSubstr("bird refused \"configure"));
  EXPECT_THAT(refused.error().message, HasSubstr("nonexistent.conf"));

  config::BgpConfig elsewhere = config_;
  elsewhere.bird_socket = dir_ / "no.ctl";
  const auto missing = configure_bird(elsewhere, {});
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.error().message, HasSubstr("is bird running, with -s"));
}

TEST_F(RealBird, TheAnnouncerRetriesUntilBirdAcceptsAndReadsThePeers) {
  Logger log{LogLevel::error};
  // The include file's directory is missing at first: the first push fails, and is retried.
  config::BgpConfig late = config_;
  late.bird_include = dir_ / "later" / "xlb.conf";
  std::ofstream(dir_ / "bird.conf") << "protocol device {}\ninclude \"" << late.bird_include.string() << "\";\n";
  Announcer announcer(late, log);
  model::Catalog c{{service("web", "198.18.0.10", 1)}};
  announcer.update(plan_vips(c, kServing));
  Report report;
  for (int i = 0; i < 40 && report.error.empty(); ++i) {
    report = announcer.report();
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  EXPECT_FALSE(report.configured);
  EXPECT_THAT(report.error, HasSubstr("cannot write"));
  std::filesystem::create_directories(dir_ / "later");
  for (int i = 0; i < 100; ++i) {
    report = announcer.report();
    if (report.configured && !report.peers.empty() && report.peers[0].state != "unknown") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // a retry every 2 s: 5 s at most
  }
  EXPECT_TRUE(report.configured) << report.error;
  ASSERT_EQ(report.peers.size(), 1u);
  EXPECT_NE(report.peers[0].state, "unknown") << report.peers[0].info;
  EXPECT_FALSE(report.peers[0].established());
  ASSERT_TRUE(announcer.withdraw_all("xlbd is stopping").ok());
  announcer.update(plan_vips(c, kServing));  // too late: withdrawn for good
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto routes = bird_command(config_.bird_socket, "show route");
  ASSERT_TRUE(routes.ok());
  EXPECT_THAT(*routes, Not(HasSubstr("198.18.0.10/32")));
  EXPECT_FALSE(announcer.report().vips.at(0).announced);
}

}  // namespace
}  // namespace xlb::bgp

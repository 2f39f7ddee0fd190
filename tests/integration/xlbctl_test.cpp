// The real xlbctl against the real xlbd (shadow mode, API on a free loopback port: no root): each
// command's output, its -o json form, its exit code, and the one-line error when xlbd is not there.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "support/process.h"
#include "support/temp_dir.h"

namespace xlb {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::ChildProcess;

const std::string kXlbd = std::string(XLB_BUILD_DIR) + "/src/xlbd/xlbd";
const std::string kXlbctl = std::string(XLB_BUILD_DIR) + "/src/xlbctl/xlbctl";

// A loopback port that nothing listened on a moment ago.
uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// Two services: "web" (nat, one frontend, a weight-1 and a weight-2 backend) and "dns" (dsr, udp).
const char* const kServices = R"(
[[service]]
name = "web"
[[service.frontend]]
address = "198.18.0.10"
port = 80
[[service.backend]]
address = "10.0.0.2"
port = 8080
[[service.backend]]
address = "10.0.0.3"
port = 8080
weight = 2

[[service]]
name = "dns"
mode = "dsr"
[[service.frontend]]
address = "198.18.0.53"
port = 53
protocol = "udp"
[[service.backend]]
address = "10.0.1.2"
port = 53
)";

// What a finished xlbctl printed (stdout and stderr together) and its exit code.
struct Finished {
  int exit_code = -1;
  std::string output;

  std::vector<std::string> lines() const {
    std::vector<std::string> out;
    std::istringstream in(output);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }
  bool has(const std::string& text) const { return output.find(text) != std::string::npos; }
};

class XlbctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = free_port();
    std::ofstream(config()) << "[node]\nmode = \"shadow\"\ndsr_source_ipv4 = \"10.99.0.0/16\"\n[api]\nlisten = \"127.0.0.1:" << port_ << "\"\n"
                            << kServices;
    xlbd_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{kXlbd, "--config", config().string(), "--state-dir", state().string()});
    ASSERT_TRUE(xlbd_->wait_for_line("ready: revision 1")) << xlbd_->seen();
  }
  void TearDown() override {
    xlbd_.reset();
  }

  fs::path config() const { return dir_ / "xlb.toml"; }
  fs::path state() const { return dir_ / "state"; }
  std::string api() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // xlbctl with --api and --state-dir of this test's xlbd, then `args`.
  Finished xlbctl(const std::vector<std::string>& args) const {
    std::vector<std::string> argv{kXlbctl, "--api", api(), "--state-dir", state().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
  }

  static Finished run(const std::vector<std::string>& argv) {
    ChildProcess child(argv);
    child.wait_for_line("\x01 read until the end", std::chrono::seconds(20));
    const auto code = child.wait();
    return {code.value_or(-1), child.seen()};
  }

  static json parse(const Finished& r) {
    json body = json::parse(r.output, nullptr, false);
    EXPECT_FALSE(body.is_discarded()) << r.output;
    return body;
  }

  test::TempDir dir_{"xlbctl"};
  uint16_t port_ = 0;
  std::unique_ptr<ChildProcess> xlbd_;
};

TEST_F(XlbctlTest, StatusShowsTheNodeAndTheRevisionInForce) {
  const Finished r = xlbctl({"status"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(r.has("Revision:     1\n")) << r.output;
  EXPECT_TRUE(r.has("Datapath:     shadow\n")) << r.output;
  EXPECT_TRUE(r.has("xlbd:         " XLB_VERSION "\n")) << r.output;
  EXPECT_TRUE(r.has("Services:     2 (2 frontends, 3 backends)\n")) << r.output;
  EXPECT_TRUE(r.has("Drops:        none\n")) << r.output;
}

TEST_F(XlbctlTest, TheApiAddressComesFromTheConfigWhenNotGiven) {
  Finished r = run({kXlbctl, "--config", config().string(), "status"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(r.has("Revision:     1\n")) << r.output;

  // --api also takes the form of [api] listen, and a trailing slash.
  r = run({kXlbctl, "--api", "127.0.0.1:" + std::to_string(port_) + "/", "status"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST_F(XlbctlTest, ServiceListShowsEveryServiceWithItsFrontendsAndBackendsInColumns) {
  const Finished r = xlbctl({"service", "list"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  const auto lines = r.lines();
  ASSERT_EQ(lines.size(), 4u) << r.output;  // header, dns, web x2 backends: by name
  EXPECT_EQ(lines[0], "NAME  FRONTEND            KIND  MODE  SOURCE  BACKENDS");
  EXPECT_EQ(lines[1], "dns   198.18.0.53:53/udp  vip   dsr   toml    10.0.1.2:53 (active)");
  EXPECT_EQ(lines[2], "web   198.18.0.10:80/tcp  vip   nat   toml    10.0.0.2:8080 (active)");
  EXPECT_EQ(lines[3], "                                              10.0.0.3:8080 (active, weight 2)");
}

TEST_F(XlbctlTest, ServiceShowGivesFrontendsBackendsSharesAndCounters) {
  Finished r = xlbctl({"service", "show", "web"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(r.has("Name:        web\nMode:        nat\nSource:      toml\nRevision:    1\n")) << r.output;
  EXPECT_TRUE(r.has("  198.18.0.10:80/tcp  vip\n")) << r.output;
  EXPECT_TRUE(r.has("  BACKEND        STATE   WEIGHT  SLOTS    RING SHARE  PACKETS  BYTES  NEW FLOWS\n")) << r.output;
  EXPECT_TRUE(r.has("  10.0.0.2:8080  active  1       84/251   33.5%       0        0      0\n")) << r.output;
  EXPECT_TRUE(r.has("  10.0.0.3:8080  active  2       167/251  66.5%       0        0      0\n")) << r.output;

  r = xlbctl({"service", "show", "dns"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(r.has("Name:        dns\nMode:        dsr\n")) << r.output;
  EXPECT_TRUE(r.has("  198.18.0.53:53/udp  vip\n")) << r.output;
  EXPECT_TRUE(r.has("  10.0.1.2:53  active  1       251/251  100.0%")) << r.output;

  r = xlbctl({"service", "show", "198.18.0.53:53"});  // by a frontend
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(r.has("Name:        dns\n")) << r.output;
}

TEST_F(XlbctlTest, AnUnknownServiceExitsOneWithAMessage) {
  for (const auto& args : {std::vector<std::string>{"service", "show", "nope"}, {"maglev", "show", "nope"},
                           {"service", "show", "192.0.2.1:80"}}) {
    const Finished r = xlbctl(args);
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_TRUE(r.has("xlbctl: no service named \"" + args[2] + "\"")) << r.output;
    EXPECT_EQ(r.lines().size(), 1u) << r.output;
  }
}

TEST_F(XlbctlTest, DrainAndUndrainChangeTheBackendAndLeaveRevisions) {
  Finished r = xlbctl({"backend", "drain", "web", "10.0.0.2:8080", "--reason", "kernel upgrade"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(r.has("web 10.0.0.2:8080 drained")) << r.output;
  EXPECT_TRUE(r.has("(revision 2)")) << r.output;

  r = xlbctl({"service", "show", "web"});
  EXPECT_TRUE(r.has("  10.0.0.2:8080  draining  1       0/251    0.0%")) << r.output;
  EXPECT_TRUE(r.has("  10.0.0.3:8080  active    2       251/251  100.0%")) << r.output;
  EXPECT_TRUE(xlbctl({"service", "list"}).has("10.0.0.2:8080 (draining)"));

  r = xlbctl({"backend", "undrain", "web", "10.0.0.2:8080"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(r.has("web 10.0.0.2:8080 undrained")) << r.output;
  EXPECT_TRUE(xlbctl({"service", "show", "web"}).has("  10.0.0.2:8080  active  1       84/251"));

  r = xlbctl({"history"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  const auto lines = r.lines();
  ASSERT_EQ(lines.size(), 4u) << r.output;
  EXPECT_TRUE(lines[0].starts_with("REVISION  TIME")) << r.output;
  EXPECT_TRUE(lines[1].starts_with("3 ")) << r.output;
  EXPECT_NE(lines[1].find("api: undrained web 10.0.0.2:8080 by "), std::string::npos) << r.output;
  EXPECT_TRUE(lines[2].starts_with("2 ")) << r.output;
  EXPECT_NE(lines[2].find("api: drained web 10.0.0.2:8080 by "), std::string::npos) << r.output;
  EXPECT_TRUE(lines[3].starts_with("1 ")) << r.output;
  EXPECT_NE(lines[3].find("toml:" + config().string()), std::string::npos) << r.output;
  EXPECT_NE(lines[3].find("+web; +dns"), std::string::npos) << r.output;

  r = xlbctl({"history", "--limit", "1"});
  ASSERT_EQ(r.lines().size(), 2u) << r.output;
  EXPECT_TRUE(r.lines()[1].starts_with("3 ")) << r.output;

  r = xlbctl({"events"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(r.has("drain  web 10.0.0.2:8080  drained by ")) << r.output;
  EXPECT_TRUE(r.has(": kernel upgrade\n")) << r.output;
  EXPECT_TRUE(r.has("drain  web 10.0.0.2:8080  undrained by ")) << r.output;
}

TEST_F(XlbctlTest, WritesThatXlbdRefusesExitOne) {
  Finished r = xlbctl({"backend", "drain", "web", "10.9.9.9:80"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(r.has("xlbctl: service \"web\" has no backend 10.9.9.9:80")) << r.output;
  r = xlbctl({"backend", "drain", "nope", "10.0.0.2:8080"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(r.has("xlbctl: no service named \"nope\"")) << r.output;
}

TEST_F(XlbctlTest, AMissingTokenNamesTheFile) {
  const auto elsewhere = dir_ / "empty";
  const Finished r = run({kXlbctl, "--api", api(), "--state-dir", elsewhere.string(), "backend", "drain", "web",
                     "10.0.0.2:8080"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(r.has("xlbctl: cannot read the API token " + (elsewhere / "api.token").string() +
                    ": No such file or directory; writes need root, the user xlbd runs as"))
      << r.output;
  EXPECT_TRUE(xlbctl({"service", "show", "web"}).has("10.0.0.2:8080  active")) << "nothing was drained";
}

TEST_F(XlbctlTest, MaglevSharesAddUpToTheRingAndFollowTheWeights) {
  Finished r = xlbctl({"maglev", "show", "web"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(r.has("Ring ipv4:  251 slots\n")) << r.output;
  EXPECT_TRUE(r.has("  total                          251    100.0%\n")) << r.output;
  EXPECT_TRUE(r.has("Disruption:  the last change sent ")) << r.output;

  r = xlbctl({"-o", "json", "maglev", "show", "web"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  const json body = parse(r);
  EXPECT_EQ(body["service"], "web");
  EXPECT_TRUE(body["last_disruption"].is_number()) << body;
  ASSERT_EQ(body["rings"].size(), 1u) << body;
  const json& ring = body["rings"][0];
  EXPECT_EQ(ring["family"], "ipv4");
  std::map<std::string, uint64_t> slots;
  uint64_t total = 0;
  for (const auto& s : ring["shares"]) {
    slots[s["backend"]] = s["slots"].get<uint64_t>();
    total += s["slots"].get<uint64_t>();
  }
  EXPECT_EQ(total, ring["size"].get<uint64_t>());
  ASSERT_EQ(slots.size(), 2u);
  const double ratio = static_cast<double>(slots["10.0.0.3:8080"]) / static_cast<double>(slots["10.0.0.2:8080"]);
  EXPECT_NEAR(ratio, 2.0, 0.1) << "the weight-2 backend has about twice the slots";
}

TEST_F(XlbctlTest, JsonOutputIsTheApisJson) {
  json body = parse(xlbctl({"status", "-o", "json"}));
  EXPECT_EQ(body["revision"], 1);
  EXPECT_EQ(body["datapath_mode"], "shadow");
  EXPECT_EQ(body["totals"]["services"], 2);

  body = parse(xlbctl({"service", "list", "-o", "json"}));
  ASSERT_EQ(body["services"].size(), 2u);
  EXPECT_EQ(body["services"][1]["name"], "web");
  EXPECT_EQ(body["services"][0]["frontends"][0]["protocol"], "udp");

  body = parse(xlbctl({"service", "show", "web", "-o", "json"}));
  EXPECT_EQ(body["service"]["backends"][1]["weight"], 2);
  EXPECT_EQ(body["service"]["backends"][1]["state"], "active");

  body = parse(xlbctl({"-o", "json", "history"}));
  ASSERT_EQ(body["revisions"].size(), 1u);
  EXPECT_EQ(body["revisions"][0]["summary"], "+web; +dns");

  body = parse(xlbctl({"-o", "json", "backend", "drain", "dns", "10.0.1.2:53"}));
  EXPECT_EQ(body["drained"], true);
  EXPECT_EQ(body["revision"], 2);

  body = parse(xlbctl({"-o", "json", "events"}));
  ASSERT_EQ(body["events"].size(), 1u);
  EXPECT_EQ(body["events"][0]["subject"], "dns 10.0.1.2:53");
}

TEST_F(XlbctlTest, EventsFollowReturnsAfterCountEvents) {
  ChildProcess follow({kXlbctl, "--api", api(), "events", "--follow", "--count", "1"});
  ChildProcess follow_json({kXlbctl, "--api", api(), "events", "--count", "1", "-o", "json"});
  ASSERT_TRUE(follow.wait_for_line("xlbctl: following events after #0")) << follow.seen();
  ASSERT_TRUE(follow_json.wait_for_line("xlbctl: following events after #0")) << follow_json.seen();
  EXPECT_TRUE(follow.running());
  ASSERT_EQ(xlbctl({"backend", "drain", "web", "10.0.0.3:8080", "--reason", "test"}).exit_code, 0);
  const auto line = follow.wait_for_line("drain  web 10.0.0.3:8080");
  ASSERT_TRUE(line) << follow.seen();
  EXPECT_TRUE(line->starts_with("#1  ")) << *line;
  EXPECT_TRUE(line->ends_with(": test")) << *line;
  EXPECT_EQ(follow.wait(std::chrono::seconds(5)), 0) << follow.seen();

  const auto object = follow_json.wait_for_line("{");  // one JSON object a line
  ASSERT_TRUE(object) << follow_json.seen();
  const json event = json::parse(*object, nullptr, false);
  EXPECT_EQ(event["kind"], "drain") << *object;
  EXPECT_EQ(event["subject"], "web 10.0.0.3:8080") << *object;
  EXPECT_EQ(follow_json.wait(std::chrono::seconds(5)), 0) << follow_json.seen();
}

TEST_F(XlbctlTest, UsageErrorsExitTwo) {
  for (const auto& args : {std::vector<std::string>{"service"}, {"service", "show"}, {"maglev", "list"},
                           {"backend", "drain", "web"}, {"status", "-o", "yaml"}, {"frobnicate"},
                           {"events", "--count", "0"}, {"history", "--limit", "0"}, {"drops", "x"},
                           {"trace", "10.0.0.1", "198.18.0.10:80"}, {"trace", "10.0.0.1:1", "198.18.0.10:80/sctp"},
                           {"trace", "10.0.0.1:1", "[2001:db8::10]:80"}}) {
    const Finished r = xlbctl(args);
    EXPECT_EQ(r.exit_code, 2) << args[0] << ": " << r.output;
  }
  const Finished help = run({kXlbctl, "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_TRUE(help.has("Exit codes: 0 success, 1 the answer is no (not found, rejected, invalid config),\n"
                       "2 bad usage, 3 xlbd unreachable.\n"))
      << help.output;
}

// Shadow mode loads no datapath: drops and trace say so, as a "no" (the root test
// xlbctl_datapath_test.sh checks them against a real datapath).
TEST_F(XlbctlTest, DropsAndTraceSayThatShadowModeBalancesNothing) {
  for (const auto& args : {std::vector<std::string>{"drops"}, {"trace", "10.0.0.1:1", "198.18.0.10:80/tcp"}}) {
    const Finished r = xlbctl(args);
    EXPECT_EQ(r.exit_code, 1) << args[0] << ": " << r.output;
    EXPECT_TRUE(r.has("xlbd is in shadow mode: no datapath is loaded, nothing is balanced or dropped here"))
        << r.output;
  }
}

// The decision rule on this test's inputs: xlbd's 2 services, 6 nodes given -> replace (exit 0);
// 1 node -> keep kube-proxy (exit 1); every input shown with its source.
TEST_F(XlbctlTest, AdviseShowsEveryInputTheVerdictAndWhy) {
  const Finished many = xlbctl({"advise", "--nodes", "6", "--config", config().string()});
  EXPECT_TRUE(many.has("  nodes: 6  (--nodes)")) << many.output;
  EXPECT_TRUE(many.has("  services: 2  (xlbd (revision 1))")) << many.output;
  EXPECT_TRUE(many.has("  kernel: ")) << many.output;
  if (::geteuid() == 0) {  // preflight needs root to pass; without it the verdict is "cannot run"
    EXPECT_TRUE(many.has("verdict: replace kube-proxy with xlb\nbecause: 6 nodes")) << many.output;
    EXPECT_EQ(many.exit_code, 0) << many.output;
  }
  const Finished few = xlbctl({"-o", "json", "advise", "--nodes", "1", "--config", config().string()});
  const json body = parse(few);
  if (::geteuid() == 0) {
    EXPECT_EQ(few.exit_code, 1);
    EXPECT_EQ(body["verdict"], "keep kube-proxy");
    EXPECT_NE(body["reason"].get<std::string>().find("1 nodes and 2 Services"), std::string::npos) << few.output;
  }
  EXPECT_EQ(body["inputs"].size(), 6u);
  EXPECT_EQ(xlbctl({"advise", "--need", "telepathy"}).exit_code, 2);
}

TEST(XlbctlWithoutXlbd, EveryApiCommandExitsThreeWithOneLine) {
  const std::string api = "http://127.0.0.1:" + std::to_string(free_port());
  for (const auto& args : {std::vector<std::string>{"status"}, {"service", "list"}, {"service", "show", "web"},
                           {"maglev", "show", "web"}, {"history"}, {"events"}, {"events", "--follow"},
                           {"drops"}, {"drops", "--follow"}, {"trace", "10.0.0.1:1", "198.18.0.10:80/tcp"}}) {
    std::vector<std::string> argv{kXlbctl, "--api", api};
    argv.insert(argv.end(), args.begin(), args.end());
    ChildProcess child(argv);
    const auto line = child.wait_for_line("xlbctl: ");
    ASSERT_TRUE(line) << child.seen();
    EXPECT_EQ(child.wait(), 3) << args[0];
    EXPECT_TRUE(line->starts_with("xlbctl: cannot reach xlbd at " + api + ": ")) << *line;
    EXPECT_TRUE(line->ends_with(" (is xlbd running? systemctl status xlb)")) << *line;
    EXPECT_FALSE(child.wait_for_line("", std::chrono::milliseconds(200))) << "one line only: " << child.seen();
  }
}

// Runs the bash completion function on `line` (the cursor at its end) with minimal stand-ins for
// the bash-completion package's helpers; returns the candidates, space-separated.
std::string complete(const std::string& line, const std::string& api) {
  const std::string script =
      "source " XLB_SOURCE_DIR "/src/xlbctl/xlbctl.bash-completion\n"
      "_init_completion() { words=(\"${COMP_WORDS[@]}\"); cword=$COMP_CWORD; cur=${words[cword]};"
      " prev=${words[cword-1]}; }\n"
      "_filedir() { COMPREPLY=(FILES); }\n"
      "read -ra COMP_WORDS <<< \"$1\"; [[ $1 == *' ' ]] && COMP_WORDS+=('');"
      " COMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n"
      "_xlbctl; echo \"${COMPREPLY[*]}\"\n";
  const std::string path = std::string(XLB_BUILD_DIR) + "/src/xlbctl:/usr/bin:/bin";
  ChildProcess bash({"/usr/bin/env", "PATH=" + path, "bash", "-c", script, "bash", "xlbctl --api " + api + " " + line});
  bash.wait_for_line("\x01 read until the end");
  EXPECT_EQ(bash.wait(), 0) << bash.seen();
  std::string out = bash.seen();
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

TEST_F(XlbctlTest, BashCompletionKnowsCommandsOptionsAndServices) {
  EXPECT_EQ(complete("", api()),
            "status service backend maglev history events drops trace bgp validate preflight diff takeover rollback advise");
  EXPECT_EQ(complete("advise --need ", api()), "l7 observability mesh");
  EXPECT_EQ(complete("diff ", api()), "kube-proxy");
  EXPECT_EQ(complete("se", api()), "service");
  EXPECT_EQ(complete("service ", api()), "list show");
  EXPECT_EQ(complete("backend ", api()), "drain undrain");
  EXPECT_EQ(complete("service show ", api()), "dns web");
  EXPECT_EQ(complete("-o json maglev show w", api()), "web");
  EXPECT_EQ(complete("status -o ", api()), "table json");
  EXPECT_EQ(complete("validate ", api()), "FILES");
  EXPECT_EQ(complete("events --fo", api()), "--follow");
  EXPECT_EQ(complete("trace 10.0.0.1:40000 ", api()), "198.18.0.53:53/udp 198.18.0.10:80/tcp");
}

TEST(XlbctlManual, ThePageIsCleanTroffAndNamesEveryCommandAndExitCode) {
  const std::string page = XLB_SOURCE_DIR "/src/xlbctl/xlbctl.1";
  std::ifstream in(page);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const char* command : {"status", "service list", "service show", "backend drain", "backend undrain",
                              "maglev show", "history", "events", "validate", "diff kube\\-proxy", "takeover",
                              "rollback", "drops", "trace", ".B 3\nxlbd is unreachable"})
    EXPECT_NE(text.find(command), std::string::npos) << command;
  if (!fs::exists("/usr/bin/groff")) GTEST_SKIP() << "no groff to check the troff";
  ChildProcess groff({"/usr/bin/groff", "-man", "-ww", "-z", page});
  EXPECT_EQ(groff.wait(), 0);
  EXPECT_FALSE(groff.wait_for_line("", std::chrono::milliseconds(500))) << "warnings: " << groff.seen();
}

}  // namespace
}  // namespace xlb

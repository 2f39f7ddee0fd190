// The real xlbd binary, started on a real config and state directory: start, reload on SIGHUP
// (a bad config keeps the old one), one daemon per state directory, clean stop.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "store/store.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace xlb {
namespace {

namespace fs = std::filesystem;
using test::ChildProcess;

const std::string kXlbd = std::string(XLB_BUILD_DIR) + "/src/xlbd/xlbd";
const std::string kXlbctl = std::string(XLB_BUILD_DIR) + "/src/xlbctl/xlbctl";

std::string service(const std::string& name, const std::string& vip, int backends) {
  std::string s = "[[service]]\nname = \"" + name + "\"\n[[service.frontend]]\naddress = \"" + vip + "\"\nport = 80\n";
  for (int i = 0; i < backends; ++i)
    s += "[[service.backend]]\naddress = \"10.0.0." + std::to_string(i + 2) + "\"\nport = 8080\n";
  return s;
}

class XlbdTest : public ::testing::Test {
 protected:

  fs::path config() const { return dir_ / "xlb.toml"; }
  fs::path state() const { return dir_ / "state"; }
  // Shadow mode and no API: these tests are about the daemon's life, not the kernel or the web
  // UI; they need no root, and any number of them may run at once.
  void write_config(const std::string& text, const std::string& node = "") const {
    std::ofstream(config()) << "[node]\nmode = \"shadow\"\n" << node << text << "[api]\nlisten = \"off\"\n";
  }

  std::vector<store::Revision> revisions() const {
    auto s = store::Store::open(state() / "state.db");
    EXPECT_TRUE(s.ok()) << s.error().message;
    if (!s) return {};
    auto list = s->revisions(100);
    EXPECT_TRUE(list.ok());
    return list.ok() ? *list : std::vector<store::Revision>{};
  }

  // Without the file watch: these tests rewrite the config and signal when they choose.
  std::vector<std::string> xlbd_args(bool watch = false) const {
    std::vector<std::string> args{kXlbd, "--config", config().string(), "--state-dir", state().string()};
    if (!watch) args.push_back("--no-watch");
    return args;
  }

  test::TempDir dir_{"xlbd"};
};

TEST_F(XlbdTest, StartsRecordsARevisionAndStopsOnSigterm) {
  write_config(service("web", "198.18.0.10", 2));
  ChildProcess xlbd(xlbd_args());
  ASSERT_TRUE(xlbd.wait_for_line("ready: revision 1")) << xlbd.seen();
  EXPECT_NE(xlbd.seen().find("start: applied revision 1 (1 services, 1 frontends, 2 backends): +web"),
            std::string::npos)
      << xlbd.seen();
  xlbd.signal(SIGTERM);
  EXPECT_EQ(xlbd.wait(), 0);
  const auto list = revisions();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].summary, "+web");
  EXPECT_EQ(list[0].source, "toml:" + config().string());
}

TEST_F(XlbdTest, SighupWithABadConfigKeepsTheOldOneAndAGoodOneApplies) {
  write_config(service("web", "198.18.0.10", 2));
  ChildProcess xlbd(xlbd_args());
  ASSERT_TRUE(xlbd.wait_for_line("ready: revision 1")) << xlbd.seen();

  write_config(service("web", "198.18.0.10", 2), "xdp_mode = \"turbo\"\n");
  xlbd.signal(SIGHUP);
  auto line = xlbd.wait_for_line("stays in force");
  ASSERT_TRUE(line) << xlbd.seen();
  EXPECT_NE(line->find("reload: the running config (revision 1) stays in force"), std::string::npos);
  EXPECT_NE(xlbd.seen().find(config().string() + ":3:12: node: key \"xdp_mode\": \"turbo\" is not one of native, "
                                                 "generic, off"),
            std::string::npos)
      << xlbd.seen();
  EXPECT_TRUE(xlbd.running());

  write_config(service("web", "198.18.0.10", 3));
  xlbd.signal(SIGHUP);
  ASSERT_TRUE(xlbd.wait_for_line("reload: applied revision 2")) << xlbd.seen();

  xlbd.signal(SIGINT);
  EXPECT_EQ(xlbd.wait(), 0);
  const auto list = revisions();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].summary, "~web (+backend 10.0.0.4:8080)");
  auto s = store::Store::open(state() / "state.db");
  ASSERT_TRUE(s.ok());
  auto latest = s->latest_revision();
  ASSERT_TRUE(latest.ok() && *latest);
  EXPECT_EQ((*latest)->catalog.services.at(0).backends.size(), 3u);
  auto all = s->events(10);
  ASSERT_TRUE(all.ok());
  std::vector<store::Event> events;
  std::copy_if(all->begin(), all->end(), std::back_inserter(events), [](const auto& e) { return e.kind == "config"; });
  ASSERT_EQ(events.size(), 1u);
  EXPECT_NE(events[0].message.find("reload rejected"), std::string::npos);
}

TEST_F(XlbdTest, AnEditOfTheConfigFileReloadsItABrokenOneIsRefused) {
  write_config(service("web", "198.18.0.10", 2));
  ChildProcess xlbd(xlbd_args(/*watch=*/true));
  ASSERT_TRUE(xlbd.wait_for_line("ready: revision 1")) << xlbd.seen();

  write_config(service("web", "198.18.0.10", 3));  // written in place
  ASSERT_TRUE(xlbd.wait_for_line("changed: reloading")) << xlbd.seen();
  ASSERT_TRUE(xlbd.wait_for_line("reload: applied revision 2")) << xlbd.seen();

  // As editors and configuration tools do: a new file renamed over the old one.
  const fs::path next = dir_ / "xlb.toml.new";
  std::ofstream(next) << "[node]\nmode = \"shadow\"\n[api]\nlisten = \"off\"\n[[service]]\nname = \"web\"\nport = 80\n";
  fs::rename(next, config());
  ASSERT_TRUE(xlbd.wait_for_line("reload: the running config (revision 2) stays in force")) << xlbd.seen();
  EXPECT_TRUE(xlbd.running());

  xlbd.signal(SIGTERM);
  EXPECT_EQ(xlbd.wait(), 0);
  EXPECT_EQ(revisions().size(), 2u);
}

// The mode is remembered at the first start and an event only when it changes (a takeover or a
// rollback; tests/integration/kube_proxy_migration_test.sh checks those as root).
TEST_F(XlbdTest, TheFirstStartRemembersTheModeWithoutAnEvent) {
  write_config(service("web", "198.18.0.10", 2));
  for (int run = 0; run < 2; ++run) {
    ChildProcess xlbd(xlbd_args());
    ASSERT_TRUE(xlbd.wait_for_line("ready: revision 1")) << xlbd.seen();
  }
  auto s = store::Store::open(state() / "state.db");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->setting("node.mode").value(), std::optional<std::string>("shadow"));
  auto events = s->events(10);
  ASSERT_TRUE(events.ok());
  EXPECT_TRUE(events->empty());
}

TEST_F(XlbdTest, RestartWithTheSameConfigRecordsNoNewRevision) {
  write_config(service("web", "198.18.0.10", 2));
  for (int run = 0; run < 2; ++run) {
    ChildProcess xlbd(xlbd_args());
    ASSERT_TRUE(xlbd.wait_for_line("ready: revision 1")) << xlbd.seen();
    if (run == 1) {
      EXPECT_NE(xlbd.seen().find("restored revision 1"), std::string::npos) << xlbd.seen();
    }
    xlbd.signal(SIGTERM);
    ASSERT_EQ(xlbd.wait(), 0);
  }
  EXPECT_EQ(revisions().size(), 1u);
}

TEST_F(XlbdTest, RefusesToStartOnABadConfig) {
  write_config("[[service]]\nname = \"web\"\n");
  ChildProcess xlbd(xlbd_args());
  EXPECT_EQ(xlbd.wait(), 1);
  xlbd.wait_for_line("never printed", std::chrono::milliseconds(100));
  EXPECT_NE(xlbd.seen().find("rejected"), std::string::npos) << xlbd.seen();
  EXPECT_NE(xlbd.seen().find(":3:1: service \"web\": missing required key \"frontend\""), std::string::npos)
      << xlbd.seen();
}

TEST_F(XlbdTest, OneDaemonPerStateDirectory) {
  write_config(service("web", "198.18.0.10", 1));
  ChildProcess first(xlbd_args());
  ASSERT_TRUE(first.wait_for_line("ready")) << first.seen();
  ChildProcess second(xlbd_args());
  EXPECT_EQ(second.wait(), 1);
  second.wait_for_line("never printed", std::chrono::milliseconds(100));
  EXPECT_NE(second.seen().find("another xlbd is already running with state directory " + state().string()),
            std::string::npos)
      << second.seen();
  EXPECT_TRUE(first.running());
}

TEST_F(XlbdTest, DryRunWritesNothing) {
  write_config(service("web", "198.18.0.10", 2));
  auto args = xlbd_args();
  args.push_back("--dry-run");
  ChildProcess xlbd(args);
  EXPECT_EQ(xlbd.wait(), 0);
  ASSERT_TRUE(xlbd.wait_for_line("would serve 1 services")) << xlbd.seen();
  EXPECT_FALSE(fs::exists(state()));
}

TEST_F(XlbdTest, BadOptionsAreUsageErrors) {
  ChildProcess xlbd({kXlbd, "--log-level", "loud"});
  EXPECT_EQ(xlbd.wait(), 2);
  ASSERT_TRUE(xlbd.wait_for_line("--log-level must be debug, info, warning or error, not \"loud\""));
}

TEST_F(XlbdTest, XlbctlValidateUsesTheSameRules) {
  write_config(service("web", "198.18.0.10", 2));
  ChildProcess ok({kXlbctl, "validate", config().string()});
  EXPECT_EQ(ok.wait(), 0);
  ASSERT_TRUE(ok.wait_for_line(config().string() + ": ok (1 services, 1 frontends, 2 backends)")) << ok.seen();

  write_config(service("web", "198.18.0.10", 2) + "[[service.backend]]\naddress = \"10.0.0.9\"\n");
  ChildProcess bad({kXlbctl, "validate", config().string()});
  EXPECT_EQ(bad.wait(), 1);
  ASSERT_TRUE(bad.wait_for_line(config().string() + ":14:1: service \"web\" backend 3: missing required key \"port\""))
      << bad.seen();

  ChildProcess usage({kXlbctl, "validate"});
  EXPECT_EQ(usage.wait(), 2);
  ChildProcess version({kXlbctl, "--version"});
  EXPECT_EQ(version.wait(), 0);
  ASSERT_TRUE(version.wait_for_line("xlbctl " XLB_VERSION));
}

}  // namespace
}  // namespace xlb

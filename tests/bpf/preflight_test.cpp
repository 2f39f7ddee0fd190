// Preflight on the real kernel: each check agrees with what this machine has (looked up here a
// second way), and a missing feature (no bpffs under the pin directory, no cgroup v2, a link
// that is not there) fails with the fix a person needs.
#include <gtest/gtest.h>
#include <sys/statfs.h>

#include <filesystem>
#include <fstream>

#include "datapath/preflight.h"
#include "support/command.h"
#include "support/netns.h"
#include "support/process.h"
#include "support/requirements.h"
#include "support/status.h"
#include "support/temp_dir.h"

namespace xlb::datapath {
namespace {

using Outcome = PreflightCheck::Outcome;

const PreflightCheck& find(const std::vector<PreflightCheck>& checks, const std::string& name) {
  for (const auto& c : checks)
    if (c.name == name) return c;
  static const PreflightCheck missing{"(missing)", Outcome::fail, "", ""};
  ADD_FAILURE() << "no check named " << name;
  return missing;
}

class PreflightTest : public ::testing::Test {
 protected:
  void SetUp() override {
    XLB_REQUIRE(test::missing_capabilities({test::kCapBpf, test::kCapNetAdmin, test::kCapSysAdmin}));
  }
  test::TempDir dir_{"xlb-preflight"};
};

TEST_F(PreflightTest, ReportsWhatThisMachineHas) {
  const auto checks = run_preflight({});
  // libbpf's probes load programs and create maps: this kernel (6.x) has all of them.
  for (const char* name : {"kernel", "xdp", "tc", "mmapable array", "lru maps", "ring buffer", "socket-lb"})
    EXPECT_EQ(find(checks, name).outcome, Outcome::pass) << name << ": " << find(checks, name).detail;
  EXPECT_EQ(find(checks, "btf").outcome == Outcome::pass, std::filesystem::exists("/sys/kernel/btf/vmlinux"));
  struct statfs fs {};
  const bool bpffs = ::statfs("/sys/fs/bpf", &fs) == 0 && static_cast<long>(fs.f_type) == 0xcafe4a11;
  EXPECT_EQ(find(checks, "bpffs").outcome == Outcome::pass, bpffs);
  EXPECT_FALSE(any_failed(checks) && bpffs) << "nothing should fail on the machine the tests run on";
}

TEST_F(PreflightTest, PinsOffBpffsFailWithTheFix) {
  PreflightOptions options;
  options.pin_dir = dir_ / "xlb" / "v1";  // a directory on the ordinary temp file system
  const auto checks = run_preflight(options);
  const auto& check = find(checks, "bpffs");
  EXPECT_EQ(check.outcome, Outcome::fail);
  EXPECT_EQ(check.fix, "mount -t bpf bpf /sys/fs/bpf (and add it to /etc/fstab)");
}

TEST_F(PreflightTest, NoCgroupV2FailsUnlessSocketLbIsOff) {
  std::ofstream(dir_ / "mountinfo") << "22 1 0:21 / /proc rw - proc proc rw\n"
                                       "36 25 0:32 / /sys/fs/bpf rw - bpf bpf rw\n";
  PreflightOptions options;
  options.mountinfo = dir_ / "mountinfo";
  const auto checks = run_preflight(options);
  EXPECT_EQ(find(checks, "cgroup v2").outcome, Outcome::fail);
  EXPECT_EQ(find(checks, "cgroup v2").fix,
            "mount -t cgroup2 none /sys/fs/cgroup, or set [node] cgroup = \"off\" to run without socket-LB");
  EXPECT_TRUE(any_failed(checks));
  options.socket_lb = false;
  const auto without_socket_lb = run_preflight(options);
  EXPECT_EQ(find(without_socket_lb, "cgroup v2").outcome, Outcome::pass);
}

TEST_F(PreflightTest, AskTheDriverOfEachLink) {
  XLB_ASSERT_OK(test::enter_private_netns());
  XLB_ASSERT_OK(test::run_command({"/sbin/ip", "link", "add", "pfa", "type", "veth", "peer", "name", "pfb"}));
  XLB_ASSERT_OK(test::run_command({"/sbin/ip", "link", "set", "pfa", "up"}));
  PreflightOptions options;
  options.interfaces = {"pfa", "absent0"};
  const auto checks = run_preflight(options);
  // veth has native XDP (kernel 6.3+ reports its features over netlink).
  EXPECT_EQ(find(checks, "xdp pfa").outcome, Outcome::pass) << find(checks, "xdp pfa").detail;
  EXPECT_EQ(find(checks, "xdp pfa").detail.rfind("native XDP", 0), 0u) << find(checks, "xdp pfa").detail;
  EXPECT_EQ(find(checks, "xdp absent0").outcome, Outcome::fail);
  EXPECT_EQ(find(checks, "xdp absent0").detail, "no link absent0 in this network namespace");
}

// xdp_mode = "tc": the links are checked as tc balancer links, and the check says so.
TEST_F(PreflightTest, TcBalancingIsReportedPerLink) {
  XLB_ASSERT_OK(test::enter_private_netns());
  XLB_ASSERT_OK(test::run_command({"/sbin/ip", "link", "add", "pfa", "type", "veth", "peer", "name", "pfb"}));
  PreflightOptions options;
  options.interfaces = {"pfa", "absent0"};
  options.tc_balancer = true;
  const auto checks = run_preflight(options);
  EXPECT_EQ(find(checks, "tc pfa").outcome, Outcome::pass);
  EXPECT_EQ(find(checks, "tc pfa").detail.rfind("tc balancing in use", 0), 0u) << find(checks, "tc pfa").detail;
  EXPECT_EQ(find(checks, "tc absent0").outcome, Outcome::fail);
}

// A fresh network namespace has forwarding off: a warning on a node that balances, none on one
// that only decapsulates dsr packets ([node] decap = true, xdp_mode = "off").
TEST_F(PreflightTest, ForwardingMattersOnlyToANodeThatRoutes) {
  XLB_ASSERT_OK(test::enter_private_netns());
  PreflightOptions options;
  options.interfaces = {"lo"};
  EXPECT_EQ(find(run_preflight(options), "forwarding").outcome, Outcome::warn);
  options.routes = false;
  const auto checks = run_preflight(options);
  EXPECT_EQ(find(checks, "forwarding").outcome, Outcome::pass);
  EXPECT_EQ(find(checks, "forwarding").detail, "this node only decapsulates dsr packets: nothing to route");
}

TEST_F(PreflightTest, XlbdRefusesToStartWhenACheckFails) {
  std::ofstream(dir_ / "xlb.toml") << "[node]\ncgroup = \"off\"\n[api]\nlisten = \"off\"\n";
  test::ChildProcess xlbd({std::string(XLB_BUILD_DIR) + "/src/xlbd/xlbd", "--config", (dir_ / "xlb.toml").string(),
                           "--state-dir", (dir_ / "state").string(), "--pin-dir", (dir_ / "pins").string()});
  EXPECT_EQ(xlbd.wait(), 1);
  xlbd.read_to_end(std::chrono::seconds(5));
  EXPECT_NE(xlbd.seen().find("this node lacks what the datapath needs (xlbctl preflight says the same):"),
            std::string::npos)
      << xlbd.seen();
  EXPECT_NE(xlbd.seen().find("preflight: bpffs: " + (dir_ / "pins").string() + " is not on a bpf file system"),
            std::string::npos)
      << xlbd.seen();
}

}  // namespace
}  // namespace xlb::datapath

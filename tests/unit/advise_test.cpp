// The decision rule at each corner of the rule of thumb.
#include <gtest/gtest.h>

#include "advise/advise.h"

namespace xlb::advise {
namespace {

Inputs node(uint32_t nodes, uint32_t services, std::string kernel = "6.1.0-18-amd64") {
  Inputs in;
  in.nodes = nodes;
  in.services = services;
  in.kernel = std::move(kernel);
  return in;
}

TEST(Advise, SmallClusterKeepsKubeProxy) {
  auto a = decide(node(1, 10));
  EXPECT_EQ(a.verdict, Verdict::keep_kube_proxy);
  EXPECT_NE(a.reason.find("1 nodes and 10 Services"), std::string::npos) << a.reason;
  EXPECT_EQ(decide(node(4, 99)).verdict, Verdict::keep_kube_proxy);
}

TEST(Advise, FiveNodesOrAHundredServicesReplace) {
  auto six = decide(node(6, 10));
  EXPECT_EQ(six.verdict, Verdict::replace);
  EXPECT_NE(six.reason.find("6 nodes"), std::string::npos);
  EXPECT_EQ(decide(node(5, 1)).verdict, Verdict::replace);
  auto many = decide(node(2, 100));
  EXPECT_EQ(many.verdict, Verdict::replace);
  EXPECT_NE(many.reason.find("100 Services"), std::string::npos);
  Inputs rules = node(2, 0);
  rules.kube_proxy_services = 250;  // the rules on the node know more than the config
  EXPECT_EQ(decide(rules).verdict, Verdict::replace);
}

TEST(Advise, NeedsReplaceWithWhatXlbDoesNotDoSaid) {
  Inputs obs = node(1, 10);
  obs.needs.observability = true;
  EXPECT_EQ(decide(obs).verdict, Verdict::replace);
  Inputs l7 = node(1, 10);
  l7.needs.l7_policy = true;
  auto a = decide(l7);
  EXPECT_EQ(a.verdict, Verdict::replace);
  ASSERT_FALSE(a.notes.empty());
  EXPECT_NE(a.notes[0].find("no L7 policy"), std::string::npos);
}

TEST(Advise, OldKernelOrFailedPreflightCannotRun) {
  auto old = decide(node(50, 5000, "4.19.0-25-amd64"));
  EXPECT_EQ(old.verdict, Verdict::cannot_run);
  EXPECT_NE(old.reason.find("kernel 4.19 is older than 5.10"), std::string::npos) << old.reason;
  EXPECT_EQ(decide(node(50, 5000, "5.4.0")).verdict, Verdict::cannot_run);
  EXPECT_EQ(decide(node(50, 5000, "5.10.0")).verdict, Verdict::replace);
  EXPECT_EQ(decide(node(50, 5000, "garbage")).verdict, Verdict::cannot_run);
  Inputs failing = node(50, 5000);
  failing.preflight_failures = {"bpffs: /sys/fs/bpf is not a bpf filesystem"};
  auto f = decide(failing);
  EXPECT_EQ(f.verdict, Verdict::cannot_run);
  ASSERT_EQ(f.notes.size(), 1u);
  EXPECT_EQ(f.notes[0], "preflight: bpffs: /sys/fs/bpf is not a bpf filesystem");
}

TEST(Advise, UnknownNodeCountIsSaid) {
  Inputs in = node(0, 10);
  in.nodes.reset();
  auto a = decide(in);
  EXPECT_EQ(a.verdict, Verdict::keep_kube_proxy);
  EXPECT_NE(a.reason.find("an unknown number of nodes"), std::string::npos);
  ASSERT_FALSE(a.notes.empty());
}

TEST(Advise, KernelVersion) {
  EXPECT_EQ(kernel_version("6.18.0-xlb"), (std::pair{6, 18}));
  EXPECT_EQ(kernel_version("5.10.0"), (std::pair{5, 10}));
  EXPECT_FALSE(kernel_version("six"));
  EXPECT_FALSE(kernel_version("6"));
}

}  // namespace
}  // namespace xlb::advise

// The decision rule at each corner of the rule of thumb.
#include <gtest/gtest.h>

#include "advise/advise.h"
#include "advise/measured.h"

#include <filesystem>
#include <unistd.h>

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

// socket-LB's p50 and iptables' at each size, as xlbctl advise --measure reports them.
Measured measured(std::vector<MeasuredPoint> points) {
  Measured m;
  m.points = std::move(points);
  m.crossover = crossover(m.points);
  m.measured_at = "2026-11-26T12:00:00Z";
  m.kernel = "6.18.0";
  return m;
}

TEST(Advise, CrossoverIsWhereSocketLbStartsToWinForGood) {
  // iptables grows with the catalog, socket-LB stays flat: from 1,000 on the lead is over 10%.
  EXPECT_EQ(crossover({{10, 20, 19}, {100, 20, 21}, {1000, 20, 30}, {5000, 21, 80}}), 1000u);
  // A 5% lead is within the noise of a shared machine: not a crossover.
  EXPECT_EQ(crossover({{100, 20, 21}, {1000, 20, 21}}), std::nullopt);
  // A lucky small point does not count when a larger size loses again.
  EXPECT_EQ(crossover({{10, 20, 30}, {100, 20, 20}, {1000, 20, 40}}), 1000u);
  // Winning everywhere: the smallest size measured.
  EXPECT_EQ(crossover({{10, 20, 30}, {100, 20, 40}}), 10u);
  EXPECT_EQ(crossover({}), std::nullopt);
  EXPECT_EQ(crossover({{10, 0, 30}}), std::nullopt);  // a failed measurement is no win
}

TEST(Advise, MeasuredCrossoverTakesThePlaceOfAHundredServices) {
  // The rule of thumb would keep kube-proxy at 60 Services; this node's iptables is already slower there.
  Inputs early = node(2, 60);
  early.measured = measured({{10, 20, 21}, {50, 20, 25}, {500, 20, 60}});
  auto a = decide(early);
  EXPECT_EQ(a.verdict, Verdict::replace);
  EXPECT_NE(a.reason.find("measured crossover of 50"), std::string::npos) << a.reason;
  EXPECT_NE(a.reason.find("p50 is 20.0 us, iptables' 25.0 us"), std::string::npos) << a.reason;
  // And would replace at 300, where this node's iptables still keeps up.
  Inputs late = node(2, 300);
  late.measured = measured({{10, 20, 20}, {100, 20, 20}, {1000, 20, 30}, {5000, 20, 60}});
  auto b = decide(late);
  EXPECT_EQ(b.verdict, Verdict::keep_kube_proxy);
  EXPECT_NE(b.reason.find("below this node's measured crossover of 1000"), std::string::npos) << b.reason;
  // No crossover at all up to the largest size: the Services give no reason.
  Inputs never = node(2, 4000);
  never.measured = measured({{10, 20, 20}, {5000, 20, 21}});
  auto c = decide(never);
  EXPECT_EQ(c.verdict, Verdict::keep_kube_proxy);
  EXPECT_NE(c.reason.find("did not beat iptables by 10% at any size measured here (up to 5000)"), std::string::npos)
      << c.reason;
  // The other reasons stand: nodes, observability; and an old kernel still cannot run.
  Inputs many_nodes = never;
  many_nodes.nodes = 6;
  EXPECT_EQ(decide(many_nodes).verdict, Verdict::replace);
  Inputs old = early;
  old.kernel = "4.19.0";
  EXPECT_EQ(decide(old).verdict, Verdict::cannot_run);
}

TEST(Advise, MeasurementSmallerThanTheNodeIsSaid) {
  Inputs in = node(2, 20000);
  in.measured = measured({{10, 20, 20}, {1000, 20, 40}});
  auto a = decide(in);
  EXPECT_EQ(a.verdict, Verdict::replace);
  bool said = false;
  for (const auto& n : a.notes) said |= n.find("went up to 1000 Services") != std::string::npos;
  EXPECT_TRUE(said);
}

TEST(Advise, SavedMeasurementRoundTrips) {
  Saved s;
  s.measured = measured({{10, 20.5, 21}, {1000, 20, 40.25}});
  s.measured.seconds = 41.5;
  s.nodes = 3;
  s.kube_proxy_mode = "iptables";
  s.kube_proxy_services = 12;
  s.needs.observability = true;
  const auto file = std::filesystem::temp_directory_path() / ("xlb-advise-test-" + std::to_string(::getpid()) + ".json");
  ASSERT_TRUE(save(file, s).ok());
  auto back = load(file);
  std::filesystem::remove(file);
  ASSERT_TRUE(back.ok()) << back.error().message;
  ASSERT_TRUE(back->has_value());
  const Saved& r = **back;
  ASSERT_EQ(r.measured.points.size(), 2u);
  EXPECT_EQ(r.measured.points[1].iptables_p50_us, 40.25);
  EXPECT_EQ(r.measured.crossover, 1000u);
  EXPECT_EQ(r.measured.kernel, "6.18.0");
  EXPECT_EQ(r.nodes, 3u);
  EXPECT_EQ(r.kube_proxy_mode, "iptables");
  EXPECT_TRUE(r.needs.observability);
  EXPECT_FALSE(r.needs.mesh);
  // No file: never measured, not an error. A file that is not one: an error that names it.
  auto none = load(file);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  EXPECT_FALSE(saved_from_json(nlohmann::json{{"measured", 1}}).ok());
}

}  // namespace
}  // namespace xlb::advise

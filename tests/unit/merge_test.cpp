// The config file and Kubernetes into one catalog: claims on one frontend or name reported.
#include <gtest/gtest.h>

#include "engine/merge.h"

namespace xlb::engine {
namespace {

model::Service service(const std::string& name, const std::string& source, const std::string& vip, uint16_t port,
                       const std::string& backend = "10.244.1.5") {
  model::Service s;
  s.name = name;
  s.source = source;
  s.frontends.push_back({*model::IpAddress::parse(vip), port, model::Protocol::tcp, model::FrontendKind::cluster_ip});
  model::Backend b;
  b.address = *model::IpAddress::parse(backend);
  b.port = 8080;
  s.backends.push_back(b);
  return s;
}

TEST(MergeSources, DisjointSourcesAreJoined) {
  model::Catalog config{{service("dns", "", "198.18.0.53", 53)}};
  model::Catalog k8s{{service("default/web:http", "kubernetes", "10.96.0.10", 80)}};
  auto m = merge_sources(config, k8s);
  ASSERT_EQ(m.catalog.services.size(), 2u);
  EXPECT_TRUE(m.conflicts.empty());
  EXPECT_TRUE(model::validate(m.catalog).empty());
}

TEST(MergeSources, AFrontendClaimedTwiceStaysWithTheConfigAndIsReported) {
  model::Catalog config{{service("edge", "", "198.18.0.10", 80)}};
  model::Service both = service("default/web:http", "kubernetes", "10.96.0.10", 80);
  both.frontends.push_back({*model::IpAddress::parse("198.18.0.10"), 80, model::Protocol::tcp,
                            model::FrontendKind::external_ip});
  auto m = merge_sources(config, {{both}});
  ASSERT_EQ(m.catalog.services.size(), 2u);
  ASSERT_EQ(m.catalog.services[1].frontends.size(), 1u);
  EXPECT_EQ(m.catalog.services[1].frontends[0].to_string(), "10.96.0.10:80/tcp");
  ASSERT_EQ(m.conflicts.size(), 1u);
  EXPECT_EQ(m.conflicts[0],
            "frontend 198.18.0.10:80/tcp is claimed by config service \"edge\" and by kubernetes service "
            "\"default/web:http\"; config service \"edge\" keeps it");
  EXPECT_TRUE(model::validate(m.catalog).empty());
}

TEST(MergeSources, TwoKubernetesServicesOnOneExternalIpFirstKeepsIt) {
  model::Catalog k8s{{service("a/x:http", "kubernetes", "198.51.100.7", 80),
                      service("b/y:http", "kubernetes", "198.51.100.7", 80)}};
  auto m = merge_sources({}, k8s);
  ASSERT_EQ(m.catalog.services.size(), 1u);  // y has no frontend left
  EXPECT_EQ(m.catalog.services[0].name, "a/x:http");
  ASSERT_EQ(m.conflicts.size(), 1u);
}

TEST(MergeSources, NameClashAndInvalidServiceLeftOutWithReason) {
  model::Catalog config{{service("default/web:http", "", "198.18.0.10", 80)}};
  model::Service dsr = service("default/d:http", "kubernetes", "10.96.0.11", 80);
  dsr.mode = model::ForwardingMode::dsr;  // backend port 8080 differs: the model refuses it
  auto m = merge_sources(config, {{service("default/web:http", "kubernetes", "10.96.0.10", 80), dsr}});
  ASSERT_EQ(m.catalog.services.size(), 1u);
  ASSERT_EQ(m.conflicts.size(), 2u);  // by service name
  EXPECT_NE(m.conflicts[0].find("is left out: port 8080 differs"), std::string::npos);
  EXPECT_NE(m.conflicts[1].find("has the name of a config service"), std::string::npos);
}

TEST(SourceMerger, AKubernetesChangeGivesTheChangeOfTheMergedCatalog) {
  SourceMerger merger;
  merger.merge({{service("edge", "", "198.18.0.10", 80)}}, {{service("default/web:http", "kubernetes", "10.96.0.10", 80)}});

  // A new service, a changed one: both through, as they are.
  auto web = service("default/web:http", "kubernetes", "10.96.0.10", 80, "10.244.1.9");
  auto api = service("default/api:http", "kubernetes", "10.96.0.11", 80);
  auto m = merger.change_kubernetes({{web, api}, {}});
  EXPECT_EQ(m.changes, (model::CatalogChanges{{api, web}, {}}));
  EXPECT_TRUE(m.conflicts.empty());

  // A service that wants the config's frontend keeps only its own, and says so.
  auto greedy = api;
  greedy.frontends.push_back({*model::IpAddress::parse("198.18.0.10"), 80, model::Protocol::tcp,
                              model::FrontendKind::external_ip});
  m = merger.change_kubernetes({{greedy}, {}});
  ASSERT_EQ(m.changes.upserted.size(), 1u);
  EXPECT_EQ(m.changes.upserted[0], api);
  ASSERT_EQ(m.conflicts.size(), 1u);
  EXPECT_NE(m.conflicts[0].find("config service \"edge\" keeps it"), std::string::npos);

  // Removed: by name; nothing else moves.
  m = merger.change_kubernetes({{}, {"default/web:http", "default/never:http"}});
  EXPECT_EQ(m.changes.removed, std::vector<std::string>{"default/web:http"});
}

TEST(SourceMerger, AFrontendLetGoGoesToTheServiceThatWaitedForIt) {
  SourceMerger merger;
  auto first = service("default/a:http", "kubernetes", "10.96.0.10", 80);
  auto second = service("default/b:http", "kubernetes", "10.96.0.10", 80);  // the same ClusterIP and port
  auto m = merger.merge({}, {{first, second}});
  ASSERT_EQ(m.catalog.services.size(), 1u);
  ASSERT_EQ(m.conflicts.size(), 1u);

  auto changed = merger.change_kubernetes({{}, {"default/a:http"}});
  EXPECT_EQ(changed.changes, (model::CatalogChanges{{second}, {"default/a:http"}}));
  EXPECT_TRUE(changed.conflicts.empty());

  // And a service the model refuses goes out, with the reason.
  auto bad = second;
  bad.mode = model::ForwardingMode::dsr;
  changed = merger.change_kubernetes({{bad}, {}});
  EXPECT_EQ(changed.changes.removed, std::vector<std::string>{"default/b:http"});
  ASSERT_EQ(changed.conflicts.size(), 1u);
  EXPECT_NE(changed.conflicts[0].find("is left out"), std::string::npos);
}

}  // namespace
}  // namespace xlb::engine

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
  ASSERT_EQ(m.conflicts.size(), 2u);
  EXPECT_NE(m.conflicts[0].find("has the name of a config service"), std::string::npos);
  EXPECT_NE(m.conflicts[1].find("is left out: port 8080 differs"), std::string::npos);
}

}  // namespace
}  // namespace xlb::engine

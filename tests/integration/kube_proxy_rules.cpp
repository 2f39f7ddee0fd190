// kube_proxy_rules iptables|nft NODE FILE...: the rules kube-proxy would write on node NODE for the
// Services and EndpointSlices in FILEs (one JSON object each, as the test API server serves them),
// in iptables-save's or nft's format. The namespace tests load them where kube-proxy would have.
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "k8s/objects.h"
#include "support/kube_proxy_rules.h"

int main(int argc, char** argv) {
  const std::string layout = argc > 1 ? argv[1] : "";
  if (argc < 4 || (layout != "iptables" && layout != "nft")) {
    std::cerr << "usage: kube_proxy_rules iptables|nft NODE FILE...\n";
    return 2;
  }
  std::vector<xlb::k8s::Service> services;
  std::vector<xlb::k8s::EndpointSlice> slices;
  for (int i = 3; i < argc; ++i) {
    std::ifstream in(argv[i]);
    const auto object = nlohmann::json::parse(in, nullptr, false);
    if (object.is_discarded()) {
      std::cerr << argv[i] << ": not JSON\n";
      return 1;
    }
    if (object.value("kind", "") == "Service") {
      auto s = xlb::k8s::parse_service(object);
      if (!s) return std::cerr << argv[i] << ": " << s.error().message << "\n", 1;
      services.push_back(*s);
    } else {
      auto s = xlb::k8s::parse_endpoint_slice(object);
      if (!s) return std::cerr << argv[i] << ": " << s.error().message << "\n", 1;
      slices.push_back(*s);
    }
  }
  xlb::test::KubeProxyNode node;
  node.name = argv[2];
  std::cout << (layout == "iptables" ? xlb::test::kube_proxy_iptables(services, slices, node)
                                     : xlb::test::kube_proxy_nft(services, slices, node));
  return 0;
}

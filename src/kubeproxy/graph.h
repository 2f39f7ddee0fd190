// What both of kube-proxy's layouts come down to: frontends that jump to a chain, chains that
// jump onward or DNAT to one endpoint. Each parser builds a Graph; resolve() walks it into the model.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kubeproxy/kubeproxy.h"

namespace xlb::kubeproxy::detail {

struct Chain {
  std::vector<std::string> jumps;        // where traffic from outside goes (short circuits left out)
  std::optional<model::Backend> dnat;    // an endpoint chain's destination
  std::optional<std::chrono::seconds> affinity;
  bool local = false;                    // holds only this node's endpoints
};

struct FrontendRule {
  std::string service;  // kube-proxy's name for the service port
  model::Frontend frontend;
  std::string chain;    // where the frontend's traffic goes first (its key in Graph::chains)
};

struct Graph {
  std::map<std::string, Chain> chains;  // by "TABLE NAME": an IPv4 and an IPv6 table share chain names
  std::vector<FrontendRule> frontends;
};

// The catalog the graph serves: frontends grouped by service and by whether they reach only
// local endpoints. Chains that go nowhere known become warnings.
Rules resolve(const Graph& graph, Layout layout, std::vector<std::string> warnings);

// "10.0.0.1:80", "[fd00::1]:80" into a backend.
Result<model::Backend> parse_endpoint(std::string_view text);

}  // namespace xlb::kubeproxy::detail

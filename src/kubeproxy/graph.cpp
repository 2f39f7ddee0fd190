#include "kubeproxy/graph.h"

#include <algorithm>
#include <charconv>

namespace xlb::kubeproxy::detail {
namespace {

// Deep enough for kube-proxy's longest path (FW -> EXT -> SVL -> SEP), short enough to stop a
// rule set that loops.
constexpr int kMaxDepth = 8;

struct Reached {
  std::map<std::string, model::Backend> backends;  // by key
  std::optional<std::chrono::seconds> affinity;
  bool local = false;
};

void walk(const Graph& graph, const std::string& key, int depth, Reached& out, std::vector<std::string>& warnings) {
  const std::string name = key.substr(key.find(' ') + 1);  // the key without its table
  auto it = graph.chains.find(key);
  if (it == graph.chains.end()) {
    warnings.push_back("chain " + name + " is jumped to but not defined");
    return;
  }
  if (depth > kMaxDepth) {
    warnings.push_back("chain " + name + " is more than " + std::to_string(kMaxDepth) + " jumps deep; not followed");
    return;
  }
  const Chain& chain = it->second;
  out.local = out.local || chain.local;
  if (chain.affinity) out.affinity = chain.affinity;
  if (chain.dnat) out.backends.emplace(chain.dnat->key(), *chain.dnat);
  for (const std::string& next : chain.jumps) walk(graph, next, depth + 1, out, warnings);
}

}  // namespace

Rules resolve(const Graph& graph, Layout layout, std::vector<std::string> warnings) {
  Rules rules;
  rules.layout = layout;
  std::map<std::string, model::Service> by_name;  // sorted: the same rules give the same catalog
  for (const FrontendRule& rule : graph.frontends) {
    Reached reached;
    walk(graph, rule.chain, 0, reached, warnings);
    const std::string name = reached.local ? rule.service + std::string(kLocalSuffix) : rule.service;
    model::Service& s = by_name[name];
    s.name = name;
    s.source = "kube-proxy";
    if (reached.affinity) s.affinity = {true, *reached.affinity};
    if (std::find(s.frontends.begin(), s.frontends.end(), rule.frontend) == s.frontends.end())
      s.frontends.push_back(rule.frontend);
    for (const auto& [key, backend] : reached.backends)
      if (std::none_of(s.backends.begin(), s.backends.end(), [&](const auto& b) { return b.key() == key; }))
        s.backends.push_back(backend);
  }
  for (auto& [name, service] : by_name) {
    // In the order of the model's kinds, whatever order the rules came in.
    std::sort(service.frontends.begin(), service.frontends.end(), [](const auto& a, const auto& b) {
      return std::pair(a.kind, a.to_string()) < std::pair(b.kind, b.to_string());
    });
    std::sort(service.backends.begin(), service.backends.end(),
              [](const auto& a, const auto& b) { return a.key() < b.key(); });
    rules.catalog.services.push_back(std::move(service));
  }
  rules.warnings = std::move(warnings);
  return rules;
}

Result<model::Backend> parse_endpoint(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return Error{"\"" + std::string(text) + "\" has no port"};
  std::string_view host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  const std::string_view port_text = text.substr(colon + 1);
  uint16_t port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc{} || end != port_text.data() + port_text.size() || port == 0)
    return Error{"\"" + std::string(text) + "\" has no valid port"};
  auto address = model::IpAddress::parse(host);
  if (!address) return address.error();
  model::Backend b;
  b.address = *address;
  b.port = port;
  return b;
}

}  // namespace xlb::kubeproxy::detail

// What `kube-proxy --cleanup` removes from iptables (pkg/proxy/iptables CleanupLeftovers), as
// iptables-restore scripts: one that removes it, one that puts it back for a rollback.
#include <set>
#include <sstream>

#include "kubeproxy/kubeproxy.h"

namespace xlb::kubeproxy {
namespace {

bool owned_by_kube_proxy(std::string_view chain) {
  static const std::set<std::string_view> named = {"KUBE-SERVICES",       "KUBE-NODEPORTS",
                                                   "KUBE-POSTROUTING",    "KUBE-EXTERNAL-SERVICES",
                                                   "KUBE-FORWARD",        "KUBE-PROXY-FIREWALL",
                                                   "KUBE-PROXY-CANARY"};
  for (std::string_view prefix : {"KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-SEP-"})
    if (chain.starts_with(prefix)) return true;
  return named.count(chain) > 0;
}

// "-A CHAIN ... -j TARGET ..." -> CHAIN and TARGET (-g too).
std::pair<std::string, std::string> chain_and_target(const std::string& rule) {
  std::istringstream words(rule);
  std::string word, chain, target;
  words >> word >> chain;
  while (words >> word)
    if ((word == "-j" || word == "-g") && words >> target) break;
  return {chain, target};
}

struct Table {
  std::string name;                 // "*nat"
  std::vector<std::string> chains;  // kube-proxy's ":NAME - [0:0]" lines
  std::vector<std::string> jumps;   // rules of other chains that jump to kube-proxy's
  std::vector<std::string> rules;   // rules of kube-proxy's chains
};

std::vector<Table> kube_proxy_tables(std::string_view text) {
  std::vector<Table> tables;
  std::istringstream in{std::string(text)};
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("*")) tables.push_back({line, {}, {}, {}});
    if (tables.empty()) continue;
    Table& t = tables.back();
    if (line.starts_with(":")) {
      if (owned_by_kube_proxy(line.substr(1, line.find(' ') - 1))) t.chains.push_back(line);
    } else if (line.starts_with("-A ")) {
      auto [chain, target] = chain_and_target(line);
      if (owned_by_kube_proxy(chain)) t.rules.push_back(line);
      else if (owned_by_kube_proxy(target)) t.jumps.push_back(line);
    }
  }
  return tables;
}

}  // namespace

IptablesScripts iptables_scripts(std::string_view iptables_save) {
  IptablesScripts out;
  for (const Table& t : kube_proxy_tables(iptables_save)) {
    if (t.chains.empty() && t.jumps.empty()) continue;
    out.chains += t.chains.size();
    out.remove += t.name + "\n";
    out.restore += t.name + "\n";
    for (const std::string& jump : t.jumps) out.remove += "-D" + jump.substr(2) + "\n";
    // All flushed before any is deleted: they jump to each other.
    for (const std::string& c : t.chains) out.remove += "-F " + c.substr(1, c.find(' ') - 1) + "\n";
    for (const std::string& c : t.chains) out.remove += "-X " + c.substr(1, c.find(' ') - 1) + "\n";
    for (const std::string& c : t.chains) out.restore += c + "\n";
    for (const std::string& r : t.rules) out.restore += r + "\n";
    // kube-proxy puts its jumps first in the built-in chains: so does the restore, in their order.
    for (auto j = t.jumps.rbegin(); j != t.jumps.rend(); ++j) {
      const auto [chain, target] = chain_and_target(*j);
      out.restore += "-I " + chain + " 1" + j->substr(3 + chain.size()) + "\n";
    }
    out.remove += "COMMIT\n";
    out.restore += "COMMIT\n";
  }
  return out;
}

}  // namespace xlb::kubeproxy

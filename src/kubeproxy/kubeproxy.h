// kube-proxy's rules on a node, read back into the model: what kube-proxy serves (every Service
// frontend and its endpoints), and how that compares with xlb's catalog. Pure code: the caller
// hands in the text of `iptables-save -t nat` or `nft list table ip kube-proxy`.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "model/model.h"

namespace xlb::kubeproxy {

enum class Layout { iptables, nftables };
std::string_view to_string(Layout);

// What kube-proxy's rules serve. Services are named as kube-proxy names them ("NAMESPACE/NAME:PORT",
// or "NAMESPACE/NAME" for an unnamed port). Frontends that reach only this node's endpoints
// (a traffic policy Local) are a service of their own, named with the suffix kLocalSuffix.
// A NodePort frontend has the unspecified address: kube-proxy accepts it on every local address.
struct Rules {
  Layout layout = Layout::iptables;
  model::Catalog catalog;
  std::vector<std::string> warnings;  // rules read only in part, and why
};

inline constexpr std::string_view kLocalSuffix = "/local";

Result<Rules> parse_iptables_save(std::string_view text);
Result<Rules> parse_nft(std::string_view text);
// Either layout, told apart by its text; an Error when neither holds kube-proxy's rules.
Result<Rules> parse(std::string_view text);

// One difference between kube-proxy and xlb, in words a person acts on.
struct Finding {
  enum class Kind { only_kube_proxy, only_xlb, port, endpoints, traffic_policy, affinity };
  Kind kind;
  std::string service;   // xlb's name when xlb serves it, else kube-proxy's
  std::string frontend;  // "10.96.0.10:53/udp", "*:30080/tcp" for a NodePort
  std::string message;
};
std::string_view to_string(Finding::Kind);

// Compares kube-proxy's rules with xlb's services of source "kubernetes", frontend by frontend
// (a NodePort by port and protocol alone). A service without endpoints counts as absent: kube-proxy
// writes no nat rule for it (its filter table rejects it), and xlb refuses its connections too.
std::vector<Finding> compare(const Rules& kube_proxy, const model::Catalog& xlb);

// The rules of `iptables-save` text that kube-proxy owns, as `kube-proxy --cleanup` counts them:
// its chains (KUBE-SERVICES, KUBE-NODEPORTS, KUBE-POSTROUTING, KUBE-EXTERNAL-SERVICES, KUBE-FORWARD,
// KUBE-PROXY-FIREWALL, KUBE-PROXY-CANARY and the KUBE-SVC/SVL/EXT/FW/SEP-<hash> ones) and every
// jump to them. kubelet's chains (KUBE-MARK-MASQ, KUBE-MARK-DROP, KUBE-FIREWALL, ...) are not.
struct IptablesScripts {
  std::string remove;   // for `iptables-restore --noflush`: deletes the jumps, flushes and deletes the chains
  std::string restore;  // for `iptables-restore --noflush` afterwards: puts them back as they were
  size_t chains = 0;    // how many chains of kube-proxy's the text has
};
IptablesScripts iptables_scripts(std::string_view iptables_save);

}  // namespace xlb::kubeproxy

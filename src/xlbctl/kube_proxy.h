// kube-proxy's rules on this node against xlbd's catalog: shared by `diff kube-proxy`, which
// shows the differences, and `takeover`, which refuses while there are any.
#pragma once

#include <string>
#include <vector>

#include "kubeproxy/kubeproxy.h"
#include "xlbctl/context.h"

namespace xlb::ctl {

// From `rules_file` ("-" for stdin) when given, else from `iptables-save -t nat` and
// `ip6tables-save -t nat` on this node, or, when their nat tables hold no kube-proxy chain,
// `nft list table ip kube-proxy` and `nft list table ip6 kube-proxy`.
Answer<kubeproxy::Rules> read_kube_proxy_rules(const std::string& rules_file);

// The differences with xlbd's catalog; with `print`, also the report (table or JSON).
Answer<std::vector<kubeproxy::Finding>> diff_kube_proxy(const Context& ctx, const kubeproxy::Rules& rules, bool print);

}  // namespace xlb::ctl

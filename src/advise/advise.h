// The decision rule: does replacing kube-proxy with xlb pay off on this node? eBPF does not always
// win: on a small cluster iptables matches it for connection latency, and eBPF costs more to
// operate. The rule of thumb this encodes (each input shown with the verdict, so an operator can
// check it): worth it from 5 nodes or 100 Services, or when flow observability, L7 policy or a
// multi-cluster mesh is needed; never on a kernel or node that cannot run xlb's datapath.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace xlb::advise {

struct Needs {
  bool l7_policy = false;
  bool observability = false;
  bool mesh = false;
};

struct Inputs {
  std::optional<uint32_t> nodes;     // the cluster's nodes; nullopt when unknown
  uint32_t services = 0;             // Services (Kubernetes) or services (the TOML file)
  std::string kernel;                // uname release, "6.1.0-18-amd64"
  std::vector<std::string> preflight_failures;  // xlbctl preflight's failed checks, in words
  std::string kube_proxy_mode;       // "iptables", "nftables", or "" when none runs here
  uint32_t kube_proxy_services = 0;  // services kube-proxy's rules on this node hold
  Needs needs;
};

enum class Verdict { replace, keep_kube_proxy, cannot_run };
std::string_view to_string(Verdict);

struct Advice {
  Verdict verdict = Verdict::keep_kube_proxy;
  std::string reason;              // one sentence: why
  std::vector<std::string> notes;  // what else the operator should know
};

inline constexpr uint32_t kNodesThreshold = 5;
inline constexpr uint32_t kServicesThreshold = 100;
inline constexpr std::pair<int, int> kMinimumKernel{5, 10};  // what xlb's preflight requires

// "6.1.0-18-amd64" -> {6, 1}; nullopt when it does not start with MAJOR.MINOR.
std::optional<std::pair<int, int>> kernel_version(std::string_view release);

Advice decide(const Inputs& inputs);

}  // namespace xlb::advise

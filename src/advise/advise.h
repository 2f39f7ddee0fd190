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

// One catalog size: per mode, the median over its runs of each run's p50 connect() time.
struct MeasuredPoint {
  uint32_t services = 0;
  double socket_lb_p50_us = 0;
  double iptables_p50_us = 0;
  double socket_lb_load_s = 0;  // the maps' sync of this size (from the size before it)
  double iptables_load_s = 0;   // iptables-restore of the whole rule set
};

// socket-LB wins "by a clear margin" where iptables' p50 is at least this many times its own: the
// runs of a shared machine move by a few percent, so a smaller lead is noise.
inline constexpr double kClearMargin = 1.10;

struct Measured {
  std::vector<MeasuredPoint> points;  // ascending catalog size
  std::optional<uint32_t> crossover;  // crossover(points); nullopt: no clear win up to the largest
  std::string measured_at;            // UTC, ISO 8601
  std::string kernel;                 // uname release at the time
  double seconds = 0;                 // the measurement's wall time
  uint32_t largest() const { return points.empty() ? 0 : points.back().services; }
};

// The smallest measured size from which socket-LB's p50 beats iptables' by kClearMargin, at that
// size and at every larger one measured (one lucky point among losses is not a crossover);
// nullopt when the largest size measured is not such a win.
std::optional<uint32_t> crossover(const std::vector<MeasuredPoint>& points);

struct Inputs {
  std::optional<uint32_t> nodes;     // the cluster's nodes; nullopt when unknown
  uint32_t services = 0;             // Services (Kubernetes) or services (the TOML file)
  std::string kernel;                // uname release, "6.1.0-18-amd64"
  std::vector<std::string> preflight_failures;  // xlbctl preflight's failed checks, in words
  std::string kube_proxy_mode;       // "iptables", "nftables", or "" when none runs here
  uint32_t kube_proxy_services = 0;  // services kube-proxy's rules on this node hold
  Needs needs;
  // What `xlbctl advise --measure` found here. When given, the crossover it measured takes the place
  // of the rule of thumb's 100 Services.
  std::optional<Measured> measured;
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

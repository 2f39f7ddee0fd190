// xlbctl advise --measure: new-connection latency on this node through a kube-proxy style iptables
// rule set and through xlb's socket-LB, at a few catalog sizes, and the crossover between them.
//
// Everything it makes is its own and goes when it ends, however it ends:
//   - two network namespaces with no name (held by file descriptors and by the processes in them,
//     so the kernel removes them, and the iptables rules in them, when this process dies; even
//     kill -9 leaves none); each has only loopback: the backends are addresses on lo, the
//     "ClusterIPs" a route into lo, so no packet can leave the namespace;
//   - a cgroup (two leaves) under the cgroup v2 mount and a scratch directory under /tmp, removed
//     on every exit but kill -9 (which leaves them empty of processes);
//   - xlb's datapath loaded without pins (its maps and its cgroup links live only as long as this
//     process) and attached to that cgroup only;
//   - forked processes (a server per namespace, one client per run), each killed by its pid and
//     reaped, and each set to die with this process.
// The host's own tables, maps and cgroups are never touched; it refuses to run at all where a
// kube-proxy is live (its CPU and the xtables lock are what the measurement would compete for).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "advise/advise.h"
#include "base/result.h"

namespace xlb::ctl::measure {

struct Options {
  std::vector<uint32_t> sizes;  // catalog sizes, ascending
  double seconds = 1.0;         // of one run
  int runs = 3;                 // per mode and size; the modes take turns
  uint32_t backends = 3;        // endpoints per Service
  std::function<void(const std::string&)> progress;  // one line per step
};

// The largest catalog measured: iptables-restore of more takes longer than the minute this has.
inline constexpr uint32_t kLargestSize = 20000;

// 10, 100 and 1,000, then this node's own size and twice it (at least 5,000), up to kLargestSize.
std::vector<uint32_t> default_sizes(uint32_t node_services);

// "10,100,1000" -> sizes, ascending; an error that says what is wrong.
Result<std::vector<uint32_t>> parse_sizes(const std::string& text);

// Why measuring now would disturb a live kube-proxy ("a kube-proxy process runs here (pid 812)"),
// or empty. Looks at the processes under `proc` and at the nat table of the caller's network
// namespace (KUBE-SERVICES in iptables, table ip kube-proxy in nftables).
std::string live_kube_proxy(const std::filesystem::path& proc = "/proc");

// kube-proxy's iptables layout (iptables-save -t nat, as its pkg/proxy/iptables writes it) for
// `services` ClusterIP Services of `backends` endpoints each: the catalog the measurement uses.
std::string iptables_rules(uint32_t services, uint32_t backends);

// Runs the measurement (root). The points and the crossover; measured_at, kernel and seconds set.
Result<advise::Measured> run(const Options& options);

}  // namespace xlb::ctl::measure

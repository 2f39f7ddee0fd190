#include "advise/advise.h"

#include <algorithm>
#include <charconv>
#include <cstdio>

namespace xlb::advise {

std::string_view to_string(Verdict v) {
  switch (v) {
    case Verdict::replace: return "replace kube-proxy with xlb";
    case Verdict::keep_kube_proxy: return "keep kube-proxy";
    case Verdict::cannot_run: return "xlb cannot run here";
  }
  return "?";
}

std::optional<std::pair<int, int>> kernel_version(std::string_view release) {
  int major = 0, minor = 0;
  const char* end = release.data() + release.size();
  auto [p, e] = std::from_chars(release.data(), end, major);
  if (e != std::errc() || p == end || *p != '.') return std::nullopt;
  auto [q, f] = std::from_chars(p + 1, end, minor);
  if (f != std::errc()) return std::nullopt;
  return std::pair{major, minor};
}

std::optional<uint32_t> crossover(const std::vector<MeasuredPoint>& points) {
  std::optional<uint32_t> from;
  // Walk down from the largest size while socket-LB still clearly wins.
  for (auto p = points.rbegin(); p != points.rend(); ++p) {
    const bool wins = p->socket_lb_p50_us > 0 && p->iptables_p50_us >= p->socket_lb_p50_us * kClearMargin;
    if (!wins) break;
    from = p->services;
  }
  return from;
}

namespace {

const MeasuredPoint* point_at(const Measured& m, uint32_t services) {
  for (const auto& p : m.points)
    if (p.services == services) return &p;
  return &m.points.back();
}

std::string us(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", v);
  return text;
}

// Why the Services did not decide, in the words of the measurement when there is one.
std::string services_not_enough(const Inputs& in, uint32_t services) {
  if (!in.measured)
    return std::to_string(services) + " Services, no need for observability, L7 policy or a mesh: iptables matches "
           "eBPF at this size and costs less to operate";
  const auto& m = *in.measured;
  if (m.crossover)
    return std::to_string(services) + " Services, below this node's measured crossover of " +
           std::to_string(*m.crossover) + ", and no need for observability, L7 policy or a mesh: iptables matches "
           "socket-LB here at this size and costs less to operate";
  return std::to_string(services) + " Services, and socket-LB did not beat iptables by " +
         std::to_string(static_cast<int>((kClearMargin - 1) * 100 + 0.5)) + "% at any size measured here (up to " +
         std::to_string(m.largest()) + "); no need for observability, L7 policy or a mesh";
}

std::optional<Advice> blocked(const Inputs& in) {
  const auto version = kernel_version(in.kernel);
  if (!version)
    return Advice{Verdict::cannot_run, "the kernel version \"" + in.kernel + "\" cannot be read", {}};
  if (*version < kMinimumKernel)
    return Advice{Verdict::cannot_run,
                  "kernel " + std::to_string(version->first) + "." + std::to_string(version->second) +
                      " is older than 5.10, the oldest xlb's datapath runs on: keep kube-proxy on this node",
                  {}};
  if (!in.preflight_failures.empty()) {
    Advice a{Verdict::cannot_run, "preflight fails on this node: keep kube-proxy until it passes", {}};
    for (const auto& f : in.preflight_failures) a.notes.push_back("preflight: " + f);
    return a;
  }
  return std::nullopt;
}

// The first reason the rule of thumb gives for an eBPF datapath, or empty.
std::string reason_to_replace(const Inputs& in) {
  if (in.needs.observability) return "flow observability is needed: xlb shows each flow's backend (trace) and each drop with its reason";
  if (in.nodes && *in.nodes >= kNodesThreshold)
    return std::to_string(*in.nodes) + " nodes (from " + std::to_string(kNodesThreshold) +
           " an eBPF datapath pays for its operation)";
  const uint32_t services = std::max(in.services, in.kube_proxy_services);
  if (in.measured) {
    // Measured on this node: the crossover replaces the rule of thumb's 100 Services.
    const auto& m = *in.measured;
    if (m.crossover && services >= *m.crossover) {
      const MeasuredPoint* at = point_at(m, *m.crossover);
      return std::to_string(services) + " Services, at or above this node's measured crossover of " +
             std::to_string(*m.crossover) + " (there socket-LB's connect() p50 is " + us(at->socket_lb_p50_us) +
             " us, iptables' " + us(at->iptables_p50_us) + " us)";
    }
  } else if (services >= kServicesThreshold) {
    return std::to_string(services) + " Services (from " + std::to_string(kServicesThreshold) +
           " iptables' per-connection cost grows past socket-LB's constant one)";
  }
  if (in.needs.l7_policy) return "L7 policy is needed: an eBPF dataplane is the way to it";
  if (in.needs.mesh) return "a multi-cluster mesh is needed: an eBPF dataplane is the way to it";
  return {};
}

}  // namespace

Advice decide(const Inputs& in) {
  if (auto no = blocked(in)) return *no;
  Advice a;
  if (auto why = reason_to_replace(in); !why.empty()) {
    a.verdict = Verdict::replace;
    a.reason = why;
  } else {
    a.verdict = Verdict::keep_kube_proxy;
    a.reason = (in.nodes ? std::to_string(*in.nodes) + " nodes" : std::string("an unknown number of nodes")) +
               " and " + services_not_enough(in, std::max(in.services, in.kube_proxy_services));
  }
  if (in.measured && std::max(in.services, in.kube_proxy_services) > in.measured->largest())
    a.notes.push_back("the measurement went up to " + std::to_string(in.measured->largest()) +
                      " Services, fewer than this node has: run xlbctl advise --measure again to measure its size");
  if (in.needs.l7_policy || in.needs.mesh)
    a.notes.push_back("xlb balances Services; it has no L7 policy and no mesh: those need a full eBPF dataplane such as Cilium");
  if (!in.nodes) a.notes.push_back("the node count is unknown (pass --nodes, or enable [kubernetes]); it can only add reasons");
  if (a.verdict == Verdict::replace && !in.kube_proxy_mode.empty())
    a.notes.push_back("kube-proxy runs here (" + in.kube_proxy_mode +
                      " mode): shadow, `xlbctl diff kube-proxy`, then `xlbctl takeover` on one canary node first");
  return a;
}

}  // namespace xlb::advise

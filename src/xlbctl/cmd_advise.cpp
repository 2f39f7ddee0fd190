// xlbctl advise: the decision rule (src/advise) on this node's own inputs, each shown with where
// it came from, then the verdict and its reason: one screen, or -o json.
#include <sys/utsname.h>

#include <cstdio>
#include <filesystem>
#include <ostream>
#include <set>

#include "advise/advise.h"
#include "advise/measured.h"
#include "config/config.h"
#include "datapath/preflight.h"
#include "k8s/api_client.h"
#include "k8s/kubeconfig.h"
#include "xlbctl/commands.h"
#include "xlbctl/kube_proxy.h"
#include "xlbctl/measure.h"

namespace xlb::ctl {

namespace {

// One input and where it came from, as the report shows it.
struct Shown {
  std::string name;
  std::string value;
  std::string source;
};

std::string kernel_release() {
  utsname u{};
  return ::uname(&u) == 0 ? u.release : "";
}

std::vector<std::string> failed_preflight(const std::optional<config::Config>& config) {
  datapath::PreflightOptions options;
  if (config) {
    options.interfaces = config->node.interfaces;
    options.socket_lb = config->node.cgroup != "off";
    options.routes = config->node.routes_packets();
    options.tc_balancer = config->node.xdp_mode == config::XdpMode::tc;
  }
  std::vector<std::string> failed;
  for (const auto& c : datapath::run_preflight(options))
    if (c.outcome == datapath::PreflightCheck::Outcome::fail) failed.push_back(c.name + ": " + c.detail);
  return failed;
}

// The nodes of the cluster [kubernetes] points at, listed (paged) on its API server.
std::optional<uint32_t> kubernetes_nodes(const config::KubernetesConfig& k8s, std::string& source) {
  if (!k8s.enabled) return std::nullopt;
  auto credentials = k8s::discover_credentials(k8s.kubeconfig);
  if (!credentials) {
    source = "unknown: " + credentials.error().message;
    return std::nullopt;
  }
  k8s::ApiClient client(*credentials);
  uint32_t nodes = 0;
  std::string next;
  do {
    auto r = client.get("/api/v1/nodes?limit=500" + (next.empty() ? "" : "&continue=" + next), std::chrono::seconds(10));
    if (!r || r->status != 200) {
      source = "unknown: listing nodes on " + credentials->server + " failed" + (r ? " (HTTP " + std::to_string(r->status) + ")" : ": " + r.error().message);
      return std::nullopt;
    }
    const json page = json::parse(r->body, nullptr, false);
    if (page.is_discarded() || !page.contains("items")) return std::nullopt;
    nodes += static_cast<uint32_t>(page["items"].size());
    next = page["metadata"].value("continue", "");
  } while (!next.empty());
  source = "Kubernetes API " + credentials->server;
  return nodes;
}

// Services xlbd serves now, or else those of the config file.
uint32_t service_count(const Context& ctx, const std::optional<config::Config>& config, std::string& source) {
  if (auto body = get_json(ctx, "/api/v1/services", 3); body.ok() && body->contains("services")) {
    source = "xlbd (revision " + std::to_string(body->value("revision", 0)) + ")";
    return static_cast<uint32_t>((*body)["services"].size());
  }
  source = config ? "config " + ctx.config + " (xlbd not reachable)" : "none (no xlbd, no config)";
  return config ? static_cast<uint32_t>(config->catalog.services.size()) : 0;
}

advise::Needs needs_of(const std::vector<std::string>& words, std::string& bad) {
  advise::Needs needs;
  for (const auto& w : words) {
    if (w == "l7") needs.l7_policy = true;
    else if (w == "observability") needs.observability = true;
    else if (w == "mesh") needs.mesh = true;
    else bad = w;
  }
  return needs;
}

std::string fixed(double v, int digits = 1) {
  char text[32];
  std::snprintf(text, sizeof text, "%.*f", digits, v);
  return text;
}

// What --measure found, and where it was saved.
struct MeasureReport {
  advise::Measured measured;
  std::string saved;  // the file, or why it could not be written
  bool saved_ok = false;
};

void print_measured(const Context& ctx, const MeasureReport& r) {
  const auto& m = r.measured;
  ctx.out << "\nmeasured here (kernel " << m.kernel << ", " << m.measured_at << ", " << fixed(m.seconds, 0)
          << " s): connect() p50 in us, the median of each mode's runs\n";
  ctx.out << "  services  socket-LB  iptables  iptables/socket-LB\n";
  for (const auto& p : m.points) {
    char line[128];
    std::snprintf(line, sizeof line, "  %8u  %9.1f  %8.1f  %17.2fx\n", p.services, p.socket_lb_p50_us, p.iptables_p50_us,
                  p.iptables_p50_us / std::max(p.socket_lb_p50_us, 0.001));
    ctx.out << line;
  }
  if (m.crossover)
    ctx.out << "  crossover: " << *m.crossover << " services (from there on socket-LB is ahead by "
            << fixed((advise::kClearMargin - 1) * 100, 0) << "% or more)\n";
  else
    ctx.out << "  crossover: none up to " << m.largest() << " services (socket-LB never ahead by "
            << fixed((advise::kClearMargin - 1) * 100, 0) << "% or more at the largest sizes)\n";
  ctx.out << (r.saved_ok ? "  saved to " + r.saved + " (xlbd's API and dashboard show it)\n"
                         : "  not saved: " + r.saved + "\n");
}

void print(const Context& ctx, const std::vector<Shown>& shown, const advise::Advice& advice,
           const std::optional<MeasureReport>& measured) {
  if (ctx.output == Output::json) {
    json inputs = json::array();
    for (const auto& s : shown) inputs.push_back({{"input", s.name}, {"value", s.value}, {"source", s.source}});
    json body{{"inputs", inputs},
              {"verdict", std::string(advise::to_string(advice.verdict))},
              {"reason", advice.reason},
              {"notes", advice.notes}};
    if (measured) {
      body["measured"] = advise::to_json(measured->measured);
      body["saved"] = measured->saved_ok ? json(measured->saved) : json(nullptr);
    }
    print_json(ctx, body);
    return;
  }
  for (const auto& s : shown) ctx.out << "  " << s.name << ": " << s.value << "  (" << s.source << ")\n";
  if (measured) print_measured(ctx, *measured);
  ctx.out << "\nverdict: " << advise::to_string(advice.verdict) << "\nbecause: " << advice.reason << "\n";
  for (const auto& n : advice.notes) ctx.out << "note: " << n << "\n";
}

// --measure: refuses beside a live kube-proxy or where the datapath cannot run, else measures
// (progress on stderr) and saves the result for xlbd. A Failure when it could not measure.
Answer<MeasureReport> measure_here(const Context& ctx, const CommandOptions& options, const advise::Inputs& in) {
  if (const std::string live = measure::live_kube_proxy(); !live.empty())
    return Failure{kExitFailed, "advise --measure: refused: " + live};
  if (!in.preflight_failures.empty())
    return Failure{kExitFailed, "advise --measure: xlb's datapath cannot run here (xlbctl preflight): " +
                                    in.preflight_failures.front()};
  measure::Options mo;
  if (!options.sizes.empty()) {
    auto sizes = measure::parse_sizes(options.sizes);
    if (!sizes) return Failure{kExitUsage, "advise: " + sizes.error().message};
    mo.sizes = *sizes;
  } else {
    mo.sizes = measure::default_sizes(std::max(in.services, in.kube_proxy_services));
  }
  if (!(options.run_seconds >= 0.05 && options.run_seconds <= 10))
    return Failure{kExitUsage, "advise: --run-seconds must be from 0.05 to 10"};
  mo.seconds = options.run_seconds;
  mo.progress = [&ctx](const std::string& line) { ctx.err << "measure: " << line << std::endl; };
  auto measured = measure::run(mo);
  if (!measured) return Failure{kExitFailed, "advise --measure: " + measured.error().message};

  MeasureReport result{*measured, "", false};
  advise::Saved saved{*measured, in.nodes, in.kube_proxy_mode, in.kube_proxy_services, in.needs};
  std::error_code ec;
  std::filesystem::create_directories(ctx.state_dir, ec);
  const auto file = std::filesystem::path(ctx.state_dir) / advise::kSavedFile;
  if (auto s = advise::save(file, saved); s) {
    result.saved = file.string();
    result.saved_ok = true;
  } else {
    result.saved = s.error().message;
  }
  return result;
}

}  // namespace

int advise(const Context& ctx, const Args& args, const CommandOptions& options) {
  if (!args.empty())
    return usage_error(ctx, "advise", "takes no arguments (--nodes N, --need l7|observability|mesh, --measure)");
  if (!options.measure && !options.sizes.empty()) return usage_error(ctx, "advise", "--sizes goes with --measure");
  std::string bad;
  advise::Inputs in;
  in.needs = needs_of(options.needs, bad);
  if (!bad.empty()) return usage_error(ctx, "advise", "--need \"" + bad + "\" is not l7, observability or mesh");
  std::optional<config::Config> config;
  if (std::filesystem::exists(ctx.config))
    if (auto c = config::load(ctx.config)) config = std::move(*c);

  std::vector<Shown> shown;
  in.kernel = kernel_release();
  shown.push_back({"kernel", in.kernel, "uname"});
  in.preflight_failures = failed_preflight(config);
  shown.push_back({"preflight", in.preflight_failures.empty() ? "pass" : std::to_string(in.preflight_failures.size()) + " failed",
                   "the datapath's checks, probed now"});
  std::string nodes_source = "not given (--nodes N), [kubernetes] off";
  if (options.nodes) {
    in.nodes = static_cast<uint32_t>(*options.nodes);
    nodes_source = "--nodes";
  } else if (config) {
    in.nodes = kubernetes_nodes(config->kubernetes, nodes_source);
  }
  shown.push_back({"nodes", in.nodes ? std::to_string(*in.nodes) : "unknown", nodes_source});
  std::string services_source;
  in.services = service_count(ctx, config, services_source);
  shown.push_back({"services", std::to_string(in.services), services_source});
  if (auto rules = read_kube_proxy_rules(options.rules); rules.ok()) {
    in.kube_proxy_mode = std::string(kubeproxy::to_string(rules->layout));
    std::set<std::string> services;
    for (const auto& s : rules->catalog.services) services.insert(s.name);
    in.kube_proxy_services = static_cast<uint32_t>(services.size());
    shown.push_back({"kube-proxy", in.kube_proxy_mode + " mode, " + std::to_string(in.kube_proxy_services) + " services",
                     options.rules.empty() ? "this node's rules" : options.rules});
  } else {
    shown.push_back({"kube-proxy", "none found", rules.failure().message});
  }
  std::string needs;
  for (const auto& w : options.needs) needs += (needs.empty() ? "" : ", ") + w;
  shown.push_back({"needs", needs.empty() ? "none" : needs, "--need"});
  std::optional<MeasureReport> measured;
  if (options.measure) {
    auto m = measure_here(ctx, options, in);
    if (!m.ok()) return report(ctx, m.failure());
    measured = *m;
    in.measured = measured->measured;
    shown.push_back({"crossover",
                     measured->measured.crossover ? std::to_string(*measured->measured.crossover) + " services"
                                                  : "none up to " + std::to_string(measured->measured.largest()),
                     "measured now (--measure)"});
  }
  const auto advice = advise::decide(in);
  print(ctx, shown, advice, measured);
  return advice.verdict == advise::Verdict::replace ? kExitOk : kExitFailed;
}

}  // namespace xlb::ctl

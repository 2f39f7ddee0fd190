// xlbctl preflight: what the datapath needs of this node, probed here and now, for the links and
// cgroup of xlbd's config (or none, without one). The same checks xlbd runs before it starts.
#include <filesystem>
#include <ostream>

#include "config/config.h"
#include "datapath/preflight.h"
#include "xlbctl/commands.h"
#include "xlbctl/table.h"

namespace xlb::ctl {

namespace {

Answer<datapath::PreflightOptions> options_from(const Context& ctx) {
  datapath::PreflightOptions options;
  if (!std::filesystem::exists(ctx.config)) return options;  // a bare node: the kernel checks only
  auto config = config::load(ctx.config);
  if (!config) return Failure{kExitFailed, "preflight reads the config's links: " + config.error().message};
  options.interfaces = config->node.interfaces;
  options.socket_lb = config->node.cgroup != "off";
  options.routes = config->node.routes_packets();
  options.tc_balancer = config->node.xdp_mode == config::XdpMode::tc;
  return options;
}

}  // namespace

int preflight(const Context& ctx, const Args& args) {
  if (!args.empty()) return usage_error(ctx, "preflight", "takes no arguments");
  const auto options = options_from(ctx);
  if (!options.ok()) return report(ctx, options.failure());
  const auto checks = datapath::run_preflight(*options);
  if (ctx.output == Output::json) {
    json list = json::array();
    for (const auto& c : checks)
      list.push_back({{"check", c.name}, {"result", datapath::to_string(c.outcome)}, {"detail", c.detail}, {"fix", c.fix}});
    print_json(ctx, {{"checks", list}, {"ok", !datapath::any_failed(checks)}});
  } else {
    Table table({"CHECK", "RESULT", "DETAIL"});
    for (const auto& c : checks) table.add({c.name, std::string(datapath::to_string(c.outcome)), c.detail});
    table.print(ctx.out);
    bool first_fix = true;
    for (const auto& c : checks) {
      if (c.fix.empty()) continue;
      ctx.out << (first_fix ? "\nto do:\n" : "") << "  " << c.name << " (" << datapath::to_string(c.outcome)
              << "): " << c.fix << "\n";
      first_fix = false;
    }
    ctx.out << (datapath::any_failed(checks) ? "\nxlbd will not start on this node until the failed checks are fixed\n"
                                              : "\nready: xlbd can run here\n");
  }
  return datapath::any_failed(checks) ? kExitFailed : kExitOk;
}

}  // namespace xlb::ctl

// xlbctl: the operator's command line. Parses the options and hands the words to one command.
#include <boost/program_options.hpp>
#include <iostream>

#include "datapath/datapath.h"
#include "xlbctl/commands.h"
#include "xlbctl/settings.h"

namespace po = boost::program_options;
using namespace xlb::ctl;

namespace {

const char* const kUsage =
    "Usage: xlbctl [OPTIONS] COMMAND [ARGS]\n"
    "\n"
    "Commands:\n"
    "  status                                the node, the revision in force, counts and drops\n"
    "  service list                          services with their frontends and backends\n"
    "  service show NAME|VIP:PORT            one service: frontends, backends, ring shares, counters\n"
    "  backend drain SERVICE ADDRESS:PORT    send a backend no new flows (needs the API token)\n"
    "  backend undrain SERVICE ADDRESS:PORT  send it new flows again (needs the API token)\n"
    "  maglev show SERVICE                   ring size, each backend's slots and share, last disruption\n"
    "  history                               the revisions xlbd applied, newest first\n"
    "  events                                recent events; --follow waits for new ones\n"
    "  drops                                 packets the datapath dropped, with the reason; --follow\n"
    "                                        waits for new ones\n"
    "  trace SRC_IP:PORT VIP:PORT[/PROTO]    which backend this flow gets and why: conntrack,\n"
    "                                        affinity, or ring slot N; exit 1 when none\n"
    "  bgp                                   the VIPs announced over BGP (and why others are not) and\n"
    "                                        the sessions with the routers; exit 1 unless all are up\n"
    "  validate FILE                         check an xlb TOML config with the same rules as xlbd\n"
    "  preflight                             probe this node for what the datapath needs (root)\n"
    "  diff kube-proxy                       kube-proxy's rules on this node against xlb's services;\n"
    "                                        exit 0 only when they agree (--rules FILE: a saved\n"
    "                                        iptables-save -t nat or nft list table ip kube-proxy)\n"
    "  takeover                              this node from kube-proxy to xlb: preflight, kube-proxy\n"
    "                                        stopped, diff agrees, xlbd serves, kube-proxy's rules go\n"
    "  rollback                              back to kube-proxy: its rules return, xlb's datapath leaves,\n"
    "                                        xlbd stays in shadow mode\n"
    "  advise                                does replacing kube-proxy with xlb pay off on this node?\n"
    "                                        every input, the verdict and why; exit 0 when it does\n"
    "                                        (--nodes N, --need l7|observability|mesh); --measure: the\n"
    "                                        crossover measured here, iptables vs socket-LB (root, ~1 min)\n"
    "\n"
    "Exit codes: 0 success, 1 the answer is no (not found, rejected, invalid config),\n"
    "2 bad usage, 3 xlbd unreachable.\n";

po::options_description visible_options() {
  po::options_description global("Options");
  global.add_options()("help,h", "show this help")("version", "print the version")(
      "api", po::value<std::string>(),
      "xlbd's API, e.g. http://127.0.0.1:9180 (default: [api] listen of --config, else 127.0.0.1:9180)")(
      "config", po::value<std::string>()->default_value(kDefaultConfig), "xlbd's config: the API address, and the links preflight checks")(
      "state-dir", po::value<std::string>()->default_value(kDefaultStateDir), "xlbd's state directory, for api.token")(
      "output,o", po::value<std::string>()->default_value("table"), "table | json");
  po::options_description command("Command options");
  command.add_options()("follow,f", "events, drops: wait for new ones until Ctrl-C")(
      "count", po::value<long>(), "events, drops: stop after N new ones (implies --follow)")(
      "limit", po::value<long>()->default_value(20), "history, events, drops: how many to list")(
      "reason", po::value<std::string>()->default_value(""), "drain, undrain: why, recorded with the event")(
      "rules", po::value<std::string>()->default_value(""), "diff, takeover: kube-proxy's rules from FILE (- for stdin)")(
      "wait", po::value<long>()->default_value(120), "takeover, rollback: seconds to wait for xlbd to serve or stop")(
      "pin-dir", po::value<std::string>()->default_value(xlb::datapath::default_pin_dir().string()),
      "rollback: xlbd's --pin-dir, removed to detach its datapath")(
      "nodes", po::value<long>(), "advise: the cluster's node count (default: from [kubernetes], else unknown)")(
      "need", po::value<std::vector<std::string>>()->composing(), "advise: l7, observability or mesh (repeatable)")(
      "measure", "advise: measure connect() latency, iptables vs socket-LB, here (root, about a minute)")(
      "sizes", po::value<std::string>()->default_value(""), "advise --measure: catalog sizes, e.g. 10,100,1000")(
      "run-seconds", po::value<double>()->default_value(1.0), "advise --measure: seconds of each run");
  po::options_description visible;
  visible.add(global).add(command);
  return visible;
}

po::variables_map parse(int argc, char** argv, const po::options_description& visible) {
  po::options_description hidden;
  hidden.add_options()("command", po::value<std::string>())("args", po::value<std::vector<std::string>>());
  po::options_description all;
  all.add(visible).add(hidden);
  po::positional_options_description positional;
  positional.add("command", 1).add("args", -1);
  po::variables_map vm;
  po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
  po::notify(vm);
  return vm;
}

CommandOptions command_options(const po::variables_map& vm) {
  CommandOptions options;
  options.follow = vm.count("follow") > 0;
  if (vm.count("count")) options.count = vm["count"].as<long>();
  options.limit = vm["limit"].as<long>();
  options.reason = vm["reason"].as<std::string>();
  options.rules = vm["rules"].as<std::string>();
  options.wait_s = vm["wait"].as<long>();
  options.pin_dir = vm["pin-dir"].as<std::string>();
  if (vm.count("nodes")) options.nodes = vm["nodes"].as<long>();
  if (vm.count("need")) options.needs = vm["need"].as<std::vector<std::string>>();
  options.measure = vm.count("measure") > 0;
  options.sizes = vm["sizes"].as<std::string>();
  options.run_seconds = vm["run-seconds"].as<double>();
  return options;
}

int dispatch(const Context& ctx, const std::string& command, const Args& args, const CommandOptions& options) {
  if (command == "validate") return validate(ctx, args);
  if (command == "preflight") return preflight(ctx, args);
  if (command == "status") return status(ctx, args);
  if (command == "service") return service(ctx, args);
  if (command == "backend") return backend(ctx, args, options);
  if (command == "maglev") return maglev(ctx, args);
  if (command == "history") return history(ctx, args, options);
  if (command == "events") return events(ctx, args, options);
  if (command == "drops") return drops(ctx, args, options);
  if (command == "trace") return trace(ctx, args);
  if (command == "bgp") return bgp(ctx, args);
  if (command == "diff") return diff(ctx, args, options);
  if (command == "takeover") return takeover(ctx, args, options);
  if (command == "rollback") return rollback(ctx, args, options);
  if (command == "advise") return advise(ctx, args, options);
  std::cerr << "xlbctl: unknown command \"" << command << "\"\n" << kUsage;
  return kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  const po::options_description visible = visible_options();
  po::variables_map vm;
  try {
    vm = parse(argc, argv, visible);
  } catch (const po::error& e) {
    std::cerr << "xlbctl: " << e.what() << "\n" << kUsage;
    return kExitUsage;
  }
  if (vm.count("version")) {
    std::cout << "xlbctl " << XLB_VERSION << "\n";
    return kExitOk;
  }
  if (vm.count("help") || !vm.count("command")) {
    std::cout << kUsage << visible;
    return vm.count("help") ? kExitOk : kExitUsage;
  }
  const auto output = vm["output"].as<std::string>();
  if (output != "table" && output != "json") {
    std::cerr << "xlbctl: --output must be table or json, not \"" << output << "\"\n";
    return kExitUsage;
  }
  const CommandOptions options = command_options(vm);
  if (options.limit < 1) {
    std::cerr << "xlbctl: --limit must be at least 1\n";
    return kExitUsage;
  }

  const CurlGlobal curl;
  const ApiClient api(vm.count("api") ? api_url(vm["api"].as<std::string>())
                                      : api_url_from_config(vm["config"].as<std::string>()));
  const Context ctx{api,
                    vm["state-dir"].as<std::string>(),
                    vm["config"].as<std::string>(),
                    output == "json" ? Output::json : Output::table,
                    std::cout,
                    std::cerr};
  const auto args = vm.count("args") ? vm["args"].as<Args>() : Args{};
  return dispatch(ctx, vm["command"].as<std::string>(), args, options);
}

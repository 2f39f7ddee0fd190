// xlbd: the xlb daemon.
#include <sys/resource.h>
#include <boost/program_options.hpp>
#include <iostream>

#include "bgp/bgp.h"
#include "config/config.h"
#include "xlbd/daemon.h"
#include "datapath/datapath.h"
#include "xlbd/kernel.h"

namespace po = boost::program_options;

namespace {

// --dry-run: read and validate the config, say what would be served, touch nothing.
int dry_run(const std::filesystem::path& path) {
  auto config = xlb::config::load(path);
  if (!config) {
    std::cerr << config.error().message << "\n";
    return 1;
  }
  std::cout << path.string() << ": ok, would serve " << config->catalog.services.size() << " services\n";
  for (const auto& s : config->catalog.services) {
    std::cout << "  " << s.name << " (" << xlb::model::to_string(s.mode) << "):";
    for (const auto& f : s.frontends) std::cout << " " << f.to_string();
    std::cout << " -> " << s.backends.size() << " backends\n";
  }
  return 0;
}

// --cleanup: stopping xlbd leaves the datapath forwarding (a restart loses no flow); this is
// how an operator removes it for good.
int cleanup(const xlb::xlbd::Options& options, const xlb::Logger& log) {
  auto config = xlb::config::load(options.config);
  if (!config) {
    log.error("cleanup needs the config to know the interfaces: " + config.error().message);
    return 1;
  }
  // The routers must stop sending traffic here before the datapath that forwards it goes.
  if (config->bgp.enabled) {
    if (auto s = xlb::bgp::configure_bird(config->bgp, {}); !s)
      log.warning("bgp: could not withdraw the VIPs: " + s.error().message);
    else
      log.info("bgp: every VIP withdrawn");
  }
  if (auto s = xlb::xlbd::cleanup_datapath(config->node, options.pin_dir, log); !s) {
    log.error(s.error().message);
    return 1;
  }
  return 0;
}

}  // namespace

// The datapath opens a map fd per ring it installs (in batches of 512): take the hard limit of
// open files rather than the 1,024 a shell or systemd gives by default.
void raise_open_file_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &limit);
  }
}

int main(int argc, char** argv) {
  xlb::xlbd::Options options;
  std::string log_level = "info";
  po::options_description desc("Usage: xlbd [options]\n\nThe xlb load-balancer daemon.\n\nOptions");
  desc.add_options()
      ("help,h", "show this help")
      ("version", "print the version")
      ("config,c", po::value(&options.config)->default_value(options.config), "TOML config file")
      ("state-dir", po::value(&options.state_dir)->default_value(options.state_dir),
       "directory of the state database and lock")
      ("pin-dir", po::value(&options.pin_dir)->default_value(options.pin_dir),
       "bpffs directory of the pinned maps and links (the ABI version is part of it)")
      ("no-watch", "do not reload when the config file changes (SIGHUP still reloads)")
      ("dry-run", "validate the config and print what would be served, then exit; writes nothing")
      ("cleanup", "detach xlb from the configured interfaces, remove its pinned maps, then exit")
      ("shadow", "shadow mode whatever [node] mode says: build the catalog and rings, load and attach nothing")
      ("log-level", po::value(&log_level)->default_value(log_level), "debug, info, warning or error");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "xlbd: " << e.what() << "\n(see xlbd --help)\n";
    return 2;
  }
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return 0;
  }
  if (vm.count("version")) {
    std::cout << "xlbd " << XLB_VERSION << "\n";
    return 0;
  }
  const auto level = xlb::parse_log_level(log_level);
  if (!level) {
    std::cerr << "xlbd: --log-level must be debug, info, warning or error, not \"" << log_level << "\"\n";
    return 2;
  }
  if (vm.count("dry-run")) return dry_run(options.config);
  options.shadow = vm.count("shadow") > 0;
  options.watch_config = vm.count("no-watch") == 0;
  raise_open_file_limit();
  xlb::Logger log(*level);
  xlb::datapath::set_libbpf_verbose(*level == xlb::LogLevel::debug);
  if (vm.count("cleanup")) return cleanup(options, log);
  return xlb::xlbd::Daemon(options, log).run();
}

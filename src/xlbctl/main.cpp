// xlbctl: the operator's command line.
#include <boost/program_options.hpp>
#include <iostream>

#include "config/config.h"

namespace po = boost::program_options;

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;  // the command ran and the answer is "no" (e.g. an invalid config)
constexpr int kExitUsage = 2;   // the command line itself is wrong

const char* const kUsage =
    "Usage: xlbctl [--version] [--help] COMMAND [ARGS]\n"
    "\n"
    "Commands:\n"
    "  validate FILE   check an xlb TOML config with the same rules as xlbd\n"
    "\n"
    "Exit codes: 0 success, 1 the check failed, 2 bad usage.\n";

int validate(const std::vector<std::string>& args) {
  if (args.size() != 1) {
    std::cerr << "xlbctl validate: expects exactly one FILE\n";
    return kExitUsage;
  }
  auto config = xlb::config::load(args[0]);
  if (!config) {
    std::cerr << config.error().message << "\n";
    return kExitFailed;
  }
  const auto& c = config->catalog;
  std::cout << args[0] << ": ok (" << c.services.size() << " services, " << c.frontend_count() << " frontends, "
            << c.backend_count() << " backends)\n";
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  po::options_description global("Options");
  global.add_options()("help,h", "show this help")("version", "print the version");
  po::options_description hidden;
  hidden.add_options()("command", po::value<std::string>())("args", po::value<std::vector<std::string>>());
  po::options_description all;
  all.add(global).add(hidden);
  po::positional_options_description positional;
  positional.add("command", 1).add("args", -1);

  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "xlbctl: " << e.what() << "\n" << kUsage;
    return kExitUsage;
  }
  if (vm.count("version")) {
    std::cout << "xlbctl " << XLB_VERSION << "\n";
    return kExitOk;
  }
  if (vm.count("help") || !vm.count("command")) {
    std::cout << kUsage << global;
    return vm.count("help") ? kExitOk : kExitUsage;
  }
  const auto command = vm["command"].as<std::string>();
  const auto args = vm.count("args") ? vm["args"].as<std::vector<std::string>>() : std::vector<std::string>{};
  if (command == "validate") return validate(args);
  std::cerr << "xlbctl: unknown command \"" << command << "\"\n" << kUsage;
  return kExitUsage;
}

// xlbctl validate FILE: the config checks of xlbd, without xlbd.
#include <ostream>

#include "config/config.h"
#include "xlbctl/commands.h"

namespace xlb::ctl {

int validate(const Context& ctx, const Args& args) {
  if (args.size() != 1) {
    ctx.err << "xlbctl validate: expects exactly one FILE\n";
    return kExitUsage;
  }
  auto config = xlb::config::load(args[0]);
  if (!config) {
    ctx.err << config.error().message << "\n";
    return kExitFailed;
  }
  const auto& c = config->catalog;
  ctx.out << args[0] << ": ok (" << c.services.size() << " services, " << c.frontend_count() << " frontends, "
          << c.backend_count() << " backends)\n";
  return kExitOk;
}

int usage_error(const Context& ctx, const std::string& command, const std::string& what) {
  ctx.err << "xlbctl " << command << ": " << what << "; see xlbctl --help\n";
  return kExitUsage;
}

}  // namespace xlb::ctl

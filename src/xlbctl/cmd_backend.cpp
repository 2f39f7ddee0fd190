// xlbctl backend drain|undrain SERVICE ADDRESS:PORT [--reason TEXT]
#include <pwd.h>
#include <unistd.h>

#include <cstdlib>
#include <ostream>

#include "xlbctl/commands.h"
#include "xlbctl/settings.h"
#include "xlbctl/table.h"

namespace xlb::ctl {

namespace {

// Who is asking, for the event xlbd records: the person behind sudo if any.
std::string user_name() {
  if (const char* sudo_user = std::getenv("SUDO_USER"); sudo_user && *sudo_user) return sudo_user;
  if (const passwd* pw = ::getpwuid(::getuid()); pw && pw->pw_name) return pw->pw_name;
  return "uid " + std::to_string(::getuid());
}

std::string request_body(const CommandOptions& options) {
  json body = {{"by", user_name().substr(0, 200)}};
  if (!options.reason.empty()) body["reason"] = options.reason.substr(0, 200);
  return body.dump();
}

}  // namespace

int backend(const Context& ctx, const Args& args, const CommandOptions& options) {
  if (args.size() != 3 || (args[0] != "drain" && args[0] != "undrain"))
    return usage_error(ctx, "backend", "expects \"drain SERVICE ADDRESS:PORT\" or \"undrain SERVICE ADDRESS:PORT\"");
  const std::string& verb = args[0];
  const std::string& service = args[1];
  const std::string& address = args[2];
  const auto token = read_token(ctx.state_dir);
  if (!token) return report(ctx, {kExitFailed, token.error().message});

  const std::string path =
      "/api/v1/services/" + escape_segment(service) + "/backends/" + escape_segment(address) + "/" + verb;
  const auto reply = ctx.api.post(path, request_body(options), *token);
  if (!reply) return report(ctx, unreachable(ctx, reply.error().message));
  const auto body = json_of(*reply);
  if (!body.ok()) return report(ctx, body.failure());
  if (ctx.output == Output::json)
    print_json(ctx, *body);
  else
    ctx.out << text(*body, "message") << "\n";  // "web 10.0.0.2:8080 drained: ... (revision 2)"
  return kExitOk;
}

}  // namespace xlb::ctl

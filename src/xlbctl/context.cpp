#include "xlbctl/context.h"

#include <ostream>

namespace xlb::ctl {

Failure unreachable(const Context& ctx, const std::string& reason) {
  return {kExitUnreachable, "cannot reach xlbd at " + ctx.api.base_url() + ": " + reason +
                                " (is xlbd running? systemctl status xlb)"};
}

Answer<json> json_of(const Reply& reply) {
  json body = json::parse(reply.body, nullptr, /*allow_exceptions=*/false);
  if (reply.status / 100 == 2) {
    if (body.is_discarded()) return Failure{kExitFailed, "xlbd answered with something that is not JSON"};
    return body;
  }
  if (body.is_object() && body.contains("error") && body["error"].is_string())
    return Failure{kExitFailed, body["error"].get<std::string>()};
  return Failure{kExitFailed, "xlbd answered HTTP " + std::to_string(reply.status)};
}

Answer<json> get_json(const Context& ctx, const std::string& path, long timeout_s) {
  const auto reply = ctx.api.get(path, timeout_s);
  if (!reply) return unreachable(ctx, reply.error().message);
  return json_of(*reply);
}

int report(const Context& ctx, const Failure& failure) {
  ctx.err << "xlbctl: " << failure.message << "\n";
  return failure.exit_code;
}

void print_json(const Context& ctx, const json& body) {
  ctx.out << body.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
}

}  // namespace xlb::ctl

#include "xlbctl/lookup.h"

#include "xlbctl/table.h"

namespace xlb::ctl {

namespace {

bool has_frontend(const json& service, const std::string& wanted) {
  for (const auto& f : array_at(service, "frontends")) {
    const std::string with_protocol = frontend_text(f);
    if (wanted == with_protocol || wanted == with_protocol.substr(0, with_protocol.rfind('/'))) return true;
  }
  return false;
}

// The service that serves frontend `wanted`, from the whole list.
Answer<json> by_frontend(const Context& ctx, const std::string& wanted, const Failure& not_found) {
  const auto list = get_json(ctx, "/api/v1/services");
  if (!list.ok()) return list.failure();
  for (const auto& s : array_at(*list, "services"))
    if (has_frontend(s, wanted))
      return json{{"revision", list->value("revision", 0)}, {"sampled_at_ms", list->value("sampled_at_ms", 0)},
                  {"service", s}};
  return not_found;
}

}  // namespace

Answer<json> find_service(const Context& ctx, const std::string& name_or_frontend) {
  const auto reply = ctx.api.get("/api/v1/services/" + escape_segment(name_or_frontend));
  if (!reply) return unreachable(ctx, reply.error().message);
  if (reply->status == 404) {
    const Failure not_found{kExitFailed, "no service named \"" + name_or_frontend +
                                             "\" and none with that frontend; xlbctl service list shows them"};
    if (name_or_frontend.find(':') == std::string::npos) return not_found;
    return by_frontend(ctx, name_or_frontend, not_found);
  }
  return json_of(*reply);
}

RingSlot ring_slot(const json& service, const std::string& key) {
  for (const auto& ring : array_at(service, "rings"))
    for (const auto& share : array_at(ring, "shares"))
      if (text(share, "backend") == key) return {share, ring.value("size", uint64_t{0})};
  return {};
}

}  // namespace xlb::ctl

// Finding one service in xlbd by its name, or by one of its frontends.
#pragma once

#include <string>

#include "xlbctl/context.h"

namespace xlb::ctl {

// The API's answer for one service ({"revision", "service"}), given its name or a frontend
// "VIP:PORT" (or "VIP:PORT/PROTO"). Unknown: a Failure with exit code 1.
Answer<json> find_service(const Context& ctx, const std::string& name_or_frontend);

// The ring share entry of backend `key` ({"backend", "slots", "share"}) and its ring's size;
// a null share when no ring lists it.
struct RingSlot {
  json share;
  uint64_t ring_size = 0;
};
RingSlot ring_slot(const json& service, const std::string& key);

}  // namespace xlb::ctl

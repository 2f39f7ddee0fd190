// xlbctl maglev show SERVICE: each ring's size, each backend's slots and share, the last change's
// disruption.
#include <ostream>

#include "xlbctl/commands.h"
#include "xlbctl/lookup.h"
#include "xlbctl/table.h"

namespace xlb::ctl {

namespace {

// The service's backend with key `key`, or an empty object.
json backend_by_key(const json& service, const std::string& key) {
  for (const auto& b : array_at(service, "backends"))
    if (text(b, "key") == key) return b;
  return json::object();
}

void print_ring(std::ostream& out, const json& service, const json& ring) {
  const uint64_t size = ring.value("size", uint64_t{0});
  out << "Ring " << text(ring, "family") << ":  " << size << " slots"
      << (size == 0 ? " (no backend takes new flows)" : "") << "\n";
  Table table({"BACKEND", "STATE", "WEIGHT", "SLOTS", "SHARE"});
  uint64_t total = 0;
  for (const auto& share : array_at(ring, "shares")) {
    const json backend = backend_by_key(service, text(share, "backend"));
    total += share.value("slots", uint64_t{0});
    table.add({text(share, "backend"), text(backend, "state"), number(backend, "weight"), number(share, "slots"),
               percent(share.value("share", 0.0))});
  }
  table.add({"total", "", "", std::to_string(total), percent(size ? static_cast<double>(total) / static_cast<double>(size) : 0.0)});
  table.print(out, "  ");
}

void print_maglev(std::ostream& out, const json& service) {
  out << "Service:     " << text(service, "name") << "\n"
      << "Disruption:  the last change sent " << percent(service.value("last_disruption", 0.0))
      << " of new flows to another backend\n";
  const json& rings = array_at(service, "rings");
  if (rings.empty()) out << "No ring: the service has no backend.\n";
  for (const auto& ring : rings) print_ring(out, service, ring);
}

}  // namespace

int maglev(const Context& ctx, const Args& args) {
  if (args.size() != 2 || args[0] != "show") return usage_error(ctx, "maglev", "expects \"show SERVICE\"");
  const auto body = find_service(ctx, args[1]);
  if (!body.ok()) return report(ctx, body.failure());
  const json& service = object_at(*body, "service");
  if (ctx.output == Output::json)
    print_json(ctx, {{"service", text(service, "name")},
                     {"revision", body->value("revision", 0)},
                     {"rings", array_at(service, "rings")},
                     {"last_disruption", service.value("last_disruption", 0.0)}});
  else
    print_maglev(ctx.out, service);
  return kExitOk;
}

}  // namespace xlb::ctl

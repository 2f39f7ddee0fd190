// xlbctl service list | show NAME|VIP:PORT
#include <algorithm>
#include <ostream>

#include "xlbctl/commands.h"
#include "xlbctl/lookup.h"
#include "xlbctl/table.h"

namespace xlb::ctl {

namespace {

// "10.0.0.2:8080 (active)", "10.0.0.3:8080 (draining, weight 2)".
std::string backend_text(const json& b) {
  std::string details = text(b, "state");
  if (b.value("weight", 1u) != 1) details += ", weight " + number(b, "weight");
  return host_port(text(b, "address"), b.value("port", 0u)) + " (" + details + ")";
}

// One row per frontend or backend, whichever is more; the service's own columns on the first.
void add_rows(Table& table, const json& s) {
  const json& frontends = array_at(s, "frontends");
  const json& backends = array_at(s, "backends");
  const size_t rows = std::max<size_t>({frontends.size(), backends.size(), 1});
  for (size_t i = 0; i < rows; ++i) {
    const bool first = i == 0;
    const bool f = i < frontends.size();
    const bool b = i < backends.size();
    table.add({first ? text(s, "name") : "", f ? frontend_text(frontends[i]) : "", f ? text(frontends[i], "kind") : "",
               first ? text(s, "mode") : "", first ? text(s, "source") : "",
               b ? backend_text(backends[i]) : (first ? "none" : "")});
  }
}

int list(const Context& ctx) {
  const auto body = get_json(ctx, "/api/v1/services");
  if (!body.ok()) return report(ctx, body.failure());
  if (ctx.output == Output::json) {
    print_json(ctx, *body);
    return kExitOk;
  }
  Table table({"NAME", "FRONTEND", "KIND", "MODE", "SOURCE", "BACKENDS"});
  for (const auto& s : array_at(*body, "services")) add_rows(table, s);
  table.print(ctx.out);
  return kExitOk;
}

void print_backends(std::ostream& out, const json& s) {
  Table table({"BACKEND", "STATE", "WEIGHT", "SLOTS", "RING SHARE", "PACKETS", "BYTES", "NEW FLOWS"});
  for (const auto& b : array_at(s, "backends")) {
    const auto slot = ring_slot(s, text(b, "key"));
    const json& counters = object_at(b, "counters");
    const bool in_ring = !slot.share.is_null();
    table.add({host_port(text(b, "address"), b.value("port", 0u)), text(b, "state"), number(b, "weight"),
               in_ring ? number(slot.share, "slots") + "/" + std::to_string(slot.ring_size) : "-",
               in_ring ? percent(slot.share.value("share", 0.0)) : "-", number(counters, "packets"),
               number(counters, "bytes"), number(counters, "new_flows")});
  }
  table.print(out, "  ");
}

void print_service(std::ostream& out, const json& body) {
  const json& s = object_at(body, "service");
  const json& health = object_at(s, "health");
  const json& counters = object_at(s, "counters");
  out << "Name:        " << text(s, "name") << "\n"
      << "Mode:        " << text(s, "mode") << "\n"
      << "Source:      " << text(s, "source") << "\n"
      << "Revision:    " << number(body, "revision") << "\n"
      << "Health:      " << text(health, "type");
  if (text(health, "type") != "none") out << " every " << number(health, "interval_ms") << " ms";
  out << "\n"
      << "Traffic:     " << number(counters, "packets") << " packets, " << number(counters, "bytes") << " bytes, "
      << number(counters, "new_flows") << " new flows\n"
      << "Frontends:\n";
  Table frontends({"FRONTEND", "KIND"});
  for (const auto& f : array_at(s, "frontends")) frontends.add({frontend_text(f), text(f, "kind")});
  frontends.print(out, "  ");
  out << "Backends:\n";
  print_backends(out, s);
}

int show(const Context& ctx, const std::string& name) {
  const auto body = find_service(ctx, name);
  if (!body.ok()) return report(ctx, body.failure());
  if (ctx.output == Output::json)
    print_json(ctx, *body);
  else
    print_service(ctx.out, *body);
  return kExitOk;
}

}  // namespace

int service(const Context& ctx, const Args& args) {
  if (args.size() == 1 && args[0] == "list") return list(ctx);
  if (args.size() == 2 && args[0] == "show") return show(ctx, args[1]);
  return usage_error(ctx, "service", "expects \"list\" or \"show NAME|VIP:PORT\"");
}

}  // namespace xlb::ctl

// xlbctl bgp: the VIPs this node announces over BGP (and why it holds others back), and its
// sessions with the routers, as bird reports them. Exit 1 when [bgp] is off, bird has not
// accepted the current routes, or a session is not established: a script can alert on it.
#include <ostream>

#include "xlbctl/commands.h"
#include "xlbctl/table.h"

namespace xlb::ctl {

namespace {

std::string services_text(const json& vip) {
  std::string out;
  for (const auto& s : array_at(vip, "services")) out += (out.empty() ? "" : ", ") + (s.is_string() ? s.get<std::string>() : s.dump());
  return out;
}

// True when everything is as it should be.
bool print_bgp(std::ostream& out, const json& bgp) {
  const bool configured = bgp.value("configured", false);
  const std::string error = text(bgp, "error");
  out << "Bird:      " << (configured ? "routes accepted" : "routes not accepted yet") << " (" << text(bgp, "include_file")
      << ", socket " << text(bgp, "bird_socket") << ")\n";
  if (!error.empty()) out << "Error:     " << error << "\n";
  out << "\n";
  Table vips({"VIP", "ANNOUNCED", "SERVICES / WHY NOT"});
  for (const auto& v : array_at(bgp, "vips")) {
    const bool announced = v.value("announced", false);
    vips.add({text(v, "address"), announced ? "yes" : "no", announced ? services_text(v) : text(v, "reason")});
  }
  vips.print(out, "");
  out << "\n";
  Table peers({"PEER", "AS", "SESSION", "STATE", "SINCE", "INFO"});
  bool all_up = true;
  for (const auto& p : array_at(bgp, "peers")) {
    const bool up = p.value("established", false);
    all_up = all_up && up;
    peers.add({text(p, "address"), number(p, "asn"), up ? "established" : "down", text(p, "state"), text(p, "since"),
               text(p, "info")});
  }
  peers.print(out, "");
  return configured && all_up;
}

}  // namespace

int bgp(const Context& ctx, const Args& args) {
  if (!args.empty() && !(args.size() == 1 && args[0] == "show")) return usage_error(ctx, "bgp", "takes no arguments (or \"show\")");
  const auto bgp = get_json(ctx, "/api/v1/bgp");
  if (!bgp.ok()) return report(ctx, bgp.failure());
  if (!bgp->value("enabled", false)) {
    if (ctx.output == Output::json)
      print_json(ctx, *bgp);
    else
      ctx.out << "BGP is off on this node ([bgp] enabled = false in xlbd's config)\n";
    return kExitFailed;
  }
  if (ctx.output == Output::json) {
    print_json(ctx, *bgp);
    bool fine = bgp->value("configured", false);
    for (const auto& p : array_at(*bgp, "peers")) fine = fine && p.value("established", false);
    return fine ? kExitOk : kExitFailed;
  }
  return print_bgp(ctx.out, *bgp) ? kExitOk : kExitFailed;
}

}  // namespace xlb::ctl

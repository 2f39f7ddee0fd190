// xlbctl status: the node, the revision in force, what it serves, and what it dropped.
#include <ostream>

#include "xlbctl/commands.h"
#include "xlbctl/table.h"

namespace xlb::ctl {

namespace {

std::string attachments_text(const json& node) {
  std::string out;
  for (const auto& a : array_at(node, "attachments")) {
    if (!out.empty()) out += ", ";
    out += text(a, "interface") + " " + text(a, "program") + " (" + text(a, "mode") + ")";
  }
  return out.empty() ? "none" : out;
}

std::string drops_text(const json& node) {
  std::string out;
  uint64_t total = 0;
  for (const auto& [reason, count] : object_at(node, "drops").items()) {
    if (!count.is_number() || count.get<uint64_t>() == 0) continue;
    total += count.get<uint64_t>();
    out += "\n  " + reason + ": " + count.dump();
  }
  return total == 0 ? "none" : std::to_string(total) + out;
}

// One line per source: "kubernetes stale (12 services) https://...: HTTP 401", then its problems.
std::string sources_text(const json& node) {
  std::string out;
  for (const auto& src : array_at(node, "sources")) {
    out += "\n  " + text(src, "name") + " " + text(src, "state") + " (" + number(src, "services") + " services) " +
           text(src, "detail");
    for (const auto& p : array_at(src, "problems")) out += "\n    " + (p.is_string() ? p.get<std::string>() : p.dump());
  }
  return out.empty() ? "none" : out;
}

// Preflight checks that failed, one per line; empty when all passed.
std::string failed_checks(const json& node) {
  std::string out;
  for (const auto& c : array_at(node, "preflight"))
    if (!c.value("ok", false)) out += "\n  " + text(c, "name") + ": " + text(c, "detail");
  return out;
}

void print_status(std::ostream& out, const json& node) {
  const json& totals = object_at(node, "totals");
  out << "Node:         " << text(node, "hostname") << " (kernel " << text(node, "kernel") << ")\n"
      << "xlbd:         " << text(node, "version") << "\n"
      << "Datapath:     " << text(node, "datapath_mode") << "\n"
      << "Attachments:  " << attachments_text(node) << "\n"
      << "Revision:     " << number(node, "revision") << "\n"
      << "Services:     " << number(totals, "services") << " (" << number(totals, "frontends") << " frontends, "
      << number(totals, "backends") << " backends)\n"
      << "Traffic:      " << number(totals, "packets") << " packets, " << number(totals, "bytes") << " bytes, "
      << number(totals, "new_flows") << " new flows\n"
      << "Drops:        " << drops_text(node) << "\n"
      << "Sources:      " << sources_text(node) << "\n";
  if (const auto failed = failed_checks(node); !failed.empty()) out << "Preflight:    failed" << failed << "\n";
}

}  // namespace

int status(const Context& ctx, const Args& args) {
  if (!args.empty()) return usage_error(ctx, "status", "takes no arguments");
  const auto node = get_json(ctx, "/api/v1/node");
  if (!node.ok()) return report(ctx, node.failure());
  if (ctx.output == Output::json)
    print_json(ctx, *node);
  else
    print_status(ctx.out, *node);
  return kExitOk;
}

}  // namespace xlb::ctl

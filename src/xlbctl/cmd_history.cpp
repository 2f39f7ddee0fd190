// xlbctl history: the revisions xlbd applied. xlbctl events [--follow [--count N]]: what happened.
#include <chrono>
#include <ostream>
#include <thread>

#include "xlbctl/commands.h"
#include "xlbctl/table.h"

namespace xlb::ctl {

namespace {

constexpr long kFollowWaitS = 20;  // one long poll; xlbd allows up to 25

std::string event_line(const json& e) {
  return "#" + number(e, "id") + "  " + text(e, "created_at") + "  " + text(e, "kind") + "  " + text(e, "subject") +
         "  " + text(e, "message");
}

void print_event(const Context& ctx, const json& e) {
  if (ctx.output == Output::json)
    ctx.out << e.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";  // one object a line
  else
    ctx.out << event_line(e) << "\n";
  ctx.out.flush();
}

int recent_events(const Context& ctx, long limit) {
  const auto body = get_json(ctx, "/api/v1/events?limit=" + std::to_string(limit));
  if (!body.ok()) return report(ctx, body.failure());
  if (ctx.output == Output::json) {
    print_json(ctx, *body);
    return kExitOk;
  }
  Table table({"ID", "TIME", "KIND", "SUBJECT", "MESSAGE"});
  for (const auto& e : array_at(*body, "events"))
    table.add({number(e, "id"), text(e, "created_at"), text(e, "kind"), text(e, "subject"), text(e, "message")});
  table.print(ctx.out);
  return kExitOk;
}

// Events from now on, one line each as they happen; stops after `count` when it is set.
int follow_events(const Context& ctx, std::optional<long> count) {
  const auto newest = get_json(ctx, "/api/v1/events?limit=1");
  if (!newest.ok()) return report(ctx, newest.failure());
  int64_t after = newest->value("last_id", int64_t{0});
  ctx.err << "xlbctl: following events after #" << after << " (Ctrl-C to stop)" << std::endl;
  long printed = 0;
  for (;;) {
    const auto asked = std::chrono::steady_clock::now();
    const auto body = get_json(
        ctx, "/api/v1/events?limit=100&wait=" + std::to_string(kFollowWaitS) + "&after=" + std::to_string(after),
        kFollowWaitS + 10);
    if (!body.ok()) return report(ctx, body.failure());
    for (const auto& e : array_at(*body, "events")) {
      print_event(ctx, e);
      if (count && ++printed >= *count) return kExitOk;
    }
    after = std::max(after, body->value("last_id", after));
    // xlbd answers at once, empty, when too many polls wait already: ask again a little later.
    if (array_at(*body, "events").empty() && std::chrono::steady_clock::now() - asked < std::chrono::seconds(1))
      std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

}  // namespace

int history(const Context& ctx, const Args& args, const CommandOptions& options) {
  if (!args.empty()) return usage_error(ctx, "history", "takes no arguments (--limit N: how many revisions)");
  const auto body = get_json(ctx, "/api/v1/revisions?limit=" + std::to_string(options.limit));
  if (!body.ok()) return report(ctx, body.failure());
  if (ctx.output == Output::json) {
    print_json(ctx, *body);
    return kExitOk;
  }
  Table table({"REVISION", "TIME", "SOURCE", "SUMMARY"});
  for (const auto& r : array_at(*body, "revisions"))
    table.add({number(r, "id"), text(r, "created_at"), text(r, "source"), text(r, "summary")});
  table.print(ctx.out);
  return kExitOk;
}

int events(const Context& ctx, const Args& args, const CommandOptions& options) {
  if (!args.empty()) return usage_error(ctx, "events", "takes no arguments (--follow, --count N, --limit N)");
  if (options.count && *options.count < 1) return usage_error(ctx, "events", "--count must be at least 1");
  if (options.follow || options.count) return follow_events(ctx, options.count);
  return recent_events(ctx, options.limit);
}

}  // namespace xlb::ctl

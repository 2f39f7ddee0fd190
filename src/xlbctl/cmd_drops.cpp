// xlbctl drops [--follow [--count N]]: the packets the datapath dropped, each with its reason.
#include <chrono>
#include <ctime>
#include <ostream>
#include <thread>

#include "xlbctl/commands.h"
#include "xlbctl/table.h"

namespace xlb::ctl {

namespace {

constexpr long kFollowWaitS = 20;  // one long poll; xlbd allows up to 25

// 1764156001123 -> "2025-11-26T11:20:01.123Z".
std::string utc_time(int64_t unix_ms) {
  const std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  ::gmtime_r(&seconds, &tm);
  char text[40];
  const size_t n = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(text + n, sizeof text - n, ".%03dZ", static_cast<int>(unix_ms % 1000));
  return text;
}

std::string time_of(const json& d) { return utc_time(d.value("unix_ms", int64_t{0})); }

std::string drop_line(const json& d) {
  return time_of(d) + "  " + text(d, "reason") + "  " + text(d, "protocol") + " " + text(d, "source") + " -> " +
         text(d, "destination") + " on " + text(d, "interface");
}

// The programs report at most a budget of drops a second per CPU; the rest only count.
std::string unreported_line(uint64_t count) {
  return std::to_string(count) +
         " more drops were counted but not reported one by one (over the datapath's event rate limit); "
         "xlbctl status has every drop by reason";
}

int recent_drops(const Context& ctx, long limit) {
  const auto body = get_json(ctx, "/api/v1/drops?limit=" + std::to_string(limit));
  if (!body.ok()) return report(ctx, body.failure());
  if (ctx.output == Output::json) {
    print_json(ctx, *body);
    return kExitOk;
  }
  Table table({"ID", "TIME", "REASON", "PROTO", "SOURCE", "DESTINATION", "INTERFACE"});
  for (const auto& d : array_at(*body, "drops"))
    table.add({number(d, "id"), time_of(d), text(d, "reason"), text(d, "protocol"), text(d, "source"),
               text(d, "destination"), text(d, "interface")});
  if (array_at(*body, "drops").empty())
    ctx.out << "no drops reported since xlbd started\n";
  else
    table.print(ctx.out);
  if (const uint64_t unreported = body->value("unreported", uint64_t{0}); unreported > 0)
    ctx.out << unreported_line(unreported) << "\n";
  return kExitOk;
}

void print_drop(const Context& ctx, const json& d) {
  if (ctx.output == Output::json)
    ctx.out << d.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";  // one object a line
  else
    ctx.out << drop_line(d) << "\n";
  ctx.out.flush();
}

// Drops from now on, a line each as they come; stops after `count` when it is set. What the
// rate limit held back since the last answer is said as it grows (on stderr with -o json, so
// that stdout stays one drop object a line).
int follow_drops(const Context& ctx, std::optional<long> count) {
  const auto newest = get_json(ctx, "/api/v1/drops?limit=1");
  if (!newest.ok()) return report(ctx, newest.failure());
  int64_t after = newest->value("last_id", int64_t{0});
  uint64_t unreported = newest->value("unreported", uint64_t{0});
  ctx.err << "xlbctl: following drops after #" << after << " (Ctrl-C to stop)" << std::endl;
  long printed = 0;
  for (;;) {
    const auto asked = std::chrono::steady_clock::now();
    const auto body = get_json(
        ctx, "/api/v1/drops?limit=1000&wait=" + std::to_string(kFollowWaitS) + "&after=" + std::to_string(after),
        kFollowWaitS + 10);
    if (!body.ok()) return report(ctx, body.failure());
    for (const auto& d : array_at(*body, "drops")) {
      print_drop(ctx, d);
      if (count && ++printed >= *count) return kExitOk;
    }
    after = std::max(after, body->value("last_id", after));
    if (const uint64_t now = body->value("unreported", unreported); now > unreported) {
      (ctx.output == Output::json ? ctx.err : ctx.out) << unreported_line(now - unreported) << std::endl;
      unreported = now;
    }
    // xlbd answers at once, empty, when too many polls wait already: ask again a little later.
    if (array_at(*body, "drops").empty() && std::chrono::steady_clock::now() - asked < std::chrono::seconds(1))
      std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

}  // namespace

int drops(const Context& ctx, const Args& args, const CommandOptions& options) {
  if (!args.empty()) return usage_error(ctx, "drops", "takes no arguments (--follow, --count N, --limit N)");
  if (options.count && *options.count < 1) return usage_error(ctx, "drops", "--count must be at least 1");
  if (options.follow || options.count) return follow_drops(ctx, options.count);
  return recent_drops(ctx, options.limit);
}

}  // namespace xlb::ctl

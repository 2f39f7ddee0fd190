// xlbctl trace SRC_IP:PORT VIP:PORT[/PROTO]: which backend this flow gets now, and why (an
// established flow in conntrack, ClientIP affinity, or a ring slot), as xlbd's datapath decides.
#include <charconv>
#include <optional>
#include <ostream>

#include "model/model.h"
#include "xlbctl/commands.h"
#include "xlbctl/http.h"
#include "xlbctl/table.h"

namespace xlb::ctl {

namespace {

struct Endpoint {
  std::string address;  // as given, checked
  uint16_t port = 0;
  bool v4 = true;
};

// "10.0.0.1:80" or "[2001:db8::1]:80".
std::optional<Endpoint> parse_endpoint(std::string_view text) {
  std::string_view host, port;
  if (text.starts_with('[')) {
    const size_t close = text.find("]:");
    if (close == std::string_view::npos) return std::nullopt;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  auto address = model::IpAddress::parse(host);
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (!address || ec != std::errc{} || end != port.data() + port.size() || value < 1 || value > 65535)
    return std::nullopt;
  return Endpoint{address->to_string(), static_cast<uint16_t>(value), address->is_v4()};
}

struct Question {
  Endpoint client;
  Endpoint frontend;
  std::string protocol = "tcp";
};

std::optional<Question> parse_question(const Args& args, std::string& problem) {
  const std::string shape = "needs SRC_IP:PORT VIP:PORT[/tcp|/udp], e.g. 10.0.0.1:40000 198.18.0.10:80/tcp";
  problem = shape;
  if (args.size() != 2) return std::nullopt;
  Question q;
  std::string_view to = args[1];
  if (const size_t slash = to.rfind('/'); slash != std::string_view::npos) {
    q.protocol = std::string(to.substr(slash + 1));
    to = to.substr(0, slash);
  }
  auto client = parse_endpoint(args[0]);
  auto frontend = parse_endpoint(to);
  if (!client || !frontend || (q.protocol != "tcp" && q.protocol != "udp")) return std::nullopt;
  if (client->v4 != frontend->v4) {
    problem = "the client and the VIP must be of one address family";
    return std::nullopt;
  }
  q.client = *client;
  q.frontend = *frontend;
  return q;
}

std::string query_of(const Question& q) {
  return "/api/v1/trace?client=" + escape_segment(q.client.address) + "&client_port=" + std::to_string(q.client.port) +
         "&frontend=" + escape_segment(q.frontend.address) + "&port=" + std::to_string(q.frontend.port) +
         "&protocol=" + q.protocol;
}

std::string conntrack_text(const json& t) {
  const json& ct = t.contains("conntrack") ? t["conntrack"] : json();
  if (!ct.is_object()) return "no entry";
  return text(ct, "backend") + ", last seen " + std::to_string(ct.value("idle_ms", uint64_t{0}) / 1000) + " s ago";
}

void print_trace(std::ostream& out, const Question& q, const json& t) {
  const std::string backend = text(t, "backend");
  out << "Flow:       " << host_port(q.client.address, q.client.port) << " -> "
      << host_port(q.frontend.address, q.frontend.port) << "/" << q.protocol << "\n"
      << "Service:    " << (text(t, "service").empty() ? "none" : text(t, "service")) << "\n"
      << "Backend:    " << (backend.empty() ? "none" : backend) << "\n"
      << "Decided by: " << text(t, "verdict") << "\n"
      << "Why:        " << text(t, "why") << "\n";
  if (text(t, "verdict") != "not_a_frontend") out << "Conntrack:  " << conntrack_text(t) << "\n";
}

}  // namespace

int trace(const Context& ctx, const Args& args) {
  std::string problem;
  const auto question = parse_question(args, problem);
  if (!question) return usage_error(ctx, "trace", problem);
  const auto body = get_json(ctx, query_of(*question));
  if (!body.ok()) return report(ctx, body.failure());
  if (ctx.output == Output::json)
    print_json(ctx, *body);
  else
    print_trace(ctx.out, *question, *body);
  // The packet reaches no backend: "no" for a script.
  return text(*body, "backend").empty() ? kExitFailed : kExitOk;
}

}  // namespace xlb::ctl

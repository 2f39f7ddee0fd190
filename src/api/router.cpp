#include "api/router.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <optional>

#include "advise/measured.h"
#include "api/advice_view.h"
#include "api/metrics.h"
#include "api/token.h"
#include "api/uri.h"
#include "api/views.h"
#include "api/web_assets.h"

namespace xlb::api {

namespace {

using nlohmann::json;
using Path = std::vector<std::string>;

// Strings from config or Kubernetes may hold any bytes: invalid UTF-8 becomes U+FFFD rather than
// an exception halfway through a response.
std::string dump(const json& body) { return body.dump(-1, ' ', false, json::error_handler_t::replace); }

Response json_response(int status, const json& body) { return {status, "application/json", dump(body), {}}; }

Response error(int status, const std::string& message) { return json_response(status, {{"error", message}}); }

Response not_found(const Request& request) {
  return error(404, "nothing at " + request.path +
                        "; the API is under /api/v1/ (services, node, events, revisions, drops, trace, bgp, advice)");
}

Response method_not_allowed(const Request& request, const char* allowed) {
  Response r = error(405, request.method + " is not allowed on " + request.path + "; use " + allowed);
  r.headers.emplace_back("Allow", allowed);
  return r;
}

// A query parameter as a whole number in [min, max]; `fallback` when absent.
Result<int64_t> number_param(const Request& request, std::string_view name, int64_t fallback, int64_t min,
                             int64_t max) {
  const auto text = query_value(request.query, name);
  if (!text) return fallback;
  int64_t value = 0;
  const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (ec != std::errc{} || end != text->data() + text->size() || value < min || value > max)
    return Error{std::string(name) + " must be a whole number from " + std::to_string(min) + " to " +
                 std::to_string(max) + ", not \"" + *text + "\""};
  return value;
}

// The optional JSON body of a write: {"by": "alice", "reason": "kernel upgrade"}.
Result<Actor> actor_of(const Request& request) {
  const std::string who = "api client " + request.remote_address;
  if (std::all_of(request.body.begin(), request.body.end(), [](unsigned char c) { return std::isspace(c); }))
    return Actor{who, ""};
  const json body = json::parse(request.body, nullptr, /*allow_exceptions=*/false);
  const std::string shape = "{\"by\": NAME, \"reason\": TEXT}";
  if (body.is_discarded()) return Error{"the request body is not valid JSON; send " + shape + " or nothing"};
  if (!body.is_object()) return Error{"the request body must be a JSON object like " + shape};
  Actor actor{who, ""};
  for (const auto& [key, value] : body.items()) {
    if (key != "by" && key != "reason")
      return Error{"unknown key \"" + key + "\" in the request body; known: by, reason"};
    if (!value.is_string() || value.get_ref<const std::string&>().size() > 200)
      return Error{"\"" + key + "\" must be a string of at most 200 characters"};
    const auto& text = value.get_ref<const std::string&>();
    if (key == "by" && !text.empty()) actor.who = text + " (" + request.remote_address + ")";
    if (key == "reason") actor.reason = text;
  }
  return actor;
}

int status_of(Outcome::Code code) {
  switch (code) {
    case Outcome::Code::done: return 200;
    case Outcome::Code::not_found: return 404;
    case Outcome::Code::rejected: return 409;
    case Outcome::Code::failed: return 500;
  }
  return 500;
}

Response outcome_response(const Outcome& outcome, json body) {
  if (outcome.code != Outcome::Code::done) return error(status_of(outcome.code), outcome.message);
  body["message"] = outcome.message;
  body["revision"] = outcome.revision;
  return json_response(200, body);
}

std::string local_hostname() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "";
  return name;
}

std::string lowercase(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// What a path names; the method is checked after.
Target target_of(const Path& p) {
  if (p.empty()) return Target::file;  // "/" is index.html
  if (p.size() == 1) {
    if (p[0] == "healthz") return Target::healthz;
    if (p[0] == "metrics") return Target::metrics;
    return find_web_asset(p[0]) ? Target::file : Target::none;
  }
  if (p.size() < 3 || p[0] != "api" || p[1] != "v1") return Target::none;
  if (p.size() == 3) {
    if (p[2] == "node") return Target::node;
    if (p[2] == "services") return Target::services;
    if (p[2] == "revisions") return Target::revisions;
    if (p[2] == "events") return Target::events;
    if (p[2] == "drops") return Target::drops;
    if (p[2] == "trace") return Target::trace;
    if (p[2] == "reload") return Target::reload;
    if (p[2] == "bgp") return Target::bgp;
    if (p[2] == "advice") return Target::advice;
    return Target::none;
  }
  if (p[2] != "services") return Target::none;
  if (p.size() == 4) return Target::service;
  if (p.size() == 7 && p[4] == "backends") {
    if (p[6] == "drain") return Target::drain;
    if (p[6] == "undrain") return Target::undrain;
  }
  return Target::none;
}

}  // namespace

Router::Router(Provider& provider, std::string token, const ServerConfig& config, const Logger& log,
               std::filesystem::path state_dir)
    : provider_(provider),
      token_(std::move(token)),
      config_(config),
      log_(log),
      hostname_(lowercase(local_hostname())),
      state_dir_(std::move(state_dir)),
      write_limiter_(config.write_burst, config.writes_per_second) {}

Response Router::handle(const Request& request) {
  if (request.path.size() > kMaxPathLength)
    return error(414, "the request path is longer than " + std::to_string(kMaxPathLength) + " bytes");
  if (!host_allowed(request.host))
    return error(421, "Host \"" + request.host +
                          "\" is not this node; open the dashboard by IP address, localhost or the node's name "
                          "(other names are refused against DNS rebinding)");
  if (request.body_too_large)
    return error(413, "the request body is larger than " + std::to_string(config_.max_body) + " bytes");
  const auto path = split_path(request.path);
  if (!path) return not_found(request);
  return route(request, *path);
}

// DNS rebinding: a web page on another origin whose name resolves to 127.0.0.1 would otherwise
// read the API as if it were same-origin. Its requests carry its own name in Host.
bool Router::host_allowed(const std::string& host) const {
  if (host.empty()) return true;  // HTTP/1.0 clients, curl --http1.0 -H 'Host:'
  std::string name = lowercase(host);
  if (name.front() == '[') return name.find(']') != std::string::npos;  // an IPv6 literal
  name = name.substr(0, name.find(':'));
  if (model::IpAddress::parse(name).ok() || name == "localhost") return true;
  return !hostname_.empty() && (name == hostname_ || name.starts_with(hostname_ + "."));
}

Response Router::route(const Request& request, const Path& path) {
  const Target target = target_of(path);
  if (target == Target::none) return not_found(request);
  const bool writes = target == Target::drain || target == Target::undrain || target == Target::reload;
  const bool method_ok = writes ? request.method == "POST" : request.method == "GET" || request.method == "HEAD";
  if (!method_ok) return method_not_allowed(request, writes ? "POST" : "GET");
  if (writes) return write(request, target, path);
  switch (target) {
    case Target::node: return node();
    case Target::advice: return advice();
    case Target::services: return services();
    case Target::service: return service(path[3]);
    case Target::revisions: return revisions(request);
    case Target::events: return events(request);
    case Target::drops: return drops(request);
    case Target::trace: return trace(request);
    case Target::bgp: return json_response(200, to_json(provider_.snapshot().bgp));
    case Target::healthz: return {200, "text/plain; charset=utf-8", "ok\n", {}};
    case Target::metrics:
      return {200, "text/plain; version=0.0.4; charset=utf-8", render_metrics(provider_.snapshot()), {}};
    default: return static_file(path.empty() ? "index.html" : path[0]);
  }
}

Response Router::write(const Request& request, Target target, const Path& path) {
  // Limit before checking the token, so that guessing it is as slow as writing.
  if (!write_limiter_.allow(request.remote_address)) {
    Response r = error(429, "too many writes from " + request.remote_address + "; wait a second and retry");
    r.headers.emplace_back("Retry-After", "1");
    return r;
  }
  if (!bearer_matches(request.authorization, token_)) {
    log_.warning("api: refused " + request.method + " " + request.path + " from " + request.remote_address +
                 ": missing or wrong token");
    Response r = error(401, "writes need \"Authorization: Bearer TOKEN\" with the token from api.token in "
                            "xlbd's state directory (/var/lib/xlb/api.token by default)");
    r.headers.emplace_back("WWW-Authenticate", "Bearer");
    return r;
  }
  if (target == Target::reload) return reload(request);
  return drain(request, path[3], path[5], target == Target::drain);
}

Response Router::node() { return json_response(200, node_json(provider_.snapshot())); }

Response Router::advice() {
  return json_response(200, advice_json(provider_.snapshot(), state_dir_ / advise::kSavedFile));
}

Response Router::services() { return json_response(200, services_json(provider_.snapshot())); }

Response Router::service(const std::string& name) {
  const Snapshot snapshot = provider_.snapshot();
  for (const auto& v : snapshot.services)
    if (v.service.name == name) return json_response(200, service_json(snapshot, v));
  return error(404, "no service named \"" + name + "\"; GET /api/v1/services lists them");
}

Response Router::revisions(const Request& request) {
  auto limit = number_param(request, "limit", 50, 1, 500);
  if (!limit) return error(400, limit.error().message);
  auto list = provider_.revisions(static_cast<size_t>(*limit));
  if (!list) return error(500, "cannot read revisions: " + list.error().message);
  json out = json::array();
  for (const auto& r : *list) out.push_back(to_json(r));
  return json_response(200, {{"revisions", std::move(out)}});
}

Response Router::events(const Request& request) {
  auto limit = number_param(request, "limit", 100, 1, 1000);
  auto after = number_param(request, "after", 0, 0, INT64_MAX);
  auto wait = number_param(request, "wait", 0, 0, config_.max_wait.count());
  for (const auto* p : {&limit, &after, &wait})
    if (!*p) return error(400, p->error().message);

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(*wait);
  auto list = provider_.events(static_cast<size_t>(*limit), *after);
  while (list && list->empty() && wait_a_little(deadline))
    list = provider_.events(static_cast<size_t>(*limit), *after);
  if (!list) return error(500, "cannot read events: " + list.error().message);

  json out = json::array();
  int64_t last_id = *after;
  for (const auto& e : *list) {
    out.push_back(to_json(e));
    last_id = std::max(last_id, e.id);
  }
  return json_response(200, {{"events", std::move(out)}, {"last_id", last_id}});
}

Response Router::drops(const Request& request) {
  auto limit = number_param(request, "limit", 100, 1, 1000);
  auto after = number_param(request, "after", 0, 0, INT64_MAX);
  auto wait = number_param(request, "wait", 0, 0, config_.max_wait.count());
  for (const auto* p : {&limit, &after, &wait})
    if (!*p) return error(400, p->error().message);

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(*wait);
  auto view = provider_.drops(static_cast<size_t>(*limit), *after);
  while (view && view->drops.empty() && wait_a_little(deadline)) view = provider_.drops(static_cast<size_t>(*limit), *after);
  if (!view) return error(500, "cannot read drops: " + view.error().message);
  return json_response(200, to_json(*view));
}

namespace {

// The flow of a trace request: client, client_port, frontend, port, protocol (tcp or udp).
Result<FlowQuery> flow_query(const Request& request) {
  const std::string shape = "client=ADDRESS&client_port=PORT&frontend=ADDRESS&port=PORT&protocol=tcp|udp";
  FlowQuery q;
  for (auto [name, address] : {std::pair{"client", &q.client}, std::pair{"frontend", &q.frontend}}) {
    const auto text = query_value(request.query, name);
    if (!text) return Error{"missing " + std::string(name) + "; send " + shape};
    auto parsed = model::IpAddress::parse(*text);
    if (!parsed) return Error{std::string(name) + ": " + parsed.error().message};
    *address = *parsed;
  }
  if (q.client.family() != q.frontend.family())
    return Error{"client and frontend must be of one address family (xlb balances within a family)"};
  for (auto [name, port] : {std::pair{"client_port", &q.client_port}, std::pair{"port", &q.frontend_port}}) {
    if (!query_value(request.query, name)) return Error{"missing " + std::string(name) + "; send " + shape};
    auto value = number_param(request, name, 0, 1, 65535);
    if (!value) return value.error();
    *port = static_cast<uint16_t>(*value);
  }
  const auto protocol = model::parse_protocol(query_value(request.query, "protocol").value_or("tcp"));
  if (!protocol) return Error{"protocol must be tcp or udp"};
  q.protocol = *protocol;
  return q;
}

}  // namespace

Response Router::trace(const Request& request) {
  auto query = flow_query(request);
  if (!query) return error(400, query.error().message);
  auto view = provider_.trace(*query);
  if (!view) return error(500, "cannot trace: " + view.error().message);
  return json_response(200, to_json(*view));
}

bool Router::wait_a_little(std::chrono::steady_clock::time_point deadline) {
  // Neither store events nor drops notify: a waiting poll looks again twice a second.
  constexpr auto kRecheck = std::chrono::milliseconds(500);
  std::unique_lock lock(wait_mutex_);
  if (stopping_ || std::chrono::steady_clock::now() >= deadline) return false;
  // Long polls may hold half the workers at most; the others stay free for everything else.
  if (waiting_ >= std::max(1, config_.threads / 2)) return false;
  ++waiting_;
  wake_.wait_until(lock, std::min(deadline, std::chrono::steady_clock::now() + kRecheck), [&] { return stopping_; });
  --waiting_;
  return !stopping_;
}

void Router::stop() {
  {
    std::lock_guard lock(wait_mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
}

Response Router::drain(const Request& request, const std::string& service, const std::string& backend, bool drained) {
  auto actor = actor_of(request);
  if (!actor) return error(400, actor.error().message);
  const Outcome outcome = provider_.set_drained(service, backend, drained, *actor);
  log_.info("api: " + std::string(drained ? "drain" : "undrain") + " of " + service + " backend " + backend + " by " +
            actor->who + ": " + outcome.message);
  return outcome_response(outcome, {{"service", service}, {"backend", backend}, {"drained", drained}});
}

Response Router::reload(const Request& request) {
  auto actor = actor_of(request);
  if (!actor) return error(400, actor.error().message);
  const Outcome outcome = provider_.reload(*actor);
  log_.info("api: reload by " + actor->who + ": " + outcome.message);
  return outcome_response(outcome, json::object());
}

Response Router::static_file(const std::string& name) {
  const WebAsset* asset = find_web_asset(name);
  return {200, std::string(content_type_of(name)), std::string(asset->body()), {}};
}

}  // namespace xlb::api

#include "api/server.h"

#include <civetweb.h>

#include <array>

#include "api/router.h"
#include "api/token.h"

namespace xlb::api {

namespace {

// Sent with every response. The UI loads nothing from elsewhere and runs no inline script, so a
// value that slipped into the page as markup still could not run.
constexpr std::array<std::pair<const char*, const char*>, 5> kSecurityHeaders{{
    {"Content-Security-Policy",
     "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
     "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"},
    {"X-Content-Type-Options", "nosniff"},
    {"X-Frame-Options", "DENY"},
    {"Referrer-Policy", "no-referrer"},
    {"Cache-Control", "no-store"},
}};

const char* header_or_empty(const mg_connection* conn, const char* name) {
  const char* value = mg_get_header(conn, name);
  return value ? value : "";
}

// Reads the body unless it is over the limit; an over-long body is left unread and the
// connection closed after the answer, so its rest is never taken for a next request.
void read_body(mg_connection* conn, long long declared, size_t limit, Request& request) {
  if (declared > static_cast<long long>(limit)) {
    request.body_too_large = true;
    return;
  }
  char chunk[8192];
  for (int n; (n = mg_read(conn, chunk, sizeof chunk)) > 0;) {
    if (request.body.size() + static_cast<size_t>(n) > limit) {
      request.body_too_large = true;
      request.body.clear();
      return;
    }
    request.body.append(chunk, static_cast<size_t>(n));
  }
}

Request request_of(mg_connection* conn, size_t max_body) {
  const mg_request_info* ri = mg_get_request_info(conn);
  Request r;
  r.method = ri->request_method ? ri->request_method : "";
  r.path = ri->local_uri_raw ? ri->local_uri_raw : "";
  r.query = ri->query_string ? ri->query_string : "";
  r.remote_address = ri->remote_addr;
  r.host = header_or_empty(conn, "Host");
  r.authorization = header_or_empty(conn, "Authorization");
  read_body(conn, ri->content_length, max_body, r);
  return r;
}

void send(mg_connection* conn, const Request& request, const Response& response) {
  if (request.body_too_large) mg_disable_connection_keep_alive(conn);
  mg_response_header_start(conn, response.status);
  mg_response_header_add(conn, "Content-Type", response.content_type.c_str(), -1);
  mg_response_header_add(conn, "Content-Length", std::to_string(response.body.size()).c_str(), -1);
  for (const auto& [name, value] : kSecurityHeaders) mg_response_header_add(conn, name, value, -1);
  for (const auto& [name, value] : response.headers) mg_response_header_add(conn, name.c_str(), value.c_str(), -1);
  mg_response_header_send(conn);
  if (request.method != "HEAD") mg_write(conn, response.body.data(), response.body.size());
}

// The listen address ADDRESS:PORT in civetweb's terms, checked strictly: civetweb reads more into
// it (lists, "s" for TLS, "r" for redirects) than a person who wrote ADDRESS:PORT meant.
Result<std::string> listening_ports(const std::string& listen) {
  const auto colon = listen.rfind(':');
  const std::string host = colon == std::string::npos ? "" : listen.substr(0, colon);
  const std::string port = colon == std::string::npos ? "" : listen.substr(colon + 1);
  const bool port_ok = !port.empty() && port.size() <= 5 &&
                       port.find_first_not_of("0123456789") == std::string::npos && std::stoi(port) <= 65535;
  if (host.starts_with("[") && host.ends_with("]")) {
    if (!mg_check_feature(MG_FEATURES_IPV6))
      return Error{"api: cannot listen on " + listen + ": this build of civetweb has no IPv6 support; " +
                   "set [api] listen to an IPv4 address such as 127.0.0.1:9180"};
    auto address = model::IpAddress::parse(host.substr(1, host.size() - 2));
    if (address && !address->is_v4() && port_ok) return "[" + address->to_string() + "]:" + port;
  }
  auto address = model::IpAddress::parse(host);
  if (!address || !address->is_v4() || !port_ok)
    return Error{"api: listen must be IPV4:PORT or [IPV6]:PORT, such as 127.0.0.1:9180, not \"" + listen + "\""};
  return address->to_string() + ":" + port;
}

}  // namespace

// civetweb's context: started in start(), stopped (waiting for its threads) in the destructor.
class Civetweb {
 public:
  Civetweb(Router& router, size_t max_body, const Logger& log) : router_(router), max_body_(max_body), log_(log) {
    mg_init_library(0);
  }
  ~Civetweb() {
    if (context_) mg_stop(context_);
    mg_exit_library();
  }
  Civetweb(const Civetweb&) = delete;
  Civetweb& operator=(const Civetweb&) = delete;

  Status start(const std::string& ports, int threads) {
    const std::string thread_count = std::to_string(threads);
    const char* options[] = {
        "listening_ports", ports.c_str(),
        "num_threads", thread_count.c_str(),
        // Paths reach the router as sent, so that it decodes each segment on its own ("a%2Fb").
        "decode_url", "no",
        "request_timeout_ms", "10000",  // a slow client holds a worker this long at most
        "enable_keep_alive", "yes",
        "keep_alive_timeout_ms", "5000",
        // No CORS: civetweb answers preflights and adds Access-Control-* headers unless these are
        // empty; empty, an OPTIONS request reaches the router like any other (and gets 405).
        "access_control_allow_origin", "",
        "access_control_allow_methods", "",
        "access_control_allow_headers", "",
        // No document_root: civetweb serves no file; every answer comes from the router.
        nullptr};
    mg_callbacks callbacks{};
    callbacks.log_message = &Civetweb::log_message;
    mg_init_data init{&callbacks, this, options};
    char text[256] = "";
    unsigned code = 0;
    mg_error_data error{&code, text, sizeof text};
    context_ = mg_start2(&init, &error);
    if (!context_) return Error{"api: cannot listen on " + ports + ": " + text};
    mg_set_request_handler(context_, "/", &Civetweb::handle, this);
    return {};
  }

  uint16_t port() const {
    mg_server_port ports[4] = {};
    const int n = mg_get_server_ports(context_, 4, ports);
    return n > 0 ? static_cast<uint16_t>(ports[0].port) : 0;
  }

 private:
  static int handle(mg_connection* conn, void* self_ptr) {
    auto* self = static_cast<Civetweb*>(self_ptr);
    const Request request = request_of(conn, self->max_body_);
    const Response response = self->router_.handle(request);
    if (response.status >= 500)
      self->log_.warning("api: " + request.method + " " + request.path + ": " + std::to_string(response.status) +
                         " " + response.body);
    send(conn, request, response);
    return response.status;
  }

  static int log_message(const mg_connection* conn, const char* message) {
    const mg_context* context = conn ? mg_get_context(conn) : nullptr;
    if (!context) return 0;
    static_cast<Civetweb*>(mg_get_user_data(context))->log_.warning(std::string("api: civetweb: ") + message);
    return 1;
  }

  Router& router_;
  const size_t max_body_;
  const Logger& log_;
  mg_context* context_ = nullptr;
};

Result<std::unique_ptr<Server>> Server::start(const ServerConfig& config, Provider& provider,
                                              const std::filesystem::path& state_dir, const Logger& log) {
  auto ports = listening_ports(config.listen);
  if (!ports) return ports.error();
  auto token = load_or_create_token(state_dir / "api.token", log);
  if (!token) return Error{"api: " + token.error().message};

  std::unique_ptr<Server> server(new Server());
  server->router_ = std::make_unique<Router>(provider, std::move(*token), config, log, state_dir);
  server->civetweb_ = std::make_unique<Civetweb>(*server->router_, config.max_body, log);
  if (auto s = server->civetweb_->start(*ports, config.threads); !s) return s.error();
  server->host_ = config.listen.substr(0, config.listen.rfind(':'));
  server->port_ = server->civetweb_->port();
  return server;
}

Server::~Server() {
  if (router_) router_->stop();
  civetweb_.reset();
}

std::string Server::url() const { return "http://" + host_ + ":" + std::to_string(port_) + "/"; }

}  // namespace xlb::api

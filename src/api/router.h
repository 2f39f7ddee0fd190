// Everything the server does with a request, free of civetweb: the civetweb glue (server.cpp)
// turns a connection into a Request, and writes the Response back.
#pragma once

#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "api/provider.h"
#include "api/rate_limiter.h"
#include "api/server.h"
#include "base/log.h"

namespace xlb::api {

struct Request {
  std::string method;
  std::string path;   // as sent: not decoded, without the query
  std::string query;  // after "?", not decoded
  std::string remote_address;
  std::string host;           // the Host header, or empty
  std::string authorization;  // the Authorization header, or empty
  std::string body;
  bool body_too_large = false;  // the body was over ServerConfig::max_body and was not read
};

// What a request path names.
enum class Target {
  none, node, services, service, revisions, events, drops, trace, drain, undrain, reload, healthz, metrics, file, bgp, advice
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // beyond Content-Type and the security set
};

class Router {
 public:
  // `state_dir`: xlbd's, where `xlbctl advise --measure` leaves what it measured (advise.json).
  Router(Provider& provider, std::string token, const ServerConfig& config, const Logger& log,
         std::filesystem::path state_dir = {});

  // Thread-safe; blocks only for a long poll of /api/v1/events or /api/v1/drops.
  Response handle(const Request& request);
  // Ends every long poll now and every later one at once, so that the server can stop.
  void stop();

  // Longest request path answered; longer ones get 414.
  static constexpr size_t kMaxPathLength = 2048;

 private:
  Response route(const Request& request, const std::vector<std::string>& path);
  Response write(const Request& request, Target target, const std::vector<std::string>& path);
  Response node();
  Response advice();
  Response services();
  Response service(const std::string& name);
  Response revisions(const Request& request);
  Response events(const Request& request);
  Response drops(const Request& request);
  Response trace(const Request& request);
  Response drain(const Request& request, const std::string& service, const std::string& backend, bool drained);
  Response reload(const Request& request);
  Response static_file(const std::string& name);
  bool host_allowed(const std::string& host) const;
  // Waits until `woken` or the deadline; false once the router stops.
  bool wait_a_little(std::chrono::steady_clock::time_point deadline);

  Provider& provider_;
  const std::string token_;
  const ServerConfig config_;
  const Logger& log_;
  const std::string hostname_;
  const std::filesystem::path state_dir_;
  RateLimiter write_limiter_;

  std::mutex wait_mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  int waiting_ = 0;  // long polls in progress; capped so that they never take every worker
};

}  // namespace xlb::api

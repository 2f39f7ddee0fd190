// The HTTP server of the REST API (/api/v1/...), /metrics, /healthz and the web UI, on civetweb.
//
//   GET  /api/v1/node                 node, datapath, totals, drops by reason
//   GET  /api/v1/services             every service with rings, shares and counters
//   GET  /api/v1/services/{name}      one service
//   GET  /api/v1/revisions?limit=N    applied revisions, newest first, with their changes
//   GET  /api/v1/events?after=ID&wait=S&limit=N
//                                     events above ID, oldest first; with wait=S (at most 25) the
//                                     request is held until one arrives or S seconds pass (long poll)
//   POST /api/v1/services/{name}/backends/{address}:{port}/drain    (and /undrain)
//   POST /api/v1/reload
//   GET  /metrics                     Prometheus text
//   GET  /healthz                     "ok"
//   GET  /, /{file}                   the web UI
//
// Names in paths are percent-decoded segment by segment, so a service named "a/b" is
// /api/v1/services/a%2Fb. Reading needs nothing; a POST needs "Authorization: Bearer TOKEN" with
// the token in STATE_DIR/api.token (created 0600 at the first start, kept after). Errors are JSON
// {"error": "..."} with a 4xx or 5xx status. No CORS headers are sent: other origins cannot read.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "api/provider.h"
#include "base/log.h"
#include "base/result.h"

namespace xlb::api {

struct ServerConfig {
  std::string listen = "127.0.0.1:9180";  // IPV4:PORT; port 0 picks a free one (see Server::port)
  int threads = 8;                         // civetweb workers; long polls hold one each
  size_t max_body = 64 * 1024;             // larger request bodies get 413
  // Writes per client address: a burst, then a steady rate. Failed writes count too, so the token
  // cannot be guessed quickly.
  double write_burst = 10;
  double writes_per_second = 1;
  std::chrono::seconds max_wait{25};  // longest long poll of /api/v1/events
};

class Router;
class Civetweb;

class Server {
 public:
  // Reads or creates the token, then listens. Errors say what to change (address taken, ...).
  static Result<std::unique_ptr<Server>> start(const ServerConfig& config, Provider& provider,
                                               const std::filesystem::path& state_dir, const Logger& log);
  // Wakes long polls, then stops civetweb and waits for its threads.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  uint16_t port() const { return port_; }
  // "http://127.0.0.1:9180/"
  std::string url() const;

 private:
  Server() = default;

  std::string host_;
  uint16_t port_ = 0;
  std::unique_ptr<Router> router_;     // outlives civetweb_, whose threads call it
  std::unique_ptr<Civetweb> civetweb_;
};

}  // namespace xlb::api

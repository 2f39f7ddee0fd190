// Active health probes: is each backend answering? One thread runs every probe from one event
// loop (non-blocking sockets + epoll + timers), so thousands of backends need one thread, not
// thousands. The checker knows sockets and the model, nothing of the engine: it reports each
// transition (up/down, with a reason a person can read) through a callback.
//
// A backend starts "unknown": it is reported up after `rise` probes in a row succeed and down
// after `fall` probes in a row fail, and again at every change after that. Nothing is persisted:
// a restarted xlbd probes again from unknown.
//
// Latency (services with a slow_factor): each up backend's probe time is averaged (EWMA); one
// whose average is above slow_factor x the median of its peers' (and at least 5 ms above it:
// sub-millisecond noise is no overload) is reported slow, and recovered once under half that.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "model/model.h"

namespace xlb::health {

// One backend of one service, and how to probe it.
struct Target {
  std::string service;
  std::string backend;  // the backend's key, "10.0.1.2:8080"
  model::IpAddress address;
  uint16_t port = 0;
  model::HealthCheckType type = model::HealthCheckType::tcp;  // tcp, http, https or udp
  std::chrono::milliseconds interval{2000};
  std::chrono::milliseconds timeout{1000};
  int rise = 2;
  int fall = 3;
  std::string http_path = "/";
  uint16_t expect_status = 0;  // 0: any 2xx or 3xx
  uint32_t slow_factor = 0;  // see model::HealthCheck; 0: latency is not judged

  bool operator==(const Target&) const = default;
};

// The probes of every backend of every service that asks for them (health type tcp, http, https
// or udp). https probes do not verify the backend's certificate: they ask whether it answers, as
// load balancers' TLS checks commonly do, not who it is. A udp probe sends one datagram
// ("xlb-health\n"): any answer is up; an ICMP port unreachable, or silence, is down.
std::vector<Target> targets_of(const model::Catalog& catalog);

// up/down: the backend answers or not. slow/recovered: it answers, but its probes take far
// longer than its peers' (latency awareness), or no longer do.
enum class Change : uint8_t { up, down, slow, recovered };
std::string_view to_string(Change);

struct Transition {
  std::string service;
  std::string backend;
  Change change = Change::down;
  std::string reason;  // "connection refused", "timeout after 1000 ms", "HTTP 503", "HTTP 200",
                       // "probes take 103.2 ms, peers' median 0.4 ms", ...
};

// Called on the checker's thread, with no lock of the checker held: it may block (take the
// daemon's state lock, write the store) and may call set_targets(). While it runs no probe
// advances, so it should not take long.
using Callback = std::function<void(const Transition&)>;

class Checker {
 public:
  // Starts the probe thread (with no targets yet).
  static Result<std::unique_ptr<Checker>> start(Callback on_transition);
  // Stops and joins the thread; open probe sockets are closed.
  ~Checker();
  Checker(const Checker&) = delete;
  Checker& operator=(const Checker&) = delete;

  // Replaces the set of probed backends. A target equal to one already probed keeps its state
  // and counters (a reload that changes nothing about it disturbs nothing); a new or changed
  // one starts unknown and is probed at once. Thread-safe; does not wait for the thread.
  void set_targets(std::vector<Target> targets);

 private:
  struct Impl;  // the loop and its state (health.cpp)
  explicit Checker(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace xlb::health

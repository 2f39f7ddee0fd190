// Active health probes: is each backend answering? One thread runs every probe from one event
// loop (non-blocking sockets + epoll + timers), so thousands of backends need one thread, not
// thousands. The checker knows sockets and the model, nothing of the engine: it reports each
// transition (up/down, with a reason a person can read) through a callback.
//
// A backend starts "unknown": it is reported up after `rise` probes in a row succeed and down
// after `fall` probes in a row fail, and again at every change after that. Nothing is persisted:
// a restarted xlbd probes again from unknown.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
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
  model::HealthCheckType type = model::HealthCheckType::tcp;  // tcp or http
  std::chrono::milliseconds interval{2000};
  std::chrono::milliseconds timeout{1000};
  int rise = 2;
  int fall = 3;
  std::string http_path = "/";

  bool operator==(const Target&) const = default;
};

// The probes of every backend of every service that asks for them (health type tcp or http).
std::vector<Target> targets_of(const model::Catalog& catalog);

struct Transition {
  std::string service;
  std::string backend;
  bool up = false;
  std::string reason;  // "connection refused", "timeout after 1000 ms", "HTTP 503", "HTTP 200", ...
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

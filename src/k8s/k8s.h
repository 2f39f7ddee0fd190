// The Kubernetes source: watches Services and EndpointSlices on the API server and hands the
// engine, after each burst of changes, what changed: the model services of the Service objects
// that a change touched (themselves or their EndpointSlices), translated again. After a (re)list
// it hands over the whole catalog. While the API server cannot be reached nothing is handed
// over, so the datapath keeps the last known good state; status() says it is stale.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/log.h"
#include "base/result.h"
#include "k8s/kubeconfig.h"
#include "k8s/reflector.h"
#include "k8s/translate.h"

namespace xlb::k8s {

struct SourceSettings {
  TranslateOptions translate;
  ReflectorSettings reflector;
  // A change after `quiet` without any is published at once. Those that follow it within
  // `quiet` are a burst, published once nothing new came for `quiet`, or `max_delay` after the
  // burst's first change, whichever is first.
  std::chrono::milliseconds quiet{20};
  std::chrono::milliseconds max_delay{250};
};

struct Publication {
  bool whole = true;             // after a (re)list: `catalog` is everything this source gives
  model::Catalog catalog;        // when whole
  model::CatalogChanges changes; // when not: services added or changed, names removed
  std::vector<Skipped> skipped;  // all objects or ports left out now, with the reason
  std::chrono::steady_clock::time_point first_change;  // when the oldest change in it arrived
};

struct SourceStatus {
  bool synced = false;   // both kinds listed at least once: the catalog is complete
  bool healthy = false;  // the API server answers now
  bool stale() const { return !synced || !healthy; }
  std::string error;     // the last failure, while unhealthy
  std::chrono::system_clock::time_point last_publish{};
  std::string server;
  size_t services = 0;
  size_t endpoint_slices = 0;
  std::vector<Skipped> skipped;  // of the last publication, plus objects that did not parse
  uint64_t publications = 0;
};

class Source {
 public:
  using Publish = std::function<void(Publication)>;

  // Starts watching at once; `publish` is called from the source's own thread.
  Source(Credentials credentials, SourceSettings settings, Publish publish, const Logger& log);
  ~Source();  // stops the watches and joins the threads
  Source(const Source&) = delete;
  Source& operator=(const Source&) = delete;

  SourceStatus status() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace xlb::k8s

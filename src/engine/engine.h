// The reconciler: owns the one current catalog and its Maglev rings, and turns every accepted
// catalog into an applied revision. Sources hand it whole catalogs; it decides what changed.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/log.h"
#include "base/result.h"
#include "datapath/state.h"
#include "engine/drains.h"
#include "engine/health_overlay.h"
#include "maglev/maglev.h"
#include "model/model.h"
#include "store/store.h"

namespace xlb::engine {

struct Plan;     // engine/plan.h
class MapBook;   // engine/plan.h
struct ServiceDelta;

struct MaglevSettings {
  std::string seed = "xlb-default-seed";
  maglev::SizeBounds bounds;
};

// A service's ring for one address family: its frontends of that family pick from it.
struct Ring {
  model::IpAddress::Family family = model::IpAddress::Family::v4;
  maglev::Table table;  // members are backend keys ("10.0.1.2:8080"); empty = no backend
};

struct ServiceState {
  model::Service service;
  std::vector<Ring> rings;      // one per family among the service's frontends
  double last_disruption = 0;   // share of ring slots that changed owner at its last change
};

// The catalog in force, by service name.
using Services = std::map<std::string, ServiceState, std::less<>>;
// The services a whole sync writes, in name order: pointers, so that a full sync of 10,000
// services with a change put in does not copy them, rings and all.
using ServiceList = std::vector<const ServiceState*>;

struct Counts {
  size_t services = 0;
  size_t frontends = 0;
  size_t backends = 0;
};

struct Applied {
  bool changed = false;
  int64_t revision = 0;  // the revision now in force
  std::string summary;   // what changed, one line
  size_t map_writes = 0; // steps the datapath needed (0 when it already held this catalog)
  std::string plan;      // those steps, summarised
};

class Engine {
 public:
  // `maps` may be null: the engine then only keeps the catalog and its history (tests, --dry-run).
  // Ends the sockets that socket-LB connected to backends that left the maps; returns how many.
  // Given every backend of a change at once: a pass costs the same for one backend or many.
  using SocketEnder = std::function<Result<uint32_t>(const std::vector<datapath::BackendEntry>&)>;

  Engine(store::Store& store, const Logger& log, MaglevSettings maglev = {}, datapath::MapWriter* maps = nullptr,
         SocketEnder end_sockets = {});
  ~Engine();
  Engine(Engine&&) noexcept;
  Engine& operator=(Engine&&) = delete;

  // Takes up the last applied catalog from the store, so the first apply after a restart
  // records only what really changed while xlbd was down.
  Status restore();

  // Applies a validated catalog: brings the maps to it (also when the catalog is unchanged but
  // the maps are not, as after a crash), and records a revision when the catalog changed.
  // Nothing is written or recorded if any service's rings cannot be built.
  // The operator's drains (drains.h) are laid over the catalog first.
  Result<Applied> apply(const model::Catalog& catalog, std::string_view source);
  // Applies a change to the catalog last applied: only the services it names are compared,
  // rebuilt, planned and recorded, so its cost follows the change, not the catalog. The caller
  // keeps the catalog valid (as a whole catalog is validated before apply()); a frontend that
  // another service already has is refused. Needs a catalog applied before.
  Result<Applied> apply_changes(const model::CatalogChanges& changes, std::string_view source);

  // Drains or undrains one backend ("10.0.1.2:8080") of a service, saves that, and applies the
  // last source catalog again with it. On error the saved drains stay as they were, and the
  // catalog in force is as apply() leaves it on error.
  // Needs a catalog applied before (restore() alone is not enough: it knows no source catalog).
  Result<Applied> set_drained(std::string_view service, std::string_view backend, bool drained,
                              std::string_view source);
  const Drains& drains() const { return drains_; }

  // Health (health overlay, see health_overlay.h): marks a backend of a service down (its probes
  // fail) or up again, applies the last source catalog with that as one plan, and records an
  // event (kind "health", subject "service/backend") with the reason and the share of ring slots
  // that moved. Nothing happens (changed = false, no event) when the backend already was so.
  // Needs a catalog applied before, like set_drained().
  Result<Applied> set_health(std::string_view service, std::string_view backend, bool up, std::string_view reason);
  // Latency awareness (health_overlay.h): a slow backend gets a smaller share of new flows, or
  // its full share again; recorded like set_health (event kind "health").
  Result<Applied> set_slow(std::string_view service, std::string_view backend, bool slow, std::string_view reason);
  const HealthOverlay& health() const { return health_; }

  // The catalog in force (drains and health laid over), by service name.
  const Services& services() const { return services_; }
  const ServiceState* find(std::string_view service) const;
  // A copy of it as a catalog, services by name: its cost follows the catalog's size.
  model::Catalog catalog() const;
  Counts counts() const { return counts_; }
  int64_t revision() const { return revision_; }
  // What the engine last wrote to the maps (ids included), to name the counters the maps keep.
  const datapath::State& map_state() const;

 private:
  using Sources = std::map<std::string, model::Service, std::less<>>;

  Result<ServiceState> build_state(const model::Service& service, const ServiceState* before) const;
  // build_state of each service (with its state before, or null), in the same order; many on two
  // threads. The first error in that order.
  Result<std::vector<ServiceState>> build_states(
      const std::vector<std::pair<const model::Service*, const ServiceState*>>& services) const;
  Result<Ring> build_ring(const model::Service& service, model::IpAddress::Family family) const;
  model::Service overlay(model::Service service) const { return health_.overlay(drains_.overlay(std::move(service))); }
  void end_sockets_of_removed(const Plan& plan, const datapath::State& before) const;
  void end_sockets_to(const std::vector<datapath::BackendEntry>& backends, std::string_view why) const;
  // Applies the source service again with `next` health overlay and records the event; the
  // share of `service`'s ring slots that moved is appended to `message`.
  Result<Applied> apply_health(HealthOverlay next, std::string_view service, std::string_view backend,
                               std::string message);
  // Brings the maps to `services` from what they hold (read back when not known): a start, a
  // repair, a failed write before. Returns the plan's size and summary.
  Result<std::pair<size_t, std::string>> sync_all(const ServiceList& services);
  // Writes only what `changes` change; the maps are known.
  Result<std::pair<size_t, std::string>> sync_changes(const std::vector<ServiceDelta>& changes);
  // Records and writes these services (already overlaid) and removals, as one revision. Services
  // equal to those in force, and removals of services not there, are no change.
  Result<Applied> commit(std::vector<model::Service> upserted, const std::vector<std::string>& removed,
                         std::string_view source);
  // The services in force with `states` put in and `removed` taken out, in name order (none
  // without a datapath: they would only be synced to it).
  ServiceList services_after(const std::vector<ServiceState>& states, const std::vector<std::string>& removed) const;
  // The catalog in force with `changes` made: what a snapshot revision records.
  model::Catalog catalog_after(const std::vector<ServiceDelta>& changes) const;

  store::Store& store_;
  const Logger& log_;
  MaglevSettings maglev_;
  datapath::MapWriter* maps_;
  SocketEnder end_sockets_;
  Services services_;
  Counts counts_;
  int64_t revision_ = 0;
  std::unique_ptr<MapBook> book_;  // what the maps hold, while maps_known_
  bool maps_known_ = false;        // the book is what the maps hold (read back, or written since)
  size_t changed_since_snapshot_ = 0;  // services changed by revisions since the last snapshot
  Drains drains_;
  HealthOverlay health_;  // runtime only: a restart probes again
  Sources sources_;       // as the sources last handed them, before drains and health
  bool has_sources_ = false;
};

}  // namespace xlb::engine

// From the rings the engine wants to the map writes that get them there: the desired map
// state (with stable ids), the minimal steps from what the maps hold, and their execution in
// an order that never points a live frontend at a missing ring or backend.
#pragma once

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/result.h"
#include "datapath/state.h"
#include "engine/engine.h"

namespace xlb::engine {

struct UpsertBackend {
  datapath::BackendEntry backend;
};
struct UpsertFrontend {
  datapath::FrontendEntry frontend;
};
struct RemoveFrontend {
  datapath::FrontendKey key;
};
struct RemoveBackend {
  datapath::BackendId id;
};
using Step = std::variant<UpsertBackend, UpsertFrontend, RemoveFrontend, RemoveBackend>;

struct Plan {
  std::vector<Step> steps;

  bool empty() const { return steps.empty(); }
  // "2 backends written, 1 frontend written, 0 removed" style, for logs.
  std::string summary() const;
};

// The services in force as a ServiceList.
ServiceList list_of(const Services& services);

// The map state for these services. Ids already in `actual` are kept for the same backend
// (address and port) and the same frontend, so flows in conntrack and counters keep their
// meaning; new ones take the next free id (see IdAllocator).
Result<datapath::State> desired_state(const ServiceList& services, const datapath::State& actual);

// Only what differs: an unchanged frontend or backend is not written again. Order: backends
// written, frontends written, frontends removed, backends removed.
Plan make_plan(const datapath::State& desired, const datapath::State& actual);

// Hands out ids above the largest one taken, wrapping around below `limit`. A freed id is thus
// reused as late as possible: a flow that conntrack still pins to a removed backend's id must not
// land on an unrelated backend that took the id soon after.
class IdAllocator {
 public:
  IdAllocator(std::set<uint32_t> taken, uint32_t limit);
  Result<uint32_t> next(std::string_view what);
  void release(uint32_t id) { taken_.erase(id); }

 private:
  std::set<uint32_t> taken_;
  uint32_t limit_;
  uint32_t candidate_;
};

// One service's change, as the engine applies it: its state before (null: it is new) and after
// (null: it is removed).
struct ServiceDelta {
  const ServiceState* before = nullptr;
  const ServiceState* after = nullptr;
};

// What the maps hold, with what a change of a few services needs to be planned in time that
// follows those services, not the catalog: which services use each backend, which service owns
// each frontend, and the ids in use. desired_state + make_plan give the same result from the
// whole catalog; this is the path of every change once the maps are known.
class MapBook {
 public:
  MapBook() : MapBook(datapath::State{}, ServiceList{}) {}
  // The maps hold `state`, written for `services`.
  MapBook(datapath::State state, const ServiceList& services);

  const datapath::State& state() const { return state_; }

  // The steps for `changes`, or why there are none (a frontend that another service owns, no
  // free id). Ids are taken as the plan is made: if it is not then executed and committed, the
  // book must be made again from the maps.
  Result<Plan> plan(const std::vector<ServiceDelta>& changes);
  // The last plan() was written to the maps.
  void commit(const Plan& plan, const std::vector<ServiceDelta>& changes);

 private:
  using Users = std::map<std::string, bool, std::less<>>;  // service -> it drains the backend
  Status plan_backends(const std::vector<ServiceDelta>& changes, Plan& plan);
  Status plan_frontends(const std::vector<ServiceDelta>& changes, Plan& plan);

  datapath::State state_;
  std::map<std::string, datapath::BackendId, std::less<>> backend_ids_;  // "10.0.1.2:8080" -> id
  std::map<datapath::BackendId, Users> users_;
  std::map<datapath::FrontendKey, std::string> owners_;
  IdAllocator backend_allocator_;
  IdAllocator service_allocator_;
  // Made by plan(), recorded by commit(): the users of each backend the plan touched.
  std::map<std::string, Users, std::less<>> pending_users_;
};

// Stops at the first failure: what was written stays consistent, and the next plan, made from
// what the maps then hold, finishes the work.
Status execute(const Plan& plan, datapath::MapWriter& maps);

}  // namespace xlb::engine

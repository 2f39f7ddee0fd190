// From the rings the engine wants to the map writes that get them there: the desired map
// state (with stable ids), the minimal steps from what the maps hold, and their execution in
// an order that never points a live frontend at a missing ring or backend.
#pragma once

#include <string>
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

// The map state for these services. Ids already in `actual` are kept for the same backend
// (address and port) and the same frontend, so flows in conntrack and counters keep their
// meaning; new ones take the smallest free id.
Result<datapath::State> desired_state(const std::vector<ServiceState>& services, const datapath::State& actual);

// Only what differs: an unchanged frontend or backend is not written again. Order: backends
// written, frontends written, frontends removed, backends removed.
Plan make_plan(const datapath::State& desired, const datapath::State& actual);

// Stops at the first failure: what was written stays consistent, and the next plan, made from
// what the maps then hold, finishes the work.
Status execute(const Plan& plan, datapath::MapWriter& maps);

}  // namespace xlb::engine

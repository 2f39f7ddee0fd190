// Operator drains: backends taken out of new-flow selection by a person (through the API), on top
// of whatever the sources say. The engine lays them over every catalog it applies, and keeps them
// in the store's settings (key "drains"), so a drain outlives reloads and restarts until it is
// undrained. A drain names a service and a backend key; it stays while the backend is absent from
// the source, so a backend that leaves and comes back is still drained.
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "base/result.h"
#include "model/model.h"
#include "store/store.h"

namespace xlb::engine {

class Drains {
 public:
  static constexpr std::string_view kSettingKey = "drains";

  // The drains in the store; none when the setting is absent.
  static Result<Drains> load(store::Store& store);
  Status save(store::Store& store) const;

  bool contains(std::string_view service, std::string_view backend) const;
  // Drains or undrains; false when the backend already was so.
  bool set(std::string_view service, std::string_view backend, bool drained);

  // The catalog with every drained backend that is active marked draining: it keeps its place
  // and established flows, and takes no new ones. A backend that is down stays down.
  model::Catalog overlay(model::Catalog catalog) const;
  model::Service overlay(model::Service service) const;

 private:
  std::set<std::pair<std::string, std::string>> keys_;  // (service, backend key)
};

}  // namespace xlb::engine

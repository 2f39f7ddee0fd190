// Several sources (the config file, Kubernetes) into the one catalog the engine applies. A
// frontend or a service name that two sources claim is never resolved silently: the config
// file keeps it (the operator wrote it on this node), the other claim is left out and
// reported. Between two Kubernetes services, the one that had the frontend first keeps it.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "model/model.h"

namespace xlb::engine {

struct Merged {
  model::Catalog catalog;
  std::vector<std::string> conflicts;  // one sentence each, naming both claimants
};

struct MergedChanges {
  model::CatalogChanges changes;       // to the merged catalog
  std::vector<std::string> conflicts;  // all of them now
};

// Keeps the merged catalog's claims, so that a change of the Kubernetes source is merged in
// time that follows the change.
class SourceMerger {
 public:
  // Both sources whole. `config` is valid on its own (the config loader validated it);
  // `kubernetes` services that are not valid within the merged catalog are left out with the
  // reason.
  Merged merge(const model::Catalog& config, const model::Catalog& kubernetes);
  // A change of the Kubernetes source, after merge(): services that were left out for a
  // frontend that is now free are taken in again.
  MergedChanges change_kubernetes(const model::CatalogChanges& changes);

 private:
  using FrontendKey = std::tuple<model::IpAddress, uint16_t, model::Protocol>;

  // Takes a Kubernetes service in as far as it can; returns it as merged, or nothing.
  std::optional<model::Service> admit(model::Service service);
  void release(const std::string& name);
  std::vector<std::string> all_conflicts() const;

  std::set<std::string, std::less<>> config_names_;
  std::map<FrontendKey, std::string> claims_;  // frontend -> who has it (origin)
  std::map<std::string, model::Service, std::less<>> kubernetes_;  // as the source gives them
  std::map<std::string, std::vector<FrontendKey>, std::less<>> admitted_;  // name -> its kept frontends
  std::map<std::string, std::vector<std::string>, std::less<>> conflicts_;  // name -> its conflicts
};

// Both sources whole, once (SourceMerger::merge on a new merger).
Merged merge_sources(const model::Catalog& config, const model::Catalog& kubernetes);

}  // namespace xlb::engine

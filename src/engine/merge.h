// Several sources (the config file, Kubernetes) into the one catalog the engine applies. A
// frontend or a service name that two sources claim is never resolved silently: the config
// file keeps it (the operator wrote it on this node), the other claim is left out and
// reported.
#pragma once

#include <string>
#include <vector>

#include "model/model.h"

namespace xlb::engine {

struct Merged {
  model::Catalog catalog;
  std::vector<std::string> conflicts;  // one sentence each, naming both claimants
};

// `config` is valid on its own (the config loader validated it); `kubernetes` services that
// are not valid within the merged catalog are left out with the reason.
Merged merge_sources(const model::Catalog& config, const model::Catalog& kubernetes);

}  // namespace xlb::engine

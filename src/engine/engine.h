// The reconciler: owns the one current catalog, and turns every accepted config into an
// applied revision. Sources hand it whole catalogs; it decides what changed and records it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/log.h"
#include "base/result.h"
#include "model/model.h"
#include "store/store.h"

namespace xlb::engine {

struct Applied {
  bool changed = false;
  int64_t revision = 0;  // the revision now in force
  std::string summary;   // what changed, one line
};

class Engine {
 public:
  Engine(store::Store& store, const Logger& log) : store_(store), log_(log) {}

  // Takes up the last applied catalog from the store, so the first apply after a restart
  // records only what really changed while xlbd was down.
  Status restore();

  // Applies a validated catalog: a no-op when nothing changed, else a new revision.
  Result<Applied> apply(const model::Catalog& catalog, std::string_view source);

  const model::Catalog& catalog() const { return catalog_; }
  int64_t revision() const { return revision_; }

 private:
  store::Store& store_;
  const Logger& log_;
  model::Catalog catalog_;
  int64_t revision_ = 0;
};

}  // namespace xlb::engine

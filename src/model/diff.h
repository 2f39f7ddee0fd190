// What changed between two catalogs, for revision records, logs and the UI.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "model/model.h"

namespace xlb::model {

struct ServiceChange {
  enum class Kind { added, removed, changed };
  Kind kind;
  std::string service;
  std::vector<std::string> details;  // "+backend 10.0.1.5:80", "mode nat -> dsr", ...
  bool operator==(const ServiceChange&) const = default;
};

struct CatalogDiff {
  std::vector<ServiceChange> changes;

  bool empty() const { return changes.empty(); }
  // One line for logs and revision lists: "+web; ~api (+backend 10.0.1.5:80); -old", the first
  // ten services and then how many more.
  std::string summary() const;
};

CatalogDiff diff(const Catalog& before, const Catalog& after);
// One service's change; none when both are equal (or both absent). Null is "not there".
std::optional<ServiceChange> diff(const Service* before, const Service* after);

}  // namespace xlb::model

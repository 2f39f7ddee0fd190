// JSON form of the model (snake_case field names), shared by the store's snapshots and the API.
#pragma once

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "model/diff.h"
#include "model/model.h"

namespace xlb::model {

nlohmann::json to_json(const Frontend&);
nlohmann::json to_json(const Backend&);
nlohmann::json to_json(const Service&);
nlohmann::json to_json(const Catalog&);

nlohmann::json to_json(const CatalogChanges&);
nlohmann::json to_json(const std::vector<ServiceChange>&);

Result<Catalog> catalog_from_json(const nlohmann::json&);
Result<CatalogChanges> changes_from_json(const nlohmann::json&);
Result<std::vector<ServiceChange>> service_changes_from_json(const nlohmann::json&);

}  // namespace xlb::model

// JSON form of the model (snake_case field names), shared by the store's snapshots and the API.
#pragma once

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "model/model.h"

namespace xlb::model {

nlohmann::json to_json(const Frontend&);
nlohmann::json to_json(const Backend&);
nlohmann::json to_json(const Service&);
nlohmann::json to_json(const Catalog&);

Result<Catalog> catalog_from_json(const nlohmann::json&);

}  // namespace xlb::model

#include "engine/drains.h"

#include <nlohmann/json.hpp>

namespace xlb::engine {

using nlohmann::json;

Result<Drains> Drains::load(store::Store& store) {
  auto text = store.setting(kSettingKey);
  if (!text) return Error{"reading the drained backends: " + text.error().message};
  Drains drains;
  if (!*text) return drains;
  const json list = json::parse(**text, nullptr, /*allow_exceptions=*/false);
  const std::string damaged = "the drained backends (setting \"drains\" in the state database) are damaged: ";
  if (!list.is_array()) return Error{damaged + "not a JSON list"};
  for (const auto& entry : list) {
    if (!entry.is_object() || !entry.contains("service") || !entry.contains("backend") ||
        !entry["service"].is_string() || !entry["backend"].is_string())
      return Error{damaged + "an entry is not {\"service\": NAME, \"backend\": ADDRESS:PORT}"};
    drains.keys_.emplace(entry["service"].get<std::string>(), entry["backend"].get<std::string>());
  }
  return drains;
}

Status Drains::save(store::Store& store) const {
  json list = json::array();
  for (const auto& [service, backend] : keys_) list.push_back({{"service", service}, {"backend", backend}});
  if (auto s = store.set_setting(kSettingKey, list.dump(-1, ' ', false, json::error_handler_t::replace)); !s)
    return Error{"saving the drained backends: " + s.error().message};
  return {};
}

bool Drains::contains(std::string_view service, std::string_view backend) const {
  return keys_.contains(std::pair<std::string, std::string>(service, backend));
}

bool Drains::set(std::string_view service, std::string_view backend, bool drained) {
  std::pair<std::string, std::string> key(service, backend);
  return drained ? keys_.insert(std::move(key)).second : keys_.erase(key) > 0;
}

model::Service Drains::overlay(model::Service service) const {
  if (keys_.empty()) return service;
  for (auto& backend : service.backends)
    if (backend.state == model::BackendState::active && contains(service.name, backend.key()))
      backend.state = model::BackendState::draining;
  return service;
}

model::Catalog Drains::overlay(model::Catalog catalog) const {
  if (keys_.empty()) return catalog;
  for (auto& service : catalog.services) service = overlay(std::move(service));
  return catalog;
}

}  // namespace xlb::engine

#include "engine/health_overlay.h"

namespace xlb::engine {

bool HealthOverlay::is_down(std::string_view service, std::string_view backend) const {
  return down_.contains(std::pair<std::string, std::string>(service, backend));
}

bool HealthOverlay::set_down(std::string_view service, std::string_view backend, bool down) {
  std::pair<std::string, std::string> key(service, backend);
  return down ? down_.insert(std::move(key)).second : down_.erase(key) > 0;
}

model::Catalog HealthOverlay::overlay(model::Catalog catalog) const {
  if (down_.empty()) return catalog;
  for (auto& service : catalog.services) {
    if (service.health.type == model::HealthCheckType::none) continue;
    for (auto& backend : service.backends) {
      const bool routable =
          backend.state == model::BackendState::active || backend.state == model::BackendState::draining;
      if (routable && is_down(service.name, backend.key())) backend.state = model::BackendState::down;
    }
  }
  return catalog;
}

}  // namespace xlb::engine

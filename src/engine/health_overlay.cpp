#include "engine/health_overlay.h"

#include <algorithm>

namespace xlb::engine {

bool HealthOverlay::is_down(std::string_view service, std::string_view backend) const {
  return down_.contains(std::pair<std::string, std::string>(service, backend));
}

bool HealthOverlay::set_down(std::string_view service, std::string_view backend, bool down) {
  std::pair<std::string, std::string> key(service, backend);
  return down ? down_.insert(std::move(key)).second : down_.erase(key) > 0;
}

bool HealthOverlay::is_slow(std::string_view service, std::string_view backend) const {
  return slow_.contains(std::pair<std::string, std::string>(service, backend));
}

bool HealthOverlay::set_slow(std::string_view service, std::string_view backend, bool slow) {
  std::pair<std::string, std::string> key(service, backend);
  return slow ? slow_.insert(std::move(key)).second : slow_.erase(key) > 0;
}

namespace {

constexpr uint32_t kMaxWeight = 65535;  // as model::validate allows

}  // namespace

model::Service HealthOverlay::overlay(model::Service service) const {
  if ((down_.empty() && slow_.empty()) || service.health.type == model::HealthCheckType::none) return service;
  bool any_slow = false;
  for (auto& backend : service.backends) {
    const bool routable =
        backend.state == model::BackendState::active || backend.state == model::BackendState::draining;
    if (routable && is_down(service.name, backend.key())) backend.state = model::BackendState::down;
    any_slow = any_slow || (service.health.slow_factor > 0 && backend.state == model::BackendState::active &&
                            is_slow(service.name, backend.key()));
  }
  if (!any_slow) return service;
  for (auto& backend : service.backends)
    if (!is_slow(service.name, backend.key())) backend.weight = std::min(backend.weight * kSlowShare, kMaxWeight);
  return service;
}

model::Catalog HealthOverlay::overlay(model::Catalog catalog) const {
  if (down_.empty() && slow_.empty()) return catalog;
  for (auto& service : catalog.services) service = overlay(std::move(service));
  return catalog;
}

}  // namespace xlb::engine

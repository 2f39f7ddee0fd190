#include "engine/plan.h"

#include <map>
#include <set>
#include <utility>
#include <vector>

#include "xlb_abi.h"

namespace xlb::engine {

namespace {

using datapath::BackendId;
using datapath::ServiceId;

// Hands out ids above the largest one taken, wrapping around below `limit`. A freed id is
// thus reused as late as possible: a flow that conntrack still pins to a removed backend's id
// must not land on an unrelated backend that took the id soon after.
class IdAllocator {
 public:
  IdAllocator(std::set<uint32_t> taken, uint32_t limit)
      : taken_(std::move(taken)), limit_(limit), candidate_(taken_.empty() ? 1 : *taken_.rbegin() + 1) {}

  Result<uint32_t> next(std::string_view what) {
    for (uint32_t tried = 0; tried < limit_; ++tried, ++candidate_) {
      if (candidate_ >= limit_) candidate_ = 1;  // 0 is reserved
      if (taken_.insert(candidate_).second) return candidate_++;
    }
    return Error{"more than " + std::to_string(limit_ - 1) + " " + std::string(what) + " in the datapath"};
  }

 private:
  std::set<uint32_t> taken_;
  uint32_t limit_;
  uint32_t candidate_;
};

std::string backend_key(const model::IpAddress& address, uint16_t port) {
  return model::Backend{address, port, 1, model::BackendState::active, "", ""}.key();
}

class DesiredBuilder {
 public:
  explicit DesiredBuilder(const datapath::State& actual)
      : actual_(actual), backend_ids_(backend_ids(actual), XLB_MAX_BACKENDS),
        service_ids_(service_ids(actual), XLB_MAX_SERVICES) {
    for (const auto& [id, b] : actual.backends) actual_backend_ids_[backend_key(b.address, b.port)] = id;
  }

  Result<datapath::State> build(const std::vector<ServiceState>& services) {
    for (const auto& state : services) {
      for (const auto& frontend : state.service.frontends)
        if (auto s = add_frontend(state, frontend); !s) return s.error();
    }
    return std::move(desired_);
  }

 private:
  static std::set<uint32_t> backend_ids(const datapath::State& state) {
    std::set<uint32_t> ids;
    for (const auto& [id, entry] : state.backends) ids.insert(id);
    return ids;
  }

  static std::set<uint32_t> service_ids(const datapath::State& state) {
    std::set<uint32_t> ids;
    for (const auto& [key, entry] : state.frontends) ids.insert(entry.service_id);
    return ids;
  }

  Result<BackendId> backend_id(const model::Backend& b) {
    const std::string key = b.key();
    if (auto it = desired_ids_.find(key); it != desired_ids_.end()) return it->second;
    BackendId id;
    if (auto it = actual_backend_ids_.find(key); it != actual_backend_ids_.end()) {
      id = it->second;
    } else {
      auto fresh = backend_ids_.next("backends");
      if (!fresh) return fresh.error();
      id = *fresh;
    }
    desired_ids_[key] = id;
    return id;
  }

  Status add_backend(const model::Backend& b, BackendId id) {
    auto [it, inserted] = desired_.backends.try_emplace(id, datapath::BackendEntry{id, b.address, b.port, false});
    // One backend may serve several services; it keeps taking new flows while any of them
    // still gives it ring slots, and is draining only if every one drains it.
    const bool draining = b.state != model::BackendState::active || b.weight == 0;
    it->second.draining = inserted ? draining : it->second.draining && draining;
    return {};
  }

  Status add_frontend(const ServiceState& state, const model::Frontend& frontend) {
    const auto& service = state.service;
    const Ring* ring = nullptr;
    for (const auto& r : state.rings)
      if (r.family == frontend.address.family()) ring = &r;
    datapath::FrontendEntry entry;
    entry.key = {frontend.address, frontend.port, frontend.protocol};
    entry.snat = service.mode == model::ForwardingMode::snat;
    entry.dsr = service.mode == model::ForwardingMode::dsr;
    entry.affinity = service.affinity.client_ip;
    entry.affinity_timeout_s = entry.affinity ? static_cast<uint32_t>(service.affinity.timeout.count()) : 0;

    // Every backend of the family is written, even one with no slots, so flows that conntrack
    // pinned to it keep flowing while it drains.
    std::map<std::string, BackendId> ids;
    for (const auto& b : service.backends) {
      if (b.address.family() != frontend.address.family()) continue;
      auto id = backend_id(b);
      if (!id) return id.error();
      ids[b.key()] = *id;
      if (auto s = add_backend(b, *id); !s) return s;
    }
    if (ring) {
      // Ids by member index first: a ring has thousands of slots and only a few members.
      std::vector<BackendId> member_ids;
      member_ids.reserve(ring->table.members.size());
      for (const auto& member : ring->table.members) member_ids.push_back(ids.at(member));
      entry.ring.reserve(ring->table.slots.size());
      for (uint32_t member : ring->table.slots) entry.ring.push_back(member_ids[member]);
    }

    if (auto it = actual_.frontends.find(entry.key); it != actual_.frontends.end()) {
      entry.service_id = it->second.service_id;
    } else {
      auto id = service_ids_.next("frontends");
      if (!id) return id.error();
      entry.service_id = *id;
    }
    desired_.frontends.emplace(entry.key, std::move(entry));
    return {};
  }

  const datapath::State& actual_;
  IdAllocator backend_ids_;
  IdAllocator service_ids_;
  std::map<std::string, BackendId> actual_backend_ids_;
  std::map<std::string, BackendId> desired_ids_;
  datapath::State desired_;
};

}  // namespace

Result<datapath::State> desired_state(const std::vector<ServiceState>& services, const datapath::State& actual) {
  return DesiredBuilder(actual).build(services);
}

Plan make_plan(const datapath::State& desired, const datapath::State& actual) {
  Plan plan;
  for (const auto& [id, b] : desired.backends) {
    auto it = actual.backends.find(id);
    if (it == actual.backends.end() || !(it->second == b)) plan.steps.push_back(UpsertBackend{b});
  }
  for (const auto& [key, f] : desired.frontends) {
    auto it = actual.frontends.find(key);
    if (it == actual.frontends.end() || !(it->second == f)) plan.steps.push_back(UpsertFrontend{f});
  }
  for (const auto& [key, f] : actual.frontends)
    if (!desired.frontends.count(key)) plan.steps.push_back(RemoveFrontend{key});
  for (const auto& [id, b] : actual.backends)
    if (!desired.backends.count(id)) plan.steps.push_back(RemoveBackend{id});
  return plan;
}

Status execute(const Plan& plan, datapath::MapWriter& maps) {
  constexpr size_t kMaxFrontendBatch = 512;
  // Consecutive frontend steps go as one batch (see MapWriter); make_plan puts them together.
  std::vector<datapath::FrontendEntry> upserts;
  std::vector<datapath::FrontendKey> removals;
  auto flush = [&]() -> Status {
    if (!upserts.empty())
      if (auto s = maps.upsert_frontends(std::exchange(upserts, {})); !s) return s;
    if (!removals.empty())
      if (auto s = maps.remove_frontends(std::exchange(removals, {})); !s) return s;
    return {};
  };
  for (const auto& step : plan.steps) {
    if (const auto* u = std::get_if<UpsertFrontend>(&step)) {
      // A batch holds one open fd per new ring until it installs them: bounded, so that a full
      // sync of tens of thousands of services stays far below the open-file limit.
      if (!removals.empty() || upserts.size() >= kMaxFrontendBatch)
        if (auto s = flush(); !s) return s;
      upserts.push_back(u->frontend);
      continue;
    }
    if (const auto* r = std::get_if<RemoveFrontend>(&step)) {
      if (!upserts.empty())
        if (auto s = flush(); !s) return s;
      removals.push_back(r->key);
      continue;
    }
    if (auto s = flush(); !s) return s;
    const Status s = std::holds_alternative<UpsertBackend>(step)
                         ? maps.upsert_backend(std::get<UpsertBackend>(step).backend)
                         : maps.remove_backend(std::get<RemoveBackend>(step).id);
    if (!s) return s;
  }
  return flush();
}

std::string Plan::summary() const {
  size_t counts[4] = {};
  for (const auto& step : steps) ++counts[step.index()];
  return std::to_string(counts[0]) + " backends and " + std::to_string(counts[1]) + " frontends written, " +
         std::to_string(counts[2]) + " frontends and " + std::to_string(counts[3]) + " backends removed";
}

}  // namespace xlb::engine

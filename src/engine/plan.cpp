#include "engine/plan.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "xlb_abi.h"

namespace xlb::engine {

namespace {

using datapath::BackendId;
using datapath::ServiceId;

std::string backend_key(const model::IpAddress& address, uint16_t port) {
  return model::Backend{address, port, 1, model::BackendState::active, "", ""}.key();
}

// A backend with no share of new flows keeps the flows conntrack pinned to it.
bool drains(const model::Backend& b) { return b.state != model::BackendState::active || b.weight == 0; }

bool has_family(const model::Service& service, model::IpAddress::Family family) {
  for (const auto& f : service.frontends)
    if (f.address.family() == family) return true;
  return false;
}

// Every backend of a family the service has frontends of is in the maps, even one with no
// slots, so flows that conntrack pinned to it keep flowing while it drains.
template <class F>
void for_each_mapped_backend(const model::Service& service, F&& f) {
  for (const auto& b : service.backends)
    if (has_family(service, b.address.family())) f(b);
}

template <class IdOf>
datapath::FrontendEntry frontend_entry(const ServiceState& state, const model::Frontend& frontend, IdOf&& id_of) {
  const auto& service = state.service;
  datapath::FrontendEntry entry;
  entry.key = {frontend.address, frontend.port, frontend.protocol};
  entry.snat = service.mode == model::ForwardingMode::snat;
  entry.dsr = service.mode == model::ForwardingMode::dsr;
  entry.affinity = service.affinity.client_ip;
  entry.affinity_timeout_s = entry.affinity ? static_cast<uint32_t>(service.affinity.timeout.count()) : 0;
  for (const auto& r : state.rings) {
    if (r.family != frontend.address.family()) continue;
    // Ids by member index first: a ring has thousands of slots and only a few members.
    std::vector<BackendId> member_ids;
    member_ids.reserve(r.table.members.size());
    for (const auto& member : r.table.members) member_ids.push_back(id_of(member));
    entry.ring.reserve(r.table.slots.size());
    for (uint32_t member : r.table.slots) entry.ring.push_back(member_ids[member]);
  }
  return entry;
}

std::set<uint32_t> backend_ids(const datapath::State& state) {
  std::set<uint32_t> ids;
  for (const auto& [id, entry] : state.backends) ids.insert(id);
  return ids;
}

std::set<uint32_t> service_ids(const datapath::State& state) {
  std::set<uint32_t> ids;
  for (const auto& [key, entry] : state.frontends) ids.insert(entry.service_id);
  return ids;
}

class DesiredBuilder {
 public:
  explicit DesiredBuilder(const datapath::State& actual)
      : actual_(actual), backend_ids_(backend_ids(actual), XLB_MAX_BACKENDS),
        service_ids_(service_ids(actual), XLB_MAX_SERVICES) {
    for (const auto& [id, b] : actual.backends) actual_backend_ids_[backend_key(b.address, b.port)] = id;
  }

  Result<datapath::State> build(const ServiceList& services) {
    for (const ServiceState* state : services) {
      if (auto s = add_backends(state->service); !s) return s.error();
      for (const auto& frontend : state->service.frontends)
        if (auto s = add_frontend(*state, frontend); !s) return s.error();
    }
    return std::move(desired_);
  }

 private:
  Result<BackendId> backend_id(const std::string& key) {
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

  Status add_backends(const model::Service& service) {
    Status status;
    for_each_mapped_backend(service, [&](const model::Backend& b) {
      if (!status) return;
      auto id = backend_id(b.key());
      if (!id) {
        status = id.error();
        return;
      }
      auto [it, inserted] = desired_.backends.try_emplace(*id, datapath::BackendEntry{*id, b.address, b.port, false});
      // One backend may serve several services; it keeps taking new flows while any of them
      // still gives it ring slots, and is draining only if every one drains it.
      it->second.draining = inserted ? drains(b) : it->second.draining && drains(b);
    });
    return status;
  }

  Status add_frontend(const ServiceState& state, const model::Frontend& frontend) {
    auto entry = frontend_entry(state, frontend, [&](const std::string& key) { return desired_ids_.at(key); });
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

const std::string& name_of(const ServiceDelta& change) {
  return change.after ? change.after->service.name : change.before->service.name;
}

}  // namespace

IdAllocator::IdAllocator(std::set<uint32_t> taken, uint32_t limit)
    : taken_(std::move(taken)), limit_(limit), candidate_(taken_.empty() ? 1 : *taken_.rbegin() + 1) {}

Result<uint32_t> IdAllocator::next(std::string_view what) {
  for (uint32_t tried = 0; tried < limit_; ++tried, ++candidate_) {
    if (candidate_ >= limit_) candidate_ = 1;  // 0 is reserved
    if (taken_.insert(candidate_).second) return candidate_++;
  }
  return Error{"more than " + std::to_string(limit_ - 1) + " " + std::string(what) + " in the datapath"};
}

ServiceList list_of(const Services& services) {
  ServiceList list;
  list.reserve(services.size());
  for (const auto& [name, state] : services) list.push_back(&state);
  return list;
}

Result<datapath::State> desired_state(const ServiceList& services, const datapath::State& actual) {
  return DesiredBuilder(actual).build(services);
}

MapBook::MapBook(datapath::State state, const ServiceList& services)
    : state_(std::move(state)), backend_allocator_(backend_ids(state_), XLB_MAX_BACKENDS),
      service_allocator_(service_ids(state_), XLB_MAX_SERVICES) {
  for (const auto& [id, b] : state_.backends) backend_ids_[backend_key(b.address, b.port)] = id;
  for (const ServiceState* s : services) {
    const std::string& name = s->service.name;
    for_each_mapped_backend(s->service, [&](const model::Backend& b) {
      if (auto it = backend_ids_.find(b.key()); it != backend_ids_.end()) users_[it->second][name] = drains(b);
    });
    for (const auto& f : s->service.frontends) owners_[{f.address, f.port, f.protocol}] = name;
  }
}

Result<Plan> MapBook::plan(const std::vector<ServiceDelta>& changes) {
  Plan plan;
  pending_users_.clear();
  if (auto s = plan_backends(changes, plan); !s) return s.error();
  if (auto s = plan_frontends(changes, plan); !s) return s.error();
  // The order execute() relies on: backends written, frontends written, frontends removed,
  // backends removed.
  std::stable_sort(plan.steps.begin(), plan.steps.end(), [](const Step& a, const Step& b) {
    auto rank = [](const Step& s) {
      return std::holds_alternative<UpsertBackend>(s)    ? 0
             : std::holds_alternative<UpsertFrontend>(s) ? 1
             : std::holds_alternative<RemoveFrontend>(s) ? 2
                                                         : 3;
    };
    return rank(a) < rank(b);
  });
  return plan;
}

Status MapBook::plan_backends(const std::vector<ServiceDelta>& changes, Plan& plan) {
  std::map<std::string, const model::Backend*, std::less<>> touched;
  auto users_of = [&](const std::string& key) -> Users& {
    auto [it, inserted] = pending_users_.try_emplace(key);
    if (!inserted) return it->second;
    if (auto id = backend_ids_.find(key); id != backend_ids_.end())
      if (auto users = users_.find(id->second); users != users_.end()) it->second = users->second;
    return it->second;
  };
  for (const auto& change : changes) {
    const std::string& name = name_of(change);
    if (change.before)
      for_each_mapped_backend(change.before->service, [&](const model::Backend& b) {
        users_of(b.key()).erase(name);
        touched.try_emplace(b.key(), &b);
      });
    if (change.after)
      for_each_mapped_backend(change.after->service, [&](const model::Backend& b) {
        users_of(b.key())[name] = drains(b);
        touched[b.key()] = &b;
      });
  }
  for (const auto& [key, backend] : touched) {
    const Users& users = pending_users_.at(key);
    const auto known = backend_ids_.find(key);
    if (users.empty()) {
      if (known != backend_ids_.end()) plan.steps.push_back(RemoveBackend{known->second});
      continue;
    }
    const bool draining = std::all_of(users.begin(), users.end(), [](const auto& u) { return u.second; });
    if (known != backend_ids_.end()) {
      const auto& entry = state_.backends.at(known->second);
      if (entry.draining != draining) plan.steps.push_back(UpsertBackend{{entry.id, entry.address, entry.port, draining}});
      continue;
    }
    auto id = backend_allocator_.next("backends");
    if (!id) return id.error();
    backend_ids_.emplace(key, *id);  // taken now; the frontends below use it
    plan.steps.push_back(UpsertBackend{{*id, backend->address, backend->port, draining}});
  }
  return {};
}

Status MapBook::plan_frontends(const std::vector<ServiceDelta>& changes, Plan& plan) {
  std::map<datapath::FrontendKey, std::string> claimed;  // by this change
  std::set<std::string, std::less<>> changing;
  for (const auto& change : changes) changing.insert(name_of(change));
  for (const auto& change : changes) {
    if (!change.after) continue;
    const auto& name = change.after->service.name;
    for (const auto& frontend : change.after->service.frontends) {
      const datapath::FrontendKey key{frontend.address, frontend.port, frontend.protocol};
      if (auto [it, inserted] = claimed.emplace(key, name); !inserted)
        return Error{"frontend " + key.to_string() + " is claimed by services \"" + it->second + "\" and \"" + name + "\""};
      if (auto owner = owners_.find(key); owner != owners_.end() && !changing.count(owner->second))
        return Error{"frontend " + key.to_string() + " of service \"" + name + "\" is already service \"" +
                     owner->second + "\"'s"};
      auto entry = frontend_entry(*change.after, frontend, [&](const std::string& k) { return backend_ids_.at(k); });
      const auto actual = state_.frontends.find(key);
      if (actual != state_.frontends.end()) {
        entry.service_id = actual->second.service_id;
        if (actual->second == entry) continue;
      } else {
        auto id = service_allocator_.next("frontends");
        if (!id) return id.error();
        entry.service_id = *id;
      }
      plan.steps.push_back(UpsertFrontend{std::move(entry)});
    }
  }
  for (const auto& change : changes) {
    if (!change.before) continue;
    for (const auto& frontend : change.before->service.frontends) {
      const datapath::FrontendKey key{frontend.address, frontend.port, frontend.protocol};
      if (!claimed.count(key) && state_.frontends.count(key)) plan.steps.push_back(RemoveFrontend{key});
    }
  }
  return {};
}

void MapBook::commit(const Plan& plan, const std::vector<ServiceDelta>& changes) {
  for (const auto& step : plan.steps) {
    if (const auto* u = std::get_if<UpsertBackend>(&step)) {
      state_.backends[u->backend.id] = u->backend;
    } else if (const auto* f = std::get_if<UpsertFrontend>(&step)) {
      state_.frontends[f->frontend.key] = f->frontend;
    } else if (const auto* r = std::get_if<RemoveFrontend>(&step)) {
      service_allocator_.release(state_.frontends.at(r->key).service_id);
      state_.frontends.erase(r->key);
    } else if (const auto* b = std::get_if<RemoveBackend>(&step)) {
      const auto& entry = state_.backends.at(b->id);
      backend_ids_.erase(backend_key(entry.address, entry.port));
      backend_allocator_.release(b->id);
      users_.erase(b->id);
      state_.backends.erase(b->id);
    }
  }
  for (auto& [key, users] : pending_users_)
    if (!users.empty()) users_[backend_ids_.at(key)] = std::move(users);
  pending_users_.clear();
  for (const auto& change : changes) {
    if (!change.before) continue;
    for (const auto& f : change.before->service.frontends) {
      auto owner = owners_.find({f.address, f.port, f.protocol});
      if (owner != owners_.end() && owner->second == change.before->service.name) owners_.erase(owner);
    }
  }
  for (const auto& change : changes)
    if (change.after)
      for (const auto& f : change.after->service.frontends)
        owners_[{f.address, f.port, f.protocol}] = change.after->service.name;
}

Plan make_plan(const datapath::State& desired, const datapath::State& actual) {
  Plan plan;
  plan.steps.reserve(desired.backends.size() + desired.frontends.size());  // a first sync writes them all
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
  // Consecutive steps of a kind go as one batch (see MapWriter); make_plan puts them together.
  std::vector<datapath::BackendEntry> backends;
  std::vector<datapath::FrontendEntry> upserts;
  std::vector<datapath::FrontendKey> removals;
  auto flush = [&]() -> Status {
    if (!backends.empty())
      if (auto s = maps.upsert_backends(std::exchange(backends, {})); !s) return s;
    if (!upserts.empty())
      if (auto s = maps.upsert_frontends(std::exchange(upserts, {})); !s) return s;
    if (!removals.empty())
      if (auto s = maps.remove_frontends(std::exchange(removals, {})); !s) return s;
    return {};
  };
  for (const auto& step : plan.steps) {
    if (const auto* b = std::get_if<UpsertBackend>(&step)) {
      if (!upserts.empty() || !removals.empty())
        if (auto s = flush(); !s) return s;
      backends.push_back(b->backend);
      continue;
    }
    if (const auto* u = std::get_if<UpsertFrontend>(&step)) {
      // Bounded: the ring ranges a batch's frontends leave are free again from the next batch on
      // (BpfMaps::RingRanges), so a sync that moves many rings reuses them as it goes instead of
      // needing room for every ring twice.
      if (!backends.empty() || !removals.empty() || upserts.size() >= kMaxFrontendBatch)
        if (auto s = flush(); !s) return s;
      upserts.push_back(u->frontend);
      continue;
    }
    if (const auto* r = std::get_if<RemoveFrontend>(&step)) {
      if (!backends.empty() || !upserts.empty())
        if (auto s = flush(); !s) return s;
      removals.push_back(r->key);
      continue;
    }
    if (auto s = flush(); !s) return s;
    if (auto s = maps.remove_backend(std::get<RemoveBackend>(step).id); !s) return s;
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

#include "engine/engine.h"

#include <algorithm>
#include <cstdio>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "engine/plan.h"
#include "model/diff.h"

namespace xlb::engine {

namespace {

// Only an active backend takes new flows; the others keep their place in the member list
// (so the UI shows them) with no slots.
uint32_t ring_weight(const model::Backend& b) {
  return b.state == model::BackendState::active ? b.weight : 0;
}

const ServiceState* find(const std::vector<ServiceState>& states, std::string_view name) {
  for (const auto& s : states)
    if (s.service.name == name) return &s;
  return nullptr;
}

const Ring* find(const std::vector<Ring>& rings, model::IpAddress::Family family) {
  for (const auto& r : rings)
    if (r.family == family) return &r;
  return nullptr;
}

// The largest share of slots moved in any of the service's rings. A ring that did not exist
// before moved no flow: there was none to move.
double disruption(const ServiceState* before, const ServiceState& after) {
  double worst = 0;
  for (const auto& ring : after.rings) {
    const Ring* old = before ? find(before->rings, ring.family) : nullptr;
    if (old) worst = std::max(worst, maglev::disruption(old->table, ring.table));
  }
  return worst;
}

}  // namespace

Result<Ring> Engine::build_ring(const model::Service& service, model::IpAddress::Family family) const {
  std::vector<maglev::Member> members;
  size_t weighted = 0;
  for (const auto& b : service.backends) {
    if (b.address.family() != family) continue;
    members.push_back({b.key(), ring_weight(b)});
    // A backend that is down (its probes fail) keeps its room in the table: were the size to
    // shrink with it, every slot would move (disruption 100%) instead of only its own.
    if (ring_weight(b) > 0 || (b.state == model::BackendState::down && b.weight > 0)) ++weighted;
  }
  auto size = maglev::choose_table_size(weighted, maglev_.bounds, service.maglev_table_size);
  if (!size) return Error{"service \"" + service.name + "\": " + size.error().message};
  auto table = maglev::build(std::move(members), *size, maglev_.seed);
  if (!table) return Error{"service \"" + service.name + "\": " + table.error().message};
  return Ring{family, std::move(*table)};
}

Result<std::vector<ServiceState>> Engine::build_states(const model::Catalog& catalog) const {
  std::vector<ServiceState> states;
  states.reserve(catalog.services.size());
  std::unordered_map<std::string_view, const ServiceState*> current;
  for (const auto& s : services_) current.emplace(s.service.name, &s);
  for (const auto& service : catalog.services) {
    auto found = current.find(service.name);
    const ServiceState* before = found == current.end() ? nullptr : found->second;
    // An unchanged service keeps its rings: the same members and seed build the same table.
    if (before && before->service == service) {
      states.push_back(*before);
      continue;
    }
    ServiceState state{service, {}, 0};
    for (auto family : {model::IpAddress::Family::v4, model::IpAddress::Family::v6}) {
      const bool used = std::any_of(service.frontends.begin(), service.frontends.end(),
                                    [&](const model::Frontend& f) { return f.address.family() == family; });
      if (!used) continue;
      auto ring = build_ring(service, family);
      if (!ring) return ring.error();
      state.rings.push_back(std::move(*ring));
    }
    state.last_disruption = disruption(before, state);
    states.push_back(std::move(state));
  }
  return states;
}

Status Engine::restore() {
  auto drains = Drains::load(store_);
  if (!drains) return drains.error();
  drains_ = std::move(*drains);
  auto latest = store_.latest_revision();
  if (!latest) return latest.error();
  if (!*latest) return {};
  auto states = build_states((*latest)->catalog);
  if (!states) return Error{"revision " + std::to_string((*latest)->id) + ": " + states.error().message};
  catalog_ = std::move((*latest)->catalog);
  services_ = std::move(*states);
  revision_ = (*latest)->id;
  log_.info("restored revision " + std::to_string(revision_) + " (" + std::to_string(catalog_.services.size()) +
            " services) from the state database");
  return {};
}

Result<std::pair<size_t, std::string>> Engine::sync_maps(const std::vector<ServiceState>& states) {
  if (!maps_) return std::pair<size_t, std::string>{0, "no datapath"};
  // The maps are read back once (after a start, or a failed write); after that the engine, their
  // only writer, knows what they hold, and a change costs what changed, not the catalog's size.
  if (!maps_known_) {
    auto read = maps_->read();
    if (!read) return Error{"reading the datapath's maps: " + read.error().message};
    map_state_ = std::move(*read);
    maps_known_ = true;
  }
  const datapath::State* actual = &map_state_;
  auto desired = desired_state(states, *actual);
  if (!desired) return desired.error();
  const Plan plan = make_plan(*desired, *actual);
  if (auto s = execute(plan, *maps_); !s) {
    maps_known_ = false;  // some steps may have been written: read the maps again next time
    return Error{"writing the datapath's maps (" + plan.summary() + " planned): " + s.error().message};
  }
  const datapath::State before = std::exchange(map_state_, std::move(*desired));
  end_sockets_of_removed(plan, before);
  return std::pair{plan.steps.size(), plan.summary()};
}

// A backend gone from the maps takes no new connection, but a UDP client that socket-LB connected
// to it would stay there (a DNS client, typically): its socket is ended so that it asks again.
void Engine::end_sockets_of_removed(const Plan& plan, const datapath::State& before) const {
  for (const auto& step : plan.steps) {
    const auto* removed = std::get_if<RemoveBackend>(&step);
    if (!removed) continue;
    if (const auto it = before.backends.find(removed->id); it != before.backends.end())
      end_sockets_to(it->second.address, it->second.port, "left");
  }
}

void Engine::end_sockets_to(const model::IpAddress& address, uint16_t port, std::string_view why) const {
  if (!end_sockets_) return;
  const std::string backend = model::Backend{address, port, 1, {}, "", ""}.key();
  auto ended = end_sockets_(address, port);
  if (!ended)
    log_.warning("backend " + backend + " " + std::string(why) + ", but its sockets could not be ended: " +
                 ended.error().message);
  else if (*ended > 0)
    log_.info("backend " + backend + " " + std::string(why) + ": ended " + std::to_string(*ended) +
              " sockets connected to it");
}

Result<Applied> Engine::apply(const model::Catalog& catalog, std::string_view source) {
  auto applied = commit(health_.overlay(drains_.overlay(catalog)), source);
  if (applied) source_catalog_ = catalog;
  return applied;
}

Result<Applied> Engine::set_drained(std::string_view service, std::string_view backend, bool drained,
                                    std::string_view source) {
  if (!source_catalog_) return Error{"no catalog has been applied yet"};
  Drains next = drains_;
  if (!next.set(service, backend, drained)) return Applied{false, revision_, "no change", 0, "no change"};
  // Saved first: a crash between the two then drains at the next start rather than forgetting.
  if (auto s = next.save(store_); !s) return s.error();
  auto applied = commit(health_.overlay(next.overlay(*source_catalog_)), source);
  if (!applied) {
    if (auto s = drains_.save(store_); !s) log_.error("could not restore the drained backends: " + s.error().message);
    return applied;
  }
  drains_ = std::move(next);
  return applied;
}

Result<Applied> Engine::set_health(std::string_view service, std::string_view backend, bool up,
                                   std::string_view reason) {
  if (!source_catalog_) return Error{"no catalog has been applied yet"};
  HealthOverlay next = health_;
  if (!next.set_down(service, backend, !up)) return Applied{false, revision_, "no change", 0, "no change"};
  auto applied = apply_health(std::move(next), service, backend, std::string(up ? "up: " : "down: ") + std::string(reason));
  // A dead backend keeps no client: unlike a drained one, its established sockets have nowhere to go.
  if (applied && !up)
    if (const ServiceState* state = find(services_, service))
      for (const auto& b : state->service.backends)
        if (b.key() == backend) end_sockets_to(b.address, b.port, "is down");
  return applied;
}

Result<Applied> Engine::set_slow(std::string_view service, std::string_view backend, bool slow,
                                 std::string_view reason) {
  if (!source_catalog_) return Error{"no catalog has been applied yet"};
  HealthOverlay next = health_;
  if (!next.set_slow(service, backend, slow)) return Applied{false, revision_, "no change", 0, "no change"};
  const std::string share = slow ? "1/" + std::to_string(HealthOverlay::kSlowShare) + " of its share of new flows"
                                 : "its full share of new flows again";
  return apply_health(std::move(next), service, backend,
                      std::string(slow ? "slow: " : "recovered: ") + std::string(reason) + "; " + share);
}

Result<Applied> Engine::apply_health(HealthOverlay next, std::string_view service, std::string_view backend,
                                     std::string message) {
  auto applied = commit(next.overlay(drains_.overlay(*source_catalog_)), "health");
  if (!applied) return applied;
  health_ = std::move(next);
  // A backend the ring does not hold (absent, in maintenance, a service without probes) moves nothing.
  double moved = 0;
  const ServiceState* state = find(services_, service);
  if (applied->changed && state) moved = state->last_disruption;
  char share[32];
  std::snprintf(share, sizeof share, "%.1f%%", moved * 100);
  message += std::string("; ") + share + " of ring slots moved";
  if (auto e = store_.record_event("health", std::string(service) + "/" + std::string(backend), message); !e)
    log_.warning("could not record a health event: " + e.error().message);
  return applied;
}

Result<Applied> Engine::commit(const model::Catalog& catalog, std::string_view source) {
  const auto changes = model::diff(catalog_, catalog);
  const bool changed = !changes.empty() || revision_ == 0;
  if (!changed) {
    maps_known_ = false;  // nothing to change: read the maps back, and repair what differs
    auto synced = sync_maps(services_);
    if (!synced) return Error{"the catalog was not applied: " + synced.error().message};
    return Applied{false, revision_, "no change", synced->first, synced->second};
  }
  auto states = build_states(catalog);
  if (!states) return Error{"the catalog was not applied: " + states.error().message};
  // The revision and the maps change together or not at all: the database first (a locked or
  // full one stops everything here), the maps inside its transaction, then the commit.
  auto transaction = store_.begin();
  if (!transaction) return Error{"the catalog was not applied: " + transaction.error().message};
  const std::string summary = changes.empty() ? "empty catalog" : changes.summary();
  auto id = store_.record_revision(source, summary, catalog);
  if (!id) return Error{"the catalog was not applied: " + id.error().message};
  auto synced = sync_maps(*states);
  if (!synced) return Error{"the catalog was not applied: " + synced.error().message};
  if (auto committed = transaction->commit(); !committed) {
    // The maps hold the new catalog and the database the old one: put the maps back.
    if (auto back = sync_maps(services_); !back)
      log_.error("could not put the datapath back to revision " + std::to_string(revision_) + ": " +
                 back.error().message);
    return Error{"the catalog was not applied: " + committed.error().message};
  }
  catalog_ = catalog;
  services_ = std::move(*states);
  revision_ = *id;
  return Applied{true, revision_, summary, synced->first, synced->second};
}

}  // namespace xlb::engine

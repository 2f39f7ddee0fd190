#include "engine/engine.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <thread>
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

// A whole catalog is snapshotted when the services changed since the last snapshot reach the
// catalog's size: a restart replays at most about one catalog's worth of changes, and a
// change pays for snapshots in proportion to its own size.
constexpr size_t kMinSnapshotSpacing = 64;

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

Engine::Engine(store::Store& store, const Logger& log, MaglevSettings maglev, datapath::MapWriter* maps,
               SocketEnder end_sockets)
    : store_(store), log_(log), maglev_(std::move(maglev)), maps_(maps), end_sockets_(std::move(end_sockets)),
      book_(std::make_unique<MapBook>()) {}

Engine::~Engine() = default;
Engine::Engine(Engine&&) noexcept = default;

const datapath::State& Engine::map_state() const { return book_->state(); }

const ServiceState* Engine::find(std::string_view service) const {
  auto it = services_.find(service);
  return it == services_.end() ? nullptr : &it->second;
}

model::Catalog Engine::catalog() const {
  model::Catalog c;
  c.services.reserve(services_.size());
  for (const auto& [name, state] : services_) c.services.push_back(state.service);
  return c;
}

Result<ServiceState> Engine::build_state(const model::Service& service, const ServiceState* before) const {
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
  return state;
}

Result<std::vector<ServiceState>> Engine::build_states(
    const std::vector<std::pair<const model::Service*, const ServiceState*>>& services) const {
  std::vector<std::optional<Result<ServiceState>>> built(services.size());
  auto build_range = [&](size_t from, size_t to) {
    for (size_t i = from; i < to; ++i) built[i].emplace(build_state(*services[i].first, services[i].second));
  };
  // Rings are a large share of a full sync's computing (10,000 services: about as long as writing
  // their maps): many are built on two threads, each its own share of the services.
  constexpr size_t kTwoThreadsFrom = 256;
  if (services.size() < kTwoThreadsFrom) {
    build_range(0, services.size());
  } else {
    const size_t half = services.size() / 2;
    std::jthread other(build_range, half, services.size());
    build_range(0, half);
  }
  std::vector<ServiceState> states;
  states.reserve(services.size());
  for (auto& state : built) {
    if (!*state) return state->error();  // the first in the catalog's order, as one thread would
    states.push_back(std::move(**state));
  }
  return states;
}

namespace {

void add(Counts& counts, const model::Service& s) {
  counts.services += 1;
  counts.frontends += s.frontends.size();
  counts.backends += s.backends.size();
}

void subtract(Counts& counts, const model::Service& s) {
  counts.services -= 1;
  counts.frontends -= s.frontends.size();
  counts.backends -= s.backends.size();
}

}  // namespace

Status Engine::restore() {
  auto drains = Drains::load(store_);
  if (!drains) return drains.error();
  drains_ = std::move(*drains);
  auto latest = store_.latest_revision();
  if (!latest) return latest.error();
  if (!*latest) return {};
  Services services;
  Counts counts;
  for (auto& service : (*latest)->catalog.services) {
    auto state = build_state(service, nullptr);
    if (!state) return Error{"revision " + std::to_string((*latest)->id) + ": " + state.error().message};
    add(counts, service);
    services.insert_or_assign(service.name, std::move(*state));
  }
  services_ = std::move(services);
  counts_ = counts;
  revision_ = (*latest)->id;
  log_.info("restored revision " + std::to_string(revision_) + " (" + std::to_string(services_.size()) +
            " services) from the state database");
  return {};
}

Result<std::pair<size_t, std::string>> Engine::sync_all(const ServiceList& services) {
  if (!maps_) return std::pair<size_t, std::string>{0, "no datapath"};
  // The maps are read back once (after a start, or a failed write); after that the engine, their
  // only writer, knows what they hold, and a change costs what changed, not the catalog's size.
  datapath::State actual;
  if (maps_known_) {
    actual = book_->state();
  } else {
    auto read = maps_->read();
    if (!read) return Error{"reading the datapath's maps: " + read.error().message};
    actual = std::move(*read);
  }
  maps_known_ = false;  // until the writes below have all been made
  auto desired = desired_state(services, actual);
  if (!desired) return desired.error();
  const Plan plan = make_plan(*desired, actual);
  if (auto s = execute(plan, *maps_); !s)
    return Error{"writing the datapath's maps (" + plan.summary() + " planned): " + s.error().message};
  *book_ = MapBook(std::move(*desired), services);
  maps_known_ = true;
  end_sockets_of_removed(plan, actual);
  return std::pair{plan.steps.size(), plan.summary()};
}

Result<std::pair<size_t, std::string>> Engine::sync_changes(const std::vector<ServiceDelta>& changes) {
  if (!maps_) return std::pair<size_t, std::string>{0, "no datapath"};
  maps_known_ = false;  // until the plan is written: a plan not written leaves the book wrong
  auto plan = book_->plan(changes);
  if (!plan) return plan.error();
  if (auto s = execute(*plan, *maps_); !s)
    return Error{"writing the datapath's maps (" + plan->summary() + " planned): " + s.error().message};
  // Removed backends are named from the book before it forgets them.
  std::vector<datapath::BackendEntry> removed;
  for (const auto& step : plan->steps)
    if (const auto* r = std::get_if<RemoveBackend>(&step)) removed.push_back(book_->state().backends.at(r->id));
  book_->commit(*plan, changes);
  maps_known_ = true;
  end_sockets_to(removed, "left");
  return std::pair{plan->steps.size(), plan->summary()};
}

// A backend gone from the maps takes no new connection, but a UDP client that socket-LB connected
// to it would stay there (a DNS client, typically): its socket is ended so that it asks again.
void Engine::end_sockets_of_removed(const Plan& plan, const datapath::State& before) const {
  std::vector<datapath::BackendEntry> removed;
  for (const auto& step : plan.steps)
    if (const auto* r = std::get_if<RemoveBackend>(&step))
      if (const auto it = before.backends.find(r->id); it != before.backends.end()) removed.push_back(it->second);
  end_sockets_to(removed, "left");
}

void Engine::end_sockets_to(const std::vector<datapath::BackendEntry>& backends, std::string_view why) const {
  if (!end_sockets_ || backends.empty()) return;
  std::string names;
  for (const auto& b : backends) names += (names.empty() ? "" : ", ") + model::Backend{b.address, b.port, 1, {}, "", ""}.key();
  const std::string subject = (backends.size() == 1 ? "backend " : "backends ") + names + " " + std::string(why);
  auto ended = end_sockets_(backends);
  if (!ended)
    log_.warning(subject + ", but the sockets connected to them could not be ended: " + ended.error().message);
  else if (*ended > 0)
    log_.info(subject + ": ended " + std::to_string(*ended) + " sockets connected to them");
}

Result<Applied> Engine::apply(const model::Catalog& catalog, std::string_view source) {
  std::vector<model::Service> upserted;
  upserted.reserve(catalog.services.size());
  std::set<std::string_view> names;
  for (const auto& s : catalog.services) {
    names.insert(s.name);
    upserted.push_back(overlay(s));
  }
  std::vector<std::string> removed;
  for (const auto& [name, state] : services_)
    if (!names.count(name)) removed.push_back(name);
  auto applied = commit(std::move(upserted), removed, source);
  if (!applied) return applied;
  if (!applied->changed) {
    maps_known_ = false;  // nothing to change: read the maps back, and repair what differs
    auto synced = sync_all(list_of(services_));
    if (!synced) return Error{"the catalog was not applied: " + synced.error().message};
    applied->map_writes = synced->first;
    applied->plan = synced->second;
  }
  sources_.clear();
  for (const auto& s : catalog.services) sources_.insert_or_assign(s.name, s);
  has_sources_ = true;
  return applied;
}

Result<Applied> Engine::apply_changes(const model::CatalogChanges& changes, std::string_view source) {
  if (!has_sources_) return Error{"no catalog has been applied yet"};
  std::vector<model::Service> upserted;
  upserted.reserve(changes.upserted.size());
  for (const auto& s : changes.upserted) upserted.push_back(overlay(s));
  auto applied = commit(std::move(upserted), changes.removed, source);
  if (!applied) return applied;
  for (const auto& s : changes.upserted) sources_.insert_or_assign(s.name, s);
  for (const auto& name : changes.removed)
    if (auto it = sources_.find(name); it != sources_.end()) sources_.erase(it);
  return applied;
}

Result<Applied> Engine::set_drained(std::string_view service, std::string_view backend, bool drained,
                                    std::string_view source) {
  if (!has_sources_) return Error{"no catalog has been applied yet"};
  Drains next = drains_;
  if (!next.set(service, backend, drained)) return Applied{false, revision_, "no change", 0, "no change"};
  // Saved first: a crash between the two then drains at the next start rather than forgetting.
  if (auto s = next.save(store_); !s) return s.error();
  Result<Applied> applied = Applied{false, revision_, "no change", 0, "no change"};
  if (auto it = sources_.find(service); it != sources_.end())
    applied = commit({health_.overlay(next.overlay(it->second))}, {}, source);
  if (!applied) {
    if (auto s = drains_.save(store_); !s) log_.error("could not restore the drained backends: " + s.error().message);
    return applied;
  }
  drains_ = std::move(next);
  return applied;
}

Result<Applied> Engine::set_health(std::string_view service, std::string_view backend, bool up,
                                   std::string_view reason) {
  if (!has_sources_) return Error{"no catalog has been applied yet"};
  HealthOverlay next = health_;
  if (!next.set_down(service, backend, !up)) return Applied{false, revision_, "no change", 0, "no change"};
  auto applied = apply_health(std::move(next), service, backend, std::string(up ? "up: " : "down: ") + std::string(reason));
  // A dead backend keeps no client: unlike a drained one, its established sockets have nowhere to go.
  if (applied && !up)
    if (const ServiceState* state = find(service))
      for (const auto& b : state->service.backends)
        if (b.key() == backend) end_sockets_to({{0, b.address, b.port, false}}, "is down");
  return applied;
}

Result<Applied> Engine::set_slow(std::string_view service, std::string_view backend, bool slow,
                                 std::string_view reason) {
  if (!has_sources_) return Error{"no catalog has been applied yet"};
  HealthOverlay next = health_;
  if (!next.set_slow(service, backend, slow)) return Applied{false, revision_, "no change", 0, "no change"};
  const std::string share = slow ? "1/" + std::to_string(HealthOverlay::kSlowShare) + " of its share of new flows"
                                 : "its full share of new flows again";
  return apply_health(std::move(next), service, backend,
                      std::string(slow ? "slow: " : "recovered: ") + std::string(reason) + "; " + share);
}

Result<Applied> Engine::apply_health(HealthOverlay next, std::string_view service, std::string_view backend,
                                     std::string message) {
  Result<Applied> applied = Applied{false, revision_, "no change", 0, "no change"};
  if (auto it = sources_.find(service); it != sources_.end())
    applied = commit({next.overlay(drains_.overlay(it->second))}, {}, "health");
  if (!applied) return applied;
  health_ = std::move(next);
  // A backend the ring does not hold (absent, in maintenance, a service without probes) moves nothing.
  double moved = 0;
  const ServiceState* state = find(service);
  if (applied->changed && state) moved = state->last_disruption;
  char share[32];
  std::snprintf(share, sizeof share, "%.1f%%", moved * 100);
  message += std::string("; ") + share + " of ring slots moved";
  if (auto e = store_.record_event("health", std::string(service) + "/" + std::string(backend), message); !e)
    log_.warning("could not record a health event: " + e.error().message);
  return applied;
}

ServiceList Engine::services_after(const std::vector<ServiceState>& states, const std::vector<std::string>& removed) const {
  if (!maps_) return {};  // nothing to sync
  std::set<std::string_view> replaced(removed.begin(), removed.end());
  for (const auto& state : states) replaced.insert(state.service.name);
  ServiceList next;
  next.reserve(services_.size() + states.size());
  for (const auto& [name, state] : services_)
    if (!replaced.count(name)) next.push_back(&state);
  for (const auto& state : states) next.push_back(&state);
  std::sort(next.begin(), next.end(),
            [](const ServiceState* a, const ServiceState* b) { return a->service.name < b->service.name; });
  return next;
}

model::Catalog Engine::catalog_after(const std::vector<ServiceDelta>& changes) const {
  std::map<std::string_view, const model::Service*> changed;  // null: removed
  for (const auto& c : changes)
    changed[c.after ? c.after->service.name : c.before->service.name] = c.after ? &c.after->service : nullptr;
  model::Catalog out;
  out.services.reserve(services_.size() + changes.size());
  for (const auto& [name, state] : services_)
    if (!changed.count(name)) out.services.push_back(state.service);
  for (const auto& [name, service] : changed)
    if (service) out.services.push_back(*service);
  std::sort(out.services.begin(), out.services.end(),
            [](const model::Service& a, const model::Service& b) { return a.name < b.name; });
  return out;
}

Result<Applied> Engine::commit(std::vector<model::Service> upserted, const std::vector<std::string>& removed,
                               std::string_view source) {
  // What really changes, and the rings of what does.
  std::vector<ServiceState> states;
  model::CatalogDiff diff;
  model::CatalogChanges delta;
  std::set<std::string_view> seen;
  std::vector<std::pair<const model::Service*, const ServiceState*>> changed;  // and as it was
  for (auto& service : upserted) {
    if (!seen.insert(service.name).second)
      return Error{"the catalog was not applied: service \"" + service.name + "\" is given twice"};
    const ServiceState* before = find(service.name);
    auto change = model::diff(before ? &before->service : nullptr, &service);
    if (!change) continue;
    diff.changes.push_back(std::move(*change));
    changed.emplace_back(&service, before);
  }
  auto built = build_states(changed);
  if (!built) return Error{"the catalog was not applied: " + built.error().message};
  states = std::move(*built);
  for (const auto& name : removed) {
    const ServiceState* before = find(name);
    if (!before || seen.count(name)) continue;
    diff.changes.push_back({model::ServiceChange::Kind::removed, name, {}});
    delta.removed.push_back(name);
  }
  if (diff.empty() && revision_ != 0) return Applied{false, revision_, "no change", 0, "no change"};
  std::vector<ServiceDelta> changes;
  changes.reserve(states.size() + delta.removed.size());
  for (const auto& state : states) {
    changes.push_back({find(state.service.name), &state});
    delta.upserted.push_back(state.service);
  }
  for (const auto& name : delta.removed) changes.push_back({find(name), nullptr});

  // The revision and the maps change together or not at all. The transaction first: a database
  // that another writer holds (or that cannot be written) stops everything here. Then the maps,
  // so that the change is in force without waiting for its record (the snapshot of a large
  // catalog takes longer to write than its maps); then the record and the commit. Nothing is
  // durable before the commit, so a crash anywhere before it restarts from the revision before,
  // and the maps, read back then, are brought to the catalog the sources give again. A record or
  // commit that fails puts the maps back.
  auto transaction = store_.begin();
  if (!transaction) return Error{"the catalog was not applied: " + transaction.error().message};
  const bool incremental = maps_known_;
  auto synced = incremental ? sync_changes(changes) : sync_all(services_after(states, delta.removed));
  if (!synced) return Error{"the catalog was not applied: " + synced.error().message};
  auto not_recorded = [&](const Error& e) -> Error {
    // The maps hold the new catalog and the database the old one: put the maps back.
    std::vector<ServiceDelta> reverse;
    for (const auto& c : changes) reverse.push_back({c.after, c.before});
    if (auto back = incremental ? sync_changes(reverse) : sync_all(list_of(services_)); !back)
      log_.error("could not put the datapath back to revision " + std::to_string(revision_) + ": " +
                 back.error().message);
    return Error{"the catalog was not applied: " + e.message};
  };
  const std::string summary = diff.empty() ? "empty catalog" : diff.summary();
  const size_t size_after = services_.size() + states.size() - delta.removed.size();  // upper bound
  const bool snapshot = revision_ == 0 || changed_since_snapshot_ + changes.size() >= std::max(size_after, kMinSnapshotSpacing);
  std::optional<model::Catalog> whole;
  if (snapshot) whole = catalog_after(changes);
  auto id = store_.record({source, summary, diff.changes, snapshot ? nullptr : &delta, whole ? &*whole : nullptr});
  if (!id) return not_recorded(id.error());
  if (auto committed = transaction->commit(); !committed) return not_recorded(committed.error());

  for (const auto& name : delta.removed) {
    auto it = services_.find(name);
    subtract(counts_, it->second.service);
    services_.erase(it);
  }
  for (auto& state : states) {
    if (const ServiceState* before = find(state.service.name)) subtract(counts_, before->service);
    add(counts_, state.service);
    services_.insert_or_assign(state.service.name, std::move(state));
  }
  revision_ = *id;
  changed_since_snapshot_ = snapshot ? 0 : changed_since_snapshot_ + changes.size();
  return Applied{true, revision_, summary, synced->first, synced->second};
}

}  // namespace xlb::engine

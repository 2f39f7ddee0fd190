#include "xlbd/api_provider.h"

#include <net/if.h>
#include <netinet/in.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "datapath/trace.h"
#include "model/diff.h"

namespace xlb::xlbd {

namespace {

using Code = api::Outcome::Code;

constexpr const char* kShadowMode = "xlbd is in shadow mode: no datapath is loaded, nothing is balanced or dropped here";

api::ServiceView view_of(const engine::ServiceState& state) {
  api::ServiceView view;
  view.service = state.service;
  view.source = state.service.source.empty() ? "toml" : state.service.source;
  view.last_disruption = state.last_disruption;
  for (const auto& ring : state.rings) {
    api::RingView r{ring.family, ring.table.size(), {}};
    const auto counts = ring.table.slot_counts();
    for (size_t i = 0; i < ring.table.members.size(); ++i)
      r.shares.push_back({ring.table.members[i], i < counts.size() ? counts[i] : 0});
    view.rings.push_back(std::move(r));
  }
  return view;
}

bool has_backend(const model::Service& service, std::string_view key) {
  return std::any_of(service.backends.begin(), service.backends.end(),
                     [&](const model::Backend& b) { return b.key() == key; });
}

std::string backend_list(const model::Service& service) {
  std::string out;
  for (const auto& b : service.backends) out += (out.empty() ? "" : ", ") + b.key();
  return out.empty() ? "none" : out;
}

int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string endpoint(const model::IpAddress& address, uint16_t port) {
  const std::string host = address.is_v4() ? address.to_string() : "[" + address.to_string() + "]";
  return port ? host + ":" + std::to_string(port) : host;
}

std::string interface_name(uint32_t ifindex) {
  char name[IF_NAMESIZE] = {};
  if (ifindex != 0 && ::if_indextoname(ifindex, name)) return name;
  return "ifindex " + std::to_string(ifindex);
}

std::string protocol_name(uint8_t protocol) {
  switch (protocol) {
    case IPPROTO_TCP: return "tcp";
    case IPPROTO_UDP: return "udp";
    case IPPROTO_ICMP: return "icmp";
    case IPPROTO_ICMPV6: return "icmpv6";
    default: return std::to_string(protocol);
  }
}

api::DropView drop_view(const datapath::DropEvent& e) {
  return {static_cast<int64_t>(e.id),
          e.unix_ms,
          std::string(datapath::reason_name(e.reason)),
          interface_name(e.ifindex),
          protocol_name(e.protocol),
          endpoint(e.source, e.source_port),
          endpoint(e.destination, e.destination_port)};
}

std::string backend_key(const datapath::BackendEntry& b) {
  return model::Backend{b.address, b.port, 1, {}, "", ""}.key();
}

// The service that has this frontend, by name.
std::string service_of(const model::Catalog& catalog, const datapath::FrontendKey& key) {
  for (const auto& s : catalog.services)
    for (const auto& f : s.frontends)
      if (f.address == key.address && f.port == key.port && f.protocol == key.protocol) return s.name;
  return "";
}

api::TraceView trace_view(const datapath::Trace& t, const datapath::State& maps, const model::Catalog& catalog) {
  api::TraceView v;
  v.verdict = std::string(datapath::to_string(t.verdict));
  v.why = t.why;
  if (t.frontend) {
    v.service = service_of(catalog, t.frontend->key);
    v.ring_size = static_cast<uint32_t>(t.frontend->ring.size());
  }
  if (t.backend) v.backend = backend_key(*t.backend);
  v.hash = t.hash;
  v.slot = t.slot;
  if (t.conntrack) {
    v.conntrack = true;
    const auto b = maps.backends.find(t.conntrack->backend_id);
    v.conntrack_backend = b == maps.backends.end() ? "gone (id " + std::to_string(t.conntrack->backend_id) + ")"
                                                   : backend_key(b->second);
    v.conntrack_idle_ms = t.conntrack->idle_ns / 1'000'000;
  }
  return v;
}

}  // namespace

ApiProvider::ApiProvider(std::mutex& state, engine::Engine& engine, store::Store& store,
                         const datapath::Datapath* datapath, api::NodeView node, std::function<Status()> reload,
                         std::function<std::vector<api::SourceView>()> sources, const Logger& log)
    : state_(state), engine_(engine), store_(store), datapath_(datapath), node_(std::move(node)),
      reload_(std::move(reload)), sources_(std::move(sources)), log_(log) {
  if (!datapath_) return;
  if (auto drops = datapath_->open_drop_log(); drops)
    drop_log_ = std::move(*drops);
  else
    log_.warning("api: drop events unavailable (xlbctl drops): " + drops.error().message);
  if (auto flows = datapath_->flow_tables(); flows)
    flow_tables_.emplace(std::move(*flows));
  else
    log_.warning("api: flow tables unavailable (xlbctl trace): " + flows.error().message);
}

api::NodeView node_view(const config::Config& config, std::vector<api::Attachment> attachments) {
  api::NodeView node;
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) == 0) node.hostname = host;
  utsname uts{};
  if (::uname(&uts) == 0) node.kernel = uts.release;
  node.version = XLB_VERSION;
  node.datapath_mode = config.node.mode == config::NodeMode::shadow ? "shadow"
                                                                    : std::string(config::to_string(config.node.xdp_mode));
  node.attachments = std::move(attachments);
  return node;
}

api::Snapshot ApiProvider::snapshot() {
  std::lock_guard lock(state_);
  api::Snapshot snapshot;
  snapshot.node = node_;
  snapshot.revision = engine_.revision();
  snapshot.sampled_at_ms = unix_ms_now();
  for (const auto& [name, state] : engine_.services()) snapshot.services.push_back(view_of(state));
  if (sources_) snapshot.sources = sources_();
  if (bgp_) snapshot.bgp = bgp_();
  add_counters(snapshot);
  return snapshot;
}

void ApiProvider::add_counters(api::Snapshot& snapshot) const {
  if (!datapath_) return;
  auto counters = datapath_->read_counters();
  if (!counters) {
    log_.warning("api: counters unavailable: " + counters.error().message);
    return;
  }
  const auto add = [](api::Counters& to, const datapath::Counter& c) {
    to.packets += c.packets;
    to.bytes += c.bytes;
    to.new_flows += c.new_flows;
  };
  const auto& maps = engine_.map_state();
  for (auto& view : snapshot.services) {
    for (const auto& f : view.service.frontends) {
      auto entry = maps.frontends.find({f.address, f.port, f.protocol});
      if (entry == maps.frontends.end()) continue;
      if (auto c = counters->services.find(entry->second.service_id); c != counters->services.end())
        add(view.counters, c->second);
    }
  }
  // Backend counters are per backend, whichever service sent the packets.
  for (const auto& [id, backend] : maps.backends) {
    auto c = counters->backends.find(id);
    if (c == counters->backends.end()) continue;
    const std::string key = model::Backend{backend.address, backend.port, 1, {}, "", ""}.key();
    for (auto& view : snapshot.services)
      if (has_backend(view.service, key)) add(view.backend_counters[key], c->second);
  }
  // By code, not by words: "decapsulated" and "answered: ..." are no drops.
  for (const auto& [reason, c] : counters->drops) snapshot.drops[reason] = c.packets;
}

Result<std::vector<api::RevisionView>> ApiProvider::revisions(size_t limit) {
  std::lock_guard lock(state_);
  // One more than asked: the oldest one shown needs its predecessor for its changes.
  auto stored = store_.revisions(limit + 1);
  if (!stored) return stored.error();
  std::vector<api::RevisionView> out;
  for (size_t i = 0; i < stored->size() && i < limit; ++i) {
    const auto& r = (*stored)[i];
    if (r.changes) {
      out.push_back({r.id, r.created_at, r.source, r.summary, *r.changes});
      continue;
    }
    // Recorded before schema 3: its changes are the diff of its catalog and its predecessor's,
    // while both are kept; else it keeps its one-line summary.
    const bool first = i + 1 == stored->size() && stored->size() <= limit;
    const bool both_kept = r.has_catalog && (first || (i + 1 < stored->size() && (*stored)[i + 1].has_catalog));
    const model::Catalog before = i + 1 < stored->size() ? (*stored)[i + 1].catalog : model::Catalog{};
    out.push_back({r.id, r.created_at, r.source, r.summary,
                   both_kept ? model::diff(before, r.catalog).changes : std::vector<model::ServiceChange>{}});
  }
  return out;
}

Result<std::vector<api::EventView>> ApiProvider::events(size_t limit, int64_t after_id) {
  std::lock_guard lock(state_);
  auto stored = store_.events(limit);  // newest first
  if (!stored) return stored.error();
  std::vector<api::EventView> out;
  for (auto it = stored->rbegin(); it != stored->rend(); ++it)
    if (it->id > after_id) out.push_back({it->id, it->created_at, it->kind, it->subject, it->message});
  return out;
}

// No state_ lock: the drop log has its own, and the engine is not read.
Result<api::DropsView> ApiProvider::drops(size_t limit, int64_t after_id) {
  if (!drop_log_) return Error{datapath_ ? "the drop events could not be read (see xlbd's log)" : kShadowMode};
  auto unreported = drop_log_->unreported();
  if (!unreported) return unreported.error();
  api::DropsView view;
  for (const auto& e : drop_log_->after(static_cast<uint64_t>(std::max<int64_t>(after_id, 0)), limit))
    view.drops.push_back(drop_view(e));
  view.last_id = static_cast<int64_t>(drop_log_->last_id());
  view.unreported = *unreported;
  return view;
}

Result<api::TraceView> ApiProvider::trace(const api::FlowQuery& q) {
  if (!flow_tables_) return Error{datapath_ ? "the flow tables could not be read (see xlbd's log)" : kShadowMode};
  std::lock_guard lock(state_);
  const datapath::Flow flow{q.client, q.client_port, q.frontend, q.frontend_port, q.protocol};
  auto traced = datapath::trace_flow(engine_.map_state(), flow, *flow_tables_);
  if (!traced) return traced.error();
  return trace_view(*traced, engine_.map_state(), engine_.catalog());
}

api::Outcome ApiProvider::set_drained(std::string_view service, std::string_view backend, bool drained,
                                      const api::Actor& actor) {
  std::lock_guard lock(state_);
  const std::string subject = std::string(service) + " " + std::string(backend);
  const bool listed = engine_.drains().contains(service, backend);
  if (listed == drained)
    return {Code::done, subject + (drained ? " was already drained" : " was not drained"), engine_.revision()};
  // A drain of a backend that left the source can still be lifted; anything else must exist.
  if (!listed) {
    const engine::ServiceState* state = engine_.find(service);
    const model::Service* s = state ? &state->service : nullptr;
    if (!s) return {Code::not_found, "no service named \"" + std::string(service) + "\"", engine_.revision()};
    if (!has_backend(*s, backend))
      return {Code::not_found,
              "service \"" + s->name + "\" has no backend " + std::string(backend) +
                  "; its backends: " + backend_list(*s),
              engine_.revision()};
  }
  const std::string verb = drained ? "drained" : "undrained";
  auto applied = engine_.set_drained(service, backend, drained, "api: " + verb + " " + subject + " by " + actor.who);
  if (!applied)
    return {Code::failed, subject + " was not " + verb + ": " + applied.error().message, engine_.revision()};
  record("drain", subject, verb + " by " + actor.who + (actor.reason.empty() ? "" : ": " + actor.reason));
  if (bgp_changed_) bgp_changed_();  // a drained last backend withdraws its VIP
  return {Code::done,
          subject + " " + verb + (drained ? ": it takes no new flows" : ": it takes new flows again") + " (revision " +
              std::to_string(applied->revision) + ")",
          applied->revision};
}

api::Outcome ApiProvider::reload(const api::Actor& actor) {
  std::lock_guard lock(state_);
  const int64_t before = engine_.revision();
  const Status status = reload_();
  const std::string reason = actor.reason.empty() ? "" : " (" + actor.reason + ")";
  if (!status) {
    record("config", "api", "reload by " + actor.who + reason + " rejected");
    return {Code::rejected,
            "the reload was refused; revision " + std::to_string(before) + " stays in force: " +
                status.error().message,
            before};
  }
  const int64_t after = engine_.revision();
  record("config", "api", "reload by " + actor.who + reason);
  return {Code::done,
          after == before ? "config unchanged; revision " + std::to_string(after) + " stays in force"
                          : "applied revision " + std::to_string(after),
          after};
}

void ApiProvider::record(std::string_view kind, std::string_view subject, const std::string& message) {
  if (auto id = store_.record_event(kind, subject, message); !id)
    log_.warning("could not record the event \"" + message + "\": " + id.error().message);
}

}  // namespace xlb::xlbd

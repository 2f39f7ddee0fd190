// A Provider with a fixed catalog that records the writes asked of it, for the API tests.
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "api/provider.h"

namespace xlb::test {

inline model::IpAddress ip(std::string_view text) { return *model::IpAddress::parse(text); }

inline api::ServiceView service_view(std::string name, int backends) {
  api::ServiceView v;
  v.service.name = std::move(name);
  v.service.frontends.push_back({ip("198.18.0.10"), 80, model::Protocol::tcp, model::FrontendKind::vip});
  api::RingView ring{model::IpAddress::Family::v4, 251, {}};
  for (int i = 0; i < backends; ++i) {
    model::Backend b{ip("10.0.0." + std::to_string(i + 2)), 8080, 1, model::BackendState::active, "", ""};
    v.service.backends.push_back(b);
    ring.shares.push_back({b.key(), static_cast<uint32_t>(251 / backends + (i == 0 ? 251 % backends : 0))});
    v.backend_counters[b.key()] = {10u * static_cast<uint64_t>(i + 1), 1000, 1};
  }
  v.rings.push_back(ring);
  v.source = "toml";
  v.last_disruption = 0.25;
  v.counters = {30, 3000, 3};
  return v;
}

class FakeProvider final : public api::Provider {
 public:
  struct Write {
    std::string service, backend;
    bool drained = false;
    api::Actor actor;
  };

  FakeProvider() {
    snapshot_.node = {"node-1", "6.18.0", "0.1.0", "native", {}, {}};
    snapshot_.revision = 2;
    snapshot_.sampled_at_ms = 1'700'000'000'000;
    snapshot_.services = {service_view("web", 3), service_view("<script>alert(1)</script>", 2)};
    snapshot_.drops = {{"no backend", 4}};
    revisions_ = {{2, "2026-01-01T00:00:01.000Z", "toml:/etc/xlb/xlb.toml", "~web (+backend 10.0.0.4:8080)",
                   {{model::ServiceChange::Kind::changed, "web", {"+backend 10.0.0.4:8080"}}}},
                  {1, "2026-01-01T00:00:00.000Z", "toml:/etc/xlb/xlb.toml", "+web", {}}};
    add_event("config", "xlb.toml", "reload rejected");
  }

  api::Snapshot snapshot() override {
    std::lock_guard lock(mutex_);
    return snapshot_;
  }
  Result<std::vector<api::RevisionView>> revisions(size_t limit) override {
    std::lock_guard lock(mutex_);
    return std::vector<api::RevisionView>(revisions_.begin(), revisions_.begin() + std::min(limit, revisions_.size()));
  }
  Result<std::vector<api::EventView>> events(size_t limit, int64_t after_id) override {
    std::lock_guard lock(mutex_);
    std::vector<api::EventView> out;
    for (const auto& e : events_)
      if (e.id > after_id) out.push_back(e);
    if (out.size() > limit) out.erase(out.begin(), out.end() - static_cast<ptrdiff_t>(limit));
    return out;
  }
  Result<api::DropsView> drops(size_t limit, int64_t after_id) override {
    std::lock_guard lock(mutex_);
    api::DropsView view;
    for (const auto& d : drops_)
      if (d.id > after_id) view.drops.push_back(d);
    if (view.drops.size() > limit)
      view.drops.erase(view.drops.begin(), view.drops.end() - static_cast<ptrdiff_t>(limit));
    view.last_id = drops_.empty() ? 0 : drops_.back().id;
    view.unreported = 7;
    return view;
  }
  // Every flow to 198.18.0.10:80/tcp is new and takes slot 5 of web's ring; anything else is not
  // a frontend.
  Result<api::TraceView> trace(const api::FlowQuery& flow) override {
    std::lock_guard lock(mutex_);
    traced_.push_back(flow);
    if (flow.frontend != ip("198.18.0.10") || flow.frontend_port != 80 || flow.protocol != model::Protocol::tcp)
      return api::TraceView{"not_a_frontend", "", "", "no frontend", 0, 0, 0, false, "", 0};
    return api::TraceView{"ring", "web", "10.0.0.2:8080", "a new flow", 1234, 5, 251, false, "", 0};
  }
  api::Outcome set_drained(std::string_view service, std::string_view backend, bool drained,
                           const api::Actor& actor) override {
    std::lock_guard lock(mutex_);
    writes_.push_back({std::string(service), std::string(backend), drained, actor});
    for (const auto& v : snapshot_.services)
      if (v.service.name == service) return {api::Outcome::Code::done, "drained", snapshot_.revision};
    return {api::Outcome::Code::not_found, "no service named \"" + std::string(service) + "\"", snapshot_.revision};
  }
  api::Outcome reload(const api::Actor& actor) override {
    std::lock_guard lock(mutex_);
    writes_.push_back({"", "", false, actor});
    if (reject_reload_) return {api::Outcome::Code::rejected, "the config was rejected: xlb.toml:3:1: bad", 2};
    return {api::Outcome::Code::done, "config unchanged", 2};
  }

  void add_event(std::string kind, std::string subject, std::string message) {
    std::lock_guard lock(mutex_);
    const int64_t id = static_cast<int64_t>(events_.size()) + 1;
    events_.push_back({id, "2026-01-01T00:00:00.000Z", std::move(kind), std::move(subject), std::move(message)});
  }
  void add_drop(std::string reason) {
    std::lock_guard lock(mutex_);
    const int64_t id = static_cast<int64_t>(drops_.size()) + 1;
    drops_.push_back({id, 1'700'000'000'000 + id, std::move(reason), "eth0", "tcp", "10.1.0.1:40000", "198.18.0.10:80"});
  }
  std::vector<api::FlowQuery> traced() {
    std::lock_guard lock(mutex_);
    return traced_;
  }
  std::vector<Write> writes() {
    std::lock_guard lock(mutex_);
    return writes_;
  }
  void reject_reloads() {
    std::lock_guard lock(mutex_);
    reject_reload_ = true;
  }

 private:
  std::mutex mutex_;
  api::Snapshot snapshot_;
  std::vector<api::RevisionView> revisions_;
  std::vector<api::EventView> events_;
  std::vector<api::DropView> drops_;
  std::vector<api::FlowQuery> traced_;
  std::vector<Write> writes_;
  bool reject_reload_ = false;
};

}  // namespace xlb::test

// xlbd's side of the API: reads the engine and the store, drains through the engine, reloads
// through the daemon.
//
// Threading: the API calls this from civetweb's worker threads, while xlbd's main loop changes
// the engine and the store on SIGHUP. One mutex, owned by the daemon, guards both: every method
// here holds it for its whole run, and the main loop holds it while it reloads. Writes through
// the API therefore never interleave with a reload, and a reader never sees half an apply.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>

#include "api/provider.h"
#include "base/log.h"
#include "config/config.h"
#include "datapath/datapath.h"
#include "engine/engine.h"
#include "store/store.h"

namespace xlb::xlbd {

// The node as configured: host name, kernel, version, datapath mode, what is attached.
api::NodeView node_view(const config::Config& config, std::vector<api::Attachment> attachments);

class ApiProvider final : public api::Provider {
 public:
  // `reload` re-reads the config like SIGHUP; it is called with `state` held. `datapath` is
  // where the counters come from; null in shadow mode (they stay zero).
  // `sources` describes the service sources; it is called with `state` held.
  // With a datapath, it reads the drop events from now on (a thread of its own), until destroyed.
  ApiProvider(std::mutex& state, engine::Engine& engine, store::Store& store, const datapath::Datapath* datapath,
              api::NodeView node, std::function<Status()> reload, std::function<std::vector<api::SourceView>()> sources,
              const Logger& log);

  api::Snapshot snapshot() override;
  Result<std::vector<api::RevisionView>> revisions(size_t limit) override;
  Result<std::vector<api::EventView>> events(size_t limit, int64_t after_id) override;
  Result<api::DropsView> drops(size_t limit, int64_t after_id) override;
  Result<api::TraceView> trace(const api::FlowQuery& flow) override;
  api::Outcome set_drained(std::string_view service, std::string_view backend, bool drained,
                           const api::Actor& actor) override;
  api::Outcome reload(const api::Actor& actor) override;
  // The BGP announcer's state for snapshots, and what to tell it after a drain changed which
  // backends take new flows (both called with `state` held); none: [bgp] is off.
  void set_bgp(std::function<api::BgpView()> bgp, std::function<void()> changed) {
    bgp_ = std::move(bgp);
    bgp_changed_ = std::move(changed);
  }

 private:
  // Fills the snapshot's counters and drops from the datapath's per-CPU maps.
  void add_counters(api::Snapshot& snapshot) const;
  // Leaves an event; a failure to is logged, not returned: the change itself is done.
  void record(std::string_view kind, std::string_view subject, const std::string& message);

  std::mutex& state_;
  engine::Engine& engine_;
  store::Store& store_;
  const datapath::Datapath* datapath_;
  const api::NodeView node_;
  const std::function<Status()> reload_;
  const std::function<std::vector<api::SourceView>()> sources_;
  const Logger& log_;
  std::function<api::BgpView()> bgp_;
  std::function<void()> bgp_changed_;
  // Null in shadow mode, or when the datapath would not give them (logged at start).
  std::unique_ptr<datapath::DropLog> drop_log_;
  std::optional<datapath::FlowTables> flow_tables_;
};

}  // namespace xlb::xlbd

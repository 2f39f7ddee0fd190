// xlbd's life: start (lock the state directory, open the store, apply the config), then wait
// for signals: SIGHUP reloads, SIGTERM/SIGINT stop.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "api/server.h"
#include "base/log.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "bgp/bgp.h"
#include "config/config.h"
#include "datapath/datapath.h"
#include "engine/engine.h"
#include "engine/merge.h"
#include "health/health.h"
#include "k8s/k8s.h"
#include "store/store.h"
#include "xlbd/api_provider.h"

namespace xlb::xlbd {

struct Options {
  std::filesystem::path config = "/etc/xlb/xlb.toml";
  std::filesystem::path state_dir = "/var/lib/xlb";
  std::filesystem::path pin_dir = datapath::default_pin_dir();
  bool watch_config = true;  // an edit of the config file reloads it, as SIGHUP does
  bool shadow = false;       // --shadow: [node] mode = "shadow" whatever the config file says
};

class Daemon {
 public:
  Daemon(Options options, const Logger& log) : options_(std::move(options)), log_(log) {}

  // Runs until SIGTERM or SIGINT; returns the process exit code.
  int run();

 private:
  Status start();
  Result<config::Config> load_config() const;
  Status apply(const config::Config& config, std::string_view why);
  // Applies the config file's services and the Kubernetes source's as one catalog.
  Status apply_sources(std::string_view why, const std::string& source);
  // Applies a change of the Kubernetes source: only the services it names are merged and applied.
  Status apply_kubernetes_changes(const model::CatalogChanges& changes);
  // Logs and records the conflicts that are new since the last merge.
  void record_conflicts(std::vector<std::string> conflicts, const std::string& source);
  // The Kubernetes source, when [kubernetes] enabled: until it has listed everything once, the
  // services it gave before a restart stay in force.
  Status start_kubernetes(const config::KubernetesConfig& config);
  void record_mode(config::NodeMode mode);
  void on_kubernetes(k8s::Publication publication);
  std::vector<api::SourceView> source_views() const;
  std::string status_line() const;  // for systemd's STATUS=; with state_mutex_ held
  // Puts xlb's programs back on configured links among `changed` that lost them.
  void reattach(const std::set<std::string>& changed);
  // A config that fails to load, validate or apply leaves the running one in force.
  // Called with state_mutex_ held: the API's threads read the engine and store under it.
  Status reload();
  // The web UI and REST API (see xlbd/api_provider.h for the threading). Without them (the
  // address is taken, say) xlbd still balances, and says so.
  void start_api(const config::Config& config);
  void notify(const std::string& state) const;
  // Health probes: started at the first catalog with probed services, then given each applied
  // catalog's backends. Called from apply(), so under state_mutex_ once the API runs.
  void update_health(const model::Catalog& catalog);
  // On the checker's thread: takes state_mutex_, applies the transition, logs it.
  void on_health(const health::Transition& transition);
  // BGP ([bgp] enabled): the VIPs this node can serve now, to the announcer. After each apply
  // and health change; with state_mutex_ held once the API runs.
  void announce();
  // A graceful stop: withdraw every VIP, then keep forwarding for drain_time (a second signal
  // ends the wait), so that the routers move the traffic away before this node stops.
  void withdraw_and_drain(int signal_fd);
  api::BgpView bgp_view() const;

  Options options_;
  const Logger& log_;
  UniqueFd lock_;
  std::optional<store::Store> store_;
  std::optional<datapath::Datapath> datapath_;  // none in shadow mode
  std::vector<api::Attachment> attachments_;
  std::optional<engine::Engine> engine_;
  config::Config started_with_;  // [node] and [maglev] as at start: changing them needs a restart
  model::Catalog config_catalog_;      // the config file's services in force
  // The Kubernetes source's services, as last published (or restored), by name.
  std::map<std::string, model::Service, std::less<>> kubernetes_services_;
  engine::SourceMerger merger_;        // the two sources, merged
  std::vector<std::string> conflicts_; // of the last merge
  bool kubernetes_resync_ = false;     // a change failed to apply: apply everything at the next one
  std::mutex state_mutex_;        // guards engine_ and store_ once the API runs
  // Thread-safe on its own; before the API and the health checker, which use it, so it outlives them.
  std::unique_ptr<bgp::Announcer> announcer_;
  // Last, so they go first: the server's threads call the provider, which reads the engine.
  std::unique_ptr<ApiProvider> api_provider_;
  std::unique_ptr<api::Server> api_server_;
  // Its callback uses the engine and the store: stops before them.
  std::unique_ptr<k8s::Source> kubernetes_;
  // Last of all, so it stops (joins its thread) first: its callback uses the engine and the store.
  std::unique_ptr<health::Checker> health_;
};

}  // namespace xlb::xlbd

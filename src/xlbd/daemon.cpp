#include "xlbd/daemon.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <net/if.h>
#include <sys/file.h>
#include <unistd.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "engine/merge.h"
#include "xlbd/config_watch.h"
#include "xlbd/kernel.h"
#include "xlbd/link_watch.h"


namespace xlb::xlbd {

namespace {

// One xlbd per state directory: two daemons writing the same maps and database would fight.
Result<UniqueFd> lock_state_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Error{"cannot create state directory " + dir.string() + ": " + ec.message()};
  const auto path = dir / "xlbd.lock";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) return Error{"cannot open " + path.string() + ": " + std::strerror(errno)};
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0)
    return Error{"another xlbd is already running with state directory " + dir.string() +
                 " (it holds " + path.string() + ")"};
  return fd;
}

Result<UniqueFd> signal_fd() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&set, s);
  // Blocked before any thread exists, so every thread inherits the mask and signals queue here.
  if (sigprocmask(SIG_BLOCK, &set, nullptr) != 0) return Error{std::string("sigprocmask: ") + std::strerror(errno)};
  UniqueFd fd(::signalfd(-1, &set, SFD_CLOEXEC));
  if (!fd) return Error{std::string("signalfd: ") + std::strerror(errno)};
  return fd;
}

// [node] decides what is attached where, and [maglev] moves every ring at once: both are read at
// start only, so that a reload never re-wires the node behind the operator's back. [kubernetes]
// too: a new API server or node identity is a restart's business.
bool restart_needed(const config::Config& running, const config::Config& loaded) {
  const auto& a = running.node;
  const auto& b = loaded.node;
  const auto& m = running.maglev;
  const auto& n = loaded.maglev;
  return a.mode != b.mode || a.interfaces != b.interfaces || a.xdp_mode != b.xdp_mode || a.cgroup != b.cgroup ||
         a.snat_ipv4 != b.snat_ipv4 || a.snat_ipv6 != b.snat_ipv6 || a.snat_port_min != b.snat_port_min ||
         a.snat_port_max != b.snat_port_max || a.dsr_source_ipv4 != b.dsr_source_ipv4 ||
         a.dsr_source_ipv6 != b.dsr_source_ipv6 || a.decap != b.decap || m.seed != n.seed ||
         m.min_table_size != n.min_table_size || m.max_table_size != n.max_table_size || running.kubernetes != loaded.kubernetes ||
         running.bgp != loaded.bgp;
}

// STATE_DIR/mode: "serve" or "shadow", written by xlbctl takeover and rollback.
std::optional<config::NodeMode> mode_set_by_xlbctl(const std::filesystem::path& state_dir) {
  std::ifstream in(state_dir / "mode");
  std::string word;
  if (!(in >> word)) return std::nullopt;
  if (word == "serve") return config::NodeMode::serve;
  if (word == "shadow") return config::NodeMode::shadow;
  return std::nullopt;
}

}  // namespace

Result<config::Config> Daemon::load_config() const {
  auto config = config::load(options_.config);
  if (!config) return Error{"config " + options_.config.string() + " rejected:\n" + config.error().message};
  // Every load, not only the first: a reload must not read as a change of mode. The mode that
  // xlbctl takeover or rollback left in the state directory outlasts restarts: it comes first.
  if (auto mode = mode_set_by_xlbctl(options_.state_dir))
    config->node.mode = *mode;
  else if (options_.shadow)
    config->node.mode = config::NodeMode::shadow;
  return config;
}

Status Daemon::start() {
  auto lock = lock_state_dir(options_.state_dir);
  if (!lock) return lock.error();
  lock_ = std::move(*lock);
  auto store = store::Store::open(options_.state_dir / "state.db");
  if (!store) return store.error();
  store_.emplace(std::move(*store));
  auto config = load_config();
  if (!config) return config.error();
  started_with_ = *config;
  record_mode(config->node.mode);
  if (config->node.mode == config::NodeMode::serve) {
    auto datapath = load_datapath(config->node, options_.pin_dir, log_);
    if (!datapath) return datapath.error();
    datapath_.emplace(std::move(*datapath));
  } else {
    log_.info("shadow mode: nothing is loaded into the kernel; the catalog and rings are built and shown only");
  }
  const auto& maglev = config->maglev;
  engine::Engine::SocketEnder end_sockets;
  if (datapath_)
    end_sockets = [this](const std::vector<datapath::BackendEntry>& backends) {
      std::vector<datapath::Endpoint> endpoints;
      for (const auto& b : backends) endpoints.push_back({b.address, b.port});
      return datapath_->destroy_sockets_to(endpoints);
    };
  engine_.emplace(*store_, log_, engine::MaglevSettings{maglev.seed, {maglev.min_table_size, maglev.max_table_size}},
                  datapath_ ? &datapath_->maps() : nullptr, std::move(end_sockets));
  if (auto s = engine_->restore(); !s) return s;
  if (config->kubernetes.enabled)
    for (const auto& [name, state] : engine_->services())
      if (state.service.source == "kubernetes") kubernetes_services_.insert_or_assign(name, state.service);
  // Maps first, attach after: a program attached for the first time finds every service.
  if (auto s = apply(*config, "start"); !s) return s;
  if (datapath_) {
    auto attached = attach_datapath(*datapath_, *config, log_);
    if (!attached) return attached.error();
    attachments_ = std::move(*attached);
  }
  if (config->bgp.enabled) {  // attached first: a VIP is announced only once this node can serve it
    std::lock_guard state(state_mutex_);  // the health checker may already call announce()
    announcer_ = std::make_unique<bgp::Announcer>(config->bgp, log_);
    announce();
  }
  return start_kubernetes(config->kubernetes);
}

// A change of mode (serve, shadow) between starts is an event: a takeover or a rollback
// leaves its trace in the history, with who decided it.
void Daemon::record_mode(config::NodeMode mode) {
  const std::string now = mode == config::NodeMode::serve ? "serve" : "shadow";
  auto before = store_->setting("node.mode");
  if (!before || (*before && **before == now)) return;
  if (!*before) {  // the first start: nothing changed, only remembered
    if (auto s = store_->set_setting("node.mode", now); !s) log_.warning("could not record the mode: " + s.error().message);
    return;
  }
  const std::string why = mode_set_by_xlbctl(options_.state_dir) ? "set by xlbctl takeover/rollback in " +
                                                                        (options_.state_dir / "mode").string()
                          : options_.shadow                      ? "xlbd --shadow"
                                                                 : "[node] mode of " + options_.config.string();
  const std::string message = "xlbd starts in " + now + " mode (was " + **before + "): " + why;
  log_.info(message);
  if (auto e = store_->record_event("mode", now, message); !e) log_.warning("could not record the mode: " + e.error().message);
  if (auto s = store_->set_setting("node.mode", now); !s) log_.warning("could not record the mode: " + s.error().message);
}

Status Daemon::start_kubernetes(const config::KubernetesConfig& config) {
  if (!config.enabled) return {};
  auto credentials = k8s::discover_credentials(config.kubeconfig);
  if (!credentials) return Error{"[kubernetes] is enabled but: " + credentials.error().message};
  k8s::SourceSettings settings;
  settings.translate.node_name = config.node_name;
  if (settings.translate.node_name.empty()) {
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) == 0) settings.translate.node_name = host;
  }
  settings.translate.zone = config.zone;
  settings.translate.node_addresses = config.node_addresses;
  settings.translate.service_proxy_name = config.service_proxy_name;
  settings.translate.default_mode = config.forwarding_mode;
  settings.reflector.silence_timeout = std::chrono::seconds(config.silence_timeout_s);
  if (!kubernetes_services_.empty())
    log_.info("kubernetes: the " + std::to_string(kubernetes_services_.size()) +
              " services it gave before stay in force until it has listed everything again");
  kubernetes_ = std::make_unique<k8s::Source>(
      *credentials, settings, [this](k8s::Publication p) { on_kubernetes(std::move(p)); }, log_);
  return {};
}

void Daemon::on_kubernetes(k8s::Publication publication) {
  std::lock_guard state(state_mutex_);
  const size_t skipped = publication.skipped.size();
  if (publication.whole) {
    kubernetes_services_.clear();
    for (auto& s : publication.catalog.services) kubernetes_services_.insert_or_assign(s.name, std::move(s));
  } else {
    for (const auto& s : publication.changes.upserted) kubernetes_services_.insert_or_assign(s.name, s);
    for (const auto& name : publication.changes.removed)
      if (auto it = kubernetes_services_.find(name); it != kubernetes_services_.end()) kubernetes_services_.erase(it);
  }
  // After a change that failed, the merged catalog and the engine may differ: everything again.
  const bool whole = publication.whole || kubernetes_resync_;
  const Status applied = whole ? apply_sources("kubernetes", "kubernetes") : apply_kubernetes_changes(publication.changes);
  kubernetes_resync_ = !applied;
  if (!applied) {
    log_.error("kubernetes: not applied: " + applied.error().message);
    return;
  }
  const auto took = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                                          publication.first_change);
  log_.debug("kubernetes: change to maps in " + std::to_string(took.count()) + " us");
  notify("STATUS=" + status_line());
  if (skipped > 0)
    log_.info("kubernetes: " + std::to_string(skipped) + " objects or ports skipped (see the dashboard or xlbctl status)");
}

Status Daemon::apply_kubernetes_changes(const model::CatalogChanges& changes) {
  engine::MergedChanges merged = merger_.change_kubernetes(changes);
  record_conflicts(std::move(merged.conflicts), "kubernetes");
  // Probes follow the services that have them, announcements those with an address routed to
  // this node: a change of any other service costs nothing more here.
  auto probed = [](const model::Service& s) { return s.health.type != model::HealthCheckType::none; };
  auto routed = [](const model::Service& s) {
    return std::any_of(s.frontends.begin(), s.frontends.end(), [](const model::Frontend& f) {
      return f.kind != model::FrontendKind::cluster_ip && f.kind != model::FrontendKind::node_port;
    });
  };
  bool health_changes = false, announce_changes = false;
  auto look = [&](const model::Service* s) {
    if (!s) return;
    health_changes = health_changes || probed(*s);
    announce_changes = announce_changes || routed(*s);
  };
  for (const auto& s : merged.changes.upserted) {
    look(&s);
    if (const auto* before = engine_->find(s.name)) look(&before->service);
  }
  for (const auto& name : merged.changes.removed)
    if (const auto* before = engine_->find(name)) look(&before->service);

  auto applied = engine_->apply_changes(merged.changes, "kubernetes");
  if (!applied) return applied.error();
  if (!applied->changed) return {};
  const auto c = engine_->counts();
  log_.info("kubernetes: applied revision " + std::to_string(applied->revision) + " (" + std::to_string(c.services) +
            " services, " + std::to_string(c.frontends) + " frontends, " + std::to_string(c.backends) +
            " backends): " + applied->summary);
  if (applied->map_writes > 0) log_.debug("kubernetes: datapath: " + applied->plan);
  if (health_changes) update_health(engine_->catalog());
  if (announce_changes) announce();
  return {};
}

void Daemon::record_conflicts(std::vector<std::string> conflicts, const std::string& source) {
  if (conflicts == conflicts_) return;
  const std::set<std::string> known(conflicts_.begin(), conflicts_.end());
  for (const auto& c : conflicts) {
    if (known.count(c)) continue;
    log_.warning("conflict: " + c);
    if (auto e = store_->record_event("conflict", source, c); !e)
      log_.warning("could not record the conflict: " + e.error().message);
  }
  conflicts_ = std::move(conflicts);
}

Status Daemon::apply(const config::Config& config, std::string_view why) {
  config_catalog_ = config.catalog;
  return apply_sources(why, "toml:" + options_.config.string());
}

Status Daemon::apply_sources(std::string_view why, const std::string& source) {
  model::Catalog kubernetes;
  kubernetes.services.reserve(kubernetes_services_.size());
  for (const auto& [name, s] : kubernetes_services_) kubernetes.services.push_back(s);
  engine::Merged merged = merger_.merge(config_catalog_, kubernetes);
  record_conflicts(std::move(merged.conflicts), source);
  auto applied = engine_->apply(merged.catalog, source);
  if (!applied) return applied.error();
  const auto& c = merged.catalog;
  const std::string counts = std::to_string(c.services.size()) + " services, " +
                             std::to_string(c.frontend_count()) + " frontends, " +
                             std::to_string(c.backend_count()) + " backends";
  if (applied->changed)
    log_.info(std::string(why) + ": applied revision " + std::to_string(applied->revision) + " (" + counts +
              "): " + applied->summary);
  else
    log_.info(std::string(why) + ": config unchanged, revision " + std::to_string(applied->revision) +
              " stays in force (" + counts + ")");
  if (applied->map_writes > 0) log_.info(std::string(why) + ": datapath: " + applied->plan);
  update_health(c);
  announce();
  return {};
}

// systemctl status shows it: "revision 12: 40 services, 42 frontends, 118 backends; kubernetes stale".
std::string Daemon::status_line() const {
  const auto c = engine_->counts();
  std::string line = "revision " + std::to_string(engine_->revision()) + ": " + std::to_string(c.services) +
                     " services, " + std::to_string(c.frontends) + " frontends, " + std::to_string(c.backends) +
                     " backends";
  if (!datapath_) line += "; shadow mode";
  if (kubernetes_) {
    const auto status = kubernetes_->status();
    line += status.stale() ? (status.synced ? "; kubernetes stale" : "; kubernetes syncing") : "; kubernetes ok";
  }
  return line;
}

void Daemon::reattach(const std::set<std::string>& changed) {
  const auto& node = started_with_.node;
  for (const auto& interface : node.interfaces) {
    if (!changed.count(interface)) continue;
    auto attached = datapath_->attached_to(interface, node.xdp_mode != config::XdpMode::off);
    if (!attached) {
      if (::if_nametoindex(interface.c_str()) == 0) continue;  // deleted: it is put back when it returns
      log_.warning("datapath: " + attached.error().message);
      continue;
    }
    if (*attached) continue;  // news about it, but xlb's programs are still there
    log_.warning("datapath: " + interface + " lost xlb's programs (made again, or detached); attaching them again");
    if (auto link = attach_link(*datapath_, node, interface, log_); !link)
      log_.error("datapath: " + interface + ": " + link.error().message);
  }
}

std::vector<api::SourceView> Daemon::source_views() const {
  std::vector<api::SourceView> views;
  views.push_back({"toml", "ok", options_.config.string(), config_catalog_.services.size(), {}});
  if (!kubernetes_) return views;
  const k8s::SourceStatus status = kubernetes_->status();
  api::SourceView k{"kubernetes", "ok", status.server, kubernetes_services_.size(), conflicts_};
  if (!status.synced)
    k.state = "syncing";
  else if (!status.healthy)
    k.state = "stale";
  if (!status.error.empty()) k.detail += ": " + status.error;
  for (const auto& s : status.skipped) k.problems.push_back(s.object + ": " + s.reason);
  views.push_back(std::move(k));
  return views;
}

void Daemon::update_health(const model::Catalog& catalog) {
  auto targets = health::targets_of(catalog);
  if (!health_) {
    if (targets.empty()) return;
    auto checker = health::Checker::start([this](const health::Transition& t) { on_health(t); });
    if (!checker) {
      log_.error(checker.error().message + "; backends are not probed (every one counts as up)");
      return;
    }
    health_ = std::move(*checker);
    log_.info("health: probing " + std::to_string(targets.size()) +
              " backends (health state is runtime only: after a restart every backend is probed again)");
  }
  health_->set_targets(std::move(targets));
}

void Daemon::on_health(const health::Transition& t) {
  std::lock_guard state(state_mutex_);
  const std::string what =
      "health: " + t.service + "/" + t.backend + " " + std::string(health::to_string(t.change)) + ": " + t.reason;
  using health::Change;
  auto applied = t.change == Change::up || t.change == Change::down
                     ? engine_->set_health(t.service, t.backend, t.change == Change::up, t.reason)
                     : engine_->set_slow(t.service, t.backend, t.change == Change::slow, t.reason);
  if (!applied) {
    log_.error(what + "; not applied: " + applied.error().message);
    return;
  }
  if (!applied->changed) {
    log_.info(what);
    return;
  }
  const engine::ServiceState* changed = engine_->find(t.service);
  const double moved = changed ? changed->last_disruption : 0;
  char share[32];
  std::snprintf(share, sizeof share, "%.1f%%", moved * 100);
  log_.info(what + "; applied revision " + std::to_string(applied->revision) + ", " + share +
            " of ring slots moved" + (applied->map_writes > 0 ? "; datapath: " + applied->plan : ""));
  announce();
}

void Daemon::announce() {
  if (!announcer_) return;
  bgp::NodeInputs node;
  node.datapath_attached = datapath_ && started_with_.node.xdp_mode != config::XdpMode::off && !attachments_.empty();
  announcer_->update(bgp::plan_vips(engine_->catalog(), node));
}

api::BgpView Daemon::bgp_view() const {
  const bgp::Report r = announcer_->report();
  api::BgpView view{true, r.configured, r.error, r.include_file, r.bird_socket, {}, {}};
  for (const auto& v : r.vips) view.vips.push_back({v.address.to_string(), v.services, v.announced, v.reason});
  for (const auto& p : r.peers)
    view.peers.push_back({p.name, p.address, p.asn, p.state, p.since, p.info, p.established()});
  return view;
}

void Daemon::withdraw_and_drain(int signal_fd) {
  if (!announcer_) return;
  if (auto s = announcer_->withdraw_all("xlbd is stopping"); !s) {
    log_.error("bgp: could not withdraw the VIPs: " + s.error().message +
               "; the routers send traffic here until bird's sessions end (the datapath keeps forwarding)");
    return;
  }
  const auto drain = started_with_.bgp.drain_time;
  log_.info("bgp: every VIP withdrawn; forwarding goes on for " + std::to_string(drain.count()) +
            " ms ([bgp] drain_time) while the routers move the traffic away");
  notify("STATUS=draining: VIPs withdrawn over BGP");
  pollfd signals{signal_fd, POLLIN, 0};
  const auto end = std::chrono::steady_clock::now() + drain;
  for (auto now = std::chrono::steady_clock::now(); now < end; now = std::chrono::steady_clock::now()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - now).count();
    if (::poll(&signals, 1, static_cast<int>(left) + 1) > 0) {
      signalfd_siginfo info{};
      if (::read(signal_fd, &info, sizeof info) == sizeof info && info.ssi_signo != SIGHUP) {
        log_.info("a second signal: stopping before the end of the drain time");
        return;
      }
    }
  }
}

Status Daemon::reload() {
  notify("RELOADING=1");
  auto config = load_config();
  Status status = config ? apply(*config, "reload") : Status(config.error());
  if (config && restart_needed(started_with_, *config))
    log_.warning("reload: [node], [maglev], [kubernetes] or [bgp] settings changed; they take effect at the next restart (services were "
                 "reloaded)");
  if (!status) {
    log_.error(status.error().message);
    log_.error("reload: the running config (revision " + std::to_string(engine_->revision()) + ") stays in force");
    if (auto e = store_->record_event("config", options_.config.string(), "reload rejected: " + status.error().message);
        !e)
      log_.warning("could not record the rejected reload: " + e.error().message);
  }
  notify("READY=1\nSTATUS=" + status_line());
  return status;
}

void Daemon::start_api(const config::Config& config) {
  if (config.api.listen == "off") {
    log_.info("api: off ([api] listen = \"off\")");
    return;
  }
  api_provider_ = std::make_unique<ApiProvider>(state_mutex_, *engine_, *store_, datapath_ ? &*datapath_ : nullptr,
                                                node_view(config, attachments_),
                                                [this] { return reload(); }, [this] { return source_views(); }, log_);
  api::ServerConfig api;
  api.listen = config.api.listen;
  auto server = api::Server::start(api, *api_provider_, options_.state_dir, log_);
  if (!server) {
    log_.error(server.error().message + "; xlbd goes on without its web UI and API (fix [api] listen and restart)");
    return;
  }
  if (announcer_) api_provider_->set_bgp([this] { return bgp_view(); }, [this] { announce(); });
  api_server_ = std::move(*server);
  log_.info("api: dashboard and REST API at " + api_server_->url());
}

void Daemon::notify(const std::string& state) const { sd_notify(0, state.c_str()); }

int Daemon::run() {
  auto signals = signal_fd();
  if (!signals) {
    log_.error(signals.error().message);
    return 1;
  }
  // Watching before the config is first read: an edit made while xlbd starts is not missed.
  std::optional<ConfigWatch> watch;
  if (options_.watch_config) {
    auto w = ConfigWatch::start(options_.config);
    if (w)
      watch.emplace(std::move(*w));
    else
      log_.warning(w.error().message + "; reload with SIGHUP (systemctl reload xlb)");
  }
  if (auto s = start(); !s) {
    log_.error(s.error().message);
    // A node that cannot serve (a failed preflight, say) must not attract traffic. Only with the
    // state directory locked: otherwise another xlbd serves here and its VIPs are not ours to drop.
    if (lock_ && started_with_.bgp.enabled) {
      const Status withdrawn = announcer_ ? announcer_->withdraw_all("xlbd failed to start")
                                          : bgp::configure_bird(started_with_.bgp, {});
      if (withdrawn)
        log_.info("bgp: every VIP withdrawn (xlbd failed to start)");
      else
        log_.error("bgp: could not withdraw the VIPs: " + withdrawn.error().message);
    }
    return 1;
  }
  start_api(started_with_);
  // Under the lock: the health checker may already be changing the engine.
  const int64_t revision = [this] {
    std::lock_guard state(state_mutex_);
    return engine_->revision();
  }();
  log_.info("ready: revision " + std::to_string(revision) + ", state " + (options_.state_dir / "state.db").string());
  notify("READY=1\nSTATUS=" + [this] {
    std::lock_guard state(state_mutex_);
    return status_line();
  }());

  std::optional<LinkWatch> links;
  if (datapath_ && !started_with_.node.interfaces.empty()) {
    auto w = LinkWatch::start();
    if (w)
      links.emplace(std::move(*w));
    else
      log_.warning(w.error().message + "; a configured link that is made again needs a restart of xlbd");
  }
  // An edit often arrives as several writes and renames: reload once it has settled.
  constexpr auto kSettle = std::chrono::milliseconds(200);
  std::optional<std::chrono::steady_clock::time_point> reload_at;
  for (;;) {
    pollfd fds[3] = {{signals->get(), POLLIN, 0}, {watch ? watch->fd() : -1, POLLIN, 0}, {links ? links->fd() : -1, POLLIN, 0}};
    int timeout = -1;
    if (reload_at)
      timeout = static_cast<int>(std::max<int64_t>(
          0, std::chrono::duration_cast<std::chrono::milliseconds>(*reload_at - std::chrono::steady_clock::now()).count()));
    if (::poll(fds, 3, timeout) < 0) {
      if (errno == EINTR) continue;
      log_.error(std::string("poll: ") + std::strerror(errno));
      return 1;
    }
    if (fds[1].revents & POLLIN && watch->changed()) reload_at = std::chrono::steady_clock::now() + kSettle;
    if (fds[2].revents & POLLIN) reattach(links->changed());
    if (reload_at && std::chrono::steady_clock::now() >= *reload_at) {
      reload_at.reset();
      log_.info(options_.config.string() + " changed: reloading");
      std::lock_guard state(state_mutex_);
      (void)reload();
    }
    if (!(fds[0].revents & POLLIN)) continue;
    signalfd_siginfo info{};
    if (::read(signals->get(), &info, sizeof info) != sizeof info) continue;
    if (info.ssi_signo == SIGHUP) {
      log_.info("SIGHUP: reloading " + options_.config.string());
      std::lock_guard state(state_mutex_);
      (void)reload();
      continue;
    }
    log_.info(std::string(info.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT") + ": stopping");
    notify("STOPPING=1");
    withdraw_and_drain(signals->get());
    return 0;
  }
}

}  // namespace xlb::xlbd

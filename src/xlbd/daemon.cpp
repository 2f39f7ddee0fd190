#include "xlbd/daemon.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>

#include <cerrno>
#include <cstring>


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

}  // namespace

Result<config::Config> Daemon::load_config() const {
  auto config = config::load(options_.config);
  if (!config) return Error{"config " + options_.config.string() + " rejected:\n" + config.error().message};
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
  maglev_ = config->maglev;
  engine_.emplace(*store_, log_,
                  engine::MaglevSettings{maglev_.seed, {maglev_.min_table_size, maglev_.max_table_size}});
  if (auto s = engine_->restore(); !s) return s;
  return apply(*config, "start");
}

Status Daemon::apply(const config::Config& config, std::string_view why) {
  auto applied = engine_->apply(config.catalog, "toml:" + options_.config.string());
  if (!applied) return applied.error();
  const auto& c = config.catalog;
  const std::string counts = std::to_string(c.services.size()) + " services, " +
                             std::to_string(c.frontend_count()) + " frontends, " +
                             std::to_string(c.backend_count()) + " backends";
  if (applied->changed)
    log_.info(std::string(why) + ": applied revision " + std::to_string(applied->revision) + " (" + counts +
              "): " + applied->summary);
  else
    log_.info(std::string(why) + ": config unchanged, revision " + std::to_string(applied->revision) +
              " stays in force (" + counts + ")");
  return {};
}

void Daemon::reload() {
  notify("RELOADING=1");
  auto config = load_config();
  Status status = config ? apply(*config, "reload") : Status(config.error());
  if (config && (config->maglev.seed != maglev_.seed || config->maglev.min_table_size != maglev_.min_table_size ||
                 config->maglev.max_table_size != maglev_.max_table_size))
    log_.warning("reload: [maglev] settings changed; they take effect at the next restart, since they move every ring");
  if (!status) {
    log_.error(status.error().message);
    log_.error("reload: the running config (revision " + std::to_string(engine_->revision()) + ") stays in force");
    if (auto e = store_->record_event("config", options_.config.string(), "reload rejected: " + status.error().message);
        !e)
      log_.warning("could not record the rejected reload: " + e.error().message);
  }
  notify("READY=1\nSTATUS=revision " + std::to_string(engine_->revision()));
}

void Daemon::notify(const std::string& state) const { sd_notify(0, state.c_str()); }

int Daemon::run() {
  auto signals = signal_fd();
  if (!signals) {
    log_.error(signals.error().message);
    return 1;
  }
  if (auto s = start(); !s) {
    log_.error(s.error().message);
    return 1;
  }
  log_.info("ready: revision " + std::to_string(engine_->revision()) + ", state " +
            (options_.state_dir / "state.db").string());
  notify("READY=1\nSTATUS=revision " + std::to_string(engine_->revision()));

  for (;;) {
    pollfd pfd{signals->get(), POLLIN, 0};
    if (::poll(&pfd, 1, -1) < 0) {
      if (errno == EINTR) continue;
      log_.error(std::string("poll: ") + std::strerror(errno));
      return 1;
    }
    signalfd_siginfo info{};
    if (::read(signals->get(), &info, sizeof info) != sizeof info) continue;
    if (info.ssi_signo == SIGHUP) {
      log_.info("SIGHUP: reloading " + options_.config.string());
      reload();
      continue;
    }
    log_.info(std::string(info.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT") + ": stopping");
    notify("STOPPING=1");
    return 0;
  }
}

}  // namespace xlb::xlbd

// xlbd's life: start (lock the state directory, open the store, apply the config), then wait
// for signals: SIGHUP reloads, SIGTERM/SIGINT stop.
#pragma once

#include <filesystem>
#include <optional>

#include "base/log.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "config/config.h"
#include "engine/engine.h"
#include "store/store.h"

namespace xlb::xlbd {

struct Options {
  std::filesystem::path config = "/etc/xlb/xlb.toml";
  std::filesystem::path state_dir = "/var/lib/xlb";
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
  // A config that fails to load, validate or apply leaves the running one in force.
  void reload();
  void notify(const std::string& state) const;

  Options options_;
  const Logger& log_;
  UniqueFd lock_;
  std::optional<store::Store> store_;
  std::optional<engine::Engine> engine_;
  config::MaglevConfig maglev_;  // as at start: changing it needs a restart
};

}  // namespace xlb::xlbd

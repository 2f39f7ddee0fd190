// xlbd's life: start (lock the state directory, open the store, apply the config), then wait
// for signals: SIGHUP reloads, SIGTERM/SIGINT stop.
#pragma once

#include <filesystem>
#include <optional>

#include "base/log.h"
#include "base/result.h"
#include "base/unique_fd.h"
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
  // A config that fails to load or validate leaves the running one in force.
  Status apply_config_file(std::string_view why);
  void reload();
  void notify(const std::string& state) const;

  Options options_;
  const Logger& log_;
  UniqueFd lock_;
  std::optional<store::Store> store_;
  std::optional<engine::Engine> engine_;
};

}  // namespace xlb::xlbd

// Keeps a local copy of one kind of object in step with the API server, the way client-go's
// reflector does: LIST (in pages) then WATCH from the list's resourceVersion, with bookmarks;
// a dropped or silent stream resumes from the last version seen; 410 Gone lists again;
// 429 waits as long as the server asks; other failures back off with jitter.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <random>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/log.h"
#include "k8s/api_client.h"

namespace xlb::k8s {

struct ReflectorSettings {
  uint32_t page_size = 500;
  std::chrono::seconds silence_timeout{120};  // a watch quiet this long (no event, no bookmark) is dropped
  std::chrono::seconds watch_timeout{300};    // asked of the server; it ends the watch after about this
  std::chrono::milliseconds backoff_min{250};
  std::chrono::milliseconds backoff_max{30000};
  std::chrono::seconds request_timeout{60};
};

struct ReflectorHandler {
  // A complete, consistent list: replaces everything known before.
  std::function<void(std::vector<nlohmann::json> items)> on_list;
  // type is ADDED, MODIFIED or DELETED.
  std::function<void(std::string_view type, const nlohmann::json& object)> on_event;
  // The link to the API server works (true) or has failed with `error` (false).
  std::function<void(bool healthy, const std::string& error)> on_health;
};

class Reflector {
 public:
  // `resource` is the collection path, e.g. "/api/v1/services".
  Reflector(const ApiClient& client, std::string resource, ReflectorSettings settings, ReflectorHandler handler,
            const Logger& log);

  // Runs until `stop` is requested (and the client stopped, to end a transfer in progress).
  void run(std::stop_token stop);

  // Counters, for tests and the status page.
  struct Stats {
    uint64_t lists = 0;
    uint64_t watches = 0;
    uint64_t events = 0;
    uint64_t bookmarks = 0;
    uint64_t malformed = 0;
  };
  Stats stats() const {
    return {lists_.load(), watches_.load(), events_.load(), bookmarks_.load(), malformed_.load()};
  }

 private:
  enum class Next { watch, relist, back_off };
  Next list();
  Next watch();
  Next handle_watch_line(std::string_view line);
  bool wait(std::stop_token& stop, std::chrono::milliseconds how_long);
  std::chrono::milliseconds next_backoff();
  void healthy();
  void failed(const std::string& error);

  const ApiClient& client_;
  std::string resource_;
  ReflectorSettings settings_;
  ReflectorHandler handler_;
  const Logger& log_;
  std::string resource_version_;
  std::chrono::milliseconds backoff_{0};
  std::optional<std::chrono::seconds> retry_after_;
  std::minstd_rand jitter_;
  std::atomic<uint64_t> lists_{0}, watches_{0}, events_{0}, bookmarks_{0}, malformed_{0};
  bool healthy_ = false;
  bool relist_ = false;  // set by a 410 inside the stream
};

}  // namespace xlb::k8s

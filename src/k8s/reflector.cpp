#include "k8s/reflector.h"

#include <condition_variable>
#include <mutex>

#include "k8s/watch.h"

namespace xlb::k8s {
namespace {

using nlohmann::json;

std::string status_message(long status, const std::string& body) {
  std::string message = "HTTP " + std::to_string(status);
  try {
    json s = json::parse(body);
    if (s.is_object() && s.contains("message") && s["message"].is_string())
      message += ": " + s["message"].get<std::string>();
  } catch (const json::exception&) {
  }
  return message;
}

}  // namespace

Reflector::Reflector(const ApiClient& client, std::string resource, ReflectorSettings settings,
                     ReflectorHandler handler, const Logger& log)
    : client_(client),
      resource_(std::move(resource)),
      settings_(settings),
      handler_(std::move(handler)),
      log_(log),
      jitter_(static_cast<unsigned>(std::random_device{}())) {}

void Reflector::run(std::stop_token stop) {
  Next next = Next::relist;
  while (!stop.stop_requested()) {
    switch (next) {
      case Next::relist: next = list(); break;
      case Next::watch: next = watch(); break;
      case Next::back_off: {
        auto delay = retry_after_ ? std::chrono::duration_cast<std::chrono::milliseconds>(*retry_after_) : next_backoff();
        retry_after_.reset();
        if (!wait(stop, delay)) return;
        next = resource_version_.empty() || relist_ ? Next::relist : Next::watch;
        break;
      }
    }
  }
}

Reflector::Next Reflector::list() {
  std::vector<json> items;
  std::string continue_token;
  std::string version;
  do {
    std::string path = resource_ + "?limit=" + std::to_string(settings_.page_size);
    if (!continue_token.empty()) path += "&continue=" + continue_token;
    auto response = client_.get(path, settings_.request_timeout);
    if (!response) {
      failed("list " + resource_ + ": " + response.error().message);
      return Next::back_off;
    }
    if (response->status == 410) {  // the continue token expired mid-way: start over
      log_.info("list " + resource_ + ": the list expired between pages; listing again");
      items.clear();
      continue_token.clear();
      continue;
    }
    if (response->status != 200) {
      retry_after_ = response->retry_after;
      failed("list " + resource_ + ": " + status_message(response->status, response->body));
      return Next::back_off;
    }
    json page;
    try {
      page = json::parse(response->body);
    } catch (const json::exception& e) {
      failed("list " + resource_ + ": the response is not JSON: " + e.what());
      return Next::back_off;
    }
    if (!page.is_object() || !page.contains("items") || !page["items"].is_array()) {
      failed("list " + resource_ + ": the response has no items list");
      return Next::back_off;
    }
    for (json& item : page["items"]) items.push_back(std::move(item));
    version = resource_version_of(page);
    const json& meta = page["metadata"];
    continue_token = meta.is_object() && meta.contains("continue") && meta["continue"].is_string()
                         ? meta["continue"].get<std::string>()
                         : "";
  } while (!continue_token.empty() && !client_.stopped());
  if (client_.stopped()) return Next::back_off;
  ++lists_;
  resource_version_ = version;
  relist_ = false;
  healthy();
  handler_.on_list(std::move(items));
  return Next::watch;
}

Reflector::Next Reflector::watch() {
  const auto server_timeout =
      settings_.watch_timeout.count() + static_cast<long>(jitter_() % (settings_.watch_timeout.count() / 5 + 1));
  const std::string path = resource_ + "?watch=1&allowWatchBookmarks=true&resourceVersion=" + resource_version_ +
                           "&timeoutSeconds=" + std::to_string(server_timeout);
  ++watches_;
  const auto started = std::chrono::steady_clock::now();
  bool any_line = false;
  Next after_line = Next::watch;
  auto end = client_.stream(path, settings_.silence_timeout, [&](std::string_view line) {
    if (line.empty()) return true;
    any_line = true;
    healthy();
    after_line = handle_watch_line(line);
    return after_line == Next::watch;
  });
  if (!end) {
    failed("watch " + resource_ + ": " + end.error().message);
    return Next::back_off;
  }
  if (after_line != Next::watch) return after_line;
  if (end->status == 410) return Next::relist;
  if (end->status != 200) {
    retry_after_ = end->retry_after;
    failed("watch " + resource_ + ": " + status_message(end->status, end->body));
    return Next::back_off;
  }
  if (end->silent) {
    // A server that answers sends a bookmark now and then: silence this long is a server or a
    // path that is gone without a word (a black hole). Stale until a stream speaks again.
    failed("watch " + resource_ + ": nothing for " + std::to_string(settings_.silence_timeout.count()) +
           " s; dropping the stream and resuming from resourceVersion " + resource_version_);
    return Next::watch;
  }
  // The server ended the watch (its timeout): resume where we were. One that ends at once with
  // nothing said would make this a busy loop, so that one waits first.
  if (!any_line && std::chrono::steady_clock::now() - started < std::chrono::seconds(1)) return Next::back_off;
  return Next::watch;
}

Reflector::Next Reflector::handle_watch_line(std::string_view line) {
  const WatchEvent event = parse_watch_line(line);
  switch (event.kind) {
    case WatchEvent::Kind::malformed:
      ++malformed_;
      log_.warning("watch " + resource_ + ": skipping " + event.problem);
      return Next::watch;
    case WatchEvent::Kind::gone:
      log_.info("watch " + resource_ + ": resourceVersion " + resource_version_ + " is too old (410 Gone); listing again");
      relist_ = true;
      return Next::relist;
    case WatchEvent::Kind::error:
      failed("watch " + resource_ + ": " + status_message(event.code, event.object.dump()));
      return Next::back_off;
    case WatchEvent::Kind::bookmark:
      ++bookmarks_;
      if (!event.resource_version.empty()) resource_version_ = event.resource_version;
      return Next::watch;
    case WatchEvent::Kind::object:
      ++events_;
      if (!event.resource_version.empty()) resource_version_ = event.resource_version;
      handler_.on_event(event.type, event.object);
      return Next::watch;
  }
  return Next::watch;
}

bool Reflector::wait(std::stop_token& stop, std::chrono::milliseconds how_long) {
  std::mutex m;
  std::condition_variable_any cv;
  std::unique_lock lock(m);
  return !cv.wait_for(lock, stop, how_long, [] { return false; });
}

std::chrono::milliseconds Reflector::next_backoff() {
  backoff_ = backoff_.count() == 0 ? settings_.backoff_min : std::min(backoff_ * 2, settings_.backoff_max);
  // Full jitter in the upper half: many nodes that lost the server at once do not return at once.
  const auto half = backoff_.count() / 2;
  return std::chrono::milliseconds(half + static_cast<long>(jitter_() % static_cast<unsigned long>(half + 1)));
}

void Reflector::healthy() {
  backoff_ = std::chrono::milliseconds(0);
  if (healthy_) return;
  healthy_ = true;
  if (handler_.on_health) handler_.on_health(true, "");
}

void Reflector::failed(const std::string& error) {
  if (client_.stopped()) return;  // shutting down: not a failure
  log_.warning(error);
  healthy_ = false;
  if (handler_.on_health) handler_.on_health(false, error);
}

}  // namespace xlb::k8s

#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "k8s/k8s.h"

namespace xlb::k8s {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// One kind of object, by namespace/name, as the reflector last reported it; objects that do
// not parse are kept out and remembered with their reason.
template <class T>
struct Collection {
  std::map<std::string, T> objects;
  std::map<std::string, std::string> malformed;  // key -> reason
  bool listed = false;
  bool healthy = false;
  std::string error;

  using Parser = Result<T> (*)(const json&);

  void replace(std::vector<json> items, Parser parse, const Logger& log) {
    objects.clear();
    malformed.clear();
    for (const json& item : items) upsert(item, parse, log);
    listed = true;
  }

  void upsert(const json& object, Parser parse, const Logger& log) {
    auto parsed = parse(object);
    if (parsed) {
      malformed.erase(parsed->key());
      objects[parsed->key()] = std::move(*parsed);
      return;
    }
    log.warning("kubernetes: skipping " + parsed.error().message);
    if (auto ref = parse_ref(object)) {
      objects.erase(ref->key());
      malformed[ref->key()] = parsed.error().message;
    }
  }

  void remove(const json& object) {
    if (auto ref = parse_ref(object)) {
      objects.erase(ref->key());
      malformed.erase(ref->key());
    }
  }

  std::vector<T> values() const {
    std::vector<T> out;
    out.reserve(objects.size());
    for (const auto& [key, value] : objects) out.push_back(value);
    return out;
  }
};

}  // namespace

struct Source::State {
  State(Credentials credentials, SourceSettings s, Publish p, const Logger& l)
      : client(std::move(credentials)), settings(std::move(s)), publish(std::move(p)), log(l) {}

  ApiClient client;
  SourceSettings settings;
  Publish publish;
  const Logger& log;

  mutable std::mutex mutex;
  std::condition_variable_any changed;
  Collection<Service> services;
  Collection<EndpointSlice> slices;
  std::optional<Clock::time_point> first_change;  // of the changes not yet published
  Clock::time_point last_change{};
  SourceStatus published;  // what status() reports besides the live fields

  std::unique_ptr<Reflector> service_reflector;
  std::unique_ptr<Reflector> slice_reflector;
  std::jthread publisher;
  std::jthread service_thread;
  std::jthread slice_thread;

  void mark_changed() {
    const auto now = Clock::now();
    if (!first_change) first_change = now;
    last_change = now;
    changed.notify_all();
  }

  template <class T>
  ReflectorHandler handler_for(Collection<T>& collection, typename Collection<T>::Parser parse) {
    ReflectorHandler h;
    h.on_list = [this, &collection, parse](std::vector<json> items) {
      std::lock_guard lock(mutex);
      collection.replace(std::move(items), parse, log);
      mark_changed();
    };
    h.on_event = [this, &collection, parse](std::string_view type, const json& object) {
      std::lock_guard lock(mutex);
      if (type == "DELETED")
        collection.remove(object);
      else
        collection.upsert(object, parse, log);
      mark_changed();
    };
    h.on_health = [this, &collection](bool ok, const std::string& error) {
      std::lock_guard lock(mutex);
      collection.healthy = ok;
      collection.error = error;
    };
    return h;
  }

  // Waits for a change, then for the burst to settle; returns false when stopping.
  bool wait_for_burst(std::stop_token& stop, std::unique_lock<std::mutex>& lock) {
    if (!changed.wait(lock, stop, [&] { return first_change && services.listed && slices.listed; })) return false;
    while (!stop.stop_requested()) {
      const auto deadline = std::min(last_change + settings.quiet, *first_change + settings.max_delay);
      if (Clock::now() >= deadline) return true;
      changed.wait_until(lock, stop, deadline, [] { return false; });
    }
    return false;
  }

  void run_publisher(std::stop_token stop) {
    std::unique_lock lock(mutex);
    while (wait_for_burst(stop, lock)) {
      const auto first = *first_change;
      first_change.reset();
      std::vector<Service> service_values = services.values();
      std::vector<EndpointSlice> slice_values = slices.values();
      std::vector<Skipped> malformed;
      for (const auto& [key, reason] : services.malformed) malformed.push_back({"Service " + key, reason});
      for (const auto& [key, reason] : slices.malformed) malformed.push_back({"EndpointSlice " + key, reason});
      lock.unlock();

      Translation translation = translate(service_values, slice_values, settings.translate);
      translation.skipped.insert(translation.skipped.begin(), malformed.begin(), malformed.end());
      std::vector<Skipped> skipped = translation.skipped;
      const size_t service_count = service_values.size();
      const size_t slice_count = slice_values.size();
      publish(Publication{std::move(translation), first});

      lock.lock();
      published.skipped = std::move(skipped);
      published.services = service_count;
      published.endpoint_slices = slice_count;
      published.last_publish = std::chrono::system_clock::now();
      ++published.publications;
    }
  }

  void start() {
    service_reflector = std::make_unique<Reflector>(client, "/api/v1/services", settings.reflector,
                                                    handler_for(services, &parse_service), log);
    slice_reflector = std::make_unique<Reflector>(client, "/apis/discovery.k8s.io/v1/endpointslices",
                                                  settings.reflector, handler_for(slices, &parse_endpoint_slice), log);
    publisher = std::jthread([this](std::stop_token stop) { run_publisher(stop); });
    service_thread = std::jthread([this](std::stop_token stop) { service_reflector->run(stop); });
    slice_thread = std::jthread([this](std::stop_token stop) { slice_reflector->run(stop); });
  }

  void stop() {
    client.stop();
    for (std::jthread* t : {&service_thread, &slice_thread, &publisher}) {
      t->request_stop();
      if (t->joinable()) t->join();
    }
  }
};

Source::Source(Credentials credentials, SourceSettings settings, Publish publish, const Logger& log)
    : state_(std::make_unique<State>(std::move(credentials), std::move(settings), std::move(publish), log)) {
  log.info("kubernetes: watching Services and EndpointSlices on " + state_->client.credentials().server + " (" +
           state_->client.credentials().origin + ")");
  state_->start();
}

Source::~Source() { state_->stop(); }

SourceStatus Source::status() const {
  std::lock_guard lock(state_->mutex);
  SourceStatus s = state_->published;
  s.synced = state_->services.listed && state_->slices.listed;
  s.healthy = state_->services.healthy && state_->slices.healthy;
  s.error = !state_->services.error.empty() ? state_->services.error : state_->slices.error;
  s.server = state_->client.credentials().server;
  return s;
}

}  // namespace xlb::k8s

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <type_traits>
#include <utility>

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
  std::map<std::string, std::set<std::string>> slices_of;  // Service key -> its slices' keys
  std::set<std::string> dirty;  // Service keys whose translation may have changed
  bool relisted = true;         // everything may have changed: publish the whole catalog
  std::optional<Clock::time_point> first_change;  // of the changes not yet published
  Clock::time_point last_change{};
  Clock::time_point last_publish{};  // the publisher's
  SourceStatus published;  // what status() reports besides the live fields

  // The publisher's own (no lock): each Service's translation as last published.
  std::map<std::string, std::vector<model::Service>> translated;
  std::map<std::string, std::vector<Skipped>> skipped_of;

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

  static std::string owner_of(const Service& s) { return s.key(); }
  static std::string owner_of(const EndpointSlice& s) { return s.ns + "/" + s.service_name; }

  void index_slice(const std::string& key, bool present) {
    auto it = slices.objects.find(key);
    if (it == slices.objects.end()) return;
    const std::string owner = owner_of(it->second);
    dirty.insert(owner);
    if (present)
      slices_of[owner].insert(key);
    else if (auto s = slices_of.find(owner); s != slices_of.end() && s->second.erase(key) && s->second.empty())
      slices_of.erase(s);
  }

  // An event about `key` touches the Service it is or, for a slice, the Service that owns it
  // before and after the event (its label may change).
  template <class T>
  void touch(const std::string& key, bool after) {
    if constexpr (std::is_same_v<T, EndpointSlice>)
      index_slice(key, after);
    else
      dirty.insert(key);
  }

  template <class T>
  ReflectorHandler handler_for(Collection<T>& collection, typename Collection<T>::Parser parse) {
    ReflectorHandler h;
    h.on_list = [this, &collection, parse](std::vector<json> items) {
      std::lock_guard lock(mutex);
      collection.replace(std::move(items), parse, log);
      if constexpr (std::is_same_v<T, EndpointSlice>) {
        slices_of.clear();
        for (const auto& [key, slice] : slices.objects) slices_of[owner_of(slice)].insert(key);
      }
      relisted = true;
      mark_changed();
    };
    h.on_event = [this, &collection, parse](std::string_view type, const json& object) {
      std::lock_guard lock(mutex);
      auto ref = parse_ref(object);
      if (ref) touch<T>(ref->key(), false);
      if (type == "DELETED")
        collection.remove(object);
      else
        collection.upsert(object, parse, log);
      if (ref) touch<T>(ref->key(), true);
      mark_changed();
    };
    h.on_health = [this, &collection](bool ok, const std::string& error) {
      std::lock_guard lock(mutex);
      collection.healthy = ok;
      collection.error = error;
    };
    return h;
  }

  // Waits for a change, then for the burst to settle; returns false when stopping. A change
  // that comes after a quiet spell goes at once: waiting pays only when more changes follow it,
  // and those that do follow are gathered as a burst.
  bool wait_for_burst(std::stop_token& stop, std::unique_lock<std::mutex>& lock) {
    if (!changed.wait(lock, stop, [&] { return first_change && services.listed && slices.listed; })) return false;
    if (*first_change - last_publish >= settings.quiet) return true;
    while (!stop.stop_requested()) {
      const auto deadline = std::min(last_change + settings.quiet, *first_change + settings.max_delay);
      if (Clock::now() >= deadline) return true;
      changed.wait_until(lock, stop, deadline, [] { return false; });
    }
    return false;
  }

  // The objects one Service's translation needs, copied under the lock.
  struct Inputs {
    std::vector<Service> service;  // none when it is gone
    std::vector<EndpointSlice> slices;
  };
  Inputs inputs_of(const std::string& key) const {
    Inputs in;
    if (auto it = services.objects.find(key); it != services.objects.end()) in.service.push_back(it->second);
    if (auto it = slices_of.find(key); it != slices_of.end())
      for (const auto& slice : it->second) in.slices.push_back(slices.objects.at(slice));
    return in;
  }

  std::vector<Skipped> all_skipped(const std::vector<Skipped>& malformed) const {
    std::vector<Skipped> out = malformed;
    for (const auto& [key, list] : skipped_of) out.insert(out.end(), list.begin(), list.end());
    return out;
  }

  // Everything again, Service by Service (the same catalog translate() gives for all at once).
  Publication publish_whole(std::map<std::string, Inputs> inputs) {
    translated.clear();
    skipped_of.clear();
    Publication p;
    for (auto& [key, in] : inputs) {
      Translation t = translate(in.service, in.slices, settings.translate);
      if (!t.skipped.empty()) skipped_of[key] = std::move(t.skipped);
      if (t.catalog.services.empty()) continue;
      p.catalog.services.insert(p.catalog.services.end(), t.catalog.services.begin(), t.catalog.services.end());
      translated[key] = std::move(t.catalog.services);
    }
    return p;
  }

  // Only the Services a change touched: what they give now against what they gave before.
  Publication publish_changes(std::map<std::string, Inputs> inputs) {
    Publication p;
    p.whole = false;
    for (auto& [key, in] : inputs) {
      Translation t = translate(in.service, in.slices, settings.translate);
      if (t.skipped.empty())
        skipped_of.erase(key);
      else
        skipped_of[key] = std::move(t.skipped);
      std::vector<model::Service>& before = translated[key];
      for (const auto& old : before)
        if (!t.catalog.find(old.name)) p.changes.removed.push_back(old.name);
      for (const auto& now : t.catalog.services) {
        auto old = std::find_if(before.begin(), before.end(), [&](const model::Service& b) { return b.name == now.name; });
        if (old == before.end() || !(*old == now)) p.changes.upserted.push_back(now);
      }
      if (t.catalog.services.empty())
        translated.erase(key);
      else
        before = std::move(t.catalog.services);
    }
    return p;
  }

  void run_publisher(std::stop_token stop) {
    std::unique_lock lock(mutex);
    while (wait_for_burst(stop, lock)) {
      const auto first = *first_change;
      first_change.reset();
      const bool whole = std::exchange(relisted, false);
      std::set<std::string> keys = std::exchange(dirty, {});
      if (whole) {
        keys.clear();
        for (const auto& [key, service] : services.objects) keys.insert(key);
      }
      std::map<std::string, Inputs> inputs;
      for (const auto& key : keys) inputs.emplace(key, inputs_of(key));
      std::vector<Skipped> malformed;
      for (const auto& [key, reason] : services.malformed) malformed.push_back({"Service " + key, reason});
      for (const auto& [key, reason] : slices.malformed) malformed.push_back({"EndpointSlice " + key, reason});
      const size_t service_count = services.objects.size();
      const size_t slice_count = slices.objects.size();
      lock.unlock();

      Publication publication = whole ? publish_whole(std::move(inputs)) : publish_changes(std::move(inputs));
      publication.skipped = all_skipped(malformed);
      publication.first_change = first;
      std::vector<Skipped> skipped = publication.skipped;
      if (whole || !publication.changes.empty()) publish(std::move(publication));

      lock.lock();
      last_publish = Clock::now();
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

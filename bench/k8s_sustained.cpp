// Sustained Kubernetes churn: 10,000 Services x 10 endpoints in the test API server
// (tests/support/fake_apiserver.py), then 100 EndpointSlice changes per second for a bounded
// time, watched by the Kubernetes source and applied by the engine to real BPF maps.
// Prints the lag from each change's write to the maps holding it (p50/p99), checks that no change
// was lost (the final maps are what the final catalog needs, read back from the kernel), and the
// resident memory at the start and the end.
//
//   sudo ./build/bench/k8s_sustained [SECONDS=60] [SERVICES=10000]
#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>

#include "bench_pins.h"
#include "datapath/datapath.h"
#include "engine/engine.h"
#include "k8s/k8s.h"
#include "store/store.h"
#include "support/fake_apiserver.h"
#include "support/k8s_objects.h"
#include "support/temp_dir.h"

namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr int kEndpoints = 10;

std::string service_ip(int i) { return "10.96." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1); }
// Service i's endpoints: 10.(200+k).x.y for k = 1..9, which stay, and 10.(100+g).x.y, which
// every change of the service (generation g) moves.
std::string pod_ip(int i, int first_octet_offset) {
  return "10." + std::to_string(first_octet_offset) + "." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1);
}
std::string moving_ip(int i, int generation) { return pod_ip(i, 100 + generation % 100); }

json slice_for(int i, int generation) {
  json endpoints = json::array({xlb::test::endpoint(moving_ip(i, generation))});
  for (int k = 1; k < kEndpoints; ++k) endpoints.push_back(xlb::test::endpoint(pod_ip(i, 200 + k)));
  return xlb::test::slice_json("svc-" + std::to_string(i) + "-x", "svc-" + std::to_string(i), endpoints);
}

long rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string key;
  long value = 0;
  while (in >> key) {
    if (key == "VmRSS:") {
      in >> value;
      return value;
    }
    in.ignore(1 << 12, '\n');
  }
  return -1;
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  const int seconds = argc > 1 ? std::atoi(argv[1]) : 60;
  const int count = argc > 2 ? std::atoi(argv[2]) : 10000;
  xlb::test::FakeApiServer server("bench-token", 5.0);
  if (!server.error().empty()) {
    std::fprintf(stderr, "%s\n", server.error().c_str());
    return 1;
  }
  std::printf("loading %d services x %d endpoints into the test API server...\n", count, kEndpoints);
  std::fflush(stdout);
  for (int base = 0; base < count; base += 1000) {
    json services = json::array(), slices = json::array();
    for (int i = base; i < std::min(count, base + 1000); ++i) {
      json ports = json::array({xlb::test::http_port()});
      services.push_back(xlb::test::service_json("svc-" + std::to_string(i), {{"clusterIP", service_ip(i)}, {"ports", ports}}));
      slices.push_back(slice_for(i, 0));
    }
    if (!server.control("apply", {{"resource", "services"}, {"objects", services}}) ||
        !server.control("apply", {{"resource", "endpointslices"}, {"objects", slices}})) {
      std::fprintf(stderr, "loading the API server failed\n");
      return 1;
    }
  }

  xlb::test::TempDir dir("xlb-k8s-sustained");
  const xlb::bench::BenchPins pins(dir.path().filename().string());  // before the datapath: outlives it
  auto datapath = xlb::datapath::Datapath::load({pins.pin_dir()});
  if (!datapath) {
    std::fprintf(stderr, "loading the datapath (root?): %s\n", datapath.error().message.c_str());
    return 1;
  }
  auto store = xlb::store::Store::open(dir / "state.db");
  if (!store) return 1;
  xlb::Logger log(xlb::LogLevel::error);
  xlb::engine::Engine engine(*store, log, {}, &datapath->maps());

  std::mutex mutex;
  std::condition_variable cv;
  std::map<int, std::pair<std::string, Clock::time_point>> pending;  // service -> (backend it must have, written at)
  std::vector<double> lags_ms;
  std::vector<double> apply_ms, arrival_ms;  // per publication: engine.apply; first change's arrival -> apply
  bool synced = false;
  bool failed = false;  // an apply failed: the bench stops at once
  size_t publications = 0;

  xlb::k8s::Credentials credentials;
  credentials.server = server.url();
  credentials.certificate_authority.file = server.ca_file();
  credentials.token.data = "bench-token";
  const auto started = Clock::now();
  xlb::k8s::Source source(credentials, {}, [&](xlb::k8s::Publication p) {
    const auto apply_started = Clock::now();
    if (auto applied = engine.apply(p.translation.catalog, "kubernetes"); !applied) {
      std::fprintf(stderr, "apply: %s\n", applied.error().message.c_str());
      std::lock_guard lock(mutex);
      failed = true;
      cv.notify_all();
      return;
    }
    const auto done = Clock::now();
    std::unordered_map<std::string_view, const xlb::model::Service*> by_name;
    for (const auto& s : engine.catalog().services) by_name.emplace(s.name, &s);
    std::lock_guard lock(mutex);
    ++publications;
    if (synced) apply_ms.push_back(std::chrono::duration<double, std::milli>(done - apply_started).count());
    if (synced) arrival_ms.push_back(std::chrono::duration<double, std::milli>(apply_started - p.first_change).count());
    if (!synced && by_name.size() == static_cast<size_t>(count)) {
      synced = true;
      std::printf("initial sync: %.1f s\n", std::chrono::duration<double>(done - started).count());
    }
    for (auto it = pending.begin(); it != pending.end();) {
      auto found = by_name.find("default/svc-" + std::to_string(it->first) + ":http");
      const bool holds = found != by_name.end() &&
                         std::any_of(found->second->backends.begin(), found->second->backends.end(),
                                     [&](const auto& b) { return b.key() == it->second.first; });
      if (!holds) {
        ++it;
        continue;
      }
      lags_ms.push_back(std::chrono::duration<double, std::milli>(done - it->second.second).count());
      it = pending.erase(it);
    }
    cv.notify_all();
  }, log);

  {
    std::unique_lock lock(mutex);
    if (!cv.wait_for(lock, 600s, [&] { return synced || failed; }) || failed) {
      std::fprintf(stderr, "the initial sync did not finish\n");
      return 1;
    }
  }
  const long rss_start = rss_kib();
  std::printf("churn: 100 EndpointSlice changes per second for %d s (10 every 100 ms)\n", seconds);
  std::fflush(stdout);
  std::minstd_rand random(7);
  std::vector<int> generation(static_cast<size_t>(count), 0);
  size_t changes = 0;
  const auto end = Clock::now() + std::chrono::seconds(seconds);
  for (auto tick = Clock::now(); tick < end; tick += 100ms) {
    std::this_thread::sleep_until(tick);
    json batch = json::array();
    std::vector<std::pair<int, std::string>> wanted;
    for (int n = 0; n < 10; ++n) {
      const int i = static_cast<int>(random() % static_cast<unsigned>(count));
      const int g = ++generation[static_cast<size_t>(i)];
      batch.push_back(slice_for(i, g));
      wanted.emplace_back(i, moving_ip(i, g) + ":8080");
    }
    {
      std::lock_guard lock(mutex);
      for (auto& [i, key] : wanted) pending[i] = {key, Clock::now()};  // a newer change of i supersedes
    }
    if (!server.control("apply", {{"resource", "endpointslices"}, {"objects", batch}})) return 1;
    changes += 10;
  }
  {
    std::unique_lock lock(mutex);
    if (!cv.wait_for(lock, 60s, [&] { return pending.empty(); }))
      std::fprintf(stderr, "%zu changes never reached the maps\n", pending.size());
  }
  const long rss_end = rss_kib();
  auto actual = datapath->maps().read();
  const bool maps_match = actual && *actual == engine.map_state();
  size_t wrong = 0;
  for (int i = 0; i < count; ++i) {
    const auto* s = engine.catalog().find("default/svc-" + std::to_string(i) + ":http");
    const std::string key = moving_ip(i, generation[static_cast<size_t>(i)]) + ":8080";
    if (!s || std::none_of(s->backends.begin(), s->backends.end(), [&](const auto& b) { return b.key() == key; })) ++wrong;
  }
  std::printf("changes written: %zu, publications: %zu, lag write->maps p50 %.0f ms, p99 %.0f ms, max %.0f ms\n",
              changes, publications, percentile(lags_ms, 0.5), percentile(lags_ms, 0.99), percentile(lags_ms, 1.0));
  std::printf("per publication: engine.apply p50 %.0f ms, p99 %.0f ms; first change's arrival -> apply p50 %.0f ms\n",
              percentile(apply_ms, 0.5), percentile(apply_ms, 0.99), percentile(arrival_ms, 0.5));
  std::printf("no change lost: %s (services not at their last generation: %zu); maps read back == engine's state: %s\n",
              wrong == 0 ? "yes" : "NO", wrong, maps_match ? "yes" : "NO");
  std::printf("RSS: %ld MiB after the initial sync, %ld MiB at the end\n", rss_start / 1024, rss_end / 1024);
  return wrong == 0 && maps_match ? 0 : 1;
}

// How long an EndpointSlice change takes to reach the BPF maps, with a small and a large catalog
// side by side: the test API server (tests/support/fake_apiserver.py) holds N Services with one
// EndpointSlice each; the Kubernetes source watches it and the engine writes real maps. Each
// round moves one endpoint of one random service and waits until the maps hold it.
//
//   sudo ./build/bench/k8s_bench [ROUNDS]      (root: it loads the datapath's maps)
//
// Two latencies per change: from the event reaching xlb (the watch delivered it) to the maps,
// and from the API server accepting the write to the maps (adds the watch stream's own delay).
#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <random>

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

std::string service_ip(int i) { return "10.96." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1); }
std::string pod_ip(int i, int k) { return "10.244." + std::to_string(i / 250) + "." + std::to_string(i % 250 + k); }

json slice_for(int i, int generation) {
  using xlb::test::endpoint;
  return xlb::test::slice_json("svc-" + std::to_string(i) + "-abcde", "svc-" + std::to_string(i),
                               {endpoint(pod_ip(i, 1)), endpoint(pod_ip(i, 2 + generation % 3))});
}

struct Percentiles {
  double p50, p99, max;
};

Percentiles percentiles(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))]; };
  return {at(0.50), at(0.99), v.back()};
}

struct Result {
  int services;
  Percentiles from_event;
  Percentiles from_write;
  double initial_sync_s;
};

// Loads `count` services into a fresh API server and datapath, then times `rounds` changes.
std::optional<Result> run(int count, int rounds) {
  xlb::test::FakeApiServer server("bench-token", 5.0);
  if (!server.error().empty()) {
    std::fprintf(stderr, "%s\n", server.error().c_str());
    return std::nullopt;
  }
  for (int base = 0; base < count; base += 1000) {
    json services = json::array(), slices = json::array();
    for (int i = base; i < std::min(count, base + 1000); ++i) {
      services.push_back(xlb::test::service_json("svc-" + std::to_string(i),
                                                 {{"clusterIP", service_ip(i)}, {"ports", {xlb::test::http_port()}}}));
      slices.push_back(slice_for(i, 0));
    }
    if (!server.control("apply", {{"resource", "services"}, {"objects", services}}) ||
        !server.control("apply", {{"resource", "endpointslices"}, {"objects", slices}})) {
      std::fprintf(stderr, "loading the API server failed\n");
      return std::nullopt;
    }
  }

  xlb::test::TempDir dir("xlb-k8s-bench");
  const xlb::bench::BenchPins pins(dir.path().filename().string());  // before the datapath: outlives it
  auto datapath = xlb::datapath::Datapath::load({pins.pin_dir()});
  if (!datapath) {
    std::fprintf(stderr, "loading the datapath: %s\n", datapath.error().message.c_str());
    return std::nullopt;
  }
  auto store = xlb::store::Store::open(dir / "state.db");
  if (!store) {
    std::fprintf(stderr, "%s\n", store.error().message.c_str());
    return std::nullopt;
  }
  xlb::Logger log(xlb::LogLevel::error);
  xlb::engine::Engine engine(*store, log, {}, &datapath->maps());

  std::mutex mutex;
  std::condition_variable applied_cv;
  std::string wanted;  // a backend key the next publication must carry
  std::vector<double> from_event, from_write;
  Clock::time_point written{};
  bool synced = false;

  xlb::k8s::Credentials credentials;
  credentials.server = server.url();
  credentials.certificate_authority.file = server.ca_file();
  credentials.token.data = "bench-token";
  const auto start = Clock::now();
  double initial_sync_s = 0;
  xlb::k8s::Source source(credentials, {}, [&](xlb::k8s::Publication p) {
    auto applied = p.whole ? engine.apply(p.catalog, "kubernetes") : engine.apply_changes(p.changes, "kubernetes");
    const auto done = Clock::now();
    if (!applied) {
      std::fprintf(stderr, "apply: %s\n", applied.error().message.c_str());
      return;
    }
    std::lock_guard lock(mutex);
    if (!synced && engine.counts().services == static_cast<size_t>(count)) {
      synced = true;
      initial_sync_s = std::chrono::duration<double>(done - start).count();
      applied_cv.notify_all();
    }
    if (wanted.empty()) return;
    for (const auto& s : p.changes.upserted)
      for (const auto& b : s.backends)
        if (b.key() == wanted) {
          from_event.push_back(std::chrono::duration<double, std::milli>(done - p.first_change).count());
          from_write.push_back(std::chrono::duration<double, std::milli>(done - written).count());
          wanted.clear();
          applied_cv.notify_all();
          return;
        }
  }, log);

  {
    std::unique_lock lock(mutex);
    if (!applied_cv.wait_for(lock, 600s, [&] { return synced; })) {
      std::fprintf(stderr, "the initial sync of %d services did not finish\n", count);
      return std::nullopt;
    }
  }
  std::minstd_rand random(42);
  std::vector<int> generation(static_cast<size_t>(count), 0);
  for (int round = 1; round <= rounds; ++round) {
    const int i = static_cast<int>(random() % static_cast<unsigned>(count));
    const int g = ++generation[static_cast<size_t>(i)];
    {
      std::lock_guard lock(mutex);
      wanted = pod_ip(i, 2 + g % 3) + ":8080";
      written = Clock::now();
    }
    if (!server.apply("endpointslices", slice_for(i, g))) return std::nullopt;
    std::unique_lock lock(mutex);
    if (!applied_cv.wait_for(lock, 60s, [&] { return wanted.empty(); })) {
      std::fprintf(stderr, "change %d did not reach the maps within 60 s\n", round);
      return std::nullopt;
    }
  }
  return Result{count, percentiles(from_event), percentiles(from_write), initial_sync_s};
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 200;
  std::printf("EndpointSlice change -> BPF maps, %d changes per catalog (ms)\n", rounds);
  std::printf("%10s %14s %14s %14s %14s %14s\n", "services", "event p50", "event p99", "write p50", "write p99",
              "initial sync");
  std::vector<Result> results;
  for (int count : {100, 10000}) {
    auto r = run(count, rounds);
    if (!r) return 1;
    std::printf("%10d %14.2f %14.2f %14.2f %14.2f %12.1f s\n", r->services, r->from_event.p50, r->from_event.p99,
                r->from_write.p50, r->from_write.p99, r->initial_sync_s);
    std::fflush(stdout);
    results.push_back(*r);
  }
  std::printf("ratio 10000/100: event p50 %.1fx, p99 %.1fx\n", results[1].from_event.p50 / results[0].from_event.p50,
              results[1].from_event.p99 / results[0].from_event.p99);
  return 0;
}

// Full sync and one-Service update of a large catalog: xlb's BPF maps against kube-proxy's
// iptables layout loaded by iptables-restore, side by side in one run.
//
//   sudo ./build/bench/sync_bench [SERVICES] [BACKENDS] [ROUNDS]      (defaults: 10000 4 20)
//
//   full sync     xlb: Engine::apply of the whole catalog into freshly loaded (empty) maps:
//                 rings built, every map entry written; timed to the maps written (the catalog is
//                 in force; the ratio is taken on this) and to the call's return (the revision, a
//                 snapshot of the catalog, durably committed). iptables: iptables-restore of the same
//                 catalog in kube-proxy's layout (tests/support/kube_proxy_rules.h) into the nat
//                 table of a scratch network namespace of this run's own.
//   add one       ROUNDS times, one more Service (its own ClusterIP and BACKENDS endpoints):
//                 xlb: Engine::apply_changes, timed to the maps written (the change is in force)
//                 and to the call's return (the revision durably committed, an fsync later).
//                 iptables: what kube-proxy's partial sync writes for it with
//                 iptables-restore --noflush: KUBE-SERVICES whole (it is always rewritten) and the
//                 new Service's chains.
//
// Prints "key value" lines (report.sh reads them), then a summary. Its pins and namespace go on
// every exit (bench_pins.h; the namespace's destructor).
#include <sched.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench_pins.h"
#include "datapath/datapath.h"
#include "engine/engine.h"
#include "k8s/objects.h"
#include "store/store.h"
#include "support/kube_proxy_rules.h"
#include "support/temp_dir.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

std::string cluster_ip(int i) { return "10.96." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1); }
// A pod address of its own for each endpoint of each Service, as a cluster has.
std::string pod_ip(int i, int k, int backends) {
  const int j = i * backends + k;
  return "10." + std::to_string(128 + j / 65536) + "." + std::to_string(j / 256 % 256) + "." + std::to_string(j % 256);
}

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

// This process's CPU time, ms: against the wall time, whether a step computes or waits.
double cpu_ms() {
  timespec t{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) / 1e6;
}

struct Objects {
  std::vector<xlb::k8s::Service> services;
  std::vector<xlb::k8s::EndpointSlice> slices;
};

void add_service(int i, int backends, xlb::model::Catalog& catalog, Objects& objects) {
  xlb::model::Service s;
  s.name = "bench/svc-" + std::to_string(i) + ":http";
  xlb::model::Frontend f;
  f.address = *xlb::model::IpAddress::parse(cluster_ip(i));
  f.port = 80;
  f.kind = xlb::model::FrontendKind::cluster_ip;
  s.frontends.push_back(f);
  xlb::k8s::Service ks;
  ks.ns = "bench";
  ks.name = "svc-" + std::to_string(i);
  ks.cluster_ips = {cluster_ip(i)};
  ks.ports = {{"http", "TCP", 80, 0}};
  xlb::k8s::EndpointSlice slice;
  slice.ns = "bench";
  slice.name = ks.name + "-abcde";
  slice.service_name = ks.name;
  slice.address_type = "IPv4";
  slice.ports = {{"http", "TCP", 8080}};
  for (int k = 0; k < backends; ++k) {
    xlb::model::Backend b;
    b.address = *xlb::model::IpAddress::parse(pod_ip(i, k, backends));
    b.port = 8080;
    s.backends.push_back(b);
    xlb::k8s::Endpoint e;
    e.addresses = {pod_ip(i, k, backends)};
    e.conditions.ready = true;
    e.node_name = "node-b";
    slice.endpoints.push_back(e);
  }
  catalog.services.push_back(std::move(s));
  objects.services.push_back(std::move(ks));
  objects.slices.push_back(std::move(slice));
}

// A network namespace of this run's own (ip netns add), deleted with this object.
class ScratchNetns {
 public:
  ScratchNetns() : name_("xlb-sync-bench-" + std::to_string(::getpid())) {
    ok_ = std::system(("ip netns add " + name_).c_str()) == 0;
  }
  ~ScratchNetns() {
    if (ok_) (void)std::system(("ip netns delete " + name_ + " 2>/dev/null").c_str());
  }
  ScratchNetns(const ScratchNetns&) = delete;
  ScratchNetns& operator=(const ScratchNetns&) = delete;
  bool ok() const { return ok_; }
  // Runs a shell command inside; its exit status.
  int run(const std::string& command) const {
    return std::system(("ip netns exec " + name_ + " " + command).c_str());
  }

 private:
  std::string name_;
  bool ok_ = false;
};

// The datapath's maps, with the time the last write returned: a change is in force from then;
// the revision's durable commit (an fsync) follows it.
class TimedMaps : public xlb::datapath::MapWriter {
 public:
  explicit TimedMaps(xlb::datapath::MapWriter& maps) : maps_(maps) {}
  Clock::time_point last_write() const { return last_; }

  xlb::Result<xlb::datapath::State> read() const override { return maps_.read(); }
  xlb::Status upsert_backends(const std::vector<xlb::datapath::BackendEntry>& b) override {
    return timed(maps_.upsert_backends(b));
  }
  xlb::Status remove_backend(xlb::datapath::BackendId id) override { return timed(maps_.remove_backend(id)); }
  xlb::Status upsert_frontends(const std::vector<xlb::datapath::FrontendEntry>& f) override {
    return timed(maps_.upsert_frontends(f));
  }
  xlb::Status remove_frontends(const std::vector<xlb::datapath::FrontendKey>& k) override {
    return timed(maps_.remove_frontends(k));
  }

 private:
  xlb::Status timed(xlb::Status s) {
    last_ = Clock::now();
    return s;
  }
  xlb::datapath::MapWriter& maps_;
  Clock::time_point last_{};
};

struct Quantiles {
  double p50 = 0, p99 = 0, max = 0;
};

Quantiles quantiles(std::vector<double> v) {
  if (v.empty()) return {};
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))]; };
  return {at(0.5), at(0.99), v.back()};
}

// What kube-proxy's partial sync writes for one new Service: KUBE-SERVICES whole, the new
// Service's own chains (declared, hence flushed and refilled under --noflush) and their rules.
std::string partial_rules(const std::string& full, const std::string& new_svc_comment) {
  std::istringstream in(full);
  std::string line, declare = ":KUBE-SERVICES - [0:0]\n", services, rules;
  std::vector<std::string> chains;
  std::vector<std::string> lines;
  while (std::getline(in, line)) lines.push_back(line);
  // The new Service's chains: those its KUBE-SERVICES rule and its KUBE-SVC chain jump to.
  for (const auto& l : lines)
    if (l.rfind("-A KUBE-SERVICES ", 0) == 0) {
      services += l + "\n";
      if (l.find(new_svc_comment) != std::string::npos) chains.push_back(l.substr(l.rfind(" -j ") + 4));
    }
  for (size_t c = 0; c < chains.size(); ++c)
    for (const auto& l : lines)
      if (l.rfind("-A " + chains[c] + " ", 0) == 0) {
        rules += l + "\n";
        const std::string target = l.substr(l.rfind(" -j ") + 4);
        if (target.rfind("KUBE-SEP-", 0) == 0 && std::find(chains.begin(), chains.end(), target) == chains.end())
          chains.push_back(target);
      }
  for (const auto& c : chains) declare += ":" + c + " - [0:0]\n";
  return "*nat\n" + declare + services + rules + "COMMIT\n";
}

bool write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  return static_cast<bool>(out);
}

}  // namespace

int main(int argc, char** argv) {
  const int count = argc > 1 ? std::atoi(argv[1]) : 10000;
  const int backends = argc > 2 ? std::atoi(argv[2]) : 4;
  const int rounds = argc > 3 ? std::atoi(argv[3]) : 20;
  if (count < 1 || backends < 1 || rounds < 1) {
    std::fprintf(stderr, "usage: sync_bench [SERVICES] [BACKENDS] [ROUNDS]\n");
    return 2;
  }
  xlb::model::Catalog catalog;
  Objects objects;
  for (int i = 0; i < count; ++i) add_service(i, backends, catalog, objects);
  xlb::test::TempDir dir("xlb-sync-bench");
  std::printf("services %d\nbackends %d\n", count, backends);

  // xlb: a full sync into empty maps.
  const xlb::bench::BenchPins pins(dir.path().filename().string());  // before the datapath: outlives it
  auto datapath = xlb::datapath::Datapath::load({pins.pin_dir()});
  if (!datapath) return std::fprintf(stderr, "loading the datapath: %s\n", datapath.error().message.c_str()), 1;
  auto store = xlb::store::Store::open(dir.path() / "state.db");
  if (!store) return std::fprintf(stderr, "%s\n", store.error().message.c_str()), 1;
  xlb::Logger log(xlb::LogLevel::error);
  TimedMaps maps(datapath->maps());
  xlb::engine::Engine engine(*store, log, {}, &maps);
  auto t0 = Clock::now();
  auto applied = engine.apply(catalog, "bench");
  const double xlb_full_ms = ms_since(t0);
  const double xlb_full_maps_ms = std::chrono::duration<double, std::milli>(maps.last_write() - t0).count();
  if (!applied) return std::fprintf(stderr, "apply: %s\n", applied.error().message.c_str()), 1;
  std::printf("xlb_full_sync_maps_ms %.1f\nxlb_full_sync_ms %.1f\nxlb_full_sync_writes %zu\n", xlb_full_maps_ms,
              xlb_full_ms, applied->map_writes);
  std::fflush(stdout);

  // xlb: one Service more, ROUNDS times.
  std::vector<double> add_ms, add_cpu_ms, add_maps_ms;
  for (int r = 0; r < rounds; ++r) {
    add_service(count + r, backends, catalog, objects);
    t0 = Clock::now();
    const double c0 = cpu_ms();
    auto one = engine.apply_changes({{catalog.services.back()}, {}}, "bench");
    add_ms.push_back(ms_since(t0));
    add_cpu_ms.push_back(cpu_ms() - c0);
    add_maps_ms.push_back(std::chrono::duration<double, std::milli>(maps.last_write() - t0).count());
    if (!one) return std::fprintf(stderr, "add one: %s\n", one.error().message.c_str()), 1;
  }
  const auto xlb_add = quantiles(add_ms);
  const auto xlb_add_maps = quantiles(add_maps_ms);
  std::printf("xlb_add_one_api Engine::apply_changes\nxlb_add_one_ms_p50 %.3f\nxlb_add_one_ms_p99 %.3f\n"
              "xlb_add_one_ms_max %.3f\n",
              xlb_add.p50, xlb_add.p99, xlb_add.max);
  std::printf("xlb_add_one_maps_ms_p50 %.3f\nxlb_add_one_maps_ms_p99 %.3f\n", xlb_add_maps.p50, xlb_add_maps.p99);
  std::printf("xlb_add_one_cpu_ms_p50 %.3f\n", quantiles(add_cpu_ms).p50);
  std::fflush(stdout);

  // iptables: the same catalog (as it was before the additions) in kube-proxy's layout.
  ScratchNetns netns;
  if (!netns.ok()) return std::fprintf(stderr, "ip netns add failed\n"), 1;
  const std::vector<xlb::k8s::Service> base_services(objects.services.begin(), objects.services.begin() + count);
  const std::vector<xlb::k8s::EndpointSlice> base_slices(objects.slices.begin(), objects.slices.begin() + count);
  const fs::path full = dir.path() / "full.rules";
  if (!write_file(full, xlb::test::kube_proxy_iptables(base_services, base_slices))) return 1;
  t0 = Clock::now();
  if (netns.run("iptables-restore -w 10 " + full.string()) != 0) return std::fprintf(stderr, "iptables-restore failed\n"), 1;
  const double ipt_full_ms = ms_since(t0);
  std::printf("iptables_restore_ms %.1f\n", ipt_full_ms);
  std::fflush(stdout);

  // iptables: kube-proxy's partial sync for one new Service, ROUNDS times (each on the catalog
  // with the earlier additions in it).
  std::vector<double> partial_ms;
  for (int r = 0; r < rounds; ++r) {
    const int n = count + r + 1;
    const std::vector<xlb::k8s::Service> s(objects.services.begin(), objects.services.begin() + n);
    const std::vector<xlb::k8s::EndpointSlice> e(objects.slices.begin(), objects.slices.begin() + n);
    const std::string text = partial_rules(xlb::test::kube_proxy_iptables(s, e), "bench/svc-" + std::to_string(n - 1) + ":http cluster IP");
    const fs::path file = dir.path() / "partial.rules";
    if (!write_file(file, text)) return 1;
    t0 = Clock::now();
    if (netns.run("iptables-restore -w 10 --noflush " + file.string()) != 0)
      return std::fprintf(stderr, "iptables-restore --noflush failed\n"), 1;
    partial_ms.push_back(ms_since(t0));
  }
  const auto ipt_add = quantiles(partial_ms);
  std::printf("iptables_add_one_ms_p50 %.3f\niptables_add_one_ms_p99 %.3f\n", ipt_add.p50, ipt_add.p99);
  // The rules are there: the last Service's chain is in the table.
  if (netns.run("iptables -t nat -S KUBE-SERVICES | grep -q 'svc-" + std::to_string(count + rounds - 1) + ":http'") != 0)
    return std::fprintf(stderr, "the partial syncs did not reach the nat table\n"), 1;

  std::printf("full_sync_ratio %.1f\nadd_one_ratio %.1f\n", ipt_full_ms / xlb_full_maps_ms, ipt_add.p50 / xlb_add.p50);
  std::printf("\n%d Services x %d backends: full sync xlb %.0f ms in the maps (%.0f ms committed) vs iptables-restore "
              "%.0f ms (%.1fx); one Service more: xlb p50 %.3f ms in the maps, %.3f ms committed, vs kube-proxy's "
              "partial iptables-restore p50 %.1f ms (%.0fx)\n",
              count, backends, xlb_full_maps_ms, xlb_full_ms, ipt_full_ms, ipt_full_ms / xlb_full_maps_ms,
              xlb_add_maps.p50, xlb_add.p50, ipt_add.p50, ipt_add.p50 / xlb_add.p50);
  return 0;
}

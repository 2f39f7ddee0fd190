// Sustained Kubernetes churn: 10,000 Services x 10 endpoints in the test API server
// (tests/support/fake_apiserver.py), then 100 EndpointSlice changes per second for a bounded
// time, watched by the Kubernetes source and applied by the engine to real BPF maps.
// Prints the lag from each change's write to the maps holding it (p50/p99), checks that no change
// was lost (the final maps are what the final catalog needs, read back from the kernel), and the
// resident memory at the start and the end.
//
// While clients keep connecting: a client process in a network namespace of its own (like a
// pod) and in a test cgroup with xlb's socket-LB attached keeps connecting, during the churn, to
// the ClusterIPs of a few more Services whose endpoints never change (listeners inside that
// namespace). Their frontends and backends are in the same maps that the churn rewrites, so each
// connect() goes through the real datapath; one that fails counts (expected: none). The client
// connects one at a time, at most kClientRate per second.
//
//   sudo ./build/bench/k8s_sustained [SECONDS=60] [SERVICES=10000]
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>

#include "bench_pins.h"
#include "datapath/cgroup.h"
#include "datapath/datapath.h"
#include "engine/engine.h"
#include "k8s/k8s.h"
#include "store/store.h"
#include "support/fake_apiserver.h"
#include "support/k8s_objects.h"
#include "support/temp_cgroup.h"
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

// ---- the client ----------------------------------------------------------------------------

// Services that the churn leaves alone, each with kEndpoints listeners in the client's namespace.
constexpr int kStableServices = 4;
constexpr int kClientRate = 200;  // connections per second, at most
std::string stable_ip(int i) { return "10.97.0." + std::to_string(i + 1); }
std::string stable_backend_ip(int k) { return "10.250.0." + std::to_string(k + 1); }

void write_line(int fd, const std::string& line) {
  const std::string text = line + "\n";
  (void)!::write(fd, text.data(), text.size());
}

// One line from a pipe (a few bytes at a time is enough here); empty at the end.
std::string read_line(int fd) {
  std::string line;
  char c;
  while (::read(fd, &c, 1) == 1 && c != '\n') line += c;
  return line;
}

// Connects once to ip:80; 0 or the errno.
int connect_once(const std::string& ip) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  const timeval timeout{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(80);
  ::inet_pton(AF_INET, ip.c_str(), &to.sin_addr);
  const int err = ::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) == 0 ? 0 : errno;
  const linger reset{1, 0};  // no TIME_WAIT left behind per connection
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  ::close(fd);
  return err;
}

// The client process, forked before the bench starts any thread: a network namespace of its
// own with the stable Services' endpoints on lo and a listener on :8080; on "go CGROUP" it joins
// the cgroup and connects until "stop", then answers "OK FAILED FIRST_ERROR".
[[noreturn]] void client_main(int commands, int results) {
  if (::unshare(CLONE_NEWNET) != 0) {
    write_line(results, std::string("error unshare: ") + std::strerror(errno));
    ::_exit(1);
  }
  std::string setup = "ip link set lo up";
  for (int k = 0; k < kEndpoints; ++k) setup += " && ip address add " + stable_backend_ip(k) + "/32 dev lo";
  if (std::system(setup.c_str()) != 0) {
    write_line(results, "error: " + setup + " failed");
    ::_exit(1);
  }
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int on = 1;
  ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_in any{};
  any.sin_family = AF_INET;
  any.sin_port = htons(8080);
  if (::bind(listener, reinterpret_cast<const sockaddr*>(&any), sizeof any) != 0 || ::listen(listener, 4096) != 0) {
    write_line(results, std::string("error listen: ") + std::strerror(errno));
    ::_exit(1);
  }
  std::thread([listener] {
    for (;;) {
      const int c = ::accept(listener, nullptr, nullptr);
      if (c >= 0) ::close(c);
    }
  }).detach();
  write_line(results, "ready");

  const std::string go = read_line(commands);
  if (!go.starts_with("go ")) ::_exit(1);
  if (auto joined = xlb::test::join_cgroup(go.substr(3)); !joined) {
    write_line(results, "error " + joined.error().message);
    ::_exit(1);
  }
  long ok = 0, failed = 0;
  std::string first_error = "-";
  pollfd stop{commands, POLLIN, 0};
  for (int n = 0; ::poll(&stop, 1, 1000 / kClientRate) == 0; ++n) {
    const int err = connect_once(stable_ip(n % kStableServices));
    if (err == 0) {
      ++ok;
    } else {
      if (failed++ == 0) first_error = std::strerror(err);
    }
  }
  write_line(results, std::to_string(ok) + " " + std::to_string(failed) + " " + first_error);
  ::_exit(0);
}

// The parent's handle on the client: stops and reaps it however the bench ends.
class Client {
 public:
  Client() {
    int to_child[2], from_child[2];
    if (::pipe2(to_child, O_CLOEXEC) != 0 || ::pipe2(from_child, O_CLOEXEC) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(to_child[1]);
      ::close(from_child[0]);
      client_main(to_child[0], from_child[1]);
    }
    ::close(to_child[0]);
    ::close(from_child[1]);
    commands_ = to_child[1];
    results_ = from_child[0];
  }
  ~Client() {
    if (commands_ >= 0) ::close(commands_);  // the client stops at the end of its pipe
    if (pid_ > 0) {
      for (int i = 0; i < 50 && ::waitpid(pid_, nullptr, WNOHANG) == 0; ++i) ::usleep(100000);
      if (::waitpid(pid_, nullptr, WNOHANG) == 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
      }
    }
    if (results_ >= 0) ::close(results_);
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  std::string wait_ready() { return pid_ > 0 ? read_line(results_) : "error fork"; }
  void go(const std::filesystem::path& cgroup) { write_line(commands_, "go " + cgroup.string()); }
  std::string stop() {
    write_line(commands_, "stop");
    return read_line(results_);
  }
  // The client is in the cgroup only while it runs: reap it before the cgroup goes.
  void reap() {
    if (commands_ >= 0) ::close(commands_);
    commands_ = -1;
    if (pid_ > 0) ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
  int commands_ = -1;
  int results_ = -1;
};

// What the kernel charges for the pinned maps (memlock, as bpftool map show says it): the sum,
// and each map's. Read from /proc/self/fdinfo of an fd of each.
std::pair<long, std::string> maps_memlock(const std::filesystem::path& pin_dir) {
  long total = 0;
  std::string each;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(pin_dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with("link_")) continue;
    const int fd = bpf_obj_get(entry.path().c_str());
    if (fd < 0) continue;
    std::ifstream info("/proc/self/fdinfo/" + std::to_string(fd));
    std::string key;
    long value = 0;
    while (info >> key) {
      if (key == "memlock:") {
        info >> value;
        break;
      }
      info.ignore(1 << 12, '\n');
    }
    ::close(fd);
    total += value;
    if (value >= 1 << 20) each += " " + name + " " + std::to_string(value >> 20) + " MiB;";
  }
  return {total, each};
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
  Client client;  // forked first, while this process has one thread
  if (const std::string ready = client.wait_ready(); ready != "ready") {
    std::fprintf(stderr, "the client: %s\n", ready.c_str());
    return 1;
  }
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
  {
    json services = json::array(), slices = json::array();
    for (int i = 0; i < kStableServices; ++i) {
      const std::string name = "stable-" + std::to_string(i);
      services.push_back(xlb::test::service_json(name, {{"clusterIP", stable_ip(i)}, {"ports", json::array({xlb::test::http_port()})}}));
      json endpoints = json::array();
      for (int k = 0; k < kEndpoints; ++k) endpoints.push_back(xlb::test::endpoint(stable_backend_ip(k)));
      slices.push_back(xlb::test::slice_json(name + "-x", name, endpoints));
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
  const auto [empty_memlock, empty_each] = maps_memlock(pins.pin_dir());
  std::printf("datapath maps, empty, room for %u services and %u backends: %.1f MiB memlock (%s )\n",
              datapath->capacity().services, datapath->capacity().backends, static_cast<double>(empty_memlock) / (1 << 20),
              empty_each.c_str());
  auto store = xlb::store::Store::open(dir / "state.db");
  if (!store) return 1;
  xlb::Logger log(xlb::LogLevel::error);
  // As xlbd does: the sockets socket-LB connected to a backend that left are destroyed, in every
  // network namespace, by the engine after each change (its cost is part of the lag).
  xlb::engine::Engine engine(*store, log, {}, &datapath->maps(),
                             [&](const std::vector<xlb::datapath::BackendEntry>& backends) {
                               std::vector<xlb::datapath::Endpoint> endpoints;
                               for (const auto& b : backends) endpoints.push_back({b.address, b.port});
                               return datapath->destroy_sockets_to(endpoints);
                             });

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
    auto applied = p.whole ? engine.apply(p.catalog, "kubernetes") : engine.apply_changes(p.changes, "kubernetes");
    if (!applied) {
      std::fprintf(stderr, "apply: %s\n", applied.error().message.c_str());
      std::lock_guard lock(mutex);
      failed = true;
      cv.notify_all();
      return;
    }
    const auto done = Clock::now();
    std::lock_guard lock(mutex);
    ++publications;
    if (synced) apply_ms.push_back(std::chrono::duration<double, std::milli>(done - apply_started).count());
    if (synced) arrival_ms.push_back(std::chrono::duration<double, std::milli>(apply_started - p.first_change).count());
    if (!synced && engine.counts().services == static_cast<size_t>(count + kStableServices)) {
      synced = true;
      std::printf("initial sync: %.1f s\n", std::chrono::duration<double>(done - started).count());
    }
    for (auto it = pending.begin(); it != pending.end();) {
      const auto* found = engine.find("default/svc-" + std::to_string(it->first) + ":http");
      const bool holds = found && std::any_of(found->service.backends.begin(), found->service.backends.end(),
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
  const auto [full_memlock, full_each] = maps_memlock(pins.pin_dir());
  std::printf("datapath maps with the catalog: %.1f MiB memlock (%s )\n", static_cast<double>(full_memlock) / (1 << 20),
              full_each.c_str());
  // Socket-LB for the client's cgroup only, through links pinned with the maps (removed with them).
  const auto cgroup2 = xlb::datapath::find_cgroup2_mount();
  if (!cgroup2) {
    std::fprintf(stderr, "%s\n", cgroup2.error().message.c_str());
    return 1;
  }
  auto cgroup = xlb::test::TempCgroup::create(*cgroup2);
  if (!cgroup) {
    std::fprintf(stderr, "%s\n", cgroup.error().message.c_str());
    return 1;
  }
  if (auto attached = datapath->attach_cgroup(cgroup->path()); !attached) {
    std::fprintf(stderr, "%s\n", attached.error().message.c_str());
    return 1;
  }
  std::printf("churn: 100 EndpointSlice changes per second for %d s (10 every 100 ms); a client connects to %d "
              "unchanged Services meanwhile (at most %d/s)\n",
              seconds, kStableServices, kClientRate);
  std::fflush(stdout);
  client.go(cgroup->path());
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
  const std::string connections = client.stop();
  client.reap();  // out of the cgroup before it is removed
  {
    std::unique_lock lock(mutex);
    if (!cv.wait_for(lock, 60s, [&] { return pending.empty(); }))
      std::fprintf(stderr, "%zu changes never reached the maps\n", pending.size());
  }
  const long rss_end = rss_kib();
  auto actual = datapath->maps().read();
  const bool maps_match = actual && *actual == engine.map_state();
  size_t wrong = 0;
  const xlb::model::Catalog final_catalog = engine.catalog();
  for (int i = 0; i < count; ++i) {
    const auto* s = final_catalog.find("default/svc-" + std::to_string(i) + ":http");
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
  long connected = 0, refused = -1;
  char first_error[128] = "";
  std::sscanf(connections.c_str(), "%ld %ld %127[^\n]", &connected, &refused, first_error);
  std::printf("while churning, connections to unchanged Services: %ld ok, %ld failed%s%s\n", connected, refused,
              refused > 0 ? "; the first: " : "", refused > 0 ? first_error : "");
  return wrong == 0 && maps_match && refused == 0 && connected > 0 ? 0 : 1;
}

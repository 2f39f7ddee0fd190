// connect_bench: the catalog and the client of bench/connect_bench.sh (connect() to ClusterIPs from
// the node: xlb's socket-LB vs kube-proxy's iptables and nftables layouts vs the backend directly).
//
//   connect_bench catalog SERVICES BACKENDS DIR
//       Service i (0 <= i < SERVICES) is bench/svc-i, ClusterIP cluster_ip(i), TCP port 80, with the
//       endpoints 10.202.K.2:8080 (K = 1..BACKENDS). Writes into DIR:
//         services.toml  the [[service]] tables of xlb's config (kind cluster-ip)
//         iptables.rules kube-proxy's iptables layout (iptables-save -t nat), tests/support's generator
//         nft.rules      kube-proxy's nftables layout (table ip kube-proxy), the same generator
//         clusterips     one "ADDRESS 80" per Service
//         backends       one "ADDRESS 8080" per backend (the direct baseline)
//   connect_bench run TARGETS SECONDS MAX_CONNECTS
//       New TCP connections, one after another, each to a random line of TARGETS, for SECONDS or
//       MAX_CONNECTS connections, whichever ends first. Each connect() is timed alone (blocking,
//       2 s timeout) and the socket is then reset (SO_LINGER 0: no TIME_WAIT, no port exhaustion).
//       Prints one line: "ok N failed N seconds S rate R mean_us M p50_us X p99_us Y" (rate: connections
//       per second of the whole loop, socket() to close(); the latencies: connect() alone).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "k8s/objects.h"
#include "support/kube_proxy_rules.h"

namespace {

std::string cluster_ip(int i) { return "10.96." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1); }
std::string backend_ip(int k) { return "10.202." + std::to_string(k) + ".2"; }

bool write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  out.close();
  if (!out) std::cerr << "connect_bench: cannot write " << path << "\n";
  return static_cast<bool>(out);
}

int catalog(int services, int backends, const std::string& dir) {
  std::vector<xlb::k8s::Service> svcs;
  std::vector<xlb::k8s::EndpointSlice> slices;
  svcs.reserve(services);
  slices.reserve(services);
  std::string toml, clusterips, direct;
  for (int i = 0; i < services; ++i) {
    xlb::k8s::Service s;
    s.ns = "bench";
    s.name = "svc-" + std::to_string(i);
    s.cluster_ips = {cluster_ip(i)};
    s.ports = {{"http", "TCP", 80, 0}};
    svcs.push_back(s);
    xlb::k8s::EndpointSlice slice;
    slice.ns = "bench";
    slice.name = s.name + "-abcde";
    slice.service_name = s.name;
    slice.address_type = "IPv4";
    slice.ports = {{"http", "TCP", 8080}};
    toml += "[[service]]\nname = \"" + s.name + "\"\n[[service.frontend]]\naddress = \"" + cluster_ip(i) +
            "\"\nport = 80\nkind = \"cluster-ip\"\n";
    for (int k = 1; k <= backends; ++k) {
      xlb::k8s::Endpoint e;
      e.addresses = {backend_ip(k)};
      e.conditions.ready = true;
      e.node_name = "node-b";
      slice.endpoints.push_back(e);
      toml += "[[service.backend]]\naddress = \"" + backend_ip(k) + "\"\nport = 8080\n";
    }
    slices.push_back(slice);
    clusterips += cluster_ip(i) + " 80\n";
  }
  for (int k = 1; k <= backends; ++k) direct += backend_ip(k) + " 8080\n";
  xlb::test::KubeProxyNode node;
  node.name = "node-a";
  const bool ok = write_file(dir + "/services.toml", toml) &&
                  write_file(dir + "/iptables.rules", xlb::test::kube_proxy_iptables(svcs, slices, node)) &&
                  write_file(dir + "/nft.rules", xlb::test::kube_proxy_nft(svcs, slices, node)) &&
                  write_file(dir + "/clusterips", clusterips) && write_file(dir + "/backends", direct);
  return ok ? 0 : 1;
}

int run(const std::string& targets_file, double seconds, long max_connects) {
  std::vector<sockaddr_in> targets;
  std::ifstream in(targets_file);
  std::string host;
  int port = 0;
  while (in >> host >> port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    if (::inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) return std::cerr << "bad address " << host << "\n", 2;
    targets.push_back(a);
  }
  if (targets.empty()) return std::cerr << "connect_bench: no targets in " << targets_file << "\n", 2;
  std::mt19937_64 rng(std::random_device{}());
  std::uniform_int_distribution<size_t> pick(0, targets.size() - 1);
  std::vector<double> latencies_us;
  latencies_us.reserve(static_cast<size_t>(std::min<long>(max_connects, 2'000'000)));
  long ok = 0, failed = 0;
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  const timeval timeout{2, 0};
  const linger reset{1, 0};
  while (ok + failed < max_connects && Clock::now() < deadline) {
    const sockaddr_in& target = targets[pick(rng)];
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return std::perror("socket"), 1;
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    const auto t0 = Clock::now();
    const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&target), sizeof target);
    const auto t1 = Clock::now();
    if (rc == 0) {
      ++ok;
      latencies_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    } else {
      ++failed;
    }
    ::close(fd);
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::sort(latencies_us.begin(), latencies_us.end());
  auto quantile = [&](double q) {
    if (latencies_us.empty()) return 0.0;
    return latencies_us[std::min(latencies_us.size() - 1, static_cast<size_t>(q * static_cast<double>(latencies_us.size())))];
  };
  double sum = 0;
  for (double l : latencies_us) sum += l;
  const double mean = latencies_us.empty() ? 0.0 : sum / static_cast<double>(latencies_us.size());
  std::printf("ok %ld failed %ld seconds %.3f rate %.0f mean_us %.1f p50_us %.1f p99_us %.1f\n", ok, failed, elapsed,
              static_cast<double>(ok) / elapsed, mean, quantile(0.50), quantile(0.99));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> a(argv + 1, argv + argc);
  if (a.size() == 4 && a[0] == "catalog") return catalog(std::atoi(a[1].c_str()), std::atoi(a[2].c_str()), a[3]);
  if (a.size() == 4 && a[0] == "run") return run(a[1], std::atof(a[2].c_str()), std::atol(a[3].c_str()));
  std::cerr << "usage: connect_bench catalog SERVICES BACKENDS DIR | run TARGETS SECONDS MAX_CONNECTS\n";
  return 2;
}

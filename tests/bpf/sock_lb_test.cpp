// Socket-LB (bpf/xlb_sock.bpf.c) on the real kernel: the programs pass the verifier, and from
// inside the attached cgroup a connect() or sendto() to a service address reaches a backend,
// while the application only ever sees the service address (getpeername, recvfrom); a service
// without backends refuses at once; ClientIP affinity holds; counters count; sockets to a
// backend that left are destroyed. Every other socket call is left alone.
//
// Each test runs in a network namespace of its own with only loopback: backends listen on
// 127.0.0.1 and ::1, and a connect that is not translated fails with ENETUNREACH instead of
// leaving the machine. Service addresses are in the benchmarking ranges 198.18.0.0/15 and
// 2001:2::/48. The datapath pins under a bpffs directory of the test's own, removed after it.
//
// What the kernel really connected a socket to is read from /proc/net (kernel_peer): with
// socket-LB, getpeername shows the service instead.
#include <arpa/inet.h>
#include <fcntl.h>
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/unique_fd.h"
#include "datapath/cgroup.h"
#include "datapath/datapath.h"
#include "support/child_process.h"
#include "support/command.h"
#include "support/process.h"
#include "support/netns.h"
#include "support/requirements.h"
#include "support/status.h"
#include "support/temp_cgroup.h"
#include "xlb_abi.h"

namespace xlb::datapath {
namespace {

namespace fs = std::filesystem;
using model::Protocol;

constexpr std::uint16_t kServicePort = 80;
constexpr int kWaitMs = 5000;

// One address family's addresses for a test.
struct Family {
  const char* name;
  int af;
  const char* service;   // a service address
  const char* other;     // an address that is no service
  const char* loopback;  // where backends listen
};
void PrintTo(const Family& f, std::ostream* os) { *os << f.name; }

constexpr Family kIpv4{"IPv4", AF_INET, "198.18.0.10", "198.18.0.11", "127.0.0.1"};
constexpr Family kIpv6{"IPv6", AF_INET6, "2001:2::10", "2001:2::11", "::1"};

model::IpAddress ip(std::string_view text) { return model::IpAddress::parse(text).value(); }

std::string errno_text(std::string_view call) { return std::string(call) + ": " + std::strerror(errno); }

// address:port as a sockaddr of the address's family.
struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  SocketAddress() = default;
  SocketAddress(const std::string& address, std::uint16_t port) {
    if (address.find(':') == std::string::npos) {
      auto* in = reinterpret_cast<sockaddr_in*>(&storage);
      in->sin_family = AF_INET;
      in->sin_port = htons(port);
      ::inet_pton(AF_INET, address.c_str(), &in->sin_addr);
      length = sizeof(sockaddr_in);
    } else {
      auto* in6 = reinterpret_cast<sockaddr_in6*>(&storage);
      in6->sin6_family = AF_INET6;
      in6->sin6_port = htons(port);
      ::inet_pton(AF_INET6, address.c_str(), &in6->sin6_addr);
      length = sizeof(sockaddr_in6);
    }
  }
  sockaddr* get() { return reinterpret_cast<sockaddr*>(&storage); }
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }

  // "127.0.0.1:80", "[::1]:80".
  std::string to_string() const {
    char text[INET6_ADDRSTRLEN] = {};
    if (storage.ss_family == AF_INET) {
      const auto* in = reinterpret_cast<const sockaddr_in*>(&storage);
      ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
      return std::string(text) + ":" + std::to_string(ntohs(in->sin_port));
    }
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&storage);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
    return "[" + std::string(text) + "]:" + std::to_string(ntohs(in6->sin6_port));
  }
};

std::string endpoint(const std::string& address, std::uint16_t port) { return SocketAddress(address, port).to_string(); }

// The peer the kernel holds for a socket, from /proc/net/{tcp,udp}[6] by the socket's inode:
// what getpeername would say without socket-LB's getpeername programs.
std::string kernel_peer(int fd, int af, int type) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return errno_text("fstat");
  const std::string table =
      std::string("/proc/net/") + (type == SOCK_STREAM ? "tcp" : "udp") + (af == AF_INET6 ? "6" : "");
  std::ifstream in(table);
  std::string line;
  std::getline(in, line);  // the header
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
    fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >> timeout >> inode;
    if (inode != std::to_string(st.st_ino)) continue;
    // ADDRESS:PORT in hex; the address is printed as the kernel's 32-bit words of network
    // order data, the port in host order.
    const size_t colon = remote.find(':');
    SocketAddress peer;
    const auto port = static_cast<std::uint16_t>(std::stoul(remote.substr(colon + 1), nullptr, 16));
    if (af == AF_INET) {
      auto* sin = reinterpret_cast<sockaddr_in*>(&peer.storage);
      sin->sin_family = AF_INET;
      sin->sin_port = htons(port);
      sin->sin_addr.s_addr = static_cast<std::uint32_t>(std::stoul(remote.substr(0, 8), nullptr, 16));
    } else {
      auto* sin6 = reinterpret_cast<sockaddr_in6*>(&peer.storage);
      sin6->sin6_family = AF_INET6;
      sin6->sin6_port = htons(port);
      for (int word = 0; word < 4; ++word) {
        const auto value = static_cast<std::uint32_t>(std::stoul(remote.substr(word * 8, 8), nullptr, 16));
        std::memcpy(&sin6->sin6_addr.s6_addr[word * 4], &value, 4);
      }
    }
    return peer.to_string();
  }
  return "(socket not in " + table + ")";
}

bool wait_readable(int fd, int timeout_ms = kWaitMs) {
  pollfd readable{fd, POLLIN, 0};
  return ::poll(&readable, 1, timeout_ms) == 1;
}

// A backend: a socket of `type` on the loopback address with a port of the kernel's choosing;
// TCP ones listen.
struct Backend {
  UniqueFd fd;
  std::uint16_t port = 0;

  static Backend open(const Family& family, int type) {
    Backend b;
    b.fd = UniqueFd(::socket(family.af, type | SOCK_CLOEXEC, 0));
    SocketAddress address(family.loopback, 0);
    if (!b.fd || ::bind(b.fd.get(), address.get(), address.length) != 0) return {};
    if (type == SOCK_STREAM && ::listen(b.fd.get(), 16) != 0) return {};
    SocketAddress bound;
    bound.length = sizeof bound.storage;
    ::getsockname(b.fd.get(), bound.get(), &bound.length);
    b.port = ntohs(reinterpret_cast<sockaddr_in*>(&bound.storage)->sin_port);  // same offset in sockaddr_in6
    return b;
  }
};

// What the first client of a TCP listener or the next datagram of a UDP socket brought.
std::string receive(const UniqueFd& socket, int type) {
  if (!wait_readable(socket.get())) return "(nothing arrived)";
  UniqueFd accepted;
  if (type == SOCK_STREAM) {
    accepted = UniqueFd(::accept4(socket.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!accepted || !wait_readable(accepted.get())) return "(no data on the accepted connection)";
  }
  char buffer[64];
  const ssize_t n = ::recv(accepted ? accepted.get() : socket.get(), buffer, sizeof buffer, 0);
  return n < 0 ? errno_text("recv") : std::string(buffer, static_cast<size_t>(n));
}

// Answers every datagram that reaches a UDP backend with "reply to <payload>", from a thread,
// until it is destroyed; keeps what it received.
class UdpEcho {
 public:
  explicit UdpEcho(const Backend& backend) : fd_(backend.fd.get()), thread_([this] { run(); }) {}
  ~UdpEcho() {
    stop_ = true;
    thread_.join();
  }

 private:
  void run() {
    while (!stop_) {
      if (!wait_readable(fd_, 50)) continue;
      char buffer[64];
      SocketAddress from;
      from.length = sizeof from.storage;
      const ssize_t n = ::recvfrom(fd_, buffer, sizeof buffer, 0, from.get(), &from.length);
      if (n <= 0) continue;
      const std::string reply = "reply to " + std::string(buffer, static_cast<size_t>(n));
      ::sendto(fd_, reply.data(), reply.size(), 0, from.get(), from.length);
    }
  }

  int fd_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Connects a new socket of `type` to address:port and sends `payload` if there is one. Says
// where the kernel connected it and what the application sees as its peer:
// "kernel peer 127.0.0.1:1234, getpeername 198.18.0.10:80", or the call that failed and why.
std::string connect_and_report(int af, int type, const std::string& address, std::uint16_t port,
                               std::string_view payload = {}) {
  const UniqueFd fd(::socket(af, type | SOCK_CLOEXEC, 0));
  if (!fd) return errno_text("socket");
  const SocketAddress to(address, port);
  if (::connect(fd.get(), to.get(), to.length) != 0) return errno_text("connect");
  if (!payload.empty() && ::send(fd.get(), payload.data(), payload.size(), 0) != static_cast<ssize_t>(payload.size()))
    return errno_text("send");
  SocketAddress peer;
  peer.length = sizeof peer.storage;
  if (::getpeername(fd.get(), peer.get(), &peer.length) != 0) return errno_text("getpeername");
  return "kernel peer " + kernel_peer(fd.get(), af, type) + ", getpeername " + peer.to_string();
}

// Where a connect to the service reached the kernel, as connect_and_report says it.
std::string reached(const Family& f, std::uint16_t backend_port) {
  return "kernel peer " + endpoint(f.loopback, backend_port) + ", getpeername " + endpoint(f.service, kServicePort);
}

const std::string kNotTranslated = "connect: " + std::string(std::strerror(ENETUNREACH));
const std::string kRefused = "connect: " + std::string(std::strerror(ECONNREFUSED));

// Sends `payload` to address:port and waits for one reply: "'reply to x' from 198.18.0.10:80".
// connected: connect() first and send(); otherwise sendto() on an unconnected socket.
std::string udp_round_trip(int af, const std::string& address, std::uint16_t port, std::string_view payload,
                           bool connected) {
  const UniqueFd fd(::socket(af, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return errno_text("socket");
  const SocketAddress to(address, port);
  if (connected) {
    if (::connect(fd.get(), to.get(), to.length) != 0) return errno_text("connect");
    if (::send(fd.get(), payload.data(), payload.size(), 0) < 0) return errno_text("send");
  } else if (::sendto(fd.get(), payload.data(), payload.size(), 0, to.get(), to.length) < 0) {
    return errno_text("sendto");
  }
  if (!wait_readable(fd.get())) return "(no reply)";
  char buffer[64];
  SocketAddress from;
  from.length = sizeof from.storage;
  const ssize_t n = ::recvfrom(fd.get(), buffer, sizeof buffer, 0, from.get(), &from.length);
  if (n < 0) return errno_text("recvfrom");
  return "'" + std::string(buffer, static_cast<size_t>(n)) + "' from " + from.to_string();
}

// How often each line occurs in `text`.
std::map<std::string, int> tally(std::string_view text) {
  std::map<std::string, int> counts;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    ++counts[std::string(text.substr(0, end))];
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
  }
  return counts;
}

// `count` UDP connects to the service, one connect_and_report line each (no packets are sent).
std::string udp_connects(const Family& f, int count) {
  std::string lines;
  for (int i = 0; i < count; ++i) lines += connect_and_report(f.af, SOCK_DGRAM, f.service, kServicePort) + "\n";
  return lines;
}

class SockLbTest : public ::testing::TestWithParam<Family> {
 protected:
  void SetUp() override {
    XLB_REQUIRE(test::missing_capabilities({test::kCapBpf, test::kCapNetAdmin, test::kCapSysAdmin}));
    const Result<fs::path> mount = find_cgroup2_mount();
    XLB_REQUIRE(test::missing_if_failed(mount));
    if (!fs::exists("/sys/fs/bpf") || ::system("mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf") != 0)
      GTEST_FAIL() << "bpffs is not mounted at /sys/fs/bpf and could not be mounted";
    // Before the first socket, so that every socket of the test is in it.
    XLB_ASSERT_OK(test::enter_private_netns());

    Result<test::TempCgroup> cgroup = test::TempCgroup::create(*mount);
    XLB_ASSERT_OK(cgroup);
    cgroup_.emplace(std::move(cgroup).value());
    pins_ = fs::path("/sys/fs/bpf") / ("xlb-test-" + std::to_string(std::random_device{}())) / "v1";
    Result<Datapath> datapath = Datapath::load({pins_});
    XLB_ASSERT_OK(datapath);
    datapath_.emplace(std::move(datapath).value());
    XLB_ASSERT_OK(datapath_->attach_cgroup(cgroup_->path()));
  }

  void TearDown() override {
    datapath_.reset();
    // The cgroup links are pinned there: removing the pins detaches them.
    if (!pins_.empty()) XLB_EXPECT_OK(Datapath::cleanup(pins_.parent_path(), {}));
  }

  const Family& family() const { return GetParam(); }
  FrontendKey service(Protocol protocol) const { return {ip(family().service), kServicePort, protocol}; }

  Status upsert_backend(BackendId id, std::uint16_t port) {
    return datapath_->maps().upsert_backend({id, ip(family().loopback), port, false});
  }
  Status upsert_service(Protocol protocol, ServiceId id, std::vector<BackendId> ring, std::uint32_t affinity_s = 0) {
    FrontendEntry entry;
    entry.key = service(protocol);
    entry.service_id = id;
    entry.ring = std::move(ring);
    entry.affinity = affinity_s != 0;
    entry.affinity_timeout_s = affinity_s;
    return datapath_->maps().upsert_frontends({entry});
  }

  // Runs `body` in a child process that has joined the test's cgroup; returns its report.
  std::string in_cgroup(const std::function<std::string()>& body) {
    const Result<std::string> report = test::run_in_child([&] {
      const Status joined = test::join_cgroup(cgroup_->path());
      return joined.ok() ? body() : joined.error().message;
    });
    return report.ok() ? report.value() : report.error().message;
  }

  std::optional<test::TempCgroup> cgroup_;
  fs::path pins_;
  std::optional<Datapath> datapath_;  // after cgroup_, so that it goes before the cgroup
};

INSTANTIATE_TEST_SUITE_P(Families, SockLbTest, ::testing::Values(kIpv4, kIpv6),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

TEST_P(SockLbTest, TcpConnectReachesTheBackendAndShowsTheServiceAsPeer) {
  const Backend backend = Backend::open(family(), SOCK_STREAM);
  ASSERT_TRUE(backend.fd);
  XLB_ASSERT_OK(upsert_backend(1, backend.port));
  XLB_ASSERT_OK(upsert_service(Protocol::tcp, 1, {1}));
  const Family f = family();

  EXPECT_EQ(in_cgroup([&] { return connect_and_report(f.af, SOCK_STREAM, f.service, kServicePort, "x"); }),
            reached(f, backend.port));
  EXPECT_EQ(receive(backend.fd, SOCK_STREAM), "x");
}

TEST_P(SockLbTest, ConnectedUdpReachesTheBackendAndRepliesComeFromTheService) {
  const Backend backend = Backend::open(family(), SOCK_DGRAM);
  ASSERT_TRUE(backend.fd);
  XLB_ASSERT_OK(upsert_backend(1, backend.port));
  XLB_ASSERT_OK(upsert_service(Protocol::udp, 1, {1}));
  const Family f = family();

  EXPECT_EQ(in_cgroup([&] { return connect_and_report(f.af, SOCK_DGRAM, f.service, kServicePort, "u"); }),
            reached(f, backend.port));
  EXPECT_EQ(receive(backend.fd, SOCK_DGRAM), "u");

  const UdpEcho echo(backend);
  EXPECT_EQ(in_cgroup([&] { return udp_round_trip(f.af, f.service, kServicePort, "c", true); }),
            "'reply to c' from " + endpoint(f.service, kServicePort));
}

TEST_P(SockLbTest, UnconnectedUdpReachesTheBackendAndRepliesComeFromTheService) {
  const Backend backend = Backend::open(family(), SOCK_DGRAM);
  ASSERT_TRUE(backend.fd);
  XLB_ASSERT_OK(upsert_backend(1, backend.port));
  XLB_ASSERT_OK(upsert_service(Protocol::udp, 1, {1}));
  const Family f = family();
  const UdpEcho echo(backend);

  EXPECT_EQ(in_cgroup([&] { return udp_round_trip(f.af, f.service, kServicePort, "s", false); }),
            "'reply to s' from " + endpoint(f.service, kServicePort));
  // A datagram from the backend's address that xlb did not translate keeps its real source.
  EXPECT_EQ(in_cgroup([&] { return udp_round_trip(f.af, f.loopback, backend.port, "d", false); }),
            "'reply to d' from " + endpoint(f.loopback, backend.port));
}

TEST_P(SockLbTest, UnconnectedUdpTranslatesEveryDatagram) {
  const Backend first = Backend::open(family(), SOCK_DGRAM);
  const Backend second = Backend::open(family(), SOCK_DGRAM);
  ASSERT_TRUE(first.fd && second.fd);
  XLB_ASSERT_OK(upsert_backend(1, first.port));
  XLB_ASSERT_OK(upsert_backend(2, second.port));
  XLB_ASSERT_OK(upsert_service(Protocol::udp, 1, {1}));
  const Family f = family();

  // One socket, two datagrams, the ring changed in between: each goes where the ring says then.
  const SocketAddress to(f.service, kServicePort);
  const auto send_one = [&](const char* payload) {
    return in_cgroup([&] {
      // The socket belongs to the cgroup it was created in: a new socket per child.
      const UniqueFd fd(::socket(f.af, SOCK_DGRAM | SOCK_CLOEXEC, 0));
      return ::sendto(fd.get(), payload, 1, 0, to.get(), to.length) == 1 ? std::string("sent") : errno_text("sendto");
    });
  };
  EXPECT_EQ(send_one("1"), "sent");
  XLB_ASSERT_OK(upsert_service(Protocol::udp, 1, {2}));
  EXPECT_EQ(send_one("2"), "sent");
  EXPECT_EQ(receive(first.fd, SOCK_DGRAM), "1");
  EXPECT_EQ(receive(second.fd, SOCK_DGRAM), "2");
}

TEST_P(SockLbTest, ServiceWithoutBackendsRefusesAtOnceAndIsCounted) {
  XLB_ASSERT_OK(upsert_service(Protocol::tcp, 1, {}));
  XLB_ASSERT_OK(upsert_service(Protocol::udp, 2, {}));
  const Family f = family();

  EXPECT_EQ(in_cgroup([&] { return connect_and_report(f.af, SOCK_STREAM, f.service, kServicePort); }), kRefused);
  EXPECT_EQ(in_cgroup([&] { return connect_and_report(f.af, SOCK_DGRAM, f.service, kServicePort); }), kRefused);
  EXPECT_EQ(in_cgroup([&] { return udp_round_trip(f.af, f.service, kServicePort, "s", false); }),
            "sendto: " + std::string(std::strerror(ECONNREFUSED)));

  const Result<Counters> counters = datapath_->read_counters();
  XLB_ASSERT_OK(counters);
  ASSERT_TRUE(counters->reasons.contains("no backend"));
  EXPECT_EQ(counters->reasons.at("no backend").packets, 3U) << "one per refused call";
}

TEST_P(SockLbTest, NewFlowsAreCountedPerServiceAndBackend) {
  XLB_ASSERT_OK(upsert_backend(1, 1001));
  XLB_ASSERT_OK(upsert_backend(2, 1002));
  XLB_ASSERT_OK(upsert_service(Protocol::udp, 5, {1}));
  XLB_ASSERT_OK(upsert_service(Protocol::tcp, 6, {2}));
  const Family f = family();

  ASSERT_EQ(tally(in_cgroup([&] { return udp_connects(f, 7); })), (std::map<std::string, int>{{reached(f, 1001), 7}}));

  const Result<Counters> counters = datapath_->read_counters();
  XLB_ASSERT_OK(counters);
  ASSERT_TRUE(counters->services.contains(5) && counters->backends.contains(1));
  EXPECT_EQ(counters->services.at(5).new_flows, 7U);
  EXPECT_EQ(counters->backends.at(1).new_flows, 7U);
  EXPECT_EQ(counters->services.at(5).packets, 0U) << "socket-LB sees no packets";
  EXPECT_FALSE(counters->services.contains(6));
  EXPECT_FALSE(counters->backends.contains(2));
}

TEST_P(SockLbTest, ConnectsToOtherAddressesPortsAndProtocolsAreLeftAlone) {
  const Backend backend = Backend::open(family(), SOCK_STREAM);
  ASSERT_TRUE(backend.fd);
  XLB_ASSERT_OK(upsert_backend(1, backend.port));
  XLB_ASSERT_OK(upsert_service(Protocol::tcp, 1, {1}));
  const Family f = family();
  const std::string direct = "kernel peer " + endpoint(f.loopback, backend.port) + ", getpeername " +
                             endpoint(f.loopback, backend.port);

  EXPECT_EQ(in_cgroup([&] { return connect_and_report(f.af, SOCK_STREAM, f.loopback, backend.port, "d"); }), direct)
      << "a direct connect to the backend";
  EXPECT_EQ(receive(backend.fd, SOCK_STREAM), "d");
  EXPECT_EQ(in_cgroup([&] { return connect_and_report(f.af, SOCK_DGRAM, f.other, kServicePort); }), kNotTranslated)
      << "another address";
  EXPECT_EQ(in_cgroup([&] { return connect_and_report(f.af, SOCK_DGRAM, f.service, kServicePort + 1); }),
            kNotTranslated)
      << "another port";
  EXPECT_EQ(in_cgroup([&] { return connect_and_report(f.af, SOCK_DGRAM, f.service, kServicePort); }), kNotTranslated)
      << "UDP to a TCP-only service";
}

TEST_P(SockLbTest, ProcessesOutsideTheCgroupAreLeftAlone) {
  XLB_ASSERT_OK(upsert_backend(1, 1001));
  XLB_ASSERT_OK(upsert_service(Protocol::tcp, 1, {1}));
  XLB_ASSERT_OK(upsert_service(Protocol::udp, 2, {1}));
  const Family f = family();

  // This test process never joins the cgroup.
  EXPECT_EQ(connect_and_report(f.af, SOCK_STREAM, f.service, kServicePort), kNotTranslated);
  EXPECT_EQ(connect_and_report(f.af, SOCK_DGRAM, f.service, kServicePort), kNotTranslated);
  EXPECT_EQ(udp_round_trip(f.af, f.service, kServicePort, "s", false), "sendto: " + std::string(std::strerror(ENETUNREACH)));
  // While the same connect from inside is translated.
  EXPECT_EQ(in_cgroup([&] { return connect_and_report(f.af, SOCK_DGRAM, f.service, kServicePort); }), reached(f, 1001));
}

TEST_P(SockLbTest, RemovedServiceIsLeftAlone) {
  XLB_ASSERT_OK(upsert_backend(1, 9));
  XLB_ASSERT_OK(upsert_service(Protocol::udp, 1, {1}));
  const Family f = family();
  ASSERT_EQ(in_cgroup([&] { return connect_and_report(f.af, SOCK_DGRAM, f.service, kServicePort); }), reached(f, 9));

  XLB_ASSERT_OK(datapath_->maps().remove_frontends({service(Protocol::udp)}));
  EXPECT_EQ(in_cgroup([&] { return connect_and_report(f.af, SOCK_DGRAM, f.service, kServicePort); }), kNotTranslated);
}

TEST_P(SockLbTest, TwoBackendsShareConnectsEvenly) {
  XLB_ASSERT_OK(upsert_backend(1, 1001));
  XLB_ASSERT_OK(upsert_backend(2, 1002));
  // 251 slots, the smallest Maglev size, taken in turns as Maglev does for equal weights.
  std::vector<BackendId> ring(251);
  for (size_t slot = 0; slot < ring.size(); ++slot) ring[slot] = slot % 2 == 0 ? 1 : 2;
  XLB_ASSERT_OK(upsert_service(Protocol::udp, 1, ring));
  const Family f = family();

  const std::map<std::string, int> counts = tally(in_cgroup([&] { return udp_connects(f, 200); }));

  // Each backend's share is binomial(200, ~1/2): below 30% is more than 5 standard deviations out.
  ASSERT_EQ(counts.size(), 2U) << "expected only the two backends, got: " << ::testing::PrintToString(counts);
  EXPECT_GE(counts.at(reached(f, 1001)), 60) << ::testing::PrintToString(counts);
  EXPECT_GE(counts.at(reached(f, 1002)), 60) << ::testing::PrintToString(counts);
}

TEST_P(SockLbTest, ReplacedRingsTakeEffect) {
  XLB_ASSERT_OK(upsert_backend(1, 1001));
  XLB_ASSERT_OK(upsert_backend(2, 1002));
  const Family f = family();
  const std::map<std::string, int> all_to_1{{reached(f, 1001), 20}};
  const std::map<std::string, int> all_to_2{{reached(f, 1002), 20}};
  const auto connects = [&] { return tally(in_cgroup([&] { return udp_connects(f, 20); })); };

  XLB_ASSERT_OK(upsert_service(Protocol::udp, 1, std::vector<BackendId>(251, 1)));
  EXPECT_EQ(connects(), all_to_1) << "a new service";
  XLB_ASSERT_OK(upsert_service(Protocol::udp, 1, std::vector<BackendId>(2, 2)));
  EXPECT_EQ(connects(), all_to_2) << "a smaller ring";
  XLB_ASSERT_OK(upsert_service(Protocol::udp, 1, std::vector<BackendId>(509, 1)));
  EXPECT_EQ(connects(), all_to_1) << "a larger ring";
  XLB_ASSERT_OK(upsert_service(Protocol::udp, 7, std::vector<BackendId>(251, 2)));
  EXPECT_EQ(connects(), all_to_2) << "another service id";
}

// CLOCK_MONOTONIC_COARSE is the clock of bpf_ktime_get_coarse_ns.
std::uint64_t coarse_now_ns() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
  return static_cast<std::uint64_t>(now.tv_sec) * 1000000000ULL + static_cast<std::uint64_t>(now.tv_nsec);
}

TEST_P(SockLbTest, AffinityKeepsAClientOnOneBackendUntilTheTimeout) {
  XLB_ASSERT_OK(upsert_backend(1, 1001));
  XLB_ASSERT_OK(upsert_backend(2, 1002));
  XLB_ASSERT_OK(upsert_backend(3, 1003));  // in no ring: only an affinity entry can lead to it
  std::vector<BackendId> ring(251);
  for (size_t slot = 0; slot < ring.size(); ++slot) ring[slot] = slot % 2 == 0 ? 1 : 2;
  XLB_ASSERT_OK(upsert_service(Protocol::udp, 1, ring, 10));
  const Family f = family();

  // Without affinity these would split about evenly (TwoBackendsShareConnectsEvenly).
  const std::map<std::string, int> counts = tally(in_cgroup([&] { return udp_connects(f, 40); }));
  ASSERT_EQ(counts.size(), 1U) << ::testing::PrintToString(counts);

  // The client's entry (one: the test's only network namespace and service). Time is faked by
  // writing it: pointing it at backend 3 shows that the entry decides while it is fresh, and
  // that an expired one is ignored.
  const UniqueFd map(bpf_obj_get((pins_ / "xlb_sock_affinity").c_str()));
  ASSERT_TRUE(map) << "xlb_sock_affinity is not pinned";
  std::array<std::uint8_t, 16> key{};  // struct xlb_sock_affinity_key (bpf/lib/sock_affinity.h)
  ASSERT_EQ(bpf_map_get_next_key(map.get(), nullptr, key.data()), 0);
  std::array<std::uint8_t, 16> next{};
  EXPECT_NE(bpf_map_get_next_key(map.get(), key.data(), next.data()), 0) << "one entry only";
  const auto write_entry = [&](BackendId backend, std::uint64_t last_seen_ns) {
    xlb_affinity_entry entry{};
    entry.backend_id = backend;
    entry.last_seen_ns = last_seen_ns;
    return bpf_map_update_elem(map.get(), key.data(), &entry, BPF_EXIST);
  };

  ASSERT_EQ(write_entry(3, coarse_now_ns() - 9'000'000'000ULL), 0);  // 9 s ago: fresh with 10 s
  EXPECT_EQ(tally(in_cgroup([&] { return udp_connects(f, 10); })), (std::map<std::string, int>{{reached(f, 1003), 10}}));

  ASSERT_EQ(write_entry(3, coarse_now_ns() - 11'000'000'000ULL), 0);  // 11 s ago: expired
  const std::map<std::string, int> after = tally(in_cgroup([&] { return udp_connects(f, 10); }));
  ASSERT_EQ(after.size(), 1U) << "a new backend, kept again: " << ::testing::PrintToString(after);
  EXPECT_NE(after.begin()->first, reached(f, 1003));
}

TEST_P(SockLbTest, AffinitySkipsBackendsThatDrainOrLeave) {
  XLB_ASSERT_OK(upsert_backend(1, 1001));
  XLB_ASSERT_OK(upsert_backend(2, 1002));
  XLB_ASSERT_OK(upsert_backend(3, 1003));
  XLB_ASSERT_OK(upsert_service(Protocol::udp, 1, std::vector<BackendId>(251, 1), 600));
  const Family f = family();
  const auto connect = [&] {
    return in_cgroup([&] { return connect_and_report(f.af, SOCK_DGRAM, f.service, kServicePort); });
  };
  ASSERT_EQ(connect(), reached(f, 1001));

  // Backend 1 drains: the ring moves to 2, and so does the client, at once.
  XLB_ASSERT_OK(datapath_->maps().upsert_backend({1, ip(f.loopback), 1001, true}));
  XLB_ASSERT_OK(upsert_service(Protocol::udp, 1, std::vector<BackendId>(251, 2), 600));
  EXPECT_EQ(connect(), reached(f, 1002));

  // Backend 2 leaves: out of the ring, then out of the map.
  XLB_ASSERT_OK(upsert_service(Protocol::udp, 1, std::vector<BackendId>(251, 3), 600));
  XLB_ASSERT_OK(datapath_->maps().remove_backend(2));
  EXPECT_EQ(connect(), reached(f, 1003));
}

TEST_P(SockLbTest, ADrainingBackendStillInTheRingIsConnectedTo) {
  XLB_ASSERT_OK(datapath_->maps().upsert_backend({1, ip(family().loopback), 1001, true}));
  XLB_ASSERT_OK(upsert_service(Protocol::udp, 1, {1}));
  const Family f = family();
  // The ring is user space's word: while it still holds the backend, connects go there rather
  // than fail.
  EXPECT_EQ(in_cgroup([&] { return connect_and_report(f.af, SOCK_DGRAM, f.service, kServicePort); }), reached(f, 1001));
}

// A process that stays in the cgroup, blocked in a socket call, while the test acts on the
// datapath: started by start(), its report collected by finish().
class BlockedClient {
 public:
  BlockedClient(const fs::path& cgroup, const std::function<std::string()>& body) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(fds[0]);
      const Status joined = test::join_cgroup(cgroup);
      const std::string report = joined.ok() ? body() : joined.error().message;
      (void)!::write(fds[1], report.data(), report.size());
      ::_exit(0);
    }
    ::close(fds[1]);
    output_ = UniqueFd(fds[0]);
  }
  ~BlockedClient() { finish(); }

  // The child's report; kills it if it has not written one in time.
  std::string finish() {
    if (pid_ <= 0) return report_;
    if (wait_readable(output_.get(), 2 * kWaitMs)) {
      char buffer[256];
      const ssize_t n = ::read(output_.get(), buffer, sizeof buffer);
      if (n > 0) report_.assign(buffer, static_cast<size_t>(n));
    } else {
      report_ = "(the client reported nothing)";
      ::kill(pid_, SIGKILL);
    }
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return report_;
  }

 private:
  pid_t pid_ = -1;
  UniqueFd output_;
  std::string report_;
};

// Connects to the service, sends "hello", and waits for an answer or an error: what recv says.
std::string wait_on_service(int af, int type, const std::string& service) {
  const UniqueFd fd(::socket(af, type | SOCK_CLOEXEC, 0));
  const SocketAddress to(service, kServicePort);
  if (::connect(fd.get(), to.get(), to.length) != 0) return errno_text("connect");
  if (::send(fd.get(), "hello", 5, 0) != 5) return errno_text("send");
  if (!wait_readable(fd.get())) return "(no answer, no error)";
  char buffer[64];
  const ssize_t n = ::recv(fd.get(), buffer, sizeof buffer, 0);
  return n < 0 ? errno_text("recv") : "received '" + std::string(buffer, static_cast<size_t>(n)) + "'";
}

TEST_P(SockLbTest, SocketsConnectedToARemovedBackendAreDestroyed) {
  const Family f = family();
  for (const int type : {SOCK_DGRAM, SOCK_STREAM}) {
    SCOPED_TRACE(type == SOCK_DGRAM ? "UDP" : "TCP");
    const Protocol protocol = type == SOCK_DGRAM ? Protocol::udp : Protocol::tcp;
    const Backend backend = Backend::open(f, type);
    ASSERT_TRUE(backend.fd);
    XLB_ASSERT_OK(upsert_backend(1, backend.port));
    XLB_ASSERT_OK(upsert_service(protocol, 1, {1}));

    BlockedClient client(cgroup_->path(), [&] { return wait_on_service(f.af, type, f.service); });
    // The backend's side, so that the client is surely connected and waiting; a TCP backend
    // keeps its accepted socket open (an answer-less peer, not a closed one).
    UniqueFd accepted;
    if (type == SOCK_STREAM) {
      ASSERT_TRUE(wait_readable(backend.fd.get()));
      accepted = UniqueFd(::accept4(backend.fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
      ASSERT_TRUE(accepted);
      ASSERT_EQ(receive(accepted, SOCK_DGRAM), "hello");  // a plain recv on the connection
    } else {
      ASSERT_EQ(receive(backend.fd, SOCK_DGRAM), "hello");
    }
    // A socket of this (uncgrouped) process connected to the backend directly: not xlb's.
    const UniqueFd direct(::socket(f.af, type | SOCK_CLOEXEC, 0));
    const SocketAddress backend_address(f.loopback, backend.port);
    ASSERT_EQ(::connect(direct.get(), backend_address.get(), backend_address.length), 0);

    // The backend leaves, as the engine removes one: out of the ring, then out of the map.
    XLB_ASSERT_OK(upsert_service(protocol, 1, {}));
    XLB_ASSERT_OK(datapath_->maps().remove_backend(1));
    const Result<uint32_t> destroyed = datapath_->destroy_sockets_to(ip(f.loopback), backend.port);
    XLB_ASSERT_OK(destroyed);
    EXPECT_EQ(*destroyed, 1U) << "the client's socket, not the direct one";

    EXPECT_EQ(client.finish(), "recv: " + std::string(std::strerror(ECONNABORTED)));
    int error = 0;
    socklen_t length = sizeof error;
    ASSERT_EQ(::getsockopt(direct.get(), SOL_SOCKET, SO_ERROR, &error, &length), 0);
    EXPECT_EQ(error, 0) << "the direct socket: " << std::strerror(error);
    EXPECT_EQ(::send(direct.get(), "d", 1, 0), 1) << errno_text("send on the direct socket");
  }
}

// A connected socket's record lives in the socket (bpf/lib/sock_revnat.h), not in the LRU
// table of unconnected UDP: however many datagrams to services fill that table, the socket is
// still known as connected through xlb when its backend leaves.
TEST_P(SockLbTest, AConnectedSocketIsKnownHoweverFullTheDatagramTableGets) {
  const Family f = family();
  const Backend backend = Backend::open(f, SOCK_STREAM);
  ASSERT_TRUE(backend.fd);
  XLB_ASSERT_OK(upsert_backend(1, backend.port));
  XLB_ASSERT_OK(upsert_service(Protocol::tcp, 1, {1}));
  BlockedClient client(cgroup_->path(), [&] { return wait_on_service(f.af, SOCK_STREAM, f.service); });
  ASSERT_TRUE(wait_readable(backend.fd.get()));
  const UniqueFd accepted(::accept4(backend.fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(accepted);
  ASSERT_EQ(receive(accepted, SOCK_DGRAM), "hello");

  // Twice as many other entries as the table holds, from every CPU (an LRU entry waits on its
  // CPU's own list until that CPU inserts again): what a busy node's datagrams do to it.
  const UniqueFd table(bpf_obj_get((pins_ / "xlb_sock_revnat").c_str()));
  ASSERT_TRUE(table) << "xlb_sock_revnat is not pinned";
  bpf_map_info info{};
  __u32 info_length = sizeof info;
  ASSERT_EQ(bpf_obj_get_info_by_fd(table.get(), &info, &info_length), 0);
  std::vector<uint8_t> keys(static_cast<size_t>(info.max_entries) * info.key_size);
  const std::vector<uint8_t> values(static_cast<size_t>(info.max_entries) * info.value_size);
  cpu_set_t all;
  ASSERT_EQ(::sched_getaffinity(0, sizeof all, &all), 0);
  uint64_t round = 0;
  for (int pass = 0; pass < 2; ++pass) {
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (!CPU_ISSET(cpu, &all)) continue;
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpu, &one);
      ASSERT_EQ(::sched_setaffinity(0, sizeof one, &one), 0);
      ++round;
      for (__u32 i = 0; i < info.max_entries; ++i) {
        const uint64_t cookie = round << 40 | i;  // no socket's: cookies count up from 1
        std::memcpy(&keys[static_cast<size_t>(i) * info.key_size], &cookie, sizeof cookie);
      }
      __u32 count = info.max_entries;
      ASSERT_EQ(bpf_map_update_batch(table.get(), keys.data(), values.data(), &count, nullptr), 0);
    }
  }
  ASSERT_EQ(::sched_setaffinity(0, sizeof all, &all), 0);

  XLB_ASSERT_OK(upsert_service(Protocol::tcp, 1, {}));
  XLB_ASSERT_OK(datapath_->maps().remove_backend(1));
  const Result<uint32_t> destroyed = datapath_->destroy_sockets_to(ip(f.loopback), backend.port);
  XLB_ASSERT_OK(destroyed);
  EXPECT_EQ(*destroyed, 1U);
  EXPECT_EQ(client.finish(), "recv: " + std::string(std::strerror(ECONNABORTED)));
}

// A pod: a network namespace of its own (held by an fd, so nothing is left behind) with a UDP
// backend on its loopback. Made by a thread of its own: the test's thread stays where it is.
struct Pod {
  UniqueFd netns;
  Backend backend;
};
Pod make_pod(const Family& f) {
  Pod pod;
  std::thread([&] {
    if (!test::enter_private_netns().ok()) return;
    pod.netns = UniqueFd(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
    pod.backend = Backend::open(f, SOCK_DGRAM);
  }).join();
  return pod;
}

// As a pod's resolver: a UDP client in the cgroup but in another network namespace than xlbd's
// (here the test's) is connected to a backend by socket-LB; when the backend leaves, the pass
// over every namespace destroys its socket too.
TEST_P(SockLbTest, ASocketOfAClientInAnotherNetworkNamespaceIsDestroyed) {
  const Family f = family();
  const Pod pod = make_pod(f);
  ASSERT_TRUE(pod.netns && pod.backend.fd) << "could not make the pod's network namespace and backend";
  XLB_ASSERT_OK(upsert_backend(1, pod.backend.port));
  XLB_ASSERT_OK(upsert_service(Protocol::udp, 1, {1}));

  const int pod_netns = pod.netns.get();
  BlockedClient client(cgroup_->path(), [&] {
    if (::setns(pod_netns, CLONE_NEWNET) != 0) return errno_text("setns into the pod");
    return wait_on_service(f.af, SOCK_DGRAM, f.service);
  });
  ASSERT_EQ(receive(pod.backend.fd, SOCK_DGRAM), "hello") << "the pod's client did not reach its backend";

  XLB_ASSERT_OK(upsert_service(Protocol::udp, 1, {}));
  XLB_ASSERT_OK(datapath_->maps().remove_backend(1));
  const Result<uint32_t> destroyed = datapath_->destroy_sockets_to(ip(f.loopback), pod.backend.port);
  XLB_ASSERT_OK(destroyed);
  EXPECT_EQ(*destroyed, 1U) << "the pod's socket, from the test's own namespace";
  EXPECT_EQ(client.finish(), "recv: " + std::string(std::strerror(ECONNABORTED)));
}

// The backends that leave in one change go in one pass: each client's socket, to either.
TEST_P(SockLbTest, SocketsToSeveralBackendsAreDestroyedInOnePass) {
  const Family f = family();
  const Backend first = Backend::open(f, SOCK_DGRAM);
  const Backend second = Backend::open(f, SOCK_DGRAM);
  ASSERT_TRUE(first.fd && second.fd);
  XLB_ASSERT_OK(upsert_backend(1, first.port));
  XLB_ASSERT_OK(upsert_backend(2, second.port));
  XLB_ASSERT_OK(upsert_service(Protocol::udp, 1, {1}));
  BlockedClient to_first(cgroup_->path(), [&] { return wait_on_service(f.af, SOCK_DGRAM, f.service); });
  ASSERT_EQ(receive(first.fd, SOCK_DGRAM), "hello");
  XLB_ASSERT_OK(upsert_service(Protocol::udp, 1, {2}));
  BlockedClient to_second(cgroup_->path(), [&] { return wait_on_service(f.af, SOCK_DGRAM, f.service); });
  ASSERT_EQ(receive(second.fd, SOCK_DGRAM), "hello");

  XLB_ASSERT_OK(upsert_service(Protocol::udp, 1, {}));
  XLB_ASSERT_OK(datapath_->maps().remove_backend(1));
  XLB_ASSERT_OK(datapath_->maps().remove_backend(2));
  const Result<uint32_t> destroyed =
      datapath_->destroy_sockets_to(std::vector<Endpoint>{{ip(f.loopback), first.port}, {ip(f.loopback), second.port}});
  XLB_ASSERT_OK(destroyed);
  EXPECT_EQ(*destroyed, 2U);
  EXPECT_EQ(to_first.finish(), "recv: " + std::string(std::strerror(ECONNABORTED)));
  EXPECT_EQ(to_second.finish(), "recv: " + std::string(std::strerror(ECONNABORTED)));
  // The targets are gone with the pass: a later one destroys nothing of theirs.
  const Result<uint32_t> again = datapath_->destroy_sockets_to(ip(f.loopback), 9);
  XLB_ASSERT_OK(again);
  EXPECT_EQ(*again, 0U);
}

// Where a tool is installed, or "" (test processes start programs by path: execv).
std::string tool_path(const std::string& name) {
  for (const char* dir : {"/usr/sbin", "/sbin", "/usr/bin", "/bin"}) {
    const fs::path path = fs::path(dir) / name;
    if (::access(path.c_str(), X_OK) == 0) return path.string();
  }
  return "";
}

// The lines of `conntrack -L` (every family) that mention `needle`.
std::vector<std::string> conntrack_lines_with(const std::string& needle) {
  test::ChildProcess child({tool_path("conntrack"), "-L"});
  std::vector<std::string> lines;
  if (!child.read_to_end(std::chrono::seconds(10)) || child.wait(std::chrono::seconds(10)) != 0)
    return {"(conntrack -L failed: " + child.seen() + ")"};
  std::istringstream output(child.seen());
  for (std::string line; std::getline(output, line);) {
    if (line.find(needle) != std::string::npos) lines.push_back(line);
  }
  return lines;
}

TEST_P(SockLbTest, TranslatedFlowsHaveNoConntrackEntryForTheService) {
  const Family f = family();
  const std::string iptables = tool_path(f.af == AF_INET ? "iptables" : "ip6tables");
  XLB_REQUIRE(tool_path("conntrack").empty() || iptables.empty()
                  ? std::optional<std::string>("needs the conntrack and iptables tools (apt install conntrack iptables)")
                  : std::nullopt);
  // The kernel tracks this namespace's flows only once a rule uses conntrack: add one, so that
  // a NAT'ed flow would show. The rule goes with the test's network namespace.
  XLB_ASSERT_OK(test::run_command({iptables, "-w", "-A", "OUTPUT", "-m",
                                   "conntrack", "--ctstate", "NEW", "-j", "ACCEPT"}));
  const Backend tcp = Backend::open(f, SOCK_STREAM);
  const Backend udp = Backend::open(f, SOCK_DGRAM);
  ASSERT_TRUE(tcp.fd && udp.fd);
  XLB_ASSERT_OK(upsert_backend(1, tcp.port));
  XLB_ASSERT_OK(upsert_backend(2, udp.port));
  XLB_ASSERT_OK(upsert_service(Protocol::tcp, 1, {1}));
  XLB_ASSERT_OK(upsert_service(Protocol::udp, 2, {2}));
  const UdpEcho echo(udp);

  ASSERT_EQ(in_cgroup([&] { return connect_and_report(f.af, SOCK_STREAM, f.service, kServicePort, "x"); }),
            reached(f, tcp.port));
  ASSERT_EQ(in_cgroup([&] { return udp_round_trip(f.af, f.service, kServicePort, "s", false); }),
            "'reply to s' from " + endpoint(f.service, kServicePort));

  // The flows are tracked, as plain flows to the backends ...
  EXPECT_EQ(conntrack_lines_with("dst=" + std::string(f.loopback) + " sport=").size() >= 2, true)
      << ::testing::PrintToString(conntrack_lines_with(""));
  EXPECT_EQ(conntrack_lines_with("dport=" + std::to_string(tcp.port) + " ").size(), 1U)
      << ::testing::PrintToString(conntrack_lines_with(""));
  EXPECT_EQ(conntrack_lines_with("dport=" + std::to_string(udp.port) + " ").size(), 1U)
      << ::testing::PrintToString(conntrack_lines_with(""));
  // ... and no entry has the service address: nothing was NAT'ed.
  EXPECT_EQ(conntrack_lines_with(f.service), std::vector<std::string>{});
}

// Dual-stack sockets (AF_INET6) reach IPv4 services through IPv4-mapped addresses, as Java
// and other dual-stack clients do: translated like IPv4, shown mapped.
class SockLbDualStackTest : public SockLbTest {};
INSTANTIATE_TEST_SUITE_P(Ipv4Services, SockLbDualStackTest, ::testing::Values(kIpv4),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

constexpr const char* kMappedService = "::ffff:198.18.0.10";

TEST_P(SockLbDualStackTest, MappedAddressesAreTranslatedAndShownMapped) {
  const Backend tcp = Backend::open(kIpv4, SOCK_STREAM);
  const Backend udp = Backend::open(kIpv4, SOCK_DGRAM);
  ASSERT_TRUE(tcp.fd && udp.fd);
  XLB_ASSERT_OK(upsert_backend(1, tcp.port));
  XLB_ASSERT_OK(upsert_backend(2, udp.port));
  XLB_ASSERT_OK(upsert_service(Protocol::tcp, 1, {1}));
  XLB_ASSERT_OK(upsert_service(Protocol::udp, 2, {2}));

  EXPECT_EQ(in_cgroup([&] { return connect_and_report(AF_INET6, SOCK_STREAM, kMappedService, kServicePort, "x"); }),
            "kernel peer " + endpoint("::ffff:127.0.0.1", tcp.port) + ", getpeername " +
                endpoint(kMappedService, kServicePort));
  EXPECT_EQ(receive(tcp.fd, SOCK_STREAM), "x");

  const UdpEcho echo(udp);
  EXPECT_EQ(in_cgroup([&] { return udp_round_trip(AF_INET6, kMappedService, kServicePort, "s", false); }),
            "'reply to s' from " + endpoint(kMappedService, kServicePort));
  EXPECT_EQ(in_cgroup([&] { return udp_round_trip(AF_INET6, kMappedService, kServicePort, "c", true); }),
            "'reply to c' from " + endpoint(kMappedService, kServicePort));
}

TEST_P(SockLbDualStackTest, MappedSocketsToARemovedBackendAreDestroyed) {
  const Backend backend = Backend::open(kIpv4, SOCK_DGRAM);
  ASSERT_TRUE(backend.fd);
  XLB_ASSERT_OK(upsert_backend(1, backend.port));
  XLB_ASSERT_OK(upsert_service(Protocol::udp, 1, {1}));

  BlockedClient client(cgroup_->path(), [&] { return wait_on_service(AF_INET6, SOCK_DGRAM, kMappedService); });
  ASSERT_EQ(receive(backend.fd, SOCK_DGRAM), "hello");
  XLB_ASSERT_OK(upsert_service(Protocol::udp, 1, {}));
  XLB_ASSERT_OK(datapath_->maps().remove_backend(1));
  const Result<uint32_t> destroyed = datapath_->destroy_sockets_to(ip(kIpv4.loopback), backend.port);
  XLB_ASSERT_OK(destroyed);
  EXPECT_EQ(*destroyed, 1U);

  EXPECT_EQ(client.finish(), "recv: " + std::string(std::strerror(ECONNABORTED)));
}

TEST_P(SockLbTest, RestartKeepsThePinnedLinksAndGivesThemTheNewPrograms) {
  XLB_ASSERT_OK(upsert_backend(1, 1001));
  XLB_ASSERT_OK(upsert_service(Protocol::udp, 1, {1}));
  const Family f = family();
  for (const char* name : {"connect4", "connect6", "sendmsg4", "sendmsg6", "recvmsg4", "recvmsg6", "getpeername4",
                           "getpeername6"}) {
    EXPECT_TRUE(fs::exists(pins_ / (std::string("link_") + name))) << name;
  }

  // A new daemon: the old one's programs go, its pinned links and maps stay.
  datapath_.reset();
  EXPECT_EQ(in_cgroup([&] { return connect_and_report(f.af, SOCK_DGRAM, f.service, kServicePort); }), reached(f, 1001))
      << "between the two daemons";
  Result<Datapath> datapath = Datapath::load({pins_});
  XLB_ASSERT_OK(datapath);
  datapath_.emplace(std::move(datapath).value());
  XLB_ASSERT_OK(datapath_->attach_cgroup(cgroup_->path()));
  EXPECT_EQ(in_cgroup([&] { return connect_and_report(f.af, SOCK_DGRAM, f.service, kServicePort); }), reached(f, 1001))
      << "after the restart";

  // Exactly one program per attach point: the links were updated, not attached twice.
  const UniqueFd cgroup(::open(cgroup_->path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  for (const bpf_attach_type type : {BPF_CGROUP_INET4_CONNECT, BPF_CGROUP_UDP6_SENDMSG, BPF_CGROUP_INET6_GETPEERNAME}) {
    std::uint32_t ids[4] = {};
    std::uint32_t count = 4;
    ASSERT_EQ(bpf_prog_query(cgroup.get(), type, 0, nullptr, ids, &count), 0);
    EXPECT_EQ(count, 1U) << "attach type " << type;
  }
}

TEST(SockLbLoad, ProgramsPassTheVerifier) {
  XLB_REQUIRE(test::missing_capabilities({test::kCapBpf, test::kCapNetAdmin}));
  XLB_EXPECT_OK(Datapath::load({}));
}

TEST(SockLbAttach, AttachingToSomethingElseThanACgroupSaysWhy) {
  XLB_REQUIRE(test::missing_capabilities({test::kCapBpf, test::kCapNetAdmin, test::kCapSysAdmin}));
  Result<Datapath> datapath = Datapath::load({});
  XLB_ASSERT_OK(datapath);
  const Status attached = datapath->attach_cgroup("/proc");
  ASSERT_FALSE(attached.ok());
  EXPECT_EQ(attached.error().message,
            "attach socket-LB to cgroup /proc: Bad file descriptor (not a directory of the cgroup v2 hierarchy)");
}

TEST(SockLbAttach, RingsMayOnlyHoldBackendsThatExist) {
  XLB_REQUIRE(test::missing_capabilities({test::kCapBpf, test::kCapNetAdmin}));
  Result<Datapath> datapath = Datapath::load({});
  XLB_ASSERT_OK(datapath);
  FrontendEntry entry;
  entry.key = {ip(kIpv4.service), kServicePort, Protocol::udp};
  entry.service_id = 1;
  entry.ring = {7};
  const Status missing = datapath->maps().upsert_frontends({entry});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().message,
            "write frontend 198.18.0.10:80/udp: the ring holds backend 7, which is not in the backends map "
            "(write backends before the services that use them)");
  const Status reserved = datapath->maps().upsert_backend({0, ip(kIpv4.loopback), 9, false});
  ASSERT_FALSE(reserved.ok());
  EXPECT_EQ(reserved.error().message, "write backend 0 (127.0.0.1:9): backend ids go from 1 to " + std::to_string(XLB_MAX_BACKENDS - 1));
}

}  // namespace
}  // namespace xlb::datapath

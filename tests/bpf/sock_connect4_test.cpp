// Socket-LB's connect4 program on the real kernel: it passes the verifier, and a connect()
// to a service address from inside the attached cgroup reaches a backend, while every other
// connect is left alone.
//
// Each test runs in a network namespace of its own with only loopback: backends listen on
// 127.0.0.1, and a connect that is not translated fails with ENETUNREACH instead of leaving
// the machine. Service addresses are in 198.18.0.0/15, the benchmarking range.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "datapath/cgroup.h"
#include "datapath/datapath.h"
#include "base/unique_fd.h"
#include "support/child_process.h"
#include "support/netns.h"
#include "support/requirements.h"
#include "support/status.h"
#include "support/temp_cgroup.h"

namespace xlb::datapath {
namespace {

constexpr const char* kServiceIp = "198.18.0.10";
constexpr const char* kOtherIp = "198.18.0.11";
constexpr const char* kLoopback = "127.0.0.1";
constexpr std::uint16_t kServicePort = 80;
constexpr int kWaitMs = 5000;

in_addr ipv4(const char* text) {
  in_addr address{};
  ::inet_pton(AF_INET, text, &address);
  return address;
}

model::IpAddress to_model(in_addr address) {
  char text[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &address, text, sizeof text);
  return model::IpAddress::parse(text).value();
}

using model::Protocol;

FrontendKey service(Protocol protocol) { return {to_model(ipv4(kServiceIp)), kServicePort, protocol}; }

// The socket-LB part of the datapath, in the words of these tests.
class SockLb {
 public:
  static Result<SockLb> load() {
    Result<Datapath> datapath = Datapath::load({});
    if (!datapath) return datapath.error();
    return SockLb(std::move(datapath).value());
  }
  Status attach(const std::filesystem::path& cgroup) { return datapath_.attach_cgroup(cgroup); }
  Status upsert_backend(BackendId id, in_addr address, std::uint16_t port) {
    return datapath_.maps().upsert_backend({id, to_model(address), port, false});
  }
  Status remove_backend(BackendId id) { return datapath_.maps().remove_backend(id); }
  Status upsert_service_v4(const FrontendKey& key, ServiceId id, std::vector<BackendId> ring) {
    FrontendEntry entry;
    entry.key = key;
    entry.service_id = id;
    entry.ring = std::move(ring);
    return datapath_.maps().upsert_frontends({entry});
  }
  Status remove_service_v4(const FrontendKey& key) { return datapath_.maps().remove_frontends({key}); }

 private:
  explicit SockLb(Datapath datapath) : datapath_(std::move(datapath)) {}
  Datapath datapath_;
};

std::string errno_text(std::string_view call) { return std::string(call) + ": " + std::strerror(errno); }

// What connect_and_report says when the address was not translated (see the file comment).
const std::string kNotTranslated = "connect: " + std::string(std::strerror(ENETUNREACH));

std::string connected_to(std::uint16_t port) {
  return "connected to " + std::string(kLoopback) + ":" + std::to_string(port);
}

// A socket of `type` on 127.0.0.1 with a port of the kernel's choosing; TCP ones listen.
UniqueFd local_socket(int type) {
  UniqueFd fd(::socket(AF_INET, type | SOCK_CLOEXEC, 0));
  sockaddr_in address{.sin_family = AF_INET, .sin_port = 0, .sin_addr = ipv4(kLoopback), .sin_zero = {}};
  if (!fd || ::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) return {};
  if (type == SOCK_STREAM && ::listen(fd.get(), 16) != 0) return {};
  return fd;
}

std::uint16_t local_port(const UniqueFd& fd) {
  sockaddr_in address{};
  socklen_t length = sizeof address;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length);
  return ntohs(address.sin_port);
}

// Connects a new socket of `type` to address:port, sends `payload` if there is one, and says
// where the socket ended up: "connected to 127.0.0.1:1234", or the call that failed and why.
// A UDP connect sends nothing: it only fixes the peer address that getpeername shows.
std::string connect_and_report(int type, const char* address, std::uint16_t port, std::string_view payload = {}) {
  const UniqueFd fd(::socket(AF_INET, type | SOCK_CLOEXEC, 0));
  if (!fd) return errno_text("socket");
  const sockaddr_in to{.sin_family = AF_INET, .sin_port = htons(port), .sin_addr = ipv4(address), .sin_zero = {}};
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) return errno_text("connect");
  if (!payload.empty() && ::send(fd.get(), payload.data(), payload.size(), 0) != static_cast<ssize_t>(payload.size())) {
    return errno_text("send");
  }
  sockaddr_in peer{};
  socklen_t length = sizeof peer;
  if (::getpeername(fd.get(), reinterpret_cast<sockaddr*>(&peer), &length) != 0) return errno_text("getpeername");
  char text[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &peer.sin_addr, text, sizeof text);
  return "connected to " + std::string(text) + ":" + std::to_string(ntohs(peer.sin_port));
}

bool wait_readable(int fd) {
  pollfd readable{fd, POLLIN, 0};
  return ::poll(&readable, 1, kWaitMs) == 1;
}

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

// `count` UDP connects to the service, one report line each (UDP: no packets are sent).
std::string udp_connects_to_service(int count) {
  std::string lines;
  for (int i = 0; i < count; ++i) lines += connect_and_report(SOCK_DGRAM, kServiceIp, kServicePort) + "\n";
  return lines;
}

TEST(SockLbLoad, ProgramsPassTheVerifier) {
  XLB_REQUIRE(test::missing_capabilities({test::kCapBpf, test::kCapNetAdmin}));
  XLB_EXPECT_OK(SockLb::load());
}

class SockConnect4Test : public ::testing::Test {
 protected:
  void SetUp() override {
    XLB_REQUIRE(test::missing_capabilities({test::kCapBpf, test::kCapNetAdmin, test::kCapSysAdmin}));
    const Result<std::filesystem::path> mount = find_cgroup2_mount();
    XLB_REQUIRE(test::missing_if_failed(mount));
    // Before the first socket, so that every socket of the test is in it.
    XLB_ASSERT_OK(test::enter_private_netns());

    Result<test::TempCgroup> cgroup = test::TempCgroup::create(*mount);
    XLB_ASSERT_OK(cgroup);
    cgroup_.emplace(std::move(cgroup).value());
    Result<SockLb> lb = SockLb::load();
    XLB_ASSERT_OK(lb);
    lb_.emplace(std::move(lb).value());
    XLB_ASSERT_OK(lb_->attach(cgroup_->path()));
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
  std::optional<SockLb> lb_;  // after cgroup_, so that it detaches before the cgroup goes
};

TEST_F(SockConnect4Test, TcpConnectToServiceReachesTheBackend) {
  const UniqueFd listener = local_socket(SOCK_STREAM);
  ASSERT_TRUE(listener);
  const std::uint16_t port = local_port(listener);
  XLB_ASSERT_OK(lb_->upsert_backend(1, ipv4(kLoopback), port));
  XLB_ASSERT_OK(lb_->upsert_service_v4(service(Protocol::tcp), 1, std::vector<BackendId>{1}));

  EXPECT_EQ(in_cgroup([] { return connect_and_report(SOCK_STREAM, kServiceIp, kServicePort, "x"); }),
            connected_to(port));
  EXPECT_EQ(receive(listener, SOCK_STREAM), "x");
}

TEST_F(SockConnect4Test, UdpConnectToServiceReachesTheBackendOfTheUdpService) {
  const UniqueFd udp_backend = local_socket(SOCK_DGRAM);
  const UniqueFd tcp_backend = local_socket(SOCK_STREAM);
  ASSERT_TRUE(udp_backend && tcp_backend);
  const std::uint16_t udp_port = local_port(udp_backend);
  XLB_ASSERT_OK(lb_->upsert_backend(1, ipv4(kLoopback), udp_port));
  XLB_ASSERT_OK(lb_->upsert_backend(2, ipv4(kLoopback), local_port(tcp_backend)));
  // Same address and port, other protocol: the protocol is part of the service's key.
  XLB_ASSERT_OK(lb_->upsert_service_v4(service(Protocol::udp), 1, std::vector<BackendId>{1}));
  XLB_ASSERT_OK(lb_->upsert_service_v4(service(Protocol::tcp), 2, std::vector<BackendId>{2}));

  EXPECT_EQ(in_cgroup([] { return connect_and_report(SOCK_DGRAM, kServiceIp, kServicePort, "u"); }),
            connected_to(udp_port));
  EXPECT_EQ(receive(udp_backend, SOCK_DGRAM), "u");
}

TEST_F(SockConnect4Test, ConnectsToOtherAddressesPortsAndProtocolsAreLeftAlone) {
  const UniqueFd listener = local_socket(SOCK_STREAM);
  ASSERT_TRUE(listener);
  const std::uint16_t port = local_port(listener);
  XLB_ASSERT_OK(lb_->upsert_backend(1, ipv4(kLoopback), port));
  XLB_ASSERT_OK(lb_->upsert_service_v4(service(Protocol::tcp), 1, std::vector<BackendId>{1}));

  EXPECT_EQ(in_cgroup([&] { return connect_and_report(SOCK_STREAM, kLoopback, port, "d"); }), connected_to(port))
      << "a direct connect to the backend";
  EXPECT_EQ(receive(listener, SOCK_STREAM), "d");
  EXPECT_EQ(in_cgroup([] { return connect_and_report(SOCK_DGRAM, kOtherIp, kServicePort); }), kNotTranslated)
      << "another address";
  EXPECT_EQ(in_cgroup([] { return connect_and_report(SOCK_DGRAM, kServiceIp, kServicePort + 1); }), kNotTranslated)
      << "another port";
  EXPECT_EQ(in_cgroup([] { return connect_and_report(SOCK_DGRAM, kServiceIp, kServicePort); }), kNotTranslated)
      << "UDP to a TCP-only service";
}

TEST_F(SockConnect4Test, ProcessesOutsideTheCgroupAreLeftAlone) {
  const UniqueFd listener = local_socket(SOCK_STREAM);
  ASSERT_TRUE(listener);
  const std::uint16_t port = local_port(listener);
  XLB_ASSERT_OK(lb_->upsert_backend(1, ipv4(kLoopback), port));
  XLB_ASSERT_OK(lb_->upsert_service_v4(service(Protocol::tcp), 1, std::vector<BackendId>{1}));
  XLB_ASSERT_OK(lb_->upsert_service_v4(service(Protocol::udp), 2, std::vector<BackendId>{1}));

  // This test process never joins the cgroup.
  EXPECT_EQ(connect_and_report(SOCK_STREAM, kServiceIp, kServicePort), kNotTranslated);
  EXPECT_EQ(connect_and_report(SOCK_DGRAM, kServiceIp, kServicePort), kNotTranslated);
  // While the same connect from inside is translated.
  EXPECT_EQ(in_cgroup([] { return connect_and_report(SOCK_DGRAM, kServiceIp, kServicePort); }), connected_to(port));
}

TEST_F(SockConnect4Test, ServiceWithoutBackendsIsLeftAlone) {
  XLB_ASSERT_OK(lb_->upsert_service_v4(service(Protocol::udp), 1, std::vector<BackendId>{}));

  EXPECT_EQ(in_cgroup([] { return connect_and_report(SOCK_DGRAM, kServiceIp, kServicePort); }), kNotTranslated);
}

TEST_F(SockConnect4Test, RemovedServiceIsLeftAlone) {
  XLB_ASSERT_OK(lb_->upsert_backend(1, ipv4(kLoopback), 9));
  XLB_ASSERT_OK(lb_->upsert_service_v4(service(Protocol::udp), 1, std::vector<BackendId>{1}));
  ASSERT_EQ(in_cgroup([] { return connect_and_report(SOCK_DGRAM, kServiceIp, kServicePort); }), connected_to(9));

  XLB_ASSERT_OK(lb_->remove_service_v4(service(Protocol::udp)));
  EXPECT_EQ(in_cgroup([] { return connect_and_report(SOCK_DGRAM, kServiceIp, kServicePort); }), kNotTranslated);
  XLB_EXPECT_OK(lb_->remove_service_v4(service(Protocol::udp)));
  XLB_EXPECT_OK(lb_->remove_backend(1));
  XLB_EXPECT_OK(lb_->remove_backend(1));
}

TEST_F(SockConnect4Test, RingsMayOnlyHoldBackendsThatExist) {
  const Status missing = lb_->upsert_service_v4(service(Protocol::udp), 1, std::vector<BackendId>{7});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().message,
            "write frontend 198.18.0.10:80/udp: the ring holds backend 7, which is not in the backends map "
            "(write backends before the services that use them)");

  const Status reserved = lb_->upsert_backend(0, ipv4(kLoopback), 9);
  ASSERT_FALSE(reserved.ok());
  EXPECT_EQ(reserved.error().message, "write backend 0 (127.0.0.1:9): backend ids go from 1 to 65535");

  EXPECT_EQ(in_cgroup([] { return connect_and_report(SOCK_DGRAM, kServiceIp, kServicePort); }), kNotTranslated)
      << "a failed upsert must leave no service behind";
}

TEST_F(SockConnect4Test, TwoBackendsShareConnectsEvenly) {
  XLB_ASSERT_OK(lb_->upsert_backend(1, ipv4(kLoopback), 1001));
  XLB_ASSERT_OK(lb_->upsert_backend(2, ipv4(kLoopback), 1002));
  // 251 slots, the smallest Maglev size, taken in turns as Maglev does for equal weights.
  std::vector<BackendId> ring(251);
  for (size_t slot = 0; slot < ring.size(); ++slot) ring[slot] = slot % 2 == 0 ? 1 : 2;
  XLB_ASSERT_OK(lb_->upsert_service_v4(service(Protocol::udp), 1, ring));

  const std::map<std::string, int> counts = tally(in_cgroup([] { return udp_connects_to_service(200); }));

  // Each backend's share is binomial(200, ~1/2): below 30% is more than 5 standard deviations out.
  ASSERT_EQ(counts.size(), 2U) << "expected only the two backends, got: " << ::testing::PrintToString(counts);
  EXPECT_GE(counts.at(connected_to(1001)), 60) << ::testing::PrintToString(counts);
  EXPECT_GE(counts.at(connected_to(1002)), 60) << ::testing::PrintToString(counts);
}

TEST_F(SockConnect4Test, ReplacedRingsTakeEffect) {
  XLB_ASSERT_OK(lb_->upsert_backend(1, ipv4(kLoopback), 1001));
  XLB_ASSERT_OK(lb_->upsert_backend(2, ipv4(kLoopback), 1002));
  const std::map<std::string, int> all_to_1{{connected_to(1001), 20}};
  const std::map<std::string, int> all_to_2{{connected_to(1002), 20}};
  const auto connects = [&] { return tally(in_cgroup([] { return udp_connects_to_service(20); })); };

  XLB_ASSERT_OK(lb_->upsert_service_v4(service(Protocol::udp), 1, std::vector<BackendId>(251, 1)));
  EXPECT_EQ(connects(), all_to_1) << "a new service";
  XLB_ASSERT_OK(lb_->upsert_service_v4(service(Protocol::udp), 1, std::vector<BackendId>(2, 2)));
  EXPECT_EQ(connects(), all_to_2) << "a smaller ring";
  XLB_ASSERT_OK(lb_->upsert_service_v4(service(Protocol::udp), 1, std::vector<BackendId>(509, 1)));
  EXPECT_EQ(connects(), all_to_1) << "a larger ring";
  XLB_ASSERT_OK(lb_->upsert_service_v4(service(Protocol::udp), 7, std::vector<BackendId>(251, 2)));
  EXPECT_EQ(connects(), all_to_2) << "another service id";
}

TEST_F(SockConnect4Test, AttachingToSomethingElseThanACgroupSaysWhy) {
  const Status attached = lb_->attach("/proc");
  ASSERT_FALSE(attached.ok());
  EXPECT_EQ(attached.error().message,
            "attach socket-LB to cgroup /proc: Bad file descriptor (not a directory of the cgroup v2 hierarchy)");
}

}  // namespace
}  // namespace xlb::datapath

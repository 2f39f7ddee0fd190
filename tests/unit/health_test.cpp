// The checker against real servers on 127.0.0.1: listeners, closed ports, an HTTP server whose
// status the test chooses, and one that never answers. Short intervals keep it quick; the only
// time assertions are lower bounds (a transition cannot come before its probes) and generous
// waits.
#include "health/health.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "base/unique_fd.h"
#include "support/command.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace xlb::health {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// A TCP socket listening on 127.0.0.1 (port 0 = any free port). The kernel completes
// handshakes into the backlog by itself, so a listener that never accepts still "connects".
UniqueFd listen_on(uint16_t port = 0) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const int on = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd.get(), 64) != 0) return {};
  return fd;
}

uint16_t port_of(const UniqueFd& fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

// An HTTP server answering every request with `status`, which the test may change.
class HttpServer {
 public:
  explicit HttpServer(int status) : status_(status), listener_(listen_on()) {
    thread_ = std::thread([this] { serve(); });
  }
  ~HttpServer() {
    stop_ = true;
    thread_.join();
  }
  uint16_t port() const { return port_of(listener_); }
  void set_status(int status) { status_ = status; }
  // Each answer waits this long first: an overloaded backend.
  void set_delay(std::chrono::milliseconds delay) { delay_ms_ = static_cast<int>(delay.count()); }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{listener_.get(), POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      UniqueFd c(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!c) continue;
      char buf[1024];
      std::string request;
      while (request.find("\r\n\r\n") == std::string::npos) {
        pollfd r{c.get(), POLLIN, 0};
        if (::poll(&r, 1, 1000) <= 0) break;
        const ssize_t n = ::recv(c.get(), buf, sizeof buf, 0);
        if (n <= 0) break;
        request.append(buf, static_cast<size_t>(n));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_.load()));
      const std::string answer = "HTTP/1.0 " + std::to_string(status_.load()) + " Whatever\r\nContent-Length: 0\r\n\r\n";
      (void)!::send(c.get(), answer.data(), answer.size(), MSG_NOSIGNAL);
    }
  }

  std::atomic<int> status_;
  std::atomic<int> delay_ms_{0};
  std::atomic<bool> stop_{false};
  UniqueFd listener_;
  std::thread thread_;
};

// Collects transitions from the checker's thread.
class Recorder {
 public:
  Callback callback() {
    return [this](const Transition& t) {
      std::lock_guard lock(mutex_);
      seen_.push_back(t);
      changed_.notify_all();
    };
  }
  // Waits (at most 10 s: generous, the probes take well under one) until `count` transitions.
  bool wait_for(size_t count) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, 10s, [&] { return seen_.size() >= count; });
  }
  std::vector<Transition> seen() {
    std::lock_guard lock(mutex_);
    return seen_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Transition> seen_;
};

Target target(uint16_t port, model::HealthCheckType type = model::HealthCheckType::tcp) {
  Target t;
  t.service = "web";
  t.address = *model::IpAddress::parse("127.0.0.1");
  t.port = port;
  t.backend = "127.0.0.1:" + std::to_string(port);
  t.type = type;
  t.interval = 50ms;
  t.timeout = 500ms;
  t.rise = 2;
  t.fall = 3;
  return t;
}

std::unique_ptr<Checker> start(Recorder& r) {
  auto c = Checker::start(r.callback());
  EXPECT_TRUE(c.ok()) << c.error().message;
  return std::move(*c);
}

TEST(HealthChecker, ListenerComesUpAfterRiseProbes) {
  UniqueFd listener = listen_on();
  ASSERT_TRUE(listener);
  Recorder r;
  auto checker = start(r);
  const auto t0 = Clock::now();
  checker->set_targets({target(port_of(listener))});
  ASSERT_TRUE(r.wait_for(1));
  // Two probes, one interval apart: never sooner than one interval.
  EXPECT_GE(Clock::now() - t0, 50ms);
  const auto seen = r.seen();
  EXPECT_EQ(seen[0].service, "web");
  EXPECT_EQ(seen[0].backend, "127.0.0.1:" + std::to_string(port_of(listener)));
  EXPECT_EQ(seen[0].change, Change::up);
  EXPECT_EQ(seen[0].reason, "connected");
}

TEST(HealthChecker, ClosedPortGoesDownAfterFallProbesWithConnectionRefused) {
  uint16_t port = 0;
  {
    UniqueFd gone = listen_on();
    port = port_of(gone);
  }  // closed: connecting now gets a RST
  Recorder r;
  auto checker = start(r);
  const auto t0 = Clock::now();
  checker->set_targets({target(port)});
  ASSERT_TRUE(r.wait_for(1));
  EXPECT_GE(Clock::now() - t0, 100ms);  // three probes: two intervals at least
  const auto seen = r.seen();
  EXPECT_EQ(seen[0].change, Change::down);
  EXPECT_EQ(seen[0].reason, "connection refused");
}

TEST(HealthChecker, ServerThatDropsOutGoesDownAndComesBack) {
  UniqueFd listener = listen_on();
  const uint16_t port = port_of(listener);
  Recorder r;
  auto checker = start(r);
  checker->set_targets({target(port)});
  ASSERT_TRUE(r.wait_for(1));
  listener.reset();
  ASSERT_TRUE(r.wait_for(2));
  listener = listen_on(port);
  ASSERT_TRUE(listener);
  ASSERT_TRUE(r.wait_for(3));
  const auto seen = r.seen();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].change, Change::up);
  EXPECT_EQ(seen[1].change, Change::down);
  EXPECT_EQ(seen[1].reason, "connection refused");
  EXPECT_EQ(seen[2].change, Change::up);
}

TEST(HealthChecker, HttpServerThatNeverAnswersTimesOut) {
  UniqueFd silent = listen_on();  // connects (backlog), never reads, never answers
  Recorder r;
  auto checker = start(r);
  auto t = target(port_of(silent), model::HealthCheckType::http);
  t.timeout = 100ms;
  checker->set_targets({t});
  ASSERT_TRUE(r.wait_for(1));
  const auto seen = r.seen();
  EXPECT_EQ(seen[0].change, Change::down);
  EXPECT_EQ(seen[0].reason, "timeout after 100 ms");
}

TEST(HealthChecker, Http503IsDownAndHttp200BringsItBack) {
  HttpServer server(503);
  Recorder r;
  auto checker = start(r);
  checker->set_targets({target(server.port(), model::HealthCheckType::http)});
  ASSERT_TRUE(r.wait_for(1));
  EXPECT_EQ(r.seen()[0].change, Change::down);
  EXPECT_EQ(r.seen()[0].reason, "HTTP 503");
  server.set_status(200);
  ASSERT_TRUE(r.wait_for(2));
  EXPECT_EQ(r.seen()[1].change, Change::up);
  EXPECT_EQ(r.seen()[1].reason, "HTTP 200");
}

TEST(HealthChecker, Http3xxIsHealthy) {
  HttpServer server(302);
  Recorder r;
  auto checker = start(r);
  checker->set_targets({target(server.port(), model::HealthCheckType::http)});
  ASSERT_TRUE(r.wait_for(1));
  EXPECT_EQ(r.seen()[0].change, Change::up);
  EXPECT_EQ(r.seen()[0].reason, "HTTP 302");
}

TEST(HealthChecker, UnchangedTargetsKeepTheirStateAndRemovedOnesStop) {
  UniqueFd listener = listen_on();
  uint16_t closed = 0;
  {
    UniqueFd gone = listen_on();
    closed = port_of(gone);
  }
  Recorder r;
  auto checker = start(r);
  checker->set_targets({target(port_of(listener)), target(closed)});
  ASSERT_TRUE(r.wait_for(2));
  // The same targets again (a reload that changed nothing): no second report for either.
  // Then the closed one is dropped: it is no longer probed, so nothing more is reported.
  checker->set_targets({target(port_of(listener)), target(closed)});
  checker->set_targets({target(port_of(listener))});
  std::this_thread::sleep_for(400ms);  // eight intervals: time for any wrong report to show
  EXPECT_EQ(r.seen().size(), 2u);
}

TEST(HealthChecker, TargetsComeFromServicesThatAskForProbes) {
  model::Catalog c;
  model::Service probed;
  probed.name = "web";
  probed.health.type = model::HealthCheckType::http;
  probed.health.interval = 200ms;
  probed.backends.push_back({*model::IpAddress::parse("10.0.0.2"), 8080, 1, model::BackendState::active, "", ""});
  probed.backends.push_back({*model::IpAddress::parse("2001:db8::2"), 80, 1, model::BackendState::active, "", ""});
  model::Service unprobed = probed;
  unprobed.name = "dns";
  unprobed.health.type = model::HealthCheckType::none;
  c.services = {probed, unprobed};
  const auto targets = targets_of(c);
  ASSERT_EQ(targets.size(), 2u);
  EXPECT_EQ(targets[0].service, "web");
  EXPECT_EQ(targets[0].backend, "10.0.0.2:8080");
  EXPECT_EQ(targets[0].type, model::HealthCheckType::http);
  EXPECT_EQ(targets[0].interval, 200ms);
  EXPECT_EQ(targets[1].backend, "[2001:db8::2]:80");
}

TEST(HealthChecker, ABackendFarSlowerThanItsPeersIsReportedSlowThenRecovered) {
  HttpServer fast1(200), fast2(200), slow(200);
  slow.set_delay(60ms);
  Recorder r;
  auto checker = start(r);
  std::vector<Target> targets;
  for (const HttpServer* s : {&fast1, &fast2, &slow}) {
    Target t = target(s->port(), model::HealthCheckType::http);
    t.slow_factor = 3;
    targets.push_back(t);
  }
  checker->set_targets(targets);
  ASSERT_TRUE(r.wait_for(4)) << "3 up, then 1 slow";
  auto seen = r.seen();
  ASSERT_EQ(seen[3].change, Change::slow);
  EXPECT_EQ(seen[3].backend, targets[2].backend);
  EXPECT_NE(seen[3].reason.find("peers' median"), std::string::npos) << seen[3].reason;
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(seen[i].change, Change::up);

  slow.set_delay(0ms);
  ASSERT_TRUE(r.wait_for(5));
  EXPECT_EQ(r.seen()[4].change, Change::recovered);
  EXPECT_EQ(r.seen()[4].backend, targets[2].backend);
}

TEST(HealthChecker, LatencyIsNotJudgedWithoutASlowFactor) {
  HttpServer fast(200), slow(200);
  slow.set_delay(60ms);
  Recorder r;
  auto checker = start(r);
  checker->set_targets({target(fast.port(), model::HealthCheckType::http), target(slow.port(), model::HealthCheckType::http)});
  ASSERT_TRUE(r.wait_for(2));
  std::this_thread::sleep_for(1s);  // ~10 probes each: had latency been judged, slow would be reported
  EXPECT_EQ(r.seen().size(), 2u);
}

// `openssl s_server -www` on a free port of 127.0.0.1, with a self-signed certificate: it answers
// an HTTP GET over TLS with "HTTP/1.0 200 ok".
class TlsServer {
 public:
  TlsServer() {
    const std::string d = dir_.path().string();
    if (auto s = test::run_command({"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", d + "/key.pem", "-out",
                                    d + "/cert.pem", "-days", "1", "-subj", "/CN=backend"},
                                   std::chrono::seconds(30));
        !s) {
      error_ = s.error().message;
      return;
    }
    port_ = port_of(listen_on());  // free now; s_server takes it at once
    server_ = std::make_unique<test::ChildProcess>(std::vector<std::string>{
        "/usr/bin/openssl", "s_server", "-www", "-quiet", "-accept", "127.0.0.1:" + std::to_string(port_), "-cert",
        d + "/cert.pem", "-key", d + "/key.pem"});
    // s_server prints nothing with -quiet: wait until it accepts connections.
    for (int i = 0; i < 200 && !accepts(); ++i) std::this_thread::sleep_for(10ms);
    if (!accepts()) error_ = "openssl s_server did not start: " + server_->seen();
  }
  const std::string& error() const { return error_; }
  uint16_t port() const { return port_; }

 private:
  bool accepts() const {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port_);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }

  test::TempDir dir_{"xlb-health-tls"};
  std::unique_ptr<test::ChildProcess> server_;
  std::string error_;
  uint16_t port_ = 0;
};

TEST(HealthChecker, HttpsProbeSpeaksTlsAndChecksTheStatus) {
  TlsServer tls;
  ASSERT_TRUE(tls.error().empty()) << tls.error();
  Recorder r;
  auto checker = start(r);
  checker->set_targets({target(tls.port(), model::HealthCheckType::https)});
  ASSERT_TRUE(r.wait_for(1));
  EXPECT_EQ(r.seen()[0].change, Change::up);
  EXPECT_EQ(r.seen()[0].reason, "HTTP 200");

  // A plain-text server is not a TLS one: the handshake fails, with that said. (HttpServer
  // answers after a second without the end of a request, so the probe waits that long.)
  HttpServer plain(200);
  Target t = target(plain.port(), model::HealthCheckType::https);
  t.timeout = 1500ms;
  t.interval = 1600ms;
  t.fall = 1;
  checker->set_targets({t});
  ASSERT_TRUE(r.wait_for(2));
  EXPECT_EQ(r.seen()[1].change, Change::down);
  EXPECT_NE(r.seen()[1].reason.find("TLS handshake failed"), std::string::npos) << r.seen()[1].reason;
}

TEST(HealthChecker, ExpectedStatusIsTheOnlyHealthyOne) {
  HttpServer server(204);
  Recorder r;
  auto checker = start(r);
  Target t = target(server.port(), model::HealthCheckType::http);
  t.expect_status = 200;
  checker->set_targets({t});
  ASSERT_TRUE(r.wait_for(1));
  EXPECT_EQ(r.seen()[0].change, Change::down);
  EXPECT_EQ(r.seen()[0].reason, "HTTP 204");
  server.set_status(200);
  ASSERT_TRUE(r.wait_for(2));
  EXPECT_EQ(r.seen()[1].change, Change::up);
}

TEST(HealthChecker, UdpProbeUpOnAnAnswerDownOnPortUnreachable) {
  UniqueFd server(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(server.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ::getsockname(server.get(), reinterpret_cast<sockaddr*>(&a), &len);
  const uint16_t port = ntohs(a.sin_port);
  std::atomic<bool> stop{false};
  std::thread echo([&] {  // answers every datagram, as a DNS server would
    while (!stop) {
      pollfd p{server.get(), POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      char buf[512];
      sockaddr_in from{};
      socklen_t from_len = sizeof from;
      const ssize_t n = ::recvfrom(server.get(), buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &from_len);
      if (n > 0) (void)!::sendto(server.get(), buf, static_cast<size_t>(n), 0, reinterpret_cast<sockaddr*>(&from), from_len);
    }
  });
  Recorder r;
  auto checker = start(r);
  checker->set_targets({target(port, model::HealthCheckType::udp)});
  ASSERT_TRUE(r.wait_for(1));
  EXPECT_EQ(r.seen()[0].change, Change::up);
  EXPECT_EQ(r.seen()[0].reason, "answered");
  stop = true;
  echo.join();
  server.reset();  // the port closes: the kernel answers with ICMP port unreachable
  ASSERT_TRUE(r.wait_for(2));
  EXPECT_EQ(r.seen()[1].change, Change::down);
  EXPECT_EQ(r.seen()[1].reason, "port unreachable");
}

}  // namespace
}  // namespace xlb::health

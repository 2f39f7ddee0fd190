#include "health/health.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cstdio>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "base/unique_fd.h"

namespace xlb::health {

std::string_view to_string(Change c) {
  switch (c) {
    case Change::up: return "up";
    case Change::down: return "down";
    case Change::slow: return "slow";
    case Change::recovered: return "recovered";
  }
  return "?";
}

std::vector<Target> targets_of(const model::Catalog& catalog) {
  std::vector<Target> targets;
  for (const auto& s : catalog.services) {
    if (s.health.type == model::HealthCheckType::none) continue;
    for (const auto& b : s.backends) {
      Target t;
      t.service = s.name;
      t.backend = b.key();
      t.address = b.address;
      t.port = s.health.port != 0 ? s.health.port : b.port;
      t.type = s.health.type;
      t.http_path = s.health.http_path;
      t.expect_status = s.health.expect_status;
      t.slow_factor = s.health.slow_factor;
      t.interval = s.health.interval;
      t.timeout = s.health.timeout;
      t.rise = static_cast<int>(s.health.rise);
      t.fall = static_cast<int>(s.health.fall);
      targets.push_back(std::move(t));
    }
  }
  return targets;
}

namespace {

using Clock = std::chrono::steady_clock;

// "Connection refused" -> "connection refused": reasons read as the middle of a sentence.
std::string errno_reason(int err) {
  std::string text = std::strerror(err);
  if (!text.empty()) text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
  return text;
}

// One target and the probe in flight for it, if any.
struct SslFree {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
struct SslCtxFree {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};

bool speaks_http(const Target& t) {
  return t.type == model::HealthCheckType::http || t.type == model::HealthCheckType::https;
}

struct Probe {
  enum class Phase { idle, connecting, handshaking, sending, reading };
  enum class Known { unknown, up, down };

  explicit Probe(Target t) : target(std::move(t)) {}

  Target target;
  Known known = Known::unknown;
  int successes = 0;  // in a row
  int failures = 0;   // in a row
  Clock::time_point next{};      // when the next probe starts (idle); epoch = at once
  Clock::time_point started{};   // when the probe in flight started
  Clock::time_point deadline{};  // when it times out
  Phase phase = Phase::idle;
  // Only while a probe is in flight. `tls` (https) goes first: it refers to the socket.
  UniqueFd fd;  // closing it also leaves the epoll set
  std::unique_ptr<SSL, SslFree> tls;
  std::string request;
  size_t sent = 0;
  std::string response;
  double latency_ms = -1;  // EWMA of successful probes; -1: none yet
  int latency_samples = 0;
  bool slow = false;
};

struct Outcome {
  bool ok = false;
  std::string reason;
};

}  // namespace

struct Checker::Impl {
  Impl(Callback callback, UniqueFd ep, UniqueFd wk)
      : on_transition(std::move(callback)), epoll(std::move(ep)), wake(std::move(wk)) {}

  void run();
  void adopt(std::vector<Target> targets);
  void begin(Probe& p, Clock::time_point now);
  void on_event(Probe& p);
  void handshake(Probe& p);
  void send_request(Probe& p);
  void read_response(Probe& p);
  // After an SSL call returned `result` <= 0: waits for what TLS wants, or ends the probe.
  void tls_wait(Probe& p, int result, const char* what);
  void finish(Probe& p, Outcome outcome);
  // Latency awareness: after a successful probe, is this backend (still) slow next to its peers?
  std::optional<Transition> judge_latency(Probe& p, Clock::time_point now);
  bool watch(Probe& p, uint32_t events);
  void poke();

  Callback on_transition;
  std::unique_ptr<SSL_CTX, SslCtxFree> tls;  // for https probes
  UniqueFd epoll;
  UniqueFd wake;  // eventfd: set_targets() and the destructor wake the loop with it

  std::mutex mutex;  // guards the two below, the only state other threads touch
  std::optional<std::vector<Target>> pending;
  bool stopping = false;

  std::vector<std::unique_ptr<Probe>> probes;  // the loop's own; stable addresses for epoll
  std::unordered_map<std::string, std::vector<Probe*>> by_service;  // peers, for latency
  std::thread thread;                          // last: started once the rest exists
};

Result<std::unique_ptr<Checker>> Checker::start(Callback on_transition) {
  UniqueFd ep(::epoll_create1(EPOLL_CLOEXEC));
  if (!ep) return Error{std::string("health checker: epoll_create1: ") + std::strerror(errno)};
  UniqueFd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake) return Error{std::string("health checker: eventfd: ") + std::strerror(errno)};
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;  // nullptr marks the wake-up fd; every other entry is a Probe*
  if (::epoll_ctl(ep.get(), EPOLL_CTL_ADD, wake.get(), &ev) != 0)
    return Error{std::string("health checker: epoll_ctl: ") + std::strerror(errno)};
  auto impl = std::make_unique<Impl>(std::move(on_transition), std::move(ep), std::move(wake));
  impl->tls.reset(SSL_CTX_new(TLS_client_method()));
  if (!impl->tls) return Error{"health checker: SSL_CTX_new failed"};
  SSL_CTX_set_verify(impl->tls.get(), SSL_VERIFY_NONE, nullptr);
  impl->thread = std::thread([raw = impl.get()] { raw->run(); });
  return std::unique_ptr<Checker>(new Checker(std::move(impl)));
}

Checker::Checker(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Checker::~Checker() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->poke();
  impl_->thread.join();
}

void Checker::set_targets(std::vector<Target> targets) {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->pending = std::move(targets);
  }
  impl_->poke();
}

void Checker::Impl::poke() {
  const uint64_t one = 1;
  // A full counter (never in practice) still leaves the fd readable: the loop wakes either way.
  (void)!::write(wake.get(), &one, sizeof one);
}

void Checker::Impl::adopt(std::vector<Target> targets) {
  std::unordered_map<std::string, std::unique_ptr<Probe>> old;
  for (auto& p : probes) old.emplace(p->target.service + '\n' + p->target.backend, std::move(p));
  probes.clear();
  for (auto& t : targets) {
    auto it = old.find(t.service + '\n' + t.backend);
    if (it != old.end() && it->second && it->second->target == t) {
      probes.push_back(std::move(it->second));
    } else {
      probes.push_back(std::make_unique<Probe>(std::move(t)));
    }
  }
  by_service.clear();
  for (auto& p : probes) by_service[p->target.service].push_back(p.get());
  // Probes left in `old` are destroyed here: their sockets close and leave the epoll set. Safe,
  // because adopt() runs only between epoll_wait batches, never while one is being handled.
}

bool Checker::Impl::watch(Probe& p, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = &p;
  const int op = p.phase == Probe::Phase::connecting ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
  if (::epoll_ctl(epoll.get(), op, p.fd.get(), &ev) == 0) return true;
  finish(p, {false, "epoll_ctl: " + errno_reason(errno)});
  return false;
}

void Checker::Impl::begin(Probe& p, Clock::time_point now) {
  p.started = now;
  p.deadline = now + p.target.timeout;
  p.sent = 0;
  p.response.clear();
  const auto& a = p.target.address;
  sockaddr_storage addr{};
  socklen_t len = 0;
  if (a.is_v4()) {
    auto* in = reinterpret_cast<sockaddr_in*>(&addr);
    in->sin_family = AF_INET;
    in->sin_port = htons(p.target.port);
    std::memcpy(&in->sin_addr, a.bytes().data(), 4);
    len = sizeof *in;
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&addr);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(p.target.port);
    std::memcpy(&in6->sin6_addr, a.bytes().data(), 16);
    len = sizeof *in6;
  }
  const int kind = p.target.type == model::HealthCheckType::udp ? SOCK_DGRAM : SOCK_STREAM;
  p.fd.reset(::socket(addr.ss_family, kind | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!p.fd) return finish(p, {false, "socket: " + errno_reason(errno)});
  if (::connect(p.fd.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0 && errno != EINPROGRESS)
    return finish(p, {false, errno_reason(errno)});
  // Even a connect that completed at once (loopback) reports through the loop: one path.
  p.phase = Probe::Phase::connecting;
  if (!watch(p, EPOLLOUT)) return;
  if (p.target.type == model::HealthCheckType::udp) p.request = "xlb-health\n";
  if (speaks_http(p.target))
    p.request = "GET " + p.target.http_path + " HTTP/1.0\r\nHost: " + p.target.backend +
                "\r\nUser-Agent: xlb-health\r\nConnection: close\r\n\r\n";
}

void Checker::Impl::on_event(Probe& p) {
  switch (p.phase) {
    case Probe::Phase::idle:
      return;  // a stale event for a probe that already finished in this batch
    case Probe::Phase::connecting: {
      int err = 0;
      socklen_t len = sizeof err;
      if (::getsockopt(p.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      if (err != 0) return finish(p, {false, errno_reason(err)});
      if (p.target.type == model::HealthCheckType::udp) {
        if (::send(p.fd.get(), p.request.data(), p.request.size(), MSG_NOSIGNAL) < 0)
          return finish(p, {false, errno_reason(errno)});
        p.phase = Probe::Phase::reading;
        watch(p, EPOLLIN);
        return;
      }
      if (!speaks_http(p.target)) return finish(p, {true, "connected"});
      if (p.target.type == model::HealthCheckType::https) {
        p.tls.reset(SSL_new(tls.get()));
        if (!p.tls || SSL_set_fd(p.tls.get(), p.fd.get()) != 1) return finish(p, {false, "TLS setup failed"});
        SSL_set_connect_state(p.tls.get());
        p.phase = Probe::Phase::handshaking;
        return handshake(p);
      }
      p.phase = Probe::Phase::sending;
      return send_request(p);
    }
    case Probe::Phase::handshaking:
      return handshake(p);
    case Probe::Phase::sending:
      return send_request(p);
    case Probe::Phase::reading:
      return read_response(p);
  }
}

void Checker::Impl::handshake(Probe& p) {
  const int r = SSL_do_handshake(p.tls.get());
  if (r != 1) return tls_wait(p, r, "TLS handshake");
  p.phase = Probe::Phase::sending;
  send_request(p);
}

void Checker::Impl::tls_wait(Probe& p, int result, const char* what) {
  switch (SSL_get_error(p.tls.get(), result)) {
    case SSL_ERROR_WANT_READ:
      watch(p, EPOLLIN);
      return;
    case SSL_ERROR_WANT_WRITE:
      watch(p, EPOLLOUT);
      return;
    default: {
      char detail[256] = "closed";
      if (unsigned long e = ERR_get_error(); e != 0) ERR_error_string_n(e, detail, sizeof detail);
      ERR_clear_error();
      finish(p, {false, std::string(what) + " failed: " + detail});
    }
  }
}

void Checker::Impl::send_request(Probe& p) {
  if (p.tls) {
    const int r = SSL_write(p.tls.get(), p.request.data() + p.sent, static_cast<int>(p.request.size() - p.sent));
    if (r <= 0) return tls_wait(p, r, "TLS write");
    p.sent += static_cast<size_t>(r);
    if (p.sent < p.request.size()) return;
    p.phase = Probe::Phase::reading;
    watch(p, EPOLLIN);
    return read_response(p);  // the answer may already be in TLS's buffer
  }
  const ssize_t n = ::send(p.fd.get(), p.request.data() + p.sent, p.request.size() - p.sent, MSG_NOSIGNAL);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;  // still EPOLLOUT: try again when writable
    return finish(p, {false, errno_reason(errno)});
  }
  p.sent += static_cast<size_t>(n);
  if (p.sent < p.request.size()) return;
  p.phase = Probe::Phase::reading;
  watch(p, EPOLLIN);
}

// Only the status line matters ("HTTP/1.1 503 Service Unavailable"): the expected status, or
// by default any 2xx or 3xx, is healthy.
void Checker::Impl::read_response(Probe& p) {
  char buf[1024];
  ssize_t n = 0;
  if (p.tls) {
    const int r = SSL_read(p.tls.get(), buf, sizeof buf);
    if (r <= 0 && SSL_get_error(p.tls.get(), r) != SSL_ERROR_ZERO_RETURN) return tls_wait(p, r, "TLS read");
    n = std::max(r, 0);
  } else {
    n = ::recv(p.fd.get(), buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      // On a connected UDP socket, the ICMP port unreachable the backend sent back.
      if (errno == ECONNREFUSED && p.target.type == model::HealthCheckType::udp)
        return finish(p, {false, "port unreachable"});
      return finish(p, {false, errno_reason(errno)});
    }
    if (p.target.type == model::HealthCheckType::udp) return finish(p, {true, "answered"});
  }
  p.response.append(buf, static_cast<size_t>(n));
  const size_t eol = p.response.find("\r\n");
  if (eol == std::string::npos) {
    if (n == 0) return finish(p, {false, "connection closed before an HTTP status line"});
    if (p.response.size() > 4096) return finish(p, {false, "no HTTP status line in the first 4096 bytes"});
    return;
  }
  const std::string line = p.response.substr(0, eol);
  const size_t space = line.find(' ');
  if (line.rfind("HTTP/", 0) != 0 || space == std::string::npos || line.size() < space + 4 ||
      !std::isdigit(static_cast<unsigned char>(line[space + 1])) ||
      !std::isdigit(static_cast<unsigned char>(line[space + 2])) ||
      !std::isdigit(static_cast<unsigned char>(line[space + 3])))
    return finish(p, {false, "not an HTTP response"});
  const int status = std::stoi(line.substr(space + 1, 3));
  const bool healthy = p.target.expect_status != 0 ? status == p.target.expect_status : status >= 200 && status < 400;
  finish(p, {healthy, "HTTP " + std::to_string(status)});
}

void Checker::Impl::finish(Probe& p, Outcome outcome) {
  p.tls.reset();
  p.fd.reset();
  p.phase = Probe::Phase::idle;
  // Paced from the start of this probe, so a slow backend is probed as often as a fast one.
  p.next = std::max(Clock::now(), p.started + p.target.interval);
  std::optional<Transition> change;
  if (outcome.ok) {
    p.failures = 0;
    ++p.successes;
    if (p.known != Probe::Known::up && p.successes >= p.target.rise) {
      p.known = Probe::Known::up;
      change = Transition{p.target.service, p.target.backend, Change::up, std::move(outcome.reason)};
    } else if (p.known == Probe::Known::up) {
      change = judge_latency(p, Clock::now());
    }
  } else {
    p.successes = 0;
    ++p.failures;
    if (p.known != Probe::Known::down && p.failures >= p.target.fall) {
      p.known = Probe::Known::down;
      change = Transition{p.target.service, p.target.backend, Change::down, std::move(outcome.reason)};
    }
  }
  if (change && on_transition) on_transition(*change);
}

std::optional<Transition> Checker::Impl::judge_latency(Probe& p, Clock::time_point now) {
  constexpr double kWeight = 0.3;  // of the newest probe in the average
  constexpr int kSamples = 3;      // before a backend is judged, or counts as a peer
  constexpr double kMinGapMs = 5;  // below this, a difference is noise, not overload
  const double ms = std::chrono::duration<double, std::milli>(now - p.started).count();
  p.latency_ms = p.latency_ms < 0 ? ms : kWeight * ms + (1 - kWeight) * p.latency_ms;
  ++p.latency_samples;
  if (p.target.slow_factor == 0 || p.latency_samples < kSamples) return std::nullopt;
  std::vector<double> peers;
  for (const Probe* other : by_service[p.target.service])
    if (other != &p && other->known == Probe::Known::up && other->latency_samples >= kSamples)
      peers.push_back(other->latency_ms);
  if (peers.empty()) return std::nullopt;
  std::nth_element(peers.begin(), peers.begin() + static_cast<long>(peers.size() / 2), peers.end());
  const double median = peers[peers.size() / 2];
  const double threshold = std::max(median * p.target.slow_factor, median + kMinGapMs);
  char reason[96];
  std::snprintf(reason, sizeof reason, "probes take %.1f ms, peers' median %.1f ms", p.latency_ms, median);
  if (!p.slow && p.latency_ms > threshold) {
    p.slow = true;
    return Transition{p.target.service, p.target.backend, Change::slow, reason};
  }
  if (p.slow && p.latency_ms < threshold / 2) {
    p.slow = false;
    return Transition{p.target.service, p.target.backend, Change::recovered, reason};
  }
  return std::nullopt;
}

void Checker::Impl::run() {
  constexpr int kBatch = 64;
  epoll_event events[kBatch];
  for (;;) {
    {
      std::lock_guard lock(mutex);
      if (stopping) return;
      if (pending) {
        adopt(std::move(*pending));
        pending.reset();
      }
    }
    // The nearest timer: a probe to start or one to time out. A linear scan: thousands of
    // targets cost microseconds per wake-up, far below the probes' own cost.
    auto now = Clock::now();
    auto soonest = Clock::time_point::max();
    for (const auto& p : probes) soonest = std::min(soonest, p->phase == Probe::Phase::idle ? p->next : p->deadline);
    int wait_ms = -1;
    if (soonest != Clock::time_point::max()) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(soonest - now).count();
      wait_ms = static_cast<int>(std::clamp<long long>(left, 0, 60'000));
    }
    const int n = ::epoll_wait(epoll.get(), events, kBatch, wait_ms);
    for (int i = 0; i < n; ++i) {
      if (events[i].data.ptr == nullptr) {
        uint64_t count = 0;
        (void)!::read(wake.get(), &count, sizeof count);
        continue;
      }
      // Whatever the flags (writable, readable, error, hang-up), the phase's own call finds out.
      on_event(*static_cast<Probe*>(events[i].data.ptr));
    }
    now = Clock::now();
    for (auto& p : probes) {
      if (p->phase != Probe::Phase::idle && now >= p->deadline)
        finish(*p, {false, "timeout after " + std::to_string(p->target.timeout.count()) + " ms"});
      else if (p->phase == Probe::Phase::idle && now >= p->next)
        begin(*p, now);
    }
  }
}

}  // namespace xlb::health

// lbtool: the servers and clients of the integration tests. Servers say who they are; clients
// count who answered. Every loop is bounded in count and time.
//
//   lbtool serve NAME PORT                  TCP and UDP on PORT: a TCP client gets "NAME PEER\n" (PEER: the
//                                           client address the server sees) and then an echo of what it
//                                           sends; a UDP datagram gets "NAME PEER" back, from the address
//                                           it was sent to
//   lbtool tcp HOST PORT COUNT              COUNT connections, one after another: prints "NAME N" per
//                                           answering server and "failed N"
//   lbtool udp HOST PORT COUNT              the same with one datagram per fresh unconnected socket;
//                                           an answer from another source than HOST:PORT counts as failed
//   lbtool hold HOST PORT COUNT SECONDS     COUNT connections held open, each sending a line every 100 ms
//                                           for SECONDS; prints "NAME N" per server that held them and
//                                           "broken N": connections that failed (a connection moved to
//                                           another backend is reset, so it counts here)
//   lbtool loop HOST PORT SECONDS [PAUSE_MS] new connections for SECONDS, PAUSE_MS apart (default 5):
//                                           "ok N", "failed N"
//   lbtool from SPORT HOST PORT             one TCP connection from source port SPORT: prints what the
//                                           server said ("NAME PEER") or "failed"; it ends with a reset,
//                                           so the same flow can be sent again at once
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kIoTimeoutMs = 2000;

struct Fd {
  int fd = -1;
  explicit Fd(int f = -1) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(o.fd) { o.fd = -1; }
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd, o.fd);
    return *this;
  }
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

sockaddr_storage address(const char* host, int port, socklen_t& length) {
  sockaddr_storage s{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&s);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&s);
  if (::inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    length = sizeof *v4;
  } else if (::inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    length = sizeof *v6;
  } else {
    std::fprintf(stderr, "lbtool: bad address %s\n", host);
    std::exit(2);
  }
  return s;
}

bool wait_for(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  return ::poll(&p, 1, timeout_ms) == 1 && (p.revents & events);
}

// A TCP connection to HOST:PORT, or -1; bounded by kIoTimeoutMs.
Fd connect_tcp(const char* host, int port) {
  socklen_t length;
  const auto to = address(host, port, length);
  Fd s(::socket(to.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  const int rc = ::connect(s.fd, reinterpret_cast<const sockaddr*>(&to), length);
  if (rc != 0 && errno != EINPROGRESS) return Fd();
  if (!wait_for(s.fd, POLLOUT, kIoTimeoutMs)) return Fd();
  int error = 0;
  socklen_t size = sizeof error;
  ::getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &error, &size);
  if (error != 0) return Fd();
  return s;
}

// connect_tcp from a fixed source port (a flow of the test's choosing).
Fd connect_tcp_from(int source_port, const char* host, int port) {
  socklen_t length;
  const auto to = address(host, port, length);
  Fd s(::socket(to.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  const int on = 1;
  ::setsockopt(s.fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_storage from{};
  from.ss_family = to.ss_family;
  // sin_port and sin6_port lie at the same offset.
  reinterpret_cast<sockaddr_in*>(&from)->sin_port = htons(static_cast<uint16_t>(source_port));
  if (::bind(s.fd, reinterpret_cast<const sockaddr*>(&from), length) != 0) return Fd();
  const int rc = ::connect(s.fd, reinterpret_cast<const sockaddr*>(&to), length);
  if (rc != 0 && errno != EINPROGRESS) return Fd();
  if (!wait_for(s.fd, POLLOUT, kIoTimeoutMs)) return Fd();
  int error = 0;
  socklen_t size = sizeof error;
  ::getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &error, &size);
  if (error != 0) return Fd();
  return s;
}

std::string read_line(int fd) {
  std::string line;
  char c;
  while (line.size() < 256 && wait_for(fd, POLLIN, kIoTimeoutMs) && ::read(fd, &c, 1) == 1) {
    if (c == '\n') return line;
    line += c;
  }
  return {};
}

// The client's address as a dual-stack socket sees it, IPv4 without its ::ffff: prefix.
std::string peer_text(const sockaddr_in6& peer) {
  char text[INET6_ADDRSTRLEN] = {};
  if (IN6_IS_ADDR_V4MAPPED(&peer.sin6_addr))
    ::inet_ntop(AF_INET, &peer.sin6_addr.s6_addr[12], text, sizeof text);
  else
    ::inet_ntop(AF_INET6, &peer.sin6_addr, text, sizeof text);
  return text;
}

// Answers a datagram from the address it was sent to, as a UDP server behind a load balancer
// must: with dsr that is the VIP (local on the backend), not the address routing would pick.
void answer_datagram(int fd, const std::string& name) {
  char buf[512];
  sockaddr_in6 from{};
  iovec in{buf, sizeof buf};
  alignas(cmsghdr) char control[256];
  msghdr msg{};
  msg.msg_name = &from;
  msg.msg_namelen = sizeof from;
  msg.msg_iov = &in;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  if (::recvmsg(fd, &msg, 0) < 0) return;
  std::string answer = name + " " + peer_text(from);
  iovec out{answer.data(), answer.size()};
  alignas(cmsghdr) char reply_control[256] = {};
  msghdr reply{};
  reply.msg_name = &from;
  reply.msg_namelen = msg.msg_namelen;
  reply.msg_iov = &out;
  reply.msg_iovlen = 1;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    cmsghdr* r = reinterpret_cast<cmsghdr*>(reply_control);
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      in_pktinfo info{};
      info.ipi_spec_dst = reinterpret_cast<const in_pktinfo*>(CMSG_DATA(c))->ipi_addr;
      r->cmsg_level = IPPROTO_IP;
      r->cmsg_type = IP_PKTINFO;
      r->cmsg_len = CMSG_LEN(sizeof info);
      std::memcpy(CMSG_DATA(r), &info, sizeof info);
      reply.msg_control = reply_control;
      reply.msg_controllen = CMSG_SPACE(sizeof info);
    } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
      in6_pktinfo info{};
      info.ipi6_addr = reinterpret_cast<const in6_pktinfo*>(CMSG_DATA(c))->ipi6_addr;
      r->cmsg_level = IPPROTO_IPV6;
      r->cmsg_type = IPV6_PKTINFO;
      r->cmsg_len = CMSG_LEN(sizeof info);
      std::memcpy(CMSG_DATA(r), &info, sizeof info);
      reply.msg_control = reply_control;
      reply.msg_controllen = CMSG_SPACE(sizeof info);
    }
  }
  ::sendmsg(fd, &reply, 0);
}

int serve(const std::string& name, int port) {
  Fd tcp(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  Fd udp(::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  const int off = 0, on = 1;
  for (int fd : {tcp.fd, udp.fd}) {
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);  // one socket for both families
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  }
  // Where each datagram was sent to, for IPv4 (mapped) and IPv6 senders: answer_datagram.
  ::setsockopt(udp.fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof on);
  ::setsockopt(udp.fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof on);
  sockaddr_in6 any{};
  any.sin6_family = AF_INET6;
  any.sin6_port = htons(static_cast<uint16_t>(port));
  any.sin6_addr = in6addr_any;
  if (::bind(tcp.fd, reinterpret_cast<sockaddr*>(&any), sizeof any) != 0 ||
      ::bind(udp.fd, reinterpret_cast<sockaddr*>(&any), sizeof any) != 0 || ::listen(tcp.fd, 1024) != 0) {
    std::perror("lbtool serve: bind/listen");
    return 1;
  }
  std::printf("serving %s on %d\n", name.c_str(), port);
  std::fflush(stdout);
  std::vector<pollfd> fds{{tcp.fd, POLLIN, 0}, {udp.fd, POLLIN, 0}};
  for (;;) {
    if (::poll(fds.data(), fds.size(), -1) < 0) continue;
    if (fds[0].revents & POLLIN) {
      sockaddr_in6 peer{};
      socklen_t length = sizeof peer;
      const int c = ::accept4(tcp.fd, reinterpret_cast<sockaddr*>(&peer), &length, SOCK_CLOEXEC | SOCK_NONBLOCK);
      const std::string hello = name + " " + peer_text(peer) + "\n";
      if (c >= 0 && ::write(c, hello.data(), hello.size()) > 0) fds.push_back({c, POLLIN, 0});
      else if (c >= 0) ::close(c);
    }
    if (fds[1].revents & POLLIN) answer_datagram(udp.fd, name);
    for (size_t i = 2; i < fds.size();) {
      if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
        char buf[512];
        const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
        if (n <= 0 || ::write(fds[i].fd, buf, static_cast<size_t>(n)) != n) {
          ::close(fds[i].fd);
          fds.erase(fds.begin() + static_cast<long>(i));
          continue;
        }
      }
      ++i;
    }
  }
}

// An HTTP health endpoint that answers 200 after `delay_ms`: an overloaded backend's. One
// request at a time is enough for probes.
int http_health(int port, int delay_ms) {
  Fd listener(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const int off = 0, on = 1;
  ::setsockopt(listener.fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  ::setsockopt(listener.fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_in6 any{};
  any.sin6_family = AF_INET6;
  any.sin6_port = htons(static_cast<uint16_t>(port));
  any.sin6_addr = in6addr_any;
  if (::bind(listener.fd, reinterpret_cast<sockaddr*>(&any), sizeof any) != 0 || ::listen(listener.fd, 64) != 0) {
    std::perror("lbtool http: bind/listen");
    return 1;
  }
  std::printf("serving http on %d, %d ms per answer\n", port, delay_ms);
  std::fflush(stdout);
  for (;;) {
    Fd c(::accept4(listener.fd, nullptr, nullptr, SOCK_CLOEXEC));
    if (c.fd < 0) continue;
    std::string request;
    char buf[1024];
    while (request.find("\r\n\r\n") == std::string::npos && request.size() < 8192) {
      pollfd p{c.fd, POLLIN, 0};
      if (::poll(&p, 1, 1000) <= 0) break;
      const ssize_t n = ::read(c.fd, buf, sizeof buf);
      if (n <= 0) break;
      request.append(buf, static_cast<size_t>(n));
    }
    ::usleep(static_cast<useconds_t>(delay_ms) * 1000);
    const std::string answer = "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
    (void)!::write(c.fd, answer.data(), answer.size());
  }
}

void print_tally(const std::map<std::string, int>& tally) {
  for (const auto& [name, count] : tally) std::printf("%s %d\n", name.c_str(), count);
}

int tcp_count(const char* host, int port, int count) {
  std::map<std::string, int> tally;
  int failed = 0;
  for (int i = 0; i < count; ++i) {
    Fd s = connect_tcp(host, port);
    const std::string name = s.fd >= 0 ? read_line(s.fd) : "";
    if (name.empty()) ++failed;
    else ++tally[name];
  }
  print_tally(tally);
  std::printf("failed %d\n", failed);
  return 0;
}

int udp_count(const char* host, int port, int count) {
  socklen_t length;
  const auto to = address(host, port, length);
  std::map<std::string, int> tally;
  int failed = 0;
  for (int i = 0; i < count; ++i) {
    Fd s(::socket(to.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    char buf[256] = {};
    sockaddr_storage from{};
    socklen_t from_length = sizeof from;
    ssize_t n = -1;
    if (::sendto(s.fd, "who", 3, 0, reinterpret_cast<const sockaddr*>(&to), length) == 3 &&
        wait_for(s.fd, POLLIN, kIoTimeoutMs))
      n = ::recvfrom(s.fd, buf, sizeof buf - 1, 0, reinterpret_cast<sockaddr*>(&from), &from_length);
    // The client must only ever see the frontend: an answer from elsewhere is a failure.
    if (n <= 0 || from_length != length || std::memcmp(&from, &to, length) != 0) ++failed;
    else ++tally[std::string(buf, static_cast<size_t>(n))];
  }
  print_tally(tally);
  std::printf("failed %d\n", failed);
  return 0;
}

int hold(const char* host, int port, int count, int seconds) {
  struct Held {
    Fd fd;
    std::string name;
    bool broken = false;
  };
  std::vector<Held> held;
  for (int i = 0; i < count; ++i) {
    Held h{connect_tcp(host, port), "", false};
    h.name = h.fd.fd >= 0 ? read_line(h.fd.fd) : "";
    h.broken = h.name.empty();
    held.push_back(std::move(h));
  }
  std::printf("held %d\n", count);
  std::fflush(stdout);
  const auto end = Clock::now() + std::chrono::seconds(seconds);
  for (int round = 0; Clock::now() < end; ++round) {
    const std::string line = "ping " + std::to_string(round) + "\n";
    for (auto& h : held) {
      if (h.broken) continue;
      if (::write(h.fd.fd, line.data(), line.size()) != static_cast<ssize_t>(line.size()) ||
          read_line(h.fd.fd) + "\n" != line)
        h.broken = true;
    }
    ::usleep(100'000);
  }
  std::map<std::string, int> tally;
  int broken = 0;
  for (const auto& h : held) {
    if (h.broken) ++broken;
    else ++tally[h.name];
  }
  print_tally(tally);
  std::printf("broken %d\n", broken);
  return 0;
}

int loop(const char* host, int port, int seconds, int pause_ms) {
  const auto end = Clock::now() + std::chrono::seconds(seconds);
  int ok = 0, failed = 0;
  while (Clock::now() < end) {
    Fd s = connect_tcp(host, port);
    if (s.fd >= 0 && !read_line(s.fd).empty()) ++ok;
    else ++failed;
    if (pause_ms > 0) ::usleep(static_cast<useconds_t>(pause_ms) * 1000);
  }
  std::printf("ok %d\nfailed %d\n", ok, failed);
  return 0;
}

int from_port(int source_port, const char* host, int port) {
  Fd s = connect_tcp_from(source_port, host, port);
  const std::string said = s.fd >= 0 ? read_line(s.fd) : "";
  // A reset rather than a FIN: no TIME_WAIT holds the flow, so it can be sent again at once.
  const linger reset{1, 0};
  if (s.fd >= 0) ::setsockopt(s.fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  std::printf("%s\n", said.empty() ? "failed" : said.c_str());
  return said.empty() ? 1 : 0;
}

int usage() {
  std::fprintf(stderr,
               "usage: lbtool serve NAME PORT | tcp HOST PORT COUNT | udp HOST PORT COUNT |\n"
               "       hold HOST PORT COUNT SECONDS | loop HOST PORT SECONDS [PAUSE_MS] | http PORT DELAY_MS |\n"
               "       from SPORT HOST PORT\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> a(argv + 1, argv + argc);
  auto n = [&](size_t i) { return std::atoi(a.at(i).c_str()); };
  if (a.size() == 3 && a[0] == "serve") return serve(a[1], n(2));
  if (a.size() == 3 && a[0] == "http") return http_health(n(1), n(2));
  if (a.size() == 4 && a[0] == "tcp") return tcp_count(a[1].c_str(), n(2), n(3));
  if (a.size() == 4 && a[0] == "udp") return udp_count(a[1].c_str(), n(2), n(3));
  if (a.size() == 5 && a[0] == "hold") return hold(a[1].c_str(), n(2), n(3), n(4));
  if (a.size() == 4 && a[0] == "from") return from_port(n(1), a[2].c_str(), n(3));
  if ((a.size() == 4 || a.size() == 5) && a[0] == "loop") return loop(a[1].c_str(), n(2), n(3), a.size() == 5 ? n(4) : 5);
  return usage();
}

#include "xlbctl/measure.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "base/unique_fd.h"
#include "base/log.h"
#include "datapath/cgroup.h"
#include "datapath/datapath.h"
#include "engine/engine.h"
#include "store/store.h"

namespace xlb::ctl::measure {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// The "ClusterIPs" (100.127.0.0/16: the end of the shared address space, which no cluster uses for
// Services by default) and the backends (addresses on the namespace's own lo).
constexpr const char* kServiceRange = "100.127.0.0/16";
constexpr uint16_t kServicePort = 80;
constexpr uint16_t kBackendPort = 8080;

std::string cluster_ip(uint32_t i) { return "100.127." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1); }
std::string backend_ip(uint32_t k) { return "10.202.0." + std::to_string(k + 2); }

std::string errno_text(const std::string& what, int err) { return what + ": " + std::strerror(err); }

// ---- signals: Ctrl-C or SIGTERM end the measurement between steps, and everything is removed ----

volatile std::sig_atomic_t g_interrupted = 0;  // written by the handler only; the one global

void on_signal(int) { g_interrupted = 1; }

// Installs the handlers for its lifetime (no SA_RESTART: a wait in progress returns EINTR).
class InterruptGuard {
 public:
  InterruptGuard() {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < kSignals.size(); ++i) ::sigaction(kSignals[i], &sa, &old_[i]);
    g_interrupted = 0;
  }
  ~InterruptGuard() {
    for (size_t i = 0; i < kSignals.size(); ++i) ::sigaction(kSignals[i], &old_[i], nullptr);
  }
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;

 private:
  static constexpr std::array<int, 3> kSignals{SIGINT, SIGTERM, SIGHUP};
  std::array<struct sigaction, 3> old_{};
};

Status interrupted() {
  if (g_interrupted) return Error{"interrupted: everything it made is removed"};
  return {};
}

// ---- the pieces, each removed by its destructor ----

// A forked process, killed and reaped when this goes.
class Child {
 public:
  Child() = default;
  explicit Child(pid_t pid) : pid_(pid) {}
  Child(Child&& o) noexcept : pid_(std::exchange(o.pid_, -1)) {}
  Child& operator=(Child&& o) noexcept {
    if (this != &o) {
      stop();
      pid_ = std::exchange(o.pid_, -1);
    }
    return *this;
  }
  ~Child() { stop(); }

  // Waits for it to exit by itself; its exit status, or -1 (a signal, or interrupted).
  int wait() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0) {
      if (errno != EINTR || g_interrupted) {
        stop();
        return -1;
      }
    }
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  pid_t pid() const { return pid_; }

 private:
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }
  pid_t pid_ = -1;
};

// The first steps of every forked child: die with xlbctl, and leave its signals to it.
void child_start() {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  std::signal(SIGHUP, SIG_DFL);
}

// A network namespace without a name: this descriptor and the processes in it keep it.
class Netns {
 public:
  static Result<Netns> create() {
    UniqueFd home(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
    if (!home) return Error{errno_text("open this network namespace", errno)};
    if (::unshare(CLONE_NEWNET) != 0) return Error{errno_text("create a network namespace (needs root)", errno)};
    UniqueFd made(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
    const int err = errno;
    if (::setns(home.get(), CLONE_NEWNET) != 0) {
      // Staying in the new namespace would make every later step lie: stop here.
      std::perror("xlbctl: cannot return to the original network namespace");
      std::_Exit(1);
    }
    if (!made) return Error{errno_text("open the new network namespace", err)};
    return Netns(std::move(made));
  }
  int fd() const { return fd_.get(); }

 private:
  explicit Netns(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

// A cgroup directory of this run with a leaf for each mode's clients.
class Cgroup {
 public:
  static Result<Cgroup> create() {
    auto mount = datapath::find_cgroup2_mount();
    if (!mount) return Error{mount.error().message + " (socket-LB needs cgroup v2)"};
    Cgroup c(*mount / ("xlb-measure-" + std::to_string(::getpid())));
    for (const fs::path& dir : {c.root_, c.socket_lb(), c.iptables()}) {
      if (::mkdir(dir.c_str(), 0755) != 0) return Error{errno_text("create cgroup " + dir.string(), errno)};
      c.made_.push_back(dir);
    }
    return c;
  }
  Cgroup(Cgroup&& o) noexcept : root_(std::move(o.root_)), made_(std::exchange(o.made_, {})) {}
  Cgroup& operator=(Cgroup&&) = delete;
  // After every child is reaped. A cgroup whose last process has just exited can refuse rmdir for
  // a moment (EBUSY): retry a little.
  ~Cgroup() {
    for (auto dir = made_.rbegin(); dir != made_.rend(); ++dir) {
      for (int i = 0; i < 50 && ::rmdir(dir->c_str()) != 0 && errno == EBUSY; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      if (fs::exists(*dir)) std::fprintf(stderr, "xlbctl: warning: could not remove cgroup %s\n", dir->c_str());
    }
  }
  fs::path socket_lb() const { return root_ / "socket-lb"; }
  fs::path iptables() const { return root_ / "iptables"; }

 private:
  explicit Cgroup(fs::path root) : root_(std::move(root)) {}
  fs::path root_;
  std::vector<fs::path> made_;
};

// A scratch directory (the rule files, the engine's database), removed whole.
class TempDir {
 public:
  static Result<TempDir> create() {
    std::string pattern = (fs::temp_directory_path() / "xlb-measure-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) return Error{errno_text("create a directory under /tmp", errno)};
    return TempDir(pattern);
  }
  TempDir(TempDir&& o) noexcept : path_(std::exchange(o.path_, {})) {}
  TempDir& operator=(TempDir&&) = delete;
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) fs::remove_all(path_, ignored);
  }
  const fs::path& path() const { return path_; }

 private:
  explicit TempDir(fs::path p) : path_(std::move(p)) {}
  fs::path path_;
};

// Runs argv inside `netns`; its stderr is returned with the error when it fails.
Status run_in(const Netns& netns, const std::vector<std::string>& argv, double timeout_s = 120) {
  int err_pipe[2];
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return Error{errno_text("pipe", errno)};
  UniqueFd read_end(err_pipe[0]), write_end(err_pipe[1]);
  const pid_t pid = ::fork();
  if (pid < 0) return Error{errno_text("fork", errno)};
  if (pid == 0) {
    child_start();
    ::dup2(write_end.get(), STDERR_FILENO);
    const int null = ::open("/dev/null", O_RDWR);
    ::dup2(null, STDIN_FILENO);
    ::dup2(null, STDOUT_FILENO);
    if (::setns(netns.fd(), CLONE_NEWNET) != 0) _exit(126);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    std::fprintf(stderr, "cannot run %s: %s", args[0], std::strerror(errno));
    _exit(127);
  }
  Child child(pid);
  write_end = UniqueFd();
  std::string errors;
  char buffer[512];
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
  pollfd p{read_end.get(), POLLIN, 0};
  while (!g_interrupted) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return Error{argv[0] + " took more than " + std::to_string(static_cast<int>(timeout_s)) + " s"};
    const int ready = ::poll(&p, 1, static_cast<int>(std::min<long>(left, 200)));
    if (ready <= 0) continue;
    const ssize_t n = ::read(read_end.get(), buffer, sizeof buffer);
    if (n <= 0) break;
    if (errors.size() < 2000) errors.append(buffer, static_cast<size_t>(n));
  }
  if (auto s = interrupted(); !s) return s;
  const int status = child.wait();
  if (status != 0) {
    while (!errors.empty() && errors.back() == '\n') errors.pop_back();
    std::string command;
    for (const auto& a : argv) command += (command.empty() ? "" : " ") + a;
    return Error{command + " failed" + (errors.empty() ? "" : ": " + errors)};
  }
  return {};
}

// ---- the namespaces' contents ----

// lo up, the backends' addresses on it, and the Service range routed into it: a ClusterIP
// nothing translated is dropped there (not local, no forwarding), never sent anywhere.
Status set_up(const Netns& netns, uint32_t backends) {
  if (auto s = run_in(netns, {"ip", "link", "set", "lo", "up"}); !s) return s;
  for (uint32_t k = 0; k < backends; ++k)
    if (auto s = run_in(netns, {"ip", "addr", "add", backend_ip(k) + "/32", "dev", "lo"}); !s) return s;
  return run_in(netns, {"ip", "route", "add", kServiceRange, "dev", "lo", "src", backend_ip(0)});
}

// A server in `netns` that accepts every connection to port 8080 of its backends and closes it.
Result<Child> start_server(const Netns& netns) {
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) return Error{errno_text("pipe", errno)};
  UniqueFd read_end(ready[0]), write_end(ready[1]);
  const pid_t pid = ::fork();
  if (pid < 0) return Error{errno_text("fork", errno)};
  if (pid == 0) {
    child_start();
    if (::setns(netns.fd(), CLONE_NEWNET) != 0) _exit(1);
    const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(kBackendPort);
    if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(s, 4096) != 0) _exit(1);
    (void)!::write(write_end.get(), "r", 1);
    for (;;) {
      const int c = ::accept(s, nullptr, nullptr);
      if (c >= 0) ::close(c);
    }
  }
  Child child(pid);
  write_end = UniqueFd();
  pollfd p{read_end.get(), POLLIN, 0};
  char byte = 0;
  if (::poll(&p, 1, 5000) != 1 || ::read(read_end.get(), &byte, 1) != 1)
    return Error{"the test server in the measurement's namespace did not start"};
  return child;
}

struct RunResult {
  long ok = 0;
  long failed = 0;
  double p50_us = 0;
};

// New TCP connections one after another, each to a random Service, for `seconds`: the time of
// each connect() alone (blocking; the socket then reset, so no TIME_WAIT piles up).
RunResult connect_loop(const std::vector<sockaddr_in>& targets, double seconds) {
  std::mt19937_64 rng(std::random_device{}());
  std::uniform_int_distribution<size_t> pick(0, targets.size() - 1);
  std::vector<double> latencies;
  latencies.reserve(200000);
  RunResult r;
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  const timeval timeout{1, 0};
  const linger reset{1, 0};
  while (Clock::now() < deadline && r.ok + r.failed < 2'000'000) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) break;
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    const sockaddr_in& target = targets[pick(rng)];
    const auto t0 = Clock::now();
    const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&target), sizeof target);
    const auto t1 = Clock::now();
    if (rc == 0) {
      ++r.ok;
      latencies.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    } else {
      ++r.failed;
    }
    ::close(fd);
  }
  if (!latencies.empty()) {
    std::nth_element(latencies.begin(), latencies.begin() + static_cast<long>(latencies.size() / 2), latencies.end());
    r.p50_us = latencies[latencies.size() / 2];
  }
  return r;
}

// One run: a child in `cgroup` and `netns` connects for `seconds` and reports through a pipe.
Result<RunResult> client_run(const Netns& netns, const fs::path& cgroup, const std::vector<sockaddr_in>& targets,
                             double seconds) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return Error{errno_text("pipe", errno)};
  UniqueFd read_end(out[0]), write_end(out[1]);
  const pid_t pid = ::fork();
  if (pid < 0) return Error{errno_text("fork", errno)};
  if (pid == 0) {
    child_start();
    // "0" moves the writer itself into the cgroup.
    const int procs = ::open((cgroup / "cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
    if (procs < 0 || ::write(procs, "0", 1) != 1) _exit(2);
    if (::setns(netns.fd(), CLONE_NEWNET) != 0) _exit(3);
    const RunResult r = connect_loop(targets, seconds);
    (void)!::write(write_end.get(), &r, sizeof r);
    _exit(0);
  }
  Child child(pid);
  write_end = UniqueFd();
  RunResult r;
  ssize_t got = -1;
  pollfd p{read_end.get(), POLLIN, 0};
  const int wait_ms = static_cast<int>(seconds * 1000) + 10000;
  if (::poll(&p, 1, wait_ms) == 1) got = ::read(read_end.get(), &r, sizeof r);
  if (auto s = interrupted(); !s) return s.error();
  const int status = child.wait();
  if (got != static_cast<ssize_t>(sizeof r) || status != 0)
    return Error{"a client run failed (exit status " + std::to_string(status) + "): could it join " + cgroup.string() +
                 "?"};
  return r;
}

model::Catalog catalog_of(uint32_t services, uint32_t backends) {
  model::Catalog c;
  c.services.reserve(services);
  for (uint32_t i = 0; i < services; ++i) {
    model::Service s;
    s.name = "measure/svc-" + std::to_string(i) + ":http";
    model::Frontend f;
    f.address = *model::IpAddress::parse(cluster_ip(i));
    f.port = kServicePort;
    f.kind = model::FrontendKind::cluster_ip;
    s.frontends.push_back(f);
    for (uint32_t k = 0; k < backends; ++k) {
      model::Backend b;
      b.address = *model::IpAddress::parse(backend_ip(k));
      b.port = kBackendPort;
      s.backends.push_back(b);
    }
    c.services.push_back(std::move(s));
  }
  return c;
}

std::vector<sockaddr_in> targets_of(uint32_t services) {
  std::vector<sockaddr_in> t(services);
  for (uint32_t i = 0; i < services; ++i) {
    t[i].sin_family = AF_INET;
    t[i].sin_port = htons(kServicePort);
    ::inet_pton(AF_INET, cluster_ip(i).c_str(), &t[i].sin_addr);
  }
  return t;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string fixed(double v, int digits = 1) {
  char text[32];
  std::snprintf(text, sizeof text, "%.*f", digits, v);
  return text;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

std::string kernel_release() {
  utsname u{};
  return ::uname(&u) == 0 ? u.release : "";
}

// A 16-character chain suffix, as kube-proxy's base32 of a SHA-256 is: unique per key is all the
// measurement needs of it (the name's length is what the kernel stores and compares).
std::string chain_suffix(const std::string& key) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  uint64_t h = 1469598103934665603ULL;  // FNV-1a
  for (unsigned char c : key) h = (h ^ c) * 1099511628211ULL;
  std::string out;
  for (int i = 0; i < 16; ++i) {
    out += kAlphabet[h & 31];
    h = (h >> 5) | (h << 59);
  }
  return out;
}

std::string comment(const std::string& text) {
  return "-m comment --comment " + (text.find(' ') == std::string::npos ? text : "\"" + text + "\"");
}

}  // namespace

std::vector<uint32_t> default_sizes(uint32_t node_services) {
  std::set<uint32_t> sizes{10, 100, 1000};
  const uint32_t node = std::min(node_services, kLargestSize);
  if (node > 10) sizes.insert(node);
  sizes.insert(std::min(kLargestSize, std::max<uint32_t>(5000, 2 * node)));
  return {sizes.begin(), sizes.end()};
}

Result<std::vector<uint32_t>> parse_sizes(const std::string& text) {
  std::set<uint32_t> sizes;
  std::stringstream in(text);
  std::string word;
  while (std::getline(in, word, ',')) {
    char* end = nullptr;
    const unsigned long n = std::strtoul(word.c_str(), &end, 10);
    if (word.empty() || *end != '\0' || n == 0 || n > kLargestSize)
      return Error{"--sizes: \"" + word + "\" is not a catalog size from 1 to " + std::to_string(kLargestSize)};
    sizes.insert(static_cast<uint32_t>(n));
  }
  if (sizes.empty()) return Error{"--sizes: give at least one size, e.g. 10,100,1000"};
  return std::vector<uint32_t>(sizes.begin(), sizes.end());
}

std::string live_kube_proxy(const fs::path& proc) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(proc, ec)) {
    const std::string pid = entry.path().filename().string();
    if (pid.empty() || !std::all_of(pid.begin(), pid.end(), ::isdigit)) continue;
    std::ifstream comm(entry.path() / "comm");
    std::string name;
    if (std::getline(comm, name) && name == "kube-proxy")
      return "a kube-proxy process runs here (pid " + pid + "): measure on a node without it, or after the takeover";
  }
  if (proc != "/proc") return "";  // a test's fake /proc: the tables are not its business
  auto has = [](const char* command, const char* text) {
    std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(command, "r"), ::pclose);
    if (!pipe) return false;
    std::string out;
    char buffer[4096];
    for (size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe.get())) > 0;) out.append(buffer, n);
    return out.find(text) != std::string::npos;
  };
  if (has("iptables-save -t nat 2>/dev/null", ":KUBE-SERVICES"))
    return "kube-proxy's KUBE-SERVICES chain is in this node's nat table (iptables-save -t nat): a kube-proxy "
           "serves here; measure on a node without it, or after the takeover";
  if (has("nft list tables 2>/dev/null", "table ip kube-proxy"))
    return "kube-proxy's nftables table (table ip kube-proxy) is on this node: a kube-proxy serves here; measure on "
           "a node without it, or after the takeover";
  return "";
}

std::string iptables_rules(uint32_t services, uint32_t backends) {
  std::string chains, service_rules, rules;
  for (uint32_t i = 0; i < services; ++i) {
    const std::string spn = "measure/svc-" + std::to_string(i) + ":http", ip = cluster_ip(i);
    const std::string svc = "KUBE-SVC-" + chain_suffix(spn + "tcp");
    chains += ":" + svc + " - [0:0]\n";
    service_rules += "-A KUBE-SERVICES -d " + ip + "/32 -p tcp " + comment(spn + " cluster IP") + " -m tcp --dport " +
                     std::to_string(kServicePort) + " -j " + svc + "\n";
    rules += "-A " + svc + " ! -s 10.244.0.0/16 -d " + ip + "/32 -p tcp " + comment(spn + " cluster IP") +
             " -m tcp --dport " + std::to_string(kServicePort) + " -j KUBE-MARK-MASQ\n";
    // The i-th of n endpoints with probability 1/(n-i), the last without (pkg/proxy/iptables).
    for (uint32_t k = 0; k < backends; ++k) {
      const std::string ep = backend_ip(k) + ":" + std::to_string(kBackendPort);
      const std::string sep = "KUBE-SEP-" + chain_suffix(spn + "tcp" + ep);
      chains += ":" + sep + " - [0:0]\n";
      rules += "-A " + svc + " " + comment(spn + " -> " + ep) +
               (k + 1 < backends ? " -m statistic --mode random --probability " +
                                       fixed(1.0 / static_cast<double>(backends - k), 10)
                                 : "") +
               " -j " + sep + "\n";
      rules += "-A " + sep + " -s " + backend_ip(k) + "/32 " + comment(spn) + " -j KUBE-MARK-MASQ\n";
      rules += "-A " + sep + " -p tcp " + comment(spn) + " -m tcp -j DNAT --to-destination " + ep + "\n";
    }
  }
  return "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
         ":KUBE-MARK-MASQ - [0:0]\n:KUBE-NODEPORTS - [0:0]\n:KUBE-POSTROUTING - [0:0]\n:KUBE-SERVICES - [0:0]\n" +
         chains +
         "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
         "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
         "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n"
         "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000\n"
         "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n"
         "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0\n"
         "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE "
         "--random-fully\n" +
         service_rules +
         "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in "
         "this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n" +
         rules + "COMMIT\n";
}

namespace {

// "net:[4026532331]": how /proc and lsns name a namespace, for the operator (and the test) to check.
std::string ns_name(const Netns& netns) {
  std::error_code ec;
  const auto target = fs::read_symlink("/proc/self/fd/" + std::to_string(netns.fd()), ec);
  return ec ? "?" : target.string();
}

// The two sides of the measurement, built once and filled per size.
class Bench {
 public:
  explicit Bench(const Options& options) : options_(options) {}

  Status prepare() {
    auto dir = TempDir::create();
    if (!dir) return dir.error();
    dir_.emplace(std::move(*dir));
    auto cgroup = Cgroup::create();
    if (!cgroup) return cgroup.error();
    cgroup_.emplace(std::move(*cgroup));
    for (auto* ns : {&socket_lb_ns_, &iptables_ns_}) {
      auto made = Netns::create();
      if (!made) return made.error();
      ns->emplace(std::move(*made));
      if (auto s = set_up(**ns, options_.backends); !s) return s;
      auto server = start_server(**ns);
      if (!server) return server.error();
      servers_.push_back(std::move(*server));
    }
    step("made network namespaces " + ns_name(*socket_lb_ns_) + " (socket-LB) and " + ns_name(*iptables_ns_) +
         " (iptables), cgroup " + cgroup_->socket_lb().parent_path().string() + ", scratch directory " +
         dir_->path().string());
    step("loading xlb's datapath (no pins; socket-LB on cgroup " + cgroup_->socket_lb().string() + " only)");
    auto datapath = datapath::Datapath::load({});
    if (!datapath) return Error{"load xlb's datapath: " + datapath.error().message};
    datapath_.emplace(std::move(*datapath));
    if (auto s = datapath_->attach_cgroup(cgroup_->socket_lb()); !s) return s;
    auto store = store::Store::open(dir_->path() / "state.db");
    if (!store) return store.error();
    store_.emplace(std::move(*store));
    engine_.emplace(*store_, log_, engine::MaglevSettings{}, &datapath_->maps());
    return {};
  }

  Result<advise::MeasuredPoint> measure(uint32_t size) {
    advise::MeasuredPoint point;
    point.services = size;
    const std::string at = std::to_string(size) + " services: ";
    step(at + "loading kube-proxy's iptables layout (iptables-restore)");
    const fs::path rules = dir_->path() / "iptables.rules";
    {
      std::ofstream out(rules, std::ios::trunc);
      out << iptables_rules(size, options_.backends);
      if (!out) return Error{"cannot write " + rules.string()};
    }
    auto t0 = Clock::now();
    if (auto s = run_in(*iptables_ns_, {"iptables-restore", "-w", "10", rules.string()}); !s) return s.error();
    point.iptables_load_s = since(t0);
    step(at + "writing xlb's maps");
    t0 = Clock::now();
    auto applied = engine_->apply(catalog_of(size, options_.backends), "advise --measure");
    if (!applied) return Error{"write xlb's maps: " + applied.error().message};
    point.socket_lb_load_s = since(t0);
    if (auto s = interrupted(); !s) return s.error();

    const auto targets = targets_of(size);
    // A short warm-up each, which also proves that both translate every Service.
    for (const bool socket_lb : {true, false}) {
      auto r = run(socket_lb, targets, std::min(0.3, options_.seconds));
      if (!r) return r.error();
      if (r->failed != 0 || r->ok == 0)
        return Error{std::string(socket_lb ? "socket-LB" : "iptables") + " did not serve the Services: " +
                     std::to_string(r->failed) + " of " + std::to_string(r->ok + r->failed) + " connections failed"};
    }
    std::vector<double> socket_lb, iptables;
    for (int i = 1; i <= options_.runs; ++i) {
      for (const bool lb : {true, false}) {
        auto r = run(lb, targets, options_.seconds);
        if (!r) return r.error();
        (lb ? socket_lb : iptables).push_back(r->p50_us);
        step(at + (lb ? "socket-LB" : "iptables ") + " run " + std::to_string(i) + "/" + std::to_string(options_.runs) +
             ": p50 " + fixed(r->p50_us) + " us, " + std::to_string(r->ok) + " connections" +
             (r->failed ? ", " + std::to_string(r->failed) + " failed" : ""));
      }
    }
    point.socket_lb_p50_us = median(socket_lb);
    point.iptables_p50_us = median(iptables);
    return point;
  }

  void step(const std::string& line) const {
    if (options_.progress) options_.progress(line);
  }

 private:
  Result<RunResult> run(bool socket_lb, const std::vector<sockaddr_in>& targets, double seconds) {
    return client_run(socket_lb ? *socket_lb_ns_ : *iptables_ns_,
                      socket_lb ? cgroup_->socket_lb() : cgroup_->iptables(), targets, seconds);
  }

  const Options& options_;
  Logger log_{LogLevel::error};
  // Declared in the order they are made: destroyed the other way round, the engine before its
  // maps, every process before the cgroup it is in and the namespace it holds.
  std::optional<TempDir> dir_;
  std::optional<Cgroup> cgroup_;
  std::optional<Netns> socket_lb_ns_, iptables_ns_;
  std::vector<Child> servers_;
  std::optional<datapath::Datapath> datapath_;
  std::optional<store::Store> store_;
  std::optional<engine::Engine> engine_;
};

}  // namespace

Result<advise::Measured> run(const Options& options) {
  if (::geteuid() != 0) return Error{"--measure needs root: it makes network namespaces, a cgroup and loads BPF"};
  if (options.sizes.empty()) return Error{"no catalog size to measure"};
  const InterruptGuard guard;
  const auto start = Clock::now();
  advise::Measured m;
  m.measured_at = utc_now();
  m.kernel = kernel_release();
  {
    Bench bench(options);
    bench.step("preparing: two network namespaces, a cgroup, a test server in each");
    if (auto s = bench.prepare(); !s) return s.error();
    if (auto s = interrupted(); !s) return s.error();
    for (uint32_t size : options.sizes) {
      auto point = bench.measure(size);
      if (!point) return point.error();
      m.points.push_back(*point);
      bench.step(std::to_string(size) + " services: socket-LB p50 " + fixed(point->socket_lb_p50_us) + " us, iptables " +
                 fixed(point->iptables_p50_us) + " us (iptables / socket-LB " +
                 fixed(point->iptables_p50_us / std::max(point->socket_lb_p50_us, 0.001), 2) + "x)");
      if (auto s = interrupted(); !s) return s.error();
    }
    bench.step("cleaning up");
  }
  m.crossover = advise::crossover(m.points);
  m.seconds = since(start);
  return m;
}

}  // namespace xlb::ctl::measure

#include "datapath/drop_log.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <time.h>

#include <cerrno>
#include <cstring>

#include "datapath/errno_error.h"
#include "xlb_abi.h"

namespace xlb::datapath {

namespace {

// How long the reader sleeps in the kernel between looks at stop_: the longest a stop waits.
constexpr int kPollMs = 200;

int64_t clock_ns(clockid_t clock) {
  timespec ts{};
  ::clock_gettime(clock, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// The event's time is CLOCK_MONOTONIC (bpf_ktime_get_ns): its age, taken from the wall clock now.
int64_t unix_ms_of(uint64_t monotonic_ns) {
  const int64_t age_ns = clock_ns(CLOCK_MONOTONIC) - static_cast<int64_t>(monotonic_ns);
  return (clock_ns(CLOCK_REALTIME) - age_ns) / 1'000'000;
}

model::IpAddress address_of(const __be32 words[4], uint8_t family) {
  std::array<uint8_t, 16> bytes{};
  std::memcpy(bytes.data(), words, bytes.size());
  char text[INET6_ADDRSTRLEN] = {};
  const int af = family == XLB_AF_INET6 ? AF_INET6 : AF_INET;
  ::inet_ntop(af, bytes.data(), text, sizeof text);
  auto parsed = model::IpAddress::parse(text);
  return parsed ? *parsed : model::IpAddress{};
}

DropEvent drop_event_of(const xlb_event& e) {
  DropEvent out;
  out.unix_ms = unix_ms_of(e.timestamp_ns);
  out.reason = e.reason;
  out.ifindex = e.ifindex;
  out.protocol = e.flow.protocol;
  out.source = address_of(e.flow.src, e.flow.family);
  out.destination = address_of(e.flow.dst, e.flow.family);
  out.source_port = ntohs(e.flow.sport);
  out.destination_port = ntohs(e.flow.dport);
  return out;
}

}  // namespace

Result<std::unique_ptr<DropLog>> DropLog::open(int events_fd, int budget_fd, size_t keep) {
  UniqueFd events(::fcntl(events_fd, F_DUPFD_CLOEXEC, 0));
  UniqueFd budget(::fcntl(budget_fd, F_DUPFD_CLOEXEC, 0));
  if (!events || !budget) return errno_error("open the drop events", errno);
  std::unique_ptr<DropLog> log(new DropLog(std::move(events), std::move(budget), keep));
  log->ring_ = ring_buffer__new(log->events_fd_.get(), &DropLog::on_event, log.get(), nullptr);
  if (!log->ring_) return errno_error("read the drop events ring buffer", errno);
  log->reader_ = std::thread([raw = log.get()] { raw->run(); });
  return log;
}

DropLog::DropLog(UniqueFd events, UniqueFd budget, size_t keep)
    : events_fd_(std::move(events)), budget_fd_(std::move(budget)), keep_(keep) {}

DropLog::~DropLog() {
  stop_ = true;
  if (reader_.joinable()) reader_.join();
  ring_buffer__free(ring_);
}

void DropLog::run() {
  while (!stop_) {
    // An error other than a signal means the ring is gone; nothing more will come.
    if (const int err = ring_buffer__poll(ring_, kPollMs); err < 0 && err != -EINTR) return;
  }
}

int DropLog::on_event(void* self, void* data, size_t size) {
  if (size < sizeof(xlb_event)) return 0;  // not ours to read: skip it, keep reading
  xlb_event raw;
  std::memcpy(&raw, data, sizeof raw);
  auto* log = static_cast<DropLog*>(self);
  DropEvent event = drop_event_of(raw);
  std::lock_guard lock(log->mutex_);
  event.id = ++log->last_id_;
  log->kept_.push_back(std::move(event));
  if (log->kept_.size() > log->keep_) log->kept_.pop_front();
  return 0;
}

std::vector<DropEvent> DropLog::after(uint64_t after_id, size_t limit) const {
  std::lock_guard lock(mutex_);
  std::vector<DropEvent> out;
  for (const auto& e : kept_)
    if (e.id > after_id) out.push_back(e);
  if (out.size() > limit) out.erase(out.begin(), out.end() - static_cast<std::ptrdiff_t>(limit));
  return out;
}

uint64_t DropLog::last_id() const {
  std::lock_guard lock(mutex_);
  return last_id_;
}

Result<uint64_t> DropLog::unreported() const {
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return errno_error("count CPUs", -cpus);
  std::vector<xlb_event_budget> budgets(static_cast<size_t>(cpus));
  const uint32_t zero = 0;
  if (int err = bpf_map_lookup_elem(budget_fd_.get(), &zero, budgets.data()); err != 0)
    return errno_error("read the drop events' budget", -err);
  uint64_t sum = 0;
  for (const auto& b : budgets) sum += b.unreported;
  return sum;
}

}  // namespace xlb::datapath

// The programs' drop events (bpf/lib/events.h: a ring buffer, rate-limited per CPU), read as they
// come by a thread of this object's own, and kept in memory: the last few hundred, each with a
// number, so that readers (the API's long polls) take what is newer than what they saw.
//
// Reading all the time, not only when someone asks: the ring holds a few thousand events, and
// one left unread would keep the oldest drops and lose the newest, which are the ones a person
// asks about.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "model/model.h"

struct ring_buffer;

namespace xlb::datapath {

struct DropEvent {
  uint64_t id = 0;       // 1, 2, ... in the order read; restarts with each DropLog
  int64_t unix_ms = 0;   // when the program saw the packet
  uint32_t reason = 0;   // enum xlb_reason (reason_name() has the words)
  uint32_t ifindex = 0;  // the link it arrived on
  uint8_t protocol = 0;  // IPPROTO_*; 0 when the header was unreadable
  model::IpAddress source;
  model::IpAddress destination;
  uint16_t source_port = 0;  // 0 when the program could not read them
  uint16_t destination_port = 0;
};

class DropLog {
 public:
  // Keeps the newest `keep` events. The fds are the programs' xlb_events ring buffer and
  // xlb_event_budget map; both are duplicated, so the log does not depend on the loader's.
  static Result<std::unique_ptr<DropLog>> open(int events_fd, int budget_fd, size_t keep = 1000);

  DropLog(const DropLog&) = delete;
  DropLog& operator=(const DropLog&) = delete;
  ~DropLog();  // stops the reader and waits for it

  // Kept events with an id above `after_id`, oldest first; the newest `limit` when more.
  std::vector<DropEvent> after(uint64_t after_id, size_t limit) const;
  // The id of the newest event read (0: none yet).
  uint64_t last_id() const;
  // Drops the programs counted but reported no event for (over the rate limit, or the ring
  // full), since the maps were made; summed over CPUs.
  Result<uint64_t> unreported() const;

 private:
  DropLog(UniqueFd events, UniqueFd budget, size_t keep);
  static int on_event(void* self, void* data, size_t size);
  void run();

  UniqueFd events_fd_;
  UniqueFd budget_fd_;
  const size_t keep_;
  ring_buffer* ring_ = nullptr;

  mutable std::mutex mutex_;
  std::deque<DropEvent> kept_;
  uint64_t last_id_ = 0;

  std::atomic<bool> stop_{false};
  std::thread reader_;  // last: it starts once everything above exists
};

}  // namespace xlb::datapath

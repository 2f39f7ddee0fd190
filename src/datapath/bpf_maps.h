// MapWriter over the kernel's load-balancing maps (services v4/v6, rings, backends), given by
// their fds. Every write keeps the maps consistent for a program reading them at that moment.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <unordered_map>
#include <vector>

#include "base/unique_fd.h"
#include "datapath/state.h"

namespace xlb::datapath {

struct MapFds {
  int services_v4 = -1;
  int services_v6 = -1;
  int ring_slots = -1;
  int backends = -1;
  int frontend_addrs = -1;
  int backend_cache = -1;
  int service_stats = -1;
  int backend_stats = -1;
  int frontend_filter = -1;
  int frontend_epoch = -1;
};

// Unmaps a mapping of an mmappable array (xlb_ring_slots, xlb_frontend_filter).
struct Unmap {
  size_t length = 0;
  void operator()(void* p) const;
};

class BpfMaps final : public MapWriter {
 public:
  // Duplicates the fds: this object stays valid however long the loader keeps its own.
  static Result<BpfMaps> open(const MapFds& fds);

  Result<State> read() const override;
  // How many frontends (service ids) and backends the maps hold: their max_entries.
  uint32_t service_capacity() const { return service_capacity_; }
  uint32_t backend_capacity() const { return backend_capacity_; }
  // How many ring slots xlb_ring_slots holds: every ring is a range of it.
  uint32_t ring_slot_capacity() const { return ring_slot_capacity_; }
  // Whose counters a slot of xlb_service_stats / xlb_backend_stats holds now: an id, or 0.
  ServiceId service_at_slot(uint32_t slot) const;
  BackendId backend_at_slot(uint32_t slot) const;

  Status upsert_backends(const std::vector<BackendEntry>& backends) override;
  Status remove_backend(BackendId id) override;
  Status upsert_frontends(const std::vector<FrontendEntry>& frontends) override;
  Status remove_frontends(const std::vector<FrontendKey>& keys) override;

  // On a backend node of dsr services (decap on): every change of the frontends also makes the
  // dsr frontends' addresses local (local_addresses.h), and only those. Off: xlb has none.
  // Syncs at once either way, so a restart finds lo as the maps say.
  Status set_local_dsr_frontends(bool on);

 private:
  BpfMaps() = default;

  // Every backend the maps hold has a counter slot (adopted at open, taken when written, given
  // back when removed): the slot table answers whether a ring's backends are there, with no
  // system call per backend. `known` (by id) keeps what a batch already checked.
  Status check_backends_exist(const std::vector<BackendId>& ring, std::vector<bool>& known) const;
  // The ranges of xlb_ring_slots that rings use: first fit over a free list of [offset, size)
  // ranges, neighbours coalesced. A range given back waits in `released` until the next write
  // (upsert_frontends, remove_frontends) begins: a program still reading the old ring never
  // sees it overwritten by a ring of the same write.
  class RingRanges {
   public:
    explicit RingRanges(uint32_t capacity = 0);
    std::optional<uint32_t> take(uint32_t size);
    bool claim(uint32_t offset, uint32_t size);  // adoption: a range an entry holds, if free
    bool owns(uint32_t offset, uint32_t size) const;
    void release_later(uint32_t offset, uint32_t size);
    void release_now(uint32_t offset, uint32_t size);
    void reclaim();  // the ranges released before: free for the next ring
    uint32_t free_slots() const { return free_slots_; }
    uint32_t largest_free() const;

   private:
    void give_back(uint32_t offset, uint32_t size);
    std::map<uint32_t, uint32_t> free_;  // offset -> size
    std::map<uint32_t, uint32_t> used_;  // offset -> size
    std::vector<std::pair<uint32_t, uint32_t>> released_;
    uint32_t free_slots_ = 0;
  };
  // Copies a ring into xlb_ring_slots at offset (through the mapping).
  void write_ring(uint32_t offset, const std::vector<BackendId>& ring, bool in_place);
  Error ring_slots_full(std::string_view what, uint32_t size) const;
  // How many frontends an address has: the programs tell malformed packets to a frontend
  // address (dropped, counted) from others (passed). Counted up before a frontend is written,
  // down after it is gone, so a crash leaves a count too high (harmless), never too low.
  // `deltas` by address; the counts that stay above 0 are written in one batch.
  Status count_frontend_addresses(const std::map<model::IpAddress, int>& deltas);
  // The frontend filter (xlb_abi.h): how many frontends have each set bit. A bit is set before
  // its first frontend is written and cleared after its last one is gone.
  void count_in_filter(const void* service_key, bool v6, int delta);
  // The keys of both services maps, read once at open for the two passes below.
  struct ServiceKeys;
  Result<ServiceKeys> service_keys() const;
  // At open: the filter as the services maps say, whatever a previous xlbd left in it.
  void rebuild_filter(const ServiceKeys& keys);
  // After every write or removal of frontends: cached answers about them are void (xlb_abi.h).
  Status next_frontend_epoch();
  Status forget_cached_backend(BackendId id);
  // Counter slots (bpf/lib/counters.h): each service id and backend id in the maps has one, below
  // the capacity, written into its entry. A freed slot is taken again as late as possible, as
  // ids are: a flow that conntrack still counts under it (the replies' service slot) then counts
  // for a service that is gone rather than another one, for as long as possible.
  struct SlotTable {
    std::vector<uint32_t> owner;  // slot -> id; 0 = free; slot 0 is never given
    std::unordered_map<uint32_t, uint32_t> of_id;
    uint32_t cursor = 0;

    explicit SlotTable(uint32_t capacity) : owner(static_cast<size_t>(capacity) + 1, 0) {}
    std::optional<uint32_t> find(uint32_t id) const;
    bool claim(uint32_t id, uint32_t slot);  // adoption: the slot an entry holds, if free
    std::optional<uint32_t> take(uint32_t id);  // a free slot, round robin
    void release(uint32_t id);
  };
  struct Slots {
    mutable std::mutex mutex;  // read_counters reads them from another thread
    SlotTable services;
    SlotTable backends;
    Slots(uint32_t services_capacity, uint32_t backends_capacity)
        : services(services_capacity), backends(backends_capacity) {}
  };
  // The slot of a service or backend id: its own, or a new one with its counters zeroed.
  Result<uint32_t> slot_for(bool backend, uint32_t id, std::string_view what);
  // The same for many ids, the new slots zeroed in one write; on an error no slot is taken.
  // `what(i)` names ids[i] in an error.
  Result<std::vector<uint32_t>> slots_for(bool backend, const std::vector<uint32_t>& ids,
                                          const std::function<std::string(size_t)>& what);
  void release_slot(bool backend, uint32_t id);
  // After a start: every entry keeps the slot it holds (if valid and not taken twice); one
  // without (written before slots existed) gets one and is written again.
  Status adopt_slots(const ServiceKeys& keys);
  // A write refused because a map is full, said in terms of the node's capacity.
  Error full(std::string_view what, bool backends) const;
  std::vector<BackendId> read_ring(uint32_t offset, uint32_t size) const;
  Status read_frontends(bool v6, State& state) const;
  Result<std::set<model::IpAddress>> dsr_frontend_addresses() const;
  Status sync_local_addresses() const;

  UniqueFd services_v4_;
  UniqueFd services_v6_;
  UniqueFd ring_slots_;
  std::unique_ptr<BackendId, Unmap> ring_map_;  // xlb_ring_slots, mmapped
  uint32_t ring_slot_capacity_ = 0;
  RingRanges ring_ranges_;
  UniqueFd backends_;
  UniqueFd frontend_addrs_;
  UniqueFd backend_cache_;
  UniqueFd service_stats_;
  UniqueFd backend_stats_;
  UniqueFd frontend_filter_;
  std::unique_ptr<uint64_t, Unmap> filter_words_;  // xlb_frontend_filter, mmapped
  std::unordered_map<uint32_t, uint32_t> filter_counts_;  // bit -> frontends
  UniqueFd frontend_epoch_;
  uint32_t service_capacity_ = 0;
  uint32_t backend_capacity_ = 0;
  std::unique_ptr<Slots> slots_;
  bool local_dsr_frontends_ = false;
};

}  // namespace xlb::datapath

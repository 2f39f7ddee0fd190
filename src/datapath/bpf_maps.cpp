#include "datapath/bpf_maps.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <netinet/in.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <functional>
#include <numeric>
#include <optional>
#include <set>
#include <tuple>

#include "datapath/errno_error.h"
#include "datapath/local_addresses.h"
#include "xlb_abi.h"

namespace xlb::datapath {
namespace {

Result<UniqueFd> duplicate(int fd, std::string_view what) {
  UniqueFd copy(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!copy) return errno_error(std::string("duplicate the fd of map ") + std::string(what), errno);
  return copy;
}

Status update(int fd, const void* key, const void* value, std::string_view what) {
  const int err = bpf_map_update_elem(fd, key, value, BPF_ANY);
  if (err == 0) return {};
  return errno_error(what, -err, err == -E2BIG ? "the map is full" : "");
}

Status delete_if_present(int fd, const void* key, std::string_view what) {
  const int err = bpf_map_delete_elem(fd, key);
  if (err == 0 || err == -ENOENT) return {};
  return errno_error(what, -err);
}

// libbpf's low-level calls return -errno; a missing key is ENOENT.
template <class Value>
Result<std::optional<Value>> lookup(int fd, const void* key, std::string_view what) {
  Value value{};
  const int err = bpf_map_lookup_elem(fd, key, &value);
  if (err == 0) return std::optional(value);
  if (err == -ENOENT) return std::optional<Value>();
  return errno_error(what, -err);
}

// The two key layouts, behind one interface, so every frontend operation is written once.
struct ServiceKey {
  xlb_service_key_v4 v4{};
  xlb_service_key_v6 v6{};
  bool is_v6 = false;

  explicit ServiceKey(const FrontendKey& key) : is_v6(!key.address.is_v4()) {
    const auto& bytes = key.address.bytes();
    const auto protocol = static_cast<__u8>(key.protocol == model::Protocol::tcp ? IPPROTO_TCP : IPPROTO_UDP);
    if (is_v6) {
      std::memcpy(v6.address, bytes.data(), 16);
      v6.port = htons(key.port);
      v6.protocol = protocol;
    } else {
      std::memcpy(&v4.address, bytes.data(), 4);
      v4.port = htons(key.port);
      v4.protocol = protocol;
    }
  }
  const void* data() const { return is_v6 ? static_cast<const void*>(&v6) : static_cast<const void*>(&v4); }
};

model::IpAddress address_of(const void* bytes, bool v6) {
  std::array<uint8_t, 16> raw{};
  std::memcpy(raw.data(), bytes, v6 ? 16 : 4);
  char text[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(v6 ? AF_INET6 : AF_INET, raw.data(), text, sizeof text);
  return *model::IpAddress::parse(text);
}

std::optional<model::Protocol> protocol_of(__u8 p) {
  if (p == IPPROTO_TCP) return model::Protocol::tcp;
  if (p == IPPROTO_UDP) return model::Protocol::udp;
  return std::nullopt;
}

// Every key of a hash map; the map may change meanwhile, which only makes the listing stale.
template <class Key>
Result<std::vector<Key>> keys_of(int fd, std::string_view what) {
  std::vector<Key> keys;
  Key key{};
  const void* previous = nullptr;
  for (;;) {
    const int err = bpf_map_get_next_key(fd, previous, &key);
    if (err == -ENOENT) return keys;
    if (err != 0) return errno_error(std::string("list ") + std::string(what), -err);
    keys.push_back(key);
    previous = &keys.back();
  }
}

Result<uint32_t> max_entries(int fd, std::string_view what) {
  bpf_map_info info{};
  __u32 length = sizeof info;
  if (int err = bpf_obj_get_info_by_fd(fd, &info, &length); err != 0)
    return errno_error("read the size of map " + std::string(what), -err);
  return info.max_entries;
}

}  // namespace

struct BpfMaps::ServiceKeys {
  std::vector<xlb_service_key_v4> v4;
  std::vector<xlb_service_key_v6> v6;
};

Result<BpfMaps> BpfMaps::open(const MapFds& fds) {
  BpfMaps m;
  for (auto [fd, to, name] : {std::tuple{fds.services_v4, &m.services_v4_, "xlb_services_v4"},
                              std::tuple{fds.services_v6, &m.services_v6_, "xlb_services_v6"},
                              std::tuple{fds.ring_slots, &m.ring_slots_, "xlb_ring_slots"},
                              std::tuple{fds.backends, &m.backends_, "xlb_backends"},
                              std::tuple{fds.frontend_addrs, &m.frontend_addrs_, "xlb_frontend_addrs"},
                              std::tuple{fds.backend_cache, &m.backend_cache_, "xlb_backend_cache"},
                              std::tuple{fds.service_stats, &m.service_stats_, "xlb_service_stats"},
                              std::tuple{fds.backend_stats, &m.backend_stats_, "xlb_backend_stats"},
                              std::tuple{fds.frontend_filter, &m.frontend_filter_, "xlb_frontend_filter"},
                              std::tuple{fds.frontend_epoch, &m.frontend_epoch_, "xlb_frontend_epoch"}}) {
    auto copy = duplicate(fd, name);
    if (!copy) return copy.error();
    *to = std::move(*copy);
  }
  // The smallest map of each kind is what the node holds (a counter array has slot 0 more).
  m.service_capacity_ = UINT32_MAX;
  for (auto [fd, name, extra] : {std::tuple{m.services_v4_.get(), "xlb_services_v4", 0U},
                                 std::tuple{m.services_v6_.get(), "xlb_services_v6", 0U},
                                 std::tuple{m.service_stats_.get(), "xlb_service_stats", 1U}}) {
    auto n = max_entries(fd, name);
    if (!n) return n.error();
    m.service_capacity_ = std::min(m.service_capacity_, *n - std::min(*n, extra));
  }
  m.backend_capacity_ = UINT32_MAX;
  for (auto [fd, name, extra] : {std::tuple{m.backends_.get(), "xlb_backends", 0U},
                                 std::tuple{m.backend_stats_.get(), "xlb_backend_stats", 1U}}) {
    auto n = max_entries(fd, name);
    if (!n) return n.error();
    m.backend_capacity_ = std::min(m.backend_capacity_, *n - std::min(*n, extra));
  }
  auto ring_slots = max_entries(m.ring_slots_.get(), "xlb_ring_slots");
  if (!ring_slots) return ring_slots.error();
  m.ring_slot_capacity_ = *ring_slots * XLB_RING_SLOTS_PER_ENTRY;  // two slots an entry (xlb_abi.h)
  m.ring_ranges_ = RingRanges(m.ring_slot_capacity_);
  if (m.ring_slot_capacity_ > 0) {
    // Rings are written through a mapping of the array: a memcpy rather than a system call. Its
    // entries are pairs of slots (8 bytes, the kernel's element size), so the mapping is a plain
    // array of slots.
    static_assert(sizeof(xlb_ring_pair) == XLB_RING_SLOTS_PER_ENTRY * sizeof(BackendId));
    const size_t length = static_cast<size_t>(m.ring_slot_capacity_) * sizeof(BackendId);
    void* mapped = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, m.ring_slots_.get(), 0);
    if (mapped == MAP_FAILED)
      return errno_error("map xlb_ring_slots into memory", errno,
                         "it must be made with BPF_F_MMAPABLE; an older xlb's pinned map? run xlbd --cleanup");
    m.ring_map_ = std::unique_ptr<BackendId, Unmap>(static_cast<BackendId*>(mapped), Unmap{length});
  }
  auto filter_words = max_entries(m.frontend_filter_.get(), "xlb_frontend_filter");
  if (!filter_words) return filter_words.error();
  if (*filter_words != XLB_FRONTEND_FILTER_WORDS)
    return Error{"the pinned xlb_frontend_filter holds " + std::to_string(*filter_words) + " words, not " +
                 std::to_string(XLB_FRONTEND_FILTER_WORDS) + ": run xlbd --cleanup"};
  const size_t filter_length = XLB_FRONTEND_FILTER_WORDS * sizeof(uint64_t);
  void* filter = ::mmap(nullptr, filter_length, PROT_READ | PROT_WRITE, MAP_SHARED, m.frontend_filter_.get(), 0);
  if (filter == MAP_FAILED) return errno_error("map xlb_frontend_filter into memory", errno);
  m.filter_words_ = std::unique_ptr<uint64_t, Unmap>(static_cast<uint64_t*>(filter), Unmap{filter_length});
  m.slots_ = std::make_unique<Slots>(m.service_capacity_, m.backend_capacity_);
  auto keys = m.service_keys();
  if (!keys) return keys.error();
  if (Status s = m.adopt_slots(*keys); !s) return s.error();
  m.rebuild_filter(*keys);
  // Whatever the flow cache holds was made by a program before this start.
  if (Status s = m.next_frontend_epoch(); !s) return s.error();
  return m;
}

void Unmap::operator()(void* p) const {
  if (p != nullptr) ::munmap(p, length);
}

BpfMaps::RingRanges::RingRanges(uint32_t capacity) : free_slots_(capacity) {
  if (capacity > 0) free_.emplace(0, capacity);
}

std::optional<uint32_t> BpfMaps::RingRanges::take(uint32_t size) {
  if (size == 0) return std::nullopt;
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    if (it->second < size) continue;
    const uint32_t offset = it->first;
    const uint32_t rest = it->second - size;
    free_.erase(it);
    if (rest > 0) free_.emplace(offset + size, rest);
    used_.emplace(offset, size);
    free_slots_ -= size;
    return offset;
  }
  return std::nullopt;
}

bool BpfMaps::RingRanges::claim(uint32_t offset, uint32_t size) {
  if (size == 0) return false;
  // The free range that holds [offset, offset + size) whole, if one does.
  auto it = free_.upper_bound(offset);
  if (it == free_.begin()) return false;
  --it;
  const uint64_t start = it->first, end = start + it->second;
  if (offset < start || uint64_t{offset} + size > end) return false;
  free_.erase(it);
  if (offset > start) free_.emplace(static_cast<uint32_t>(start), offset - static_cast<uint32_t>(start));
  if (uint64_t{offset} + size < end)
    free_.emplace(offset + size, static_cast<uint32_t>(end - (uint64_t{offset} + size)));
  used_.emplace(offset, size);
  free_slots_ -= size;
  return true;
}

bool BpfMaps::RingRanges::owns(uint32_t offset, uint32_t size) const {
  auto it = used_.find(offset);
  return size > 0 && it != used_.end() && it->second == size;
}

void BpfMaps::RingRanges::release_later(uint32_t offset, uint32_t size) {
  if (!owns(offset, size)) return;
  used_.erase(offset);
  released_.emplace_back(offset, size);
}

void BpfMaps::RingRanges::release_now(uint32_t offset, uint32_t size) {
  if (!owns(offset, size)) return;
  used_.erase(offset);
  give_back(offset, size);
}

void BpfMaps::RingRanges::reclaim() {
  for (auto [offset, size] : released_) give_back(offset, size);
  released_.clear();
}

void BpfMaps::RingRanges::give_back(uint32_t offset, uint32_t size) {
  free_slots_ += size;
  auto next = free_.lower_bound(offset);
  if (next != free_.end() && offset + size == next->first) {
    size += next->second;
    next = free_.erase(next);
  }
  if (next != free_.begin()) {
    auto before = std::prev(next);
    if (before->first + before->second == offset) {
      before->second += size;
      return;
    }
  }
  free_.emplace(offset, size);
}

uint32_t BpfMaps::RingRanges::largest_free() const {
  uint32_t largest = 0;
  for (const auto& [offset, size] : free_) largest = std::max(largest, size);
  return largest;
}

Error BpfMaps::ring_slots_full(std::string_view what, uint32_t size) const {
  return Error{std::string(what) + ": the datapath's ring slots are full: a ring of " + std::to_string(size) +
               " slots does not fit (" + std::to_string(ring_ranges_.free_slots()) + " of " +
               std::to_string(ring_slot_capacity_) + " free, at most " + std::to_string(ring_ranges_.largest_free()) +
               " in one range). Raise [node] max_ring_slots in the configuration; the maps pinned now keep their size "
               "until xlbd --cleanup (which interrupts traffic) and the next start"};
}

void BpfMaps::write_ring(uint32_t offset, const std::vector<BackendId>& ring, bool in_place) {
  BackendId* slots = ring_map_.get() + offset;
  if (in_place) {
    // A program may be reading these slots: whole 4-byte stores, never torn.
    for (size_t i = 0; i < ring.size(); ++i) std::atomic_ref<BackendId>(slots[i]).store(ring[i], std::memory_order_relaxed);
  } else {
    std::memcpy(slots, ring.data(), ring.size() * sizeof(BackendId));
  }
  // The slots before the entry that points at them (the entry's update is a system call after).
  std::atomic_thread_fence(std::memory_order_release);
}

std::vector<BackendId> BpfMaps::read_ring(uint32_t offset, uint32_t size) const {
  if (size == 0 || uint64_t{offset} + size > ring_slot_capacity_) return {};
  const BackendId* slots = ring_map_.get() + offset;
  return std::vector<BackendId>(slots, slots + size);
}

std::optional<uint32_t> BpfMaps::SlotTable::find(uint32_t id) const {
  auto it = of_id.find(id);
  return it == of_id.end() ? std::nullopt : std::optional(it->second);
}

bool BpfMaps::SlotTable::claim(uint32_t id, uint32_t slot) {
  if (slot == 0 || slot >= owner.size() || owner[slot] != 0 || of_id.count(id)) return false;
  owner[slot] = id;
  of_id[id] = slot;
  cursor = std::max(cursor, slot);
  return true;
}

std::optional<uint32_t> BpfMaps::SlotTable::take(uint32_t id) {
  if (auto slot = find(id)) return slot;
  const auto slots = static_cast<uint32_t>(owner.size() - 1);
  for (uint32_t tried = 0; tried < slots; ++tried) {
    cursor = cursor >= slots ? 1 : cursor + 1;
    if (owner[cursor] == 0) {
      owner[cursor] = id;
      of_id[id] = cursor;
      return cursor;
    }
  }
  return std::nullopt;
}

void BpfMaps::SlotTable::release(uint32_t id) {
  auto it = of_id.find(id);
  if (it == of_id.end()) return;
  owner[it->second] = 0;
  of_id.erase(it);
}

ServiceId BpfMaps::service_at_slot(uint32_t slot) const {
  std::lock_guard lock(slots_->mutex);
  return slot < slots_->services.owner.size() ? slots_->services.owner[slot] : 0;
}

BackendId BpfMaps::backend_at_slot(uint32_t slot) const {
  std::lock_guard lock(slots_->mutex);
  return slot < slots_->backends.owner.size() ? slots_->backends.owner[slot] : 0;
}

Result<uint32_t> BpfMaps::slot_for(bool backend, uint32_t id, std::string_view what) {
  auto slots = slots_for(backend, {id}, [&](size_t) { return std::string(what); });
  if (!slots) return slots.error();
  return slots->front();
}

Result<std::vector<uint32_t>> BpfMaps::slots_for(bool backend, const std::vector<uint32_t>& ids,
                                                 const std::function<std::string(size_t)>& what) {
  std::vector<uint32_t> slots;
  slots.reserve(ids.size());
  std::vector<uint32_t> fresh;  // the slots taken now, with the index of their id
  std::vector<size_t> fresh_at;
  auto give_back_fresh = [&] {
    std::lock_guard lock(slots_->mutex);
    for (size_t i : fresh_at) (backend ? slots_->backends : slots_->services).release(ids[i]);
  };
  std::optional<size_t> full_at;
  {
    std::lock_guard lock(slots_->mutex);
    SlotTable& table = backend ? slots_->backends : slots_->services;
    for (size_t i = 0; i < ids.size() && !full_at; ++i) {
      std::optional<uint32_t> slot = table.find(ids[i]);
      if (!slot && (slot = table.take(ids[i]))) {
        fresh.push_back(*slot);
        fresh_at.push_back(i);
      }
      if (slot)
        slots.push_back(*slot);
      else
        full_at = i;
    }
  }
  if (full_at) return give_back_fresh(), full(what(*full_at), backend);
  if (fresh.empty()) return slots;
  // A slot given again starts from zero, on every CPU: one write for the whole batch.
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return give_back_fresh(), errno_error("count CPUs", cpus < 0 ? -cpus : EINVAL);
  const std::vector<xlb_stats> zeros(fresh.size() * static_cast<size_t>(cpus));
  auto count = static_cast<__u32>(fresh.size());
  const int fd = backend ? backend_stats_.get() : service_stats_.get();
  if (int err = bpf_map_update_batch(fd, fresh.data(), zeros.data(), &count, nullptr); err != 0) {
    const size_t failed = fresh_at[std::min<size_t>(count, fresh.size() - 1)];
    give_back_fresh();
    return errno_error(what(failed) + ": zero its counters", -err);
  }
  return slots;
}

void BpfMaps::release_slot(bool backend, uint32_t id) {
  std::lock_guard lock(slots_->mutex);
  (backend ? slots_->backends : slots_->services).release(id);
}

Result<BpfMaps::ServiceKeys> BpfMaps::service_keys() const {
  auto v4 = keys_of<xlb_service_key_v4>(services_v4_.get(), "xlb_services_v4");
  if (!v4) return v4.error();
  auto v6 = keys_of<xlb_service_key_v6>(services_v6_.get(), "xlb_services_v6");
  if (!v6) return v6.error();
  return ServiceKeys{std::move(*v4), std::move(*v6)};
}

Status BpfMaps::adopt_slots(const ServiceKeys& keys) {
  auto backends = keys_of<BackendId>(backends_.get(), "xlb_backends");
  if (!backends) return backends.error();
  std::vector<std::pair<BackendId, xlb_backend>> unslotted;
  for (BackendId id : *backends) {
    auto value = lookup<xlb_backend>(backends_.get(), &id, "read backend " + std::to_string(id));
    if (!value) return value.error();
    if (!value->has_value()) continue;
    if (!slots_->backends.claim(id, (*value)->stats_slot)) unslotted.emplace_back(id, **value);
  }
  for (auto& [id, value] : unslotted) {
    const std::string what = "give backend " + std::to_string(id) + " a counter slot";
    auto slot = slot_for(true, id, what);
    if (!slot) return slot.error();
    value.stats_slot = *slot;
    if (Status s = update(backends_.get(), &id, &value, what); !s) return s;
  }
  auto adopt = [&](int fd, const auto& family_keys) -> Status {
    using Key = typename std::decay_t<decltype(family_keys)>::value_type;
    std::vector<std::pair<Key, xlb_service_value>> unslotted_services;
    for (const auto& k : family_keys) {
      auto value = lookup<xlb_service_value>(fd, &k, "read a service entry");
      if (!value) return value.error();
      if (!value->has_value()) continue;
      // Its ring's range is in use. One that is not (outside the array, or overlapping another
      // entry's) stays where it is until the entry's next ring, which gets a range of its own.
      if ((*value)->ring_size > 0) ring_ranges_.claim((*value)->ring_offset, (*value)->ring_size);
      if (!slots_->services.claim((*value)->service_id, XLB_SERVICE_STATS_SLOT((*value)->flags)))
        unslotted_services.emplace_back(k, **value);
    }
    for (auto& [k, value] : unslotted_services) {
      const std::string what = "give service id " + std::to_string(value.service_id) + " a counter slot";
      auto slot = slot_for(false, value.service_id, what);
      if (!slot) return slot.error();
      value.flags = (value.flags & XLB_SERVICE_FLAGS_MASK) | (*slot << XLB_SERVICE_SLOT_SHIFT);
      if (Status s = update(fd, &k, &value, what); !s) return s;
    }
    return {};
  };
  if (Status s = adopt(services_v4_.get(), keys.v4); !s) return s;
  return adopt(services_v6_.get(), keys.v6);
}

Error BpfMaps::full(std::string_view what, bool backends) const {
  const uint32_t capacity = backends ? backend_capacity_ : service_capacity_;
  const std::string things = backends ? "backends" : "frontends (service ids)";
  const std::string key = backends ? "max_backends" : "max_services";
  return Error{std::string(what) + ": the datapath is full: it holds at most " + std::to_string(capacity) + " " +
               things + ". Raise [node] " + key +
               " in the configuration; the maps pinned now keep their size until xlbd --cleanup (which interrupts "
               "traffic) and the next start"};
}

namespace {

std::string backend_what(const BackendEntry& b) {
  return "write backend " + std::to_string(b.id) + " (" + b.address.to_string() + ":" + std::to_string(b.port) + ")";
}

}  // namespace

Status BpfMaps::upsert_backends(const std::vector<BackendEntry>& backends) {
  if (backends.empty()) return {};
  std::vector<BackendId> ids;
  std::vector<xlb_backend> values;
  ids.reserve(backends.size());
  values.reserve(backends.size());
  for (const auto& b : backends) {
    if (b.id == XLB_BACKEND_ID_NONE || b.id >= XLB_MAX_BACKENDS)
      return Error{backend_what(b) + ": backend ids go from 1 to " + std::to_string(XLB_MAX_BACKENDS - 1)};
    xlb_backend value{};
    std::memcpy(value.address, b.address.bytes().data(), b.address.is_v4() ? 4 : 16);
    value.port = htons(b.port);
    value.family = b.address.is_v4() ? XLB_AF_INET : XLB_AF_INET6;
    value.state = b.draining ? XLB_BACKEND_DRAINING : XLB_BACKEND_ACTIVE;
    ids.push_back(b.id);
    values.push_back(value);
  }
  auto slots = slots_for(true, ids, [&](size_t i) { return backend_what(backends[i]); });
  if (!slots) return slots.error();
  for (size_t i = 0; i < values.size(); ++i) values[i].stats_slot = (*slots)[i];
  // One system call for the batch; each entry is written whole, as a single update writes it.
  auto count = static_cast<__u32>(ids.size());
  const int err = bpf_map_update_batch(backends_.get(), ids.data(), values.data(), &count, nullptr);
  if (err == 0) return {};
  // The batch stopped at backends[count]: it and those after it give back a slot taken for them.
  const size_t failed = std::min<size_t>(count, backends.size() - 1);
  const std::string what = backend_what(backends[failed]);
  for (size_t i = failed; i < ids.size(); ++i) {
    auto present = lookup<xlb_backend>(backends_.get(), &ids[i], what);
    if (present && !present->has_value()) release_slot(true, ids[i]);
  }
  if (err == -E2BIG) return full(what, true);
  return errno_error(what, -err);
}

Status BpfMaps::remove_backend(BackendId id) {
  const std::string what = "remove backend " + std::to_string(id);
  if (Status s = delete_if_present(backends_.get(), &id, what); !s) return s;
  release_slot(true, id);
  return forget_cached_backend(id);
}

// The XDP program keeps each backend and its next hop in a per-CPU cache for up to a second;
// clearing the slot moves the removed backend's flows at once instead.
Status BpfMaps::forget_cached_backend(BackendId id) {
  bpf_map_info info{};
  __u32 length = sizeof info;
  if (int err = bpf_obj_get_info_by_fd(backend_cache_.get(), &info, &length); err != 0)
    return errno_error("read the backend cache's layout", -err);
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0 || info.max_entries == 0) return errno_error("count CPUs", cpus < 0 ? -cpus : EINVAL);
  // Per-CPU values are laid out 8-byte aligned, one per possible CPU.
  const size_t value_size = (info.value_size + 7) / 8 * 8;
  const std::vector<uint8_t> zeros(value_size * static_cast<size_t>(cpus));
  const __u32 slot = id % info.max_entries;
  return update(backend_cache_.get(), &slot, zeros.data(), "clear backend " + std::to_string(id) + " from the cache");
}

Status BpfMaps::count_frontend_addresses(const std::map<model::IpAddress, int>& deltas) {
  const int fd = frontend_addrs_.get();
  auto what = [](const model::IpAddress& address) { return "count the frontends of " + address.to_string(); };
  std::vector<xlb_frontend_addr_key> keys;
  std::vector<__u32> counts;
  std::vector<const model::IpAddress*> addresses;
  for (const auto& [address, delta] : deltas) {
    xlb_frontend_addr_key key{};
    std::memcpy(key.address, address.bytes().data(), address.is_v4() ? 4 : 16);
    key.family = address.is_v4() ? XLB_AF_INET : XLB_AF_INET6;
    __u32 count = 0;
    if (int err = bpf_map_lookup_elem(fd, &key, &count); err == -ENOENT)
      count = 0;
    else if (err != 0)
      return errno_error(what(address), -err);
    const int64_t now = static_cast<int64_t>(count) + delta;
    if (now <= 0) {
      if (Status s = delete_if_present(fd, &key, what(address)); !s) return s;
      continue;
    }
    keys.push_back(key);
    counts.push_back(static_cast<__u32>(now));
    addresses.push_back(&address);
  }
  if (keys.empty()) return {};
  auto written = static_cast<__u32>(keys.size());
  if (int err = bpf_map_update_batch(fd, keys.data(), counts.data(), &written, nullptr); err != 0) {
    const auto& address = *addresses[std::min<size_t>(written, keys.size() - 1)];
    return err == -E2BIG ? full(what(address), false) : errno_error(what(address), -err);
  }
  return {};
}

namespace {

uint32_t filter_bit(const void* service_key, bool v6) {
  if (v6) {
    const auto* k = static_cast<const xlb_service_key_v6*>(service_key);
    return xlb_frontend_filter_bit(k->address, k->port, k->protocol);
  }
  const auto* k = static_cast<const xlb_service_key_v4*>(service_key);
  const __be32 address[4] = {k->address, 0, 0, 0};
  return xlb_frontend_filter_bit(address, k->port, k->protocol);
}

}  // namespace

// The programs read the words while this writes them: one atomic read-modify-write a bit, so
// that no other bit of the word is ever seen clear.
void BpfMaps::count_in_filter(const void* service_key, bool v6, int delta) {
  const uint32_t bit = filter_bit(service_key, v6);
  std::atomic_ref<uint64_t> word(filter_words_.get()[bit / 64]);
  const uint64_t mask = 1ULL << (bit % 64);
  uint32_t& count = filter_counts_[bit];
  if (delta > 0) {
    if (count++ == 0) word.fetch_or(mask);
    return;
  }
  if (count > 0 && --count == 0) {
    word.fetch_and(~mask);
    filter_counts_.erase(bit);
  }
}

void BpfMaps::rebuild_filter(const ServiceKeys& keys) {
  filter_counts_.clear();
  for (const auto& k : keys.v4) ++filter_counts_[filter_bit(&k, false)];
  for (const auto& k : keys.v6) ++filter_counts_[filter_bit(&k, true)];
  std::vector<uint64_t> wanted(XLB_FRONTEND_FILTER_WORDS, 0);
  for (const auto& [bit, count] : filter_counts_) wanted[bit / 64] |= 1ULL << (bit % 64);
  for (size_t i = 0; i < wanted.size(); ++i) {
    std::atomic_ref<uint64_t> word(filter_words_.get()[i]);
    if (word.load() != wanted[i]) word.store(wanted[i]);
  }
}

Status BpfMaps::next_frontend_epoch() {
  const __u32 zero = 0;
  auto epoch = lookup<__u32>(frontend_epoch_.get(), &zero, "read the frontends' epoch");
  if (!epoch) return epoch.error();
  __u32 next = epoch->value_or(0) + 1;
  if (next == 0) next = 1;  // 0 is what an empty flow cache entry holds
  return update(frontend_epoch_.get(), &zero, &next, "move the frontends' epoch");
}

namespace {

// One frontend of a batch on its way into the maps.
struct PendingFrontend {
  const FrontendEntry* entry;
  ServiceKey key;
  xlb_service_value value{};
  std::optional<xlb_service_value> old;
  bool new_range = false;  // value's ring is a range taken by this write (else rewritten in place, or none)
  bool written = false;    // its entry is in the map
};

std::string frontend_what(const FrontendEntry& f) { return "write frontend " + f.key.to_string(); }

// Writes the entries of one family (v4 or v6 keys) of `pending` in one system call, each entry
// whole as a single update writes it, and marks them written. On an error, the index in
// `pending` of the entry that failed (those of the family before it are written), and -errno.
template <class Key>
std::pair<size_t, int> write_entries(int fd, std::vector<PendingFrontend>& pending, bool v6, Key ServiceKey::*key) {
  std::vector<Key> keys;
  std::vector<xlb_service_value> values;
  std::vector<size_t> at;
  for (size_t i = 0; i < pending.size(); ++i) {
    if (pending[i].key.is_v6 != v6) continue;
    keys.push_back(pending[i].key.*key);
    values.push_back(pending[i].value);
    at.push_back(i);
  }
  if (keys.empty()) return {0, 0};
  auto written = static_cast<__u32>(keys.size());
  const int err = bpf_map_update_batch(fd, keys.data(), values.data(), &written, nullptr);
  for (size_t j = 0; j < std::min<size_t>(written, at.size()); ++j) pending[at[j]].written = true;
  if (err == 0) return {0, 0};
  return {at[std::min<size_t>(written, at.size() - 1)], err};
}

}  // namespace

Status BpfMaps::upsert_frontends(const std::vector<FrontendEntry>& frontends) {
  ring_ranges_.reclaim();
  std::vector<PendingFrontend> pending;
  pending.reserve(frontends.size());
  // On an error, a range this write took for an entry it did not write is free again at once:
  // nothing points at it.
  auto give_back_new = [&] {
    for (const auto& p : pending) {
      if (p.new_range && !p.written) ring_ranges_.release_now(p.value.ring_offset, p.value.ring_size);
      if (!p.old && !p.written) count_in_filter(p.key.data(), p.key.is_v6, -1);
    }
  };
  // Everything checked and read before anything is written.
  std::vector<bool> known_backends;  // by id: checked in this batch
  std::map<model::IpAddress, int> new_at;  // new frontends by address
  std::vector<uint32_t> service_ids;
  service_ids.reserve(frontends.size());
  for (const auto& f : frontends) {
    if (f.ring.size() > XLB_MAX_RING_SIZE)
      return Error{frontend_what(f) + ": a ring of " + std::to_string(f.ring.size()) +
                   " slots is larger than the maximum " + std::to_string(XLB_MAX_RING_SIZE)};
    if (f.service_id == 0 || f.service_id >= XLB_MAX_SERVICES)
      return Error{frontend_what(f) + ": service ids go from 1 to " + std::to_string(XLB_MAX_SERVICES - 1)};
    if (Status s = check_backends_exist(f.ring, known_backends); !s) return prefixed(frontend_what(f), s.error());
    PendingFrontend p{&f, ServiceKey(f.key), {}, std::nullopt, false, false};
    xlb_service_value old{};
    const int err = bpf_map_lookup_elem(p.key.is_v6 ? services_v6_.get() : services_v4_.get(), p.key.data(), &old);
    if (err == 0)
      p.old = old;
    else if (err != -ENOENT)
      return errno_error(frontend_what(f), -err);
    else
      ++new_at[f.key.address];
    service_ids.push_back(f.service_id);
    pending.push_back(std::move(p));
  }
  auto slots = slots_for(false, service_ids, [&](size_t i) { return frontend_what(frontends[i]); });
  if (!slots) return slots.error();
  if (Status s = count_frontend_addresses(new_at); !s) return s;
  for (const auto& p : pending)
    if (!p.old) count_in_filter(p.key.data(), p.key.is_v6, +1);

  for (size_t i = 0; i < pending.size(); ++i) {
    auto& p = pending[i];
    const FrontendEntry& f = *p.entry;
    p.value.service_id = f.service_id;
    p.value.ring_size = static_cast<__u32>(f.ring.size());
    p.value.flags = (f.snat ? XLB_SERVICE_F_SNAT : 0) | (f.dsr ? XLB_SERVICE_F_DSR : 0) |
                    (f.affinity ? XLB_SERVICE_F_AFFINITY : 0) | ((*slots)[i] << XLB_SERVICE_SLOT_SHIFT);
    p.value.affinity_timeout_s = f.affinity_timeout_s;
    if (f.ring.empty()) continue;
    // A ring of the same size is rewritten where it is: a program that picks a slot during the
    // write gets the old or the new backend of that slot, both in the maps until the plan's
    // removals, which come after; conntrack then keeps the flow where it went. Any other
    // ring goes to a range of its own, written before the entry points at it.
    if (p.old && ring_ranges_.owns(p.old->ring_offset, p.old->ring_size) && p.old->ring_size == f.ring.size()) {
      p.value.ring_offset = p.old->ring_offset;
      write_ring(p.value.ring_offset, f.ring, true);
    } else {
      auto offset = ring_ranges_.take(p.value.ring_size);
      if (!offset) return give_back_new(), ring_slots_full(frontend_what(f), p.value.ring_size);
      p.value.ring_offset = *offset;
      p.new_range = true;
      write_ring(p.value.ring_offset, f.ring, false);
    }
  }

  // The entries, after every ring they point at: one batch per family.
  auto [failed, err] = write_entries(services_v4_.get(), pending, false, &ServiceKey::v4);
  if (err == 0) std::tie(failed, err) = write_entries(services_v6_.get(), pending, true, &ServiceKey::v6);
  const Status epoch_moved = next_frontend_epoch();
  // The ring a written entry leaves is free for the next write, not this one.
  for (const auto& p : pending)
    if (p.written && p.old && (p.value.ring_size == 0 || p.value.ring_offset != p.old->ring_offset))
      ring_ranges_.release_later(p.old->ring_offset, p.old->ring_size);
  if (err != 0) {
    give_back_new();
    const std::string what = frontend_what(*pending[failed].entry) + ": write the service entry";
    return err == -E2BIG ? full(what, false) : errno_error(what, -err);
  }
  if (!epoch_moved) return epoch_moved;
  // The counter slot of a service id that no frontend of this batch took over.
  std::set<ServiceId> now_used;
  for (const auto& p : pending) now_used.insert(p.value.service_id);
  for (const auto& p : pending)
    if (p.old && p.old->service_id != p.value.service_id && !now_used.count(p.old->service_id))
      release_slot(false, p.old->service_id);
  return sync_local_addresses();
}

Status BpfMaps::remove_frontends(const std::vector<FrontendKey>& keys) {
  ring_ranges_.reclaim();
  bool removed = false;
  auto remove = [&](const FrontendKey& k) -> Status {
    const std::string what = "remove frontend " + k.to_string();
    const ServiceKey key(k);
    const int services = key.is_v6 ? services_v6_.get() : services_v4_.get();
    auto old = lookup<xlb_service_value>(services, key.data(), what);
    if (!old) return old.error();
    if (!old->has_value()) return {};
    // The entry first: once it is gone, nothing reaches the ring.
    if (Status s = delete_if_present(services, key.data(), what); !s) return s;
    removed = true;
    ring_ranges_.release_later((*old)->ring_offset, (*old)->ring_size);
    count_in_filter(key.data(), key.is_v6, -1);
    if (Status s = count_frontend_addresses({{k.address, -1}}); !s) return s;
    release_slot(false, (*old)->service_id);
    return {};
  };
  Status status;
  for (const auto& k : keys)
    if (status = remove(k); !status) break;
  if (removed)
    if (Status s = next_frontend_epoch(); !s && status) status = s;
  if (!status) return status;
  return sync_local_addresses();
}

Status BpfMaps::set_local_dsr_frontends(bool on) {
  local_dsr_frontends_ = on;
  if (on) return sync_local_addresses();
  return datapath::sync_local_addresses({});
}

Status BpfMaps::sync_local_addresses() const {
  if (!local_dsr_frontends_) return {};
  auto wanted = dsr_frontend_addresses();
  if (!wanted) return wanted.error();
  if (Status s = datapath::sync_local_addresses(*wanted); !s) return prefixed("make the dsr frontends local", s.error());
  return {};
}

// The addresses with a frontend in dsr mode, as the maps hold them now.
Result<std::set<model::IpAddress>> BpfMaps::dsr_frontend_addresses() const {
  std::set<model::IpAddress> addresses;
  auto collect = [&](int fd, const auto& keys, auto address_of_key, bool v6) -> Status {
    for (const auto& k : keys) {
      auto value = lookup<xlb_service_value>(fd, &k, "read a service entry");
      if (!value) return value.error();
      if (value->has_value() && ((*value)->flags & XLB_SERVICE_F_DSR)) addresses.insert(address_of(address_of_key(k), v6));
    }
    return {};
  };
  auto v4 = keys_of<xlb_service_key_v4>(services_v4_.get(), "xlb_services_v4");
  if (!v4) return v4.error();
  if (Status s = collect(services_v4_.get(), *v4, [](const auto& k) { return static_cast<const void*>(&k.address); }, false); !s)
    return s.error();
  auto v6 = keys_of<xlb_service_key_v6>(services_v6_.get(), "xlb_services_v6");
  if (!v6) return v6.error();
  if (Status s = collect(services_v6_.get(), *v6, [](const auto& k) { return static_cast<const void*>(k.address); }, true); !s)
    return s.error();
  return addresses;
}

Status BpfMaps::check_backends_exist(const std::vector<BackendId>& ring, std::vector<bool>& known) const {
  std::lock_guard lock(slots_->mutex);
  for (BackendId id : ring) {
    if (id < known.size() && known[id]) continue;
    if (id == XLB_BACKEND_ID_NONE) return Error{"the ring holds backend id 0, which is reserved for empty slots"};
    if (!slots_->backends.find(id))
      return Error{"the ring holds backend " + std::to_string(id) +
                   ", which is not in the backends map (write backends before the services that use them)"};
    if (id >= known.size()) known.resize(id + 1);
    known[id] = true;
  }
  return {};
}

Status BpfMaps::read_frontends(bool v6, State& state) const {
  const int fd = v6 ? services_v6_.get() : services_v4_.get();
  auto read_one = [&](const auto& raw_key, const void* address) -> Status {
    auto value = lookup<xlb_service_value>(fd, &raw_key, "read a service entry");
    if (!value) return value.error();
    if (!value->has_value()) return {};  // removed while we listed
    auto protocol = protocol_of(raw_key.protocol);
    if (!protocol) return {};  // not ours to plan: leave it alone
    FrontendEntry f;
    f.key = {address_of(address, v6), ntohs(raw_key.port), *protocol};
    f.service_id = (*value)->service_id;
    f.snat = (*value)->flags & XLB_SERVICE_F_SNAT;
    f.dsr = (*value)->flags & XLB_SERVICE_F_DSR;
    f.affinity = (*value)->flags & XLB_SERVICE_F_AFFINITY;
    f.affinity_timeout_s = (*value)->affinity_timeout_s;
    f.ring = read_ring((*value)->ring_offset, (*value)->ring_size);
    state.frontends[f.key] = std::move(f);
    return {};
  };
  if (v6) {
    auto keys = keys_of<xlb_service_key_v6>(fd, "xlb_services_v6");
    if (!keys) return keys.error();
    for (const auto& k : *keys)
      if (auto s = read_one(k, k.address); !s) return s;
  } else {
    auto keys = keys_of<xlb_service_key_v4>(fd, "xlb_services_v4");
    if (!keys) return keys.error();
    for (const auto& k : *keys)
      if (auto s = read_one(k, &k.address); !s) return s;
  }
  return {};
}

Result<State> BpfMaps::read() const {
  State state;
  auto ids = keys_of<BackendId>(backends_.get(), "xlb_backends");
  if (!ids) return ids.error();
  for (BackendId id : *ids) {
    auto value = lookup<xlb_backend>(backends_.get(), &id, "read backend " + std::to_string(id));
    if (!value) return value.error();
    if (!value->has_value()) continue;
    const bool v6 = (*value)->family == XLB_AF_INET6;
    state.backends[id] = {id, address_of((*value)->address, v6), ntohs((*value)->port),
                          (*value)->state == XLB_BACKEND_DRAINING};
  }
  for (bool v6 : {false, true})
    if (auto s = read_frontends(v6, state); !s) return s.error();
  return state;
}

}  // namespace xlb::datapath

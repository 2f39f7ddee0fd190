#include "datapath/bpf_maps.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <netinet/in.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <numeric>
#include <optional>
#include <set>

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

}  // namespace

Result<BpfMaps> BpfMaps::open(const MapFds& fds) {
  auto v4 = duplicate(fds.services_v4, "xlb_services_v4");
  auto v6 = duplicate(fds.services_v6, "xlb_services_v6");
  auto rings = duplicate(fds.rings, "xlb_rings");
  auto backends = duplicate(fds.backends, "xlb_backends");
  auto addrs = duplicate(fds.frontend_addrs, "xlb_frontend_addrs");
  auto cache = duplicate(fds.backend_cache, "xlb_backend_cache");
  for (const auto* r : {&v4, &v6, &rings, &backends, &addrs, &cache})
    if (!*r) return r->error();
  return BpfMaps(std::move(*v4), std::move(*v6), std::move(*rings), std::move(*backends), std::move(*addrs),
                 std::move(*cache));
}

Status BpfMaps::upsert_backend(const BackendEntry& b) {
  const std::string what = "write backend " + std::to_string(b.id) + " (" + b.address.to_string() + ":" +
                           std::to_string(b.port) + ")";
  if (b.id == XLB_BACKEND_ID_NONE || b.id >= XLB_MAX_BACKENDS)
    return Error{what + ": backend ids go from 1 to " + std::to_string(XLB_MAX_BACKENDS - 1)};
  xlb_backend value{};
  std::memcpy(value.address, b.address.bytes().data(), b.address.is_v4() ? 4 : 16);
  value.port = htons(b.port);
  value.family = b.address.is_v4() ? XLB_AF_INET : XLB_AF_INET6;
  value.state = b.draining ? XLB_BACKEND_DRAINING : XLB_BACKEND_ACTIVE;
  return update(backends_.get(), &b.id, &value, what);
}

Status BpfMaps::remove_backend(BackendId id) {
  if (Status s = delete_if_present(backends_.get(), &id, "remove backend " + std::to_string(id)); !s) return s;
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

Status BpfMaps::count_frontend_address(const model::IpAddress& address, int delta) {
  xlb_frontend_addr_key key{};
  std::memcpy(key.address, address.bytes().data(), address.is_v4() ? 4 : 16);
  key.family = address.is_v4() ? XLB_AF_INET : XLB_AF_INET6;
  const std::string what = "count the frontends of " + address.to_string();
  auto count = lookup<__u32>(frontend_addrs_.get(), &key, what);
  if (!count) return count.error();
  const int64_t now = static_cast<int64_t>(count->value_or(0)) + delta;
  if (now <= 0) return delete_if_present(frontend_addrs_.get(), &key, what);
  const auto value = static_cast<__u32>(now);
  return update(frontend_addrs_.get(), &key, &value, what);
}

namespace {

// One frontend of a batch on its way into the maps.
struct PendingFrontend {
  const FrontendEntry* entry;
  ServiceKey key;
  int services_fd;
  xlb_service_value value{};
  std::optional<xlb_service_value> old;
  UniqueFd ring;  // the new ring, not yet swapped in; none for an empty ring

  // The programs pick a slot below the entry's ring_size in the ring under its service_id, so
  // an entry must never claim more slots than its installed ring has: a ring that shrinks goes
  // in after its entry, every other ring before.
  bool shrinks() const { return old && old->service_id == value.service_id && value.ring_size < old->ring_size; }
};

}  // namespace

Status BpfMaps::upsert_frontends(const std::vector<FrontendEntry>& frontends) {
  std::vector<PendingFrontend> pending;
  pending.reserve(frontends.size());
  std::set<BackendId> known_backends;
  for (const auto& f : frontends) {
    const std::string what = "write frontend " + f.key.to_string();
    if (f.ring.size() > XLB_MAX_RING_SIZE)
      return Error{what + ": a ring of " + std::to_string(f.ring.size()) + " slots is larger than the maximum " +
                   std::to_string(XLB_MAX_RING_SIZE)};
    if (f.service_id == 0 || f.service_id >= XLB_MAX_SERVICES)
      return Error{what + ": service ids go from 1 to " + std::to_string(XLB_MAX_SERVICES - 1)};
    if (Status s = check_backends_exist(f.ring, known_backends); !s) return prefixed(what, s.error());
    PendingFrontend p{&f, ServiceKey(f.key), 0, {}, std::nullopt, UniqueFd()};
    p.services_fd = p.key.is_v6 ? services_v6_.get() : services_v4_.get();
    auto old = lookup<xlb_service_value>(p.services_fd, p.key.data(), what);
    if (!old) return old.error();
    p.old = *old;
    if (!p.old)
      if (Status s = count_frontend_address(f.key.address, +1); !s) return s;
    p.value.service_id = f.service_id;
    p.value.ring_size = static_cast<__u32>(f.ring.size());
    p.value.flags = (f.snat ? XLB_SERVICE_F_SNAT : 0) | (f.dsr ? XLB_SERVICE_F_DSR : 0) |
                    (f.affinity ? XLB_SERVICE_F_AFFINITY : 0);
    p.value.affinity_timeout_s = f.affinity_timeout_s;
    if (!f.ring.empty()) {
      auto ring = create_ring(f.ring);
      if (!ring) return prefixed(what, ring.error());
      p.ring = std::move(*ring);
    }
    pending.push_back(std::move(p));
  }

  auto write_entries = [&](bool shrinking) -> Status {
    for (const auto& p : pending)
      if (p.shrinks() == shrinking)
        if (Status s = update(p.services_fd, p.key.data(), &p.value,
                              "write frontend " + p.entry->key.to_string() + ": write the service entry");
            !s)
          return s;
    return {};
  };
  if (Status s = write_entries(true); !s) return s;
  std::vector<uint32_t> ring_ids, ring_fds;
  std::vector<ServiceId> unused_rings;
  for (const auto& p : pending) {
    if (p.ring) {
      ring_ids.push_back(p.value.service_id);
      ring_fds.push_back(static_cast<uint32_t>(p.ring.get()));
    } else {
      unused_rings.push_back(p.value.service_id);
    }
    // A frontend that moved to another service id leaves its old ring unused.
    if (p.old && p.old->service_id != p.value.service_id) unused_rings.push_back(p.old->service_id);
  }
  if (Status s = install_rings(ring_ids, ring_fds); !s) return s;
  if (Status s = write_entries(false); !s) return s;
  std::erase_if(unused_rings, [&](ServiceId id) { return std::find(ring_ids.begin(), ring_ids.end(), id) != ring_ids.end(); });
  if (Status s = remove_rings(std::move(unused_rings)); !s) return s;
  return sync_local_addresses();
}

Status BpfMaps::remove_frontends(const std::vector<FrontendKey>& keys) {
  std::vector<ServiceId> rings;
  for (const auto& k : keys) {
    const std::string what = "remove frontend " + k.to_string();
    const ServiceKey key(k);
    const int services = key.is_v6 ? services_v6_.get() : services_v4_.get();
    auto old = lookup<xlb_service_value>(services, key.data(), what);
    if (!old) return old.error();
    if (!old->has_value()) continue;
    // The entry first: once it is gone, nothing reaches the ring.
    if (Status s = delete_if_present(services, key.data(), what); !s) return s;
    if (Status s = count_frontend_address(k.address, -1); !s) return s;
    rings.push_back((*old)->service_id);
  }
  if (Status s = remove_rings(std::move(rings)); !s) return s;
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

Status BpfMaps::check_backends_exist(const std::vector<BackendId>& ring, std::set<BackendId>& known) const {
  for (BackendId id : std::set<BackendId>(ring.begin(), ring.end())) {
    if (known.count(id)) continue;
    if (id == XLB_BACKEND_ID_NONE) return Error{"the ring holds backend id 0, which is reserved for empty slots"};
    auto backend = lookup<xlb_backend>(backends_.get(), &id, "read backend " + std::to_string(id));
    if (!backend) return backend.error();
    if (!backend->has_value())
      return Error{"the ring holds backend " + std::to_string(id) +
                   ", which is not in the backends map (write backends before the services that use them)"};
    known.insert(id);
  }
  return {};
}

// A ring is a new array map, filled before it is swapped in with one update of the outer map, so
// a program sees either the whole old ring or the whole new one.
Result<UniqueFd> BpfMaps::create_ring(const std::vector<BackendId>& ring) const {
  const std::string what = "create a ring of " + std::to_string(ring.size()) + " slots";
  // BPF_F_INNER_MAP must match the template in bpf/lib/maps.h; it allows any max_entries.
  bpf_map_create_opts options{};
  options.sz = sizeof options;
  options.map_flags = BPF_F_INNER_MAP;
  const auto slots = static_cast<__u32>(ring.size());
  UniqueFd inner(bpf_map_create(BPF_MAP_TYPE_ARRAY, "xlb_ring", sizeof(__u32), sizeof(BackendId), slots, &options));
  if (!inner) return errno_error(what, errno);
  std::vector<__u32> keys(ring.size());
  std::iota(keys.begin(), keys.end(), 0U);
  __u32 count = slots;
  if (const int err = bpf_map_update_batch(inner.get(), keys.data(), ring.data(), &count, nullptr); err != 0)
    return errno_error(what + ": fill the slots", -err);
  return inner;
}

// One batch: the kernel then waits for one grace period, not one per ring.
Status BpfMaps::install_rings(const std::vector<uint32_t>& ids, const std::vector<uint32_t>& fds) {
  if (ids.empty()) return {};
  __u32 count = static_cast<__u32>(ids.size());
  if (const int err = bpf_map_update_batch(rings_.get(), ids.data(), fds.data(), &count, nullptr); err != 0)
    return errno_error("swap in " + std::to_string(ids.size()) + " rings (" + std::to_string(count) + " done)", -err,
                       err == -E2BIG ? "the map is full" : "");
  return {};
}

Status BpfMaps::remove_rings(std::vector<ServiceId> ids) {
  // A batch delete stops at the first missing key: keep only those that are there, once.
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  std::erase_if(ids, [&](ServiceId id) {
    __u32 inner = 0;
    return bpf_map_lookup_elem(rings_.get(), &id, &inner) != 0;
  });
  if (ids.empty()) return {};
  __u32 count = static_cast<__u32>(ids.size());
  if (const int err = bpf_map_delete_batch(rings_.get(), ids.data(), &count, nullptr); err != 0 && err != -ENOENT)
    return errno_error("remove " + std::to_string(ids.size()) + " unused rings", -err);
  return {};
}

Result<std::vector<BackendId>> BpfMaps::read_ring(ServiceId id, uint32_t size) const {
  const std::string what = "read the ring of service id " + std::to_string(id);
  // From user space, a map-in-map lookup gives the inner map's id, not an fd.
  auto inner_id = lookup<__u32>(rings_.get(), &id, what);
  if (!inner_id) return inner_id.error();
  if (!inner_id->has_value() || size == 0) return std::vector<BackendId>{};
  const UniqueFd inner(bpf_map_get_fd_by_id(**inner_id));
  if (!inner) return errno_error(what, errno);
  std::vector<BackendId> ring(size);
  std::vector<__u32> keys(size);
  __u32 count = size;
  __u32 batch = 0;
  const int err = bpf_map_lookup_batch(inner.get(), nullptr, &batch, keys.data(), ring.data(), &count, nullptr);
  if (err != 0 && err != -ENOENT) return errno_error(what, -err);
  if (count != size) return Error{what + ": it has " + std::to_string(count) + " slots, the entry says " + std::to_string(size)};
  return ring;
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
    auto ring = read_ring(f.service_id, (*value)->ring_size);
    if (!ring) return ring.error();
    f.ring = std::move(*ring);
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

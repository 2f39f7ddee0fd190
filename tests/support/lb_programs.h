// The XDP and tc programs loaded from their skeletons for tests and benchmarks, sharing one
// instance of every map both define (by name, as xlbd's loader does), with small writers and
// readers for the maps and a way to run either program on a packet (BPF_PROG_TEST_RUN).
// It is independent of src/datapath on purpose: these tests check the kernel side alone.
#pragma once

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "datapath/flows.h"
#include "support/packet.h"
#include "xlb_abi.h"
#include "xlb_tc.skel.h"
#include "xlb_xdp.skel.h"

namespace xlb::test {

inline Error errno_error(const std::string& what, int err) { return Error{what + ": " + std::strerror(err)}; }

// An entry of xlb_backend_cache, as bytes: the layout is the XDP program's own (it is no part
// of the ABI); only its size and the place of checked_ns (offset 8) are used here.
struct xlb_backend_cache_entry_bytes {
  uint8_t bytes[64];
};

struct TestRun {
  int action = -1;  // the program's return value: XDP_* or TC_ACT_*
  Bytes out;        // the packet after the program
  uint32_t duration_ns = 0;
};

// The family of an address as the ABI writes it.
inline __u8 abi_family(const IpAddr& a) { return a.v6() ? XLB_AF_INET6 : XLB_AF_INET; }

inline void copy_addr(__be32 (&to)[4], const IpAddr& a) {
  const auto w = a.words();
  for (int i = 0; i < 4; ++i) to[i] = w[i];
}

inline xlb_flow_key flow_key(const IpAddr& src, uint16_t sport, const IpAddr& dst, uint16_t dport, uint8_t protocol) {
  xlb_flow_key key{};
  copy_addr(key.src, src);
  copy_addr(key.dst, dst);
  key.sport = htons(sport);
  key.dport = htons(dport);
  key.protocol = protocol;
  key.family = abi_family(src);
  return key;
}

class LbPrograms {
 public:
  struct Options {
    // Overrides the services maps' size before load, as xlbd's [node] max_services does.
    std::optional<uint32_t> services_max_entries;
    bool load_tc = true;
  };

  static Result<std::unique_ptr<LbPrograms>> load(const Options& options) {
    std::unique_ptr<LbPrograms> p(new LbPrograms);
    p->log_.assign(1 << 22, '\0');
    bpf_object_open_opts open{};
    open.sz = sizeof open;
    open.kernel_log_buf = p->log_.data();
    open.kernel_log_size = p->log_.size();

    p->xdp_ = xlb_xdp__open_opts(&open);
    if (!p->xdp_) return errno_error("open xlb_xdp", errno);
    if (options.services_max_entries) {
      bpf_map__set_max_entries(p->xdp_->maps.xlb_services_v4, *options.services_max_entries);
      bpf_map__set_max_entries(p->xdp_->maps.xlb_services_v6, *options.services_max_entries);
      bpf_map__set_max_entries(p->xdp_->maps.xlb_frontend_addrs, *options.services_max_entries);
      bpf_map__set_max_entries(p->xdp_->maps.xlb_service_stats, *options.services_max_entries + 1);
    }
    if (int err = xlb_xdp__load(p->xdp_); err != 0) return p->load_error("xlb_xdp", err);
    if (!options.load_tc) return p;

    p->tc_ = xlb_tc__open_opts(&open);
    if (!p->tc_) return errno_error("open xlb_tc", errno);
    // Every map of the tc object that the XDP object has too is the same map.
    bpf_map* map;
    bpf_object__for_each_map(map, p->tc_->obj) {
      bpf_map* shared = bpf_object__find_map_by_name(p->xdp_->obj, bpf_map__name(map));
      if (shared == nullptr) continue;
      if (int err = bpf_map__reuse_fd(map, bpf_map__fd(shared)); err != 0) {
        return errno_error(std::string("share map ") + bpf_map__name(map), -err);
      }
    }
    if (int err = xlb_tc__load(p->tc_); err != 0) return p->load_error("xlb_tc", err);
    return p;
  }

  ~LbPrograms() {
    if (tc_) xlb_tc__destroy(tc_);
    if (xdp_) xlb_xdp__destroy(xdp_);
  }

  xlb_xdp* xdp() const { return xdp_; }
  xlb_tc* tc() const { return tc_; }
  int fd(bpf_map* map) const { return bpf_map__fd(map); }

  // ---- running --------------------------------------------------------------------------

  Result<TestRun> run_xdp(const Bytes& frame, int ingress_ifindex, int prog_fd = -1) const {
    TestRun run;
    run.out.resize(frame.size() + 512);
    xdp_md ctx{};
    ctx.data_end = static_cast<__u32>(frame.size());
    ctx.ingress_ifindex = static_cast<__u32>(ingress_ifindex);
    bpf_test_run_opts opts{};
    opts.sz = sizeof opts;
    opts.data_in = frame.data();
    opts.data_size_in = static_cast<__u32>(frame.size());
    opts.data_out = run.out.data();
    opts.data_size_out = static_cast<__u32>(run.out.size());
    opts.ctx_in = &ctx;
    opts.ctx_size_in = sizeof ctx;
    opts.repeat = 1;
    const int fd = prog_fd >= 0 ? prog_fd : bpf_program__fd(xdp_->progs.xlb_xdp);
    if (int err = bpf_prog_test_run_opts(fd, &opts); err != 0) return errno_error("test run of xlb_xdp", -err);
    run.action = static_cast<int>(opts.retval);
    run.out.resize(opts.data_size_out);
    run.duration_ns = opts.duration;
    return run;
  }

  // xlb_tc (replies), or another program of the tc object by its fd (xlb_tc_lb, the balancer).
  // A gso_size makes the frame a train of segments of that many payload bytes each (GSO), as
  // a veth or GRO hands them over.
  Result<TestRun> run_tc(const Bytes& frame, int ifindex, int prog_fd = -1, uint32_t gso_size = 0) const {
    TestRun run;
    run.out.resize(frame.size() + 512);
    __sk_buff ctx{};
    ctx.ifindex = static_cast<__u32>(ifindex);
    ctx.gso_size = gso_size;
    bpf_test_run_opts opts{};
    opts.sz = sizeof opts;
    opts.data_in = frame.data();
    opts.data_size_in = static_cast<__u32>(frame.size());
    opts.data_out = run.out.data();
    opts.data_size_out = static_cast<__u32>(run.out.size());
    opts.ctx_in = &ctx;
    opts.ctx_size_in = sizeof ctx;
    opts.repeat = 1;
    const int fd = prog_fd >= 0 ? prog_fd : bpf_program__fd(tc_->progs.xlb_tc);
    if (int err = bpf_prog_test_run_opts(fd, &opts); err != 0) return errno_error("test run of a tc program", -err);
    run.action = static_cast<int>(opts.retval);
    run.out.resize(opts.data_size_out);
    run.duration_ns = opts.duration;
    return run;
  }

  // ---- writers ----------------------------------------------------------------------------

  Status upsert_backend(uint32_t id, const IpAddr& address, uint16_t port, uint8_t state = XLB_BACKEND_ACTIVE) const {
    xlb_backend backend{};
    copy_addr(backend.address, address);
    backend.port = htons(port);
    backend.family = abi_family(address);
    backend.state = state;
    backend.stats_slot = id;  // here a backend's counter slot is its id (xlbd gives slots of its own)
    return update(xdp_->maps.xlb_backends, &id, &backend, "backend");
  }

  Status remove_backend(uint32_t id) const {
    if (bpf_map_delete_elem(fd(xdp_->maps.xlb_backends), &id) != 0) return errno_error("remove backend", errno);
    return {};
  }

  // Writes ring.size() slots of xlb_ring_slots (two to an entry), after those of the rings
  // before, from an even slot: the offset for the service's entry (xlb_service_value.ring_offset).
  // Here no range is ever reused.
  Result<uint32_t> set_ring(const std::vector<uint32_t>& ring) {
    const uint32_t offset = next_ring_slot_;
    const size_t entries = (ring.size() + XLB_RING_SLOTS_PER_ENTRY - 1) / XLB_RING_SLOTS_PER_ENTRY;
    std::vector<__u32> keys(entries);
    std::vector<xlb_ring_pair> pairs(entries);
    for (size_t i = 0; i < entries; ++i) keys[i] = offset / XLB_RING_SLOTS_PER_ENTRY + static_cast<__u32>(i);
    for (size_t slot = 0; slot < ring.size(); ++slot)
      pairs[slot / XLB_RING_SLOTS_PER_ENTRY].backend_id[slot % XLB_RING_SLOTS_PER_ENTRY] = ring[slot];
    __u32 count = static_cast<__u32>(entries);
    if (count > 0 && bpf_map_update_batch(fd(xdp_->maps.xlb_ring_slots), keys.data(), pairs.data(), &count, nullptr) != 0)
      return errno_error("write ring", errno);
    next_ring_slot_ += static_cast<uint32_t>(entries * XLB_RING_SLOTS_PER_ENTRY);
    return offset;
  }

  // The frontend's entry, its bit of the frontend filter and its address in xlb_frontend_addrs,
  // and the frontends' epoch moved on, as xlbd writes a frontend (xlb_abi.h).
  // Unless the value names a counter slot, the service's is its id (bpf/lib/counters.h).
  Status upsert_service(const IpAddr& address, uint16_t port, uint8_t protocol, xlb_service_value value) const {
    if (XLB_SERVICE_STATS_SLOT(value.flags) == 0) value.flags |= value.service_id << XLB_SERVICE_SLOT_SHIFT;
    if (Status s = set_filter_bit(address, port, protocol); !s) return s;
    if (address.v6()) {
      xlb_service_key_v6 key{};
      copy_addr(key.address, address);
      key.port = htons(port);
      key.protocol = protocol;
      if (Status s = update(xdp_->maps.xlb_services_v6, &key, &value, "service"); !s) return s;
    } else {
      xlb_service_key_v4 key{};
      key.address = address.words()[0];
      key.port = htons(port);
      key.protocol = protocol;
      if (Status s = update(xdp_->maps.xlb_services_v4, &key, &value, "service"); !s) return s;
    }
    if (Status s = next_frontend_epoch(); !s) return s;
    return add_frontend_address(address);
  }

  // The frontend's entry gone and the epoch moved on. Its filter bit stays set: a set bit only
  // means "maybe", as after a removal whose bit another frontend shares.
  Status remove_service(const IpAddr& address, uint16_t port, uint8_t protocol) const {
    int err;
    if (address.v6()) {
      xlb_service_key_v6 key{};
      copy_addr(key.address, address);
      key.port = htons(port);
      key.protocol = protocol;
      err = bpf_map_delete_elem(fd(xdp_->maps.xlb_services_v6), &key);
    } else {
      xlb_service_key_v4 key{};
      key.address = address.words()[0];
      key.port = htons(port);
      key.protocol = protocol;
      err = bpf_map_delete_elem(fd(xdp_->maps.xlb_services_v4), &key);
    }
    if (err != 0) return errno_error("remove service", errno);
    return next_frontend_epoch();
  }

  Status set_filter_bit(const IpAddr& address, uint16_t port, uint8_t protocol, bool set = true) const {
    __be32 words[4];
    copy_addr(words, address);
    const __u32 bit = xlb_frontend_filter_bit(words, htons(port), protocol);
    const __u32 word = bit / 64;
    auto bits = lookup<__u64>(xdp_->maps.xlb_frontend_filter, word);
    if (!bits) return errno_error("read the frontend filter", errno);
    *bits = set ? *bits | 1ULL << (bit % 64) : *bits & ~(1ULL << (bit % 64));
    return update(xdp_->maps.xlb_frontend_filter, &word, &*bits, "frontend filter");
  }

  Status next_frontend_epoch() const {
    const __u32 zero = 0;
    auto epoch = lookup<__u32>(xdp_->maps.xlb_frontend_epoch, zero);
    if (!epoch) return errno_error("read the frontend epoch", errno);
    ++*epoch;
    return update(xdp_->maps.xlb_frontend_epoch, &zero, &*epoch, "frontend epoch");
  }

  Status add_frontend_address(const IpAddr& address) const {
    xlb_frontend_addr_key key{};
    copy_addr(key.address, address);
    key.family = abi_family(address);
    const __u32 count = 1;
    return update(xdp_->maps.xlb_frontend_addrs, &key, &count, "frontend address");
  }

  // What xlbd should do when it removes a backend: empty the backend's slot of the XDP
  // program's per-CPU backend cache (bpf/lib/backend_cache.h) on every CPU, so that its
  // flows are balanced again at once rather than within a second.
  Status clear_backend_cache(uint32_t backend_id) const {
    const __u32 slot = backend_id % bpf_map__max_entries(xdp_->maps.xlb_backend_cache);
    return set_percpu(xdp_->maps.xlb_backend_cache, slot, xlb_backend_cache_entry_bytes{});
  }

  // Makes the backend's cached answer a second old on every CPU: what the passing of time
  // does, without waiting for it.
  Status age_backend_cache(uint32_t backend_id) const {
    const __u32 slot = backend_id % bpf_map__max_entries(xdp_->maps.xlb_backend_cache);
    std::vector<xlb_backend_cache_entry_bytes> values(static_cast<size_t>(libbpf_num_possible_cpus()));
    if (bpf_map_lookup_elem(fd(xdp_->maps.xlb_backend_cache), &slot, values.data()) != 0) {
      return errno_error("read the backend cache", errno);
    }
    for (xlb_backend_cache_entry_bytes& v : values) {
      const uint64_t long_ago = 1;
      std::memcpy(v.bytes + 8, &long_ago, sizeof long_ago);  // checked_ns, after id and ifindex
    }
    return update(xdp_->maps.xlb_backend_cache, &slot, values.data(), "backend cache");
  }

  // Empties the XDP program's per-CPU flow cache (bpf/lib/flow_cache.h) on every CPU: what
  // 100 ms do, so that the next packet of every flow reads conntrack again.
  Status clear_flow_cache() const {
    bpf_map* map = xdp_->maps.xlb_flow_cache;
    const std::vector<uint8_t> zeros(bpf_map__value_size(map) * static_cast<size_t>(libbpf_num_possible_cpus()));
    for (__u32 slot = 0; slot < bpf_map__max_entries(map); ++slot) {
      if (Status s = update(map, &slot, zeros.data(), "flow cache"); !s) return s;
    }
    return {};
  }

  // Empties the tc program's per-CPU route cache (bpf/lib/route_cache.h) on every CPU: what a
  // second does, so that the next reply asks the kernel for its route again.
  Status clear_route_cache() const {
    bpf_map* map = tc_->maps.xlb_route_cache;
    const std::vector<uint8_t> zeros(bpf_map__value_size(map) * static_cast<size_t>(libbpf_num_possible_cpus()));
    for (__u32 slot = 0; slot < bpf_map__max_entries(map); ++slot) {
      if (Status s = update(map, &slot, zeros.data(), "route cache"); !s) return s;
    }
    return {};
  }

  Status set_node(const xlb_node_config& node) const {
    const __u32 zero = 0;
    return update(xdp_->maps.xlb_node, &zero, &node, "node");
  }

  // Writes value to every CPU's copy of a per-CPU array entry.
  template <class T>
  Status set_percpu(bpf_map* map, __u32 key, const T& value) const {
    std::vector<T> values(static_cast<size_t>(libbpf_num_possible_cpus()), value);
    return update(map, &key, values.data(), bpf_map__name(map));
  }

  // ---- readers ----------------------------------------------------------------------------

  // A per-CPU counter summed over the CPUs.
  xlb_stats stats(bpf_map* map, __u32 index) const {
    std::vector<xlb_stats> values(static_cast<size_t>(libbpf_num_possible_cpus()));
    xlb_stats sum{};
    if (bpf_map_lookup_elem(fd(map), &index, values.data()) != 0) return sum;
    for (const xlb_stats& v : values) {
      sum.packets += v.packets;
      sum.bytes += v.bytes;
      sum.new_flows += v.new_flows;
    }
    return sum;
  }
  xlb_stats reason(__u32 reason) const { return stats(xdp_->maps.xlb_reason_stats, reason); }
  // By counter slot, which is the id here (upsert_backend, upsert_service).
  xlb_stats service(__u32 id) const { return stats(xdp_->maps.xlb_service_stats, id); }
  xlb_stats backend(__u32 id) const { return stats(xdp_->maps.xlb_backend_stats, id); }

  template <class V, class K>
  std::optional<V> lookup(bpf_map* map, const K& key) const {
    V value{};
    if (bpf_map_lookup_elem(fd(map), &key, &value) != 0) return std::nullopt;
    return value;
  }
  // The seed of conntrack's sets, as the node's settings have it (0 if they cannot be read).
  uint32_t ct_seed() const {
    const __u32 zero = 0;
    return lookup<xlb_node_config>(xdp_->maps.xlb_node, zero).value_or(xlb_node_config{}).ct_seed;
  }
  // The first way of the flow's set.
  uint32_t conntrack_set(const xlb_flow_key& key) const {
    return xlb_ct_first_way(ct_seed(), key.src, key.sport, key.protocol, key.family);
  }
  // Conntrack's way for the flow (nullopt if its set does not hold it, or cannot be read).
  std::optional<xlb::datapath::ConntrackWay> conntrack_way(const xlb_flow_key& key) const {
    auto found = xlb::datapath::find_conntrack_way(fd(xdp_->maps.xlb_conntrack), ct_seed(), key);
    return found ? *found : std::nullopt;
  }
  std::optional<xlb_ct_entry> conntrack(const xlb_flow_key& key) const {
    const auto way = conntrack_way(key);
    if (!way) return std::nullopt;
    return way->way.entry;
  }
  // Conntrack's way at an index, whatever it holds.
  std::optional<xlb::datapath::ConntrackWay> conntrack_way_at(uint32_t index) const {
    xlb::datapath::ConntrackWay found{index, {}};
    if (bpf_map_lookup_elem_flags(fd(xdp_->maps.xlb_conntrack), &index, &found.way, BPF_F_LOCK) != 0)
      return std::nullopt;
    return found;
  }
  Status write_conntrack_way(const xlb::datapath::ConntrackWay& way) const {
    if (bpf_map_update_elem(fd(xdp_->maps.xlb_conntrack), &way.index, &way.way, BPF_F_LOCK) != 0)
      return errno_error("write conntrack", errno);
    return {};
  }
  // Rewrites the flow's conntrack entry in place; an error if conntrack does not hold the flow.
  Status set_conntrack(const xlb_flow_key& key, const xlb_ct_entry& entry) const {
    auto way = conntrack_way(key);
    if (!way) return Error{"conntrack does not hold the flow"};
    way->way.entry = entry;
    return write_conntrack_way(*way);
  }
  // Empties the flow's way, as a node that never saw the flow has it.
  Status forget_conntrack(const xlb_flow_key& key) const {
    auto way = conntrack_way(key);
    if (!way) return Error{"conntrack does not hold the flow"};
    way->way = xlb_ct_way{};
    return write_conntrack_way(*way);
  }
  std::optional<xlb_reverse_nat> reverse_nat(const xlb_flow_key& key) const {
    return lookup<xlb_reverse_nat>(xdp_->maps.xlb_reverse_nat, key);
  }

 private:
  LbPrograms() = default;

  Status update(bpf_map* map, const void* key, const void* value, const std::string& what) const {
    if (bpf_map_update_elem(fd(map), key, value, BPF_ANY) != 0) return errno_error("write " + what, errno);
    return {};
  }

  Error load_error(const std::string& object, int err) const {
    std::string log = log_.substr(0, log_.find('\0'));
    if (log.size() > 4000) log = "..." + log.substr(log.size() - 4000);
    return Error{"load " + object + ": " + std::strerror(-err) + (log.empty() ? "" : "; verifier log:\n" + log)};
  }

  xlb_xdp* xdp_ = nullptr;
  xlb_tc* tc_ = nullptr;
  std::string log_;
  uint32_t next_ring_slot_ = 0;
};

}  // namespace xlb::test

#include "datapath/flows.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <time.h>

#include <cerrno>
#include <cstring>

#include "datapath/errno_error.h"
#include "datapath/flow_key.h"
#include "xlb_abi.h"

namespace xlb::datapath {

namespace {

// The programs' clock for these entries: bpf_ktime_get_coarse_ns.
uint64_t coarse_now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000 + static_cast<uint64_t>(ts.tv_nsec);
}

// A last_seen_ns in the future (a clock read on another CPU a moment later) is no idle time.
uint64_t idle_since(uint64_t last_seen_ns) {
  const uint64_t now = coarse_now_ns();
  return now > last_seen_ns ? now - last_seen_ns : 0;
}

}  // namespace

Result<std::optional<ConntrackWay>> find_conntrack_way(int conntrack_fd, uint32_t seed, const xlb_flow_key& key) {
  const uint32_t first = xlb_ct_first_way(seed, key.src, key.sport, key.protocol, key.family);
  for (uint32_t index = first; index < first + XLB_CT_WAYS; ++index) {
    ConntrackWay found{index, {}};
    if (int err = bpf_map_lookup_elem_flags(conntrack_fd, &index, &found.way, BPF_F_LOCK); err != 0)
      return errno_error("read conntrack", -err);
    if (std::memcmp(&found.way.flow, &key, sizeof key) == 0) return std::optional<ConntrackWay>{found};
  }
  return std::optional<ConntrackWay>{};
}

Result<FlowTables> FlowTables::open(int conntrack_fd, int affinity_fd, int node_fd) {
  UniqueFd conntrack(::fcntl(conntrack_fd, F_DUPFD_CLOEXEC, 0));
  UniqueFd affinity(::fcntl(affinity_fd, F_DUPFD_CLOEXEC, 0));
  UniqueFd node(::fcntl(node_fd, F_DUPFD_CLOEXEC, 0));
  if (!conntrack || !affinity || !node) return errno_error("open the flow tables", errno);
  return FlowTables(std::move(conntrack), std::move(affinity), std::move(node));
}

Result<std::optional<ConntrackEntry>> FlowTables::conntrack(const Flow& flow) const {
  const __u32 zero = 0;
  xlb_node_config node{};
  if (int err = bpf_map_lookup_elem(node_.get(), &zero, &node); err != 0)
    return errno_error("read the node's settings", -err);
  auto found = find_conntrack_way(conntrack_.get(), node.ct_seed, flow_key_of(flow));
  if (!found) return found.error();
  if (!*found) return std::optional<ConntrackEntry>{};
  const xlb_ct_entry& entry = (*found)->way.entry;
  const uint64_t last_seen_ns = uint64_t{entry.last_seen_ticks} << XLB_CT_TICK_SHIFT;
  return std::optional<ConntrackEntry>{
      ConntrackEntry{entry.backend_id, entry.service_id, ntohs(entry.snat_port), idle_since(last_seen_ns)}};
}

Result<std::optional<AffinityEntry>> FlowTables::affinity(const model::IpAddress& client, ServiceId service) const {
  xlb_affinity_key key{};
  std::memcpy(key.client, client.bytes().data(), client.is_v4() ? 4 : 16);
  key.service_id = service;
  key.family = client.is_v4() ? XLB_AF_INET : XLB_AF_INET6;
  xlb_affinity_entry entry{};
  if (int err = bpf_map_lookup_elem(affinity_.get(), &key, &entry); err != 0) {
    if (err == -ENOENT) return std::optional<AffinityEntry>{};
    return errno_error("read the affinity table", -err);
  }
  return std::optional<AffinityEntry>{AffinityEntry{entry.backend_id, idle_since(entry.last_seen_ns)}};
}

}  // namespace xlb::datapath

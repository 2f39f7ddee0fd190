// The programs' flow tables, read for one flow: what conntrack and ClientIP affinity hold for
// it (bpf/lib/conntrack.h, bpf/lib/affinity.h). FlowReader is the interface, so that what is
// decided from them (trace.h) is tested without a kernel; FlowTables reads the kernel's maps.
#pragma once

#include <cstdint>
#include <optional>

#include "base/result.h"
#include "base/unique_fd.h"
#include "datapath/state.h"
#include "model/model.h"
#include "xlb_abi.h"

namespace xlb::datapath {

// A flow as the client sends it to a frontend.
struct Flow {
  model::IpAddress client;
  uint16_t client_port = 0;
  model::IpAddress frontend;
  uint16_t frontend_port = 0;
  model::Protocol protocol = model::Protocol::tcp;
};

// xlb_conntrack's entry for a flow.
struct ConntrackEntry {
  BackendId backend_id = 0;
  ServiceId service_id = 0;
  uint16_t snat_port = 0;  // snat: this node's source port toward the backend; else 0
  uint64_t idle_ns = 0;    // since the programs last refreshed it (at most every 67 ms)
};

// xlb_affinity's entry for a client of a service.
struct AffinityEntry {
  BackendId backend_id = 0;
  uint64_t idle_ns = 0;  // since the client's last new flow
};

// Where conntrack keeps a flow (bpf/lib/conntrack.h): the index of its way among the ways of
// its client's set, and the way as read under its lock.
struct ConntrackWay {
  uint32_t index = 0;
  xlb_ct_way way{};
};

// The way that holds the flow, or nullopt if its set does not; seed is the node's
// (xlb_node_config.ct_seed).
Result<std::optional<ConntrackWay>> find_conntrack_way(int conntrack_fd, uint32_t seed, const xlb_flow_key& key);

class FlowReader {
 public:
  virtual ~FlowReader() = default;
  virtual Result<std::optional<ConntrackEntry>> conntrack(const Flow& flow) const = 0;
  virtual Result<std::optional<AffinityEntry>> affinity(const model::IpAddress& client, ServiceId service) const = 0;
};

class FlowTables final : public FlowReader {
 public:
  // The programs' xlb_conntrack, xlb_affinity and xlb_node (for conntrack's seed) maps; the
  // fds are duplicated.
  static Result<FlowTables> open(int conntrack_fd, int affinity_fd, int node_fd);

  Result<std::optional<ConntrackEntry>> conntrack(const Flow& flow) const override;
  Result<std::optional<AffinityEntry>> affinity(const model::IpAddress& client, ServiceId service) const override;

 private:
  FlowTables(UniqueFd conntrack, UniqueFd affinity, UniqueFd node)
      : conntrack_(std::move(conntrack)), affinity_(std::move(affinity)), node_(std::move(node)) {}

  UniqueFd conntrack_;
  UniqueFd affinity_;
  UniqueFd node_;
};

}  // namespace xlb::datapath

// The kernel side as one object: loads the XDP, tc and socket programs from their embedded
// skeletons, shares one set of maps between them (pinned under the pin directory, and re-used
// from there after a restart, so conntrack and rings survive xlbd), attaches the programs, and
// reads their counters. The only code that touches libbpf, netlink and bpffs.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "datapath/bpf_maps.h"
#include "datapath/drop_log.h"
#include "datapath/flows.h"
#include "datapath/state.h"

namespace xlb::datapath {

// libbpf prints its own warnings to stderr; xlb's errors already carry what matters (the
// verifier's log included), so a daemon keeps libbpf quiet unless it is debugging. libbpf's
// printer is process-wide: call this once, at start.
void set_libbpf_verbose(bool verbose);

// /sys/fs/bpf/xlb/v<ABI version>.
std::filesystem::path default_pin_dir();

enum class XdpMode { native, generic };
std::string_view to_string(XdpMode);

// XLB_DEFAULT_SERVICES / XLB_DEFAULT_BACKENDS (checked in datapath.cpp).
inline constexpr uint32_t kDefaultMaxServices = 65536;
inline constexpr uint32_t kDefaultMaxBackends = 131072;
// XLB_DEFAULT_RING_SLOTS; and the most [node] max_ring_slots may be (4 GiB of slots).
inline constexpr uint32_t kDefaultMaxRingSlots = 1U << 24;
inline constexpr uint32_t kMaxRingSlotsBound = 1U << 30;

struct LoadOptions {
  // Where maps (and the cgroup link) are pinned, e.g. /sys/fs/bpf/xlb/v3: the ABI version is in
  // the path, so a new layout never adopts an old one's maps. Empty: nothing is pinned, and the
  // maps live only as long as the programs that use them (tests).
  std::filesystem::path pin_dir;
  // How many frontends (service ids) and backends the maps hold ([node] max_services and
  // max_backends): the max_entries of the maps sized by them, set before load. Maps adopted
  // from the pin directory keep the size they were made with (a restart adopts what is
  // pinned; a new size takes effect after xlbd --cleanup): see Datapath::capacity().
  uint32_t max_services = kDefaultMaxServices;
  uint32_t max_backends = kDefaultMaxBackends;
  // How many ring slots xlb_ring_slots holds ([node] max_ring_slots): every ring is a range of
  // it, so it bounds the sum of the ring sizes (4 bytes a slot, allocated at load).
  uint32_t max_ring_slots = kDefaultMaxRingSlots;
};

// What the loaded maps hold, and why it differs from what was asked, if it does.
struct Capacity {
  uint32_t services = 0;
  uint32_t backends = 0;
  std::string note;  // empty, or e.g. "the pinned maps hold 131072 backends; max_backends 262144 takes effect ..."
  uint32_t ring_slots = 0;
};

// An address prefix, e.g. 10.99.0.0/16.
struct Prefix {
  model::IpAddress address;
  uint8_t length = 0;
  bool operator==(const Prefix&) const = default;
};

// This node's settings for the programs (bpf/include/xlb_abi.h: struct xlb_node_config).
struct NodeSettings {
  std::optional<model::IpAddress> snat_ipv4;
  std::optional<model::IpAddress> snat_ipv6;
  uint16_t snat_port_min = 10000;
  uint16_t snat_port_max = 29999;
  uint32_t events_per_second = 100;
  // dsr: outer sources come from these prefixes (bpf/lib/dsr.h); without one, the dsr flows of
  // that family are dropped. The address's host bits are ignored.
  std::optional<Prefix> dsr_source_ipv4;
  std::optional<Prefix> dsr_source_ipv6;
  // This node is a backend of dsr services: tc decapsulates what load balancers send it, and
  // the dsr frontends' addresses are made local (local_addresses.h).
  bool decap = false;
};

// A backend's address and port.
struct Endpoint {
  model::IpAddress address;
  uint16_t port = 0;
};

struct Counter {
  uint64_t packets = 0;
  uint64_t bytes = 0;
  uint64_t new_flows = 0;
};

struct Counters {
  std::map<ServiceId, Counter> services;  // only ids with traffic
  std::map<BackendId, Counter> backends;
  std::map<std::string, Counter> reasons;  // by the reason's words, e.g. "no backend"
  std::map<std::string, Counter> drops;    // the reasons that drop the packet, likewise
};

// Words for a reason code of enum xlb_reason, as an operator reads them.
std::string_view reason_name(uint32_t reason);
// Whether the programs drop a packet for this reason (rather than send, pass or answer it).
bool is_drop(uint32_t reason);

class Datapath {
 public:
  static Result<Datapath> load(const LoadOptions& options);

  Datapath(Datapath&&) noexcept;
  Datapath& operator=(Datapath&&) noexcept;
  ~Datapath();

  MapWriter& maps();
  Capacity capacity() const;
  // The fd of one of xlb's programs by name ("xlb_xdp", "xlb_tc", "xlb_connect4", ...), owned
  // by this object; -1 if there is none. For tests and benchmarks (BPF_PROG_TEST_RUN).
  int program_fd(std::string_view name) const;
  Status write_node(const NodeSettings& settings);

  // XDP on a link for traffic that reaches the node. native falls back to generic (with the
  // reason in the result) when the driver cannot run XDP. Replaces xlb's program already
  // there in one step, so a restart drops no packet.
  Result<XdpMode> attach_xdp(const std::string& interface, XdpMode wanted);
  // tc ingress (clsact) on a link: reverse translation of replies (xlb_tc), or with `balance`
  // the tc balancer that also does what XDP does (xlb_tc_lb, for xdp_mode "tc"). Either
  // replaces the other in one step. With `balance` an XDP program of xlb's on the link is taken
  // off (it would balance first).
  Status attach_tc(const std::string& interface, bool balance = false);
  // Whether this datapath's programs are still on the link (its XDP program when `xdp`, and its
  // tc program, the balancer when `tc_balance`): not after the link was deleted and made again,
  // or the programs taken off.
  Result<bool> attached_to(const std::string& interface, bool xdp, bool tc_balance = false) const;
  // Socket-LB for every process in this cgroup v2 directory and below: every socket-LB program,
  // each through a link pinned as <pin dir>/link_<program> (connect4, sendmsg6, ...). After a
  // restart the pinned links are kept and given the new programs.
  Status attach_cgroup(const std::filesystem::path& cgroup);

  // Destroys the TCP and UDP sockets that socket-LB connected (or sent datagrams) to this
  // backend, in every network namespace of the host (pods have their own: one pass per
  // namespace of a process, or named under /run/netns): their owners' next call fails with
  // ECONNABORTED, so a client does not stay pinned to a backend that left. Sockets that reached
  // the address without xlb's translation are left alone. Needs kernel 6.5+ (bpf_sock_destroy).
  // Call it after the backend is out of every ring, or new sockets may reach it again. Returns
  // how many sockets went; an error if some matched but could not go (kernel before 6.5).
  Result<uint32_t> destroy_sockets_to(const model::IpAddress& address, uint16_t port);
  // The same for several backends in one pass: a pass walks the host's socket tables once per
  // network namespace whatever the number of backends (~2.5 ms per namespace measured on the
  // 2-core build VM), so the backends that leave in one change are best given at once.
  Result<uint32_t> destroy_sockets_to(const std::vector<Endpoint>& backends);

  Result<Counters> read_counters() const;
  // The drop events as the programs report them, read from now on by a thread of the log's own.
  Result<std::unique_ptr<DropLog>> open_drop_log() const;
  // Conntrack and affinity, to read for one flow.
  Result<FlowTables> flow_tables() const;

  // Detaches xlb's programs from these links, removes the pin directory (which detaches the
  // pinned cgroup link) and the dsr frontend addresses xlb made local. What is not there is skipped; another program's attachment is left alone.
  static Status cleanup(const std::filesystem::path& pin_dir, const std::vector<std::string>& interfaces);

 private:
  struct Objects;
  explicit Datapath(std::unique_ptr<Objects> objects);

  std::unique_ptr<Objects> objects_;
};

}  // namespace xlb::datapath

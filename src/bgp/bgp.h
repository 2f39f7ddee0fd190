// The announcer: the VIPs this node can serve, announced to the upstream routers over BGP by an
// existing BGP daemon (bird2), so that several xlb nodes share a VIP's traffic by ECMP. Every node
// builds the same Maglev rings from the same catalog and seed, so a flow the routers move to
// another node still reaches its backend.
//
// Three layers, each testable alone:
// - the policy (plan_vips): which VIPs to announce, from the catalog in force and the node's state;
//   a pure function;
// - bird's side as text (bird_config, parse_protocols): the include file xlbd owns, and the
//   sessions as `show protocols` lists them;
// - the Announcer: writes the include file atomically, asks bird to `configure` over its control
//   socket (what birdc does), retries until bird accepts, and reads the peers' state.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/log.h"
#include "base/result.h"
#include "config/config.h"
#include "model/model.h"

namespace xlb::bgp {

// ---- policy ------------------------------------------------------------------------------------

// What the node can do right now, besides its catalog.
struct NodeInputs {
  bool datapath_attached = false;  // serving, with XDP attached where traffic arrives
  // Set while xlbd withdraws everything: stopping, a failed preflight or start. The reason is shown.
  std::optional<std::string> withdraw_all;
};

// One address clients reach services at, announced as a /32 or /128 or held back.
struct Vip {
  model::IpAddress address;
  std::vector<std::string> services;  // with a frontend at this address, by name
  bool announced = false;
  std::string reason;  // why not, when not announced
  bool operator==(const Vip&) const = default;
};

// The frontends that are addresses of their own on the network (kind vip, load-balancer,
// external-ip; not a ClusterIP, which never leaves the cluster, nor a NodePort, which is the
// node's own address). A VIP is announced while the datapath is attached and at least one of
// its services has a backend that takes new flows (active, weight above 0): a VIP that another
// of its services can still serve stays. Sorted by address, so the output is stable.
std::vector<Vip> plan_vips(const model::Catalog& in_force, const NodeInputs& node);

// ---- bird2 -------------------------------------------------------------------------------------

// The include file: `router id` (when set), a static protocol per family with a blackhole route
// for each announced VIP (the route is only a carrier for BGP: bird exports it to no kernel table
// unless told to), an export filter adding the communities, and a BGP protocol per peer, named
// protocol_name(peer), whose channel (the peer's family) exports those routes only, with next hop
// self, and imports nothing.
std::string bird_config(const config::BgpConfig& config, const std::vector<Vip>& vips);
std::string protocol_name(const config::BgpPeer& peer);  // "xlb_10_0_0_1", "xlb_fd00__1"

// One BGP session as bird lists it.
struct PeerState {
  std::string name;     // the protocol's name
  std::string address;  // the peer's address and AS, from the config
  uint32_t asn = 0;
  std::string state;    // bird's protocol state: "up", "start", "down", ...
  std::string since;    // as bird prints it
  std::string info;     // "Established", "Active", "Connect", with bird's last error after it
  bool established() const { return state == "up" && info.starts_with("Established"); }
};

// The rows of `show protocols` (birdc's output, or the control socket's lines with their codes)
// whose name starts with "xlb_" and whose protocol is BGP.
std::vector<PeerState> parse_protocols(std::string_view reply);

// ---- the announcer -----------------------------------------------------------------------------

// What the API, xlbctl bgp and /metrics show.
struct Report {
  bool enabled = false;
  std::vector<Vip> vips;          // as last planned, announced or not
  std::vector<PeerState> peers;   // every configured peer; state "unknown" while bird is not asked
  bool configured = false;        // bird accepted the include file of the current plan
  std::string error;              // the last failure to write, configure or ask bird; empty when fine
  std::string include_file;
  std::string bird_socket;
};

class Announcer {
 public:
  // Starts its thread; it announces nothing before the first update(). Disabled configs make no
  // Announcer: the caller keeps none.
  Announcer(config::BgpConfig config, const Logger& log);
  ~Announcer();  // stops its thread; leaves bird's routes as they are (a kill -9 would too)
  Announcer(const Announcer&) = delete;
  Announcer& operator=(const Announcer&) = delete;

  // A new plan: written and configured by the thread soon, and again until bird accepts it.
  void update(std::vector<Vip> vips);
  // Withdraws every VIP now, on the caller's thread, and says whether bird accepted it.
  xlb::Status withdraw_all(const std::string& reason);
  Report report() const;

 private:
  void run();
  // Writes the include file of `vips` and asks bird to configure; with mutex_ not held.
  xlb::Status push(const std::vector<Vip>& vips);
  void poll_peers();

  const config::BgpConfig config_;
  const Logger& log_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<Vip> vips_;
  uint64_t generation_ = 0;          // of vips_
  uint64_t configured_generation_ = 0;
  bool planned_ = false;             // update() was called once
  bool stopping_ = false;
  bool withdrawing_ = false;        // withdraw_all() was called: no plan announces again
  std::string error_;
  std::vector<PeerState> peers_;
  std::mutex push_mutex_;            // one configure at a time (the thread and withdraw_all)
  std::thread thread_;
};

// The include file of `vips` written atomically and `configure` sent to bird at `socket`; bird's
// answer checked. Used by the Announcer, and by xlbd to withdraw after a failed start.
xlb::Status configure_bird(const config::BgpConfig& config, const std::vector<Vip>& vips);

}  // namespace xlb::bgp

// The static TOML source: /etc/xlb/xlb.toml into a Config (node settings + a catalog).
// Every error names file:line:column and the key, and a config with any error yields no Config:
// nothing half-read is ever applied.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "model/model.h"

namespace xlb::config {

// How the configured links balance: XDP (native, or generic in the kernel's stack), the tc
// ingress balancer for links where XDP cannot attach (tc: bpf/xlb_tc.bpf.c's xlb_tc_lb, with the
// same maps; slower than XDP, and without dsr), or not at all (off: tc reply/decap only).
enum class XdpMode : uint8_t { native, generic, off, tc };

// An address prefix, "10.99.0.0/16".
struct Prefix {
  model::IpAddress address;
  uint8_t length = 0;
  std::string to_string() const;
  bool operator==(const Prefix&) const = default;
};
std::string_view to_string(XdpMode);

// serve: the datapath is loaded, attached and written. shadow: xlb builds its catalog and rings
// and shows what it would serve, but loads nothing into the kernel and changes no packet.
enum class NodeMode : uint8_t { serve, shadow };

struct NodeConfig {
  NodeMode mode = NodeMode::serve;
  std::vector<std::string> interfaces;
  XdpMode xdp_mode = XdpMode::native;
  std::string cgroup = "auto";  // "auto", "off", or the path of a cgroup v2 directory
  // Source addresses of services in snat mode; unset: that family cannot use snat.
  std::optional<model::IpAddress> snat_ipv4;
  std::optional<model::IpAddress> snat_ipv6;
  // Source ports snat may allocate: keep them out of net.ipv4.ip_local_port_range (32768-60999)
  // and Kubernetes' NodePort range (30000-32767), so that no translated flow collides with the
  // node's own connections or a NodePort.
  uint16_t snat_port_min = 10000;
  uint16_t snat_port_max = 29999;
  // dsr: the outer source addresses of encapsulated packets come from these prefixes (a hash of
  // each flow picks one), per family; unset: that family cannot use dsr on this node.
  std::optional<Prefix> dsr_source_ipv4;
  std::optional<Prefix> dsr_source_ipv6;
  // This node is a backend of the dsr services: tc on `interfaces` decapsulates what load
  // balancers send it, and the dsr frontends' addresses are made local (on lo).
  bool decap = false;
  // How many frontends and backends the datapath's maps hold (sized when xlbd creates them; maps
  // adopted from the pin directory keep their size until xlbd --cleanup).
  uint32_t max_services = 65536;
  uint32_t max_backends = 131072;
  // How many ring slots (4 bytes each) the maps hold: the sum of the frontends' ring sizes.
  uint32_t max_ring_slots = 1U << 24;

  // Whether balanced packets are routed here, which needs forwarding on: on every node but one
  // that only decapsulates (decap on, no XDP), which routes nothing.
  bool routes_packets() const { return !(decap && xdp_mode == XdpMode::off); }
};

// Values a [[service]] takes when it does not set the key itself.
struct ServiceDefaults {
  model::ForwardingMode mode = model::ForwardingMode::nat;
};

struct ApiConfig {
  std::string listen = "127.0.0.1:9180";  // or "off": no web UI and no REST API
};

struct MaglevConfig {
  // Same seed on every node gives the same rings, so a flow moved by ECMP keeps its backend.
  std::string seed = "xlb-default-seed";
  uint32_t min_table_size = 251;
  uint32_t max_table_size = 131071;
};

// The Kubernetes source (src/k8s): off unless enabled. Its services join the ones of this file.
struct KubernetesConfig {
  bool enabled = false;
  std::string kubeconfig;  // empty: $KUBECONFIG, /etc/kubernetes/kubelet.conf, admin.conf, in-cluster
  std::string node_name;   // for traffic policy Local; empty: this host's name
  std::vector<model::IpAddress> node_addresses;  // where NodePorts listen; none: no NodePort frontends
  std::string zone;        // for topology hints; empty: hints are ignored
  std::string service_proxy_name;  // serve services with this service-proxy-name label ("": without)
  model::ForwardingMode forwarding_mode = model::ForwardingMode::nat;  // unless a service's annotation says
  uint32_t silence_timeout_s = 120;  // a watch quiet this long is dropped and resumed
  bool operator==(const KubernetesConfig&) const = default;
};

// [bgp]: the VIPs this node can serve, announced to the upstream routers by a BGP daemon that
// xlbd drives (bird2: an include file of its own and `configure` on bird's control socket), so
// that several xlb nodes share the traffic by ECMP. Off unless enabled.
struct BgpPeer {
  model::IpAddress address;
  uint32_t asn = 0;
  uint32_t hold_time_s = 0;  // 0: the BGP daemon's default (bird: 240 s); keepalive is a third of it
  bool bfd = false;          // BFD on the session: a dead link is noticed in well under a second
  uint16_t port = 179;
  bool operator==(const BgpPeer&) const = default;
};

struct BgpConfig {
  bool enabled = false;
  uint32_t local_asn = 0;
  std::optional<model::IpAddress> router_id;  // IPv4; unset: the BGP daemon's own
  std::vector<BgpPeer> peers;
  // Standard "ASN:VALUE" (16 bits each) or large "A:B:C" (32 bits each) communities on every VIP.
  std::vector<std::string> communities;
  std::filesystem::path bird_socket = "/run/bird/bird.ctl";
  std::filesystem::path bird_include = "/etc/bird/xlb-vips.conf";  // bird.conf includes it
  // A graceful stop withdraws the VIPs, then keeps xlbd up this long before it exits, so that
  // the routers move the traffic away while this node still forwards it.
  std::chrono::milliseconds drain_time{5000};
  bool operator==(const BgpConfig&) const = default;
};

struct Config {
  NodeConfig node;
  ApiConfig api;
  MaglevConfig maglev;
  ServiceDefaults defaults;
  KubernetesConfig kubernetes;
  BgpConfig bgp;
  model::Catalog catalog;
};

// Parses TOML text; `file_name` is only used in messages. On failure the Error holds one line
// per problem, each "FILE:LINE:COLUMN: where: what".
Result<Config> parse(std::string_view text, std::string_view file_name);
Result<Config> load(const std::filesystem::path& path);

}  // namespace xlb::config

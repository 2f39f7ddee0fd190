// The links, addresses, routes and neighbours that the XDP and tc programs' route lookups
// (bpf_fib_lookup) need, built inside the caller's private network namespace
// (support/netns.h). BPF_PROG_TEST_RUN runs the programs in the calling thread's namespace,
// so their lookups see exactly this:
//
//   xlb0 (02:00:00:00:00:a0) — the "client link", where XDP runs
//        192.0.2.1/24, 2001:db8:c::1/64
//        client          192.0.2.100, 2001:db8:c::100  at 02:00:00:00:0c:01
//        a local backend 192.0.2.50,  2001:db8:c::50   at 02:00:00:00:0c:50 (reached by XDP_TX)
//   xlb1 (02:00:00:00:00:b0) — the "backend link"
//        198.51.100.1/24, 2001:db8:b::1/64  (also the node's snat address)
//        backends        198.51.100.1x, 2001:db8:b::1x at 02:00:00:00:0b:1x (x = 0, 1, 2)
//        a backend whose MAC is unknown: 198.51.100.99, 2001:db8:b::99
//   no route at all to 100.64.0.0/10 and 2001:db8:ffff::/48 (and no default route)
//   frontends live in 203.0.113.0/24 and 2001:db8:f::/64, on no link.
//
// Each link is one end of a veth pair whose other end (xlb0p, xlb1p) is only there to be up.
// Neighbours are PERMANENT, so the MAC addresses in the packets are known in advance.
// Forwarding is on: the kernel's route lookup refuses to forward otherwise.
#pragma once

#include <net/if.h>

#include <fstream>
#include <string>
#include <vector>

#include "base/result.h"
#include "support/command.h"
#include "support/packet.h"

namespace xlb::test::lbnet {

inline const Mac kClientLinkMac{0x02, 0, 0, 0, 0, 0xa0};
inline const Mac kBackendLinkMac{0x02, 0, 0, 0, 0, 0xb0};
inline const Mac kClientMac{0x02, 0, 0, 0, 0x0c, 0x01};
inline const Mac kLocalBackendMac{0x02, 0, 0, 0, 0x0c, 0x50};
inline Mac backend_mac(int i) { return {0x02, 0, 0, 0, 0x0b, static_cast<uint8_t>(0x10 + i)}; }

inline const char* const kClientLink = "xlb0";
inline const char* const kBackendLink = "xlb1";

struct Family {
  IpAddr client;
  IpAddr local_backend;
  IpAddr backend[3];
  IpAddr unresolved_backend;
  IpAddr unroutable_backend;
  IpAddr node;  // the snat address (on the backend link)
  IpAddr frontend;
  IpAddr other_frontend;  // a second frontend address
  IpAddr not_frontend;    // an address that no frontend has
};

inline Family v4() {
  return {ip("192.0.2.100"),
          ip("192.0.2.50"),
          {ip("198.51.100.10"), ip("198.51.100.11"), ip("198.51.100.12")},
          ip("198.51.100.99"),
          ip("100.64.0.1"),
          ip("198.51.100.1"),
          ip("203.0.113.10"),
          ip("203.0.113.11"),
          ip("203.0.113.99")};
}

inline Family v6() {
  return {ip("2001:db8:c::100"),
          ip("2001:db8:c::50"),
          {ip("2001:db8:b::10"), ip("2001:db8:b::11"), ip("2001:db8:b::12")},
          ip("2001:db8:b::99"),
          ip("2001:db8:ffff::1"),
          ip("2001:db8:b::1"),
          ip("2001:db8:f::10"),
          ip("2001:db8:f::11"),
          ip("2001:db8:f::99")};
}

inline Family family(bool ipv6) { return ipv6 ? v6() : v4(); }

inline std::string mac_text(const Mac& mac) {
  char text[18];
  std::snprintf(text, sizeof text, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
  return text;
}

inline Status write_sysctl(const std::string& path, const std::string& value) {
  std::ofstream file(path);
  file << value;
  file.close();
  if (!file) return Error{"write " + value + " to " + path + " failed"};
  return {};
}

// Builds the picture above in the current network namespace, which must be a fresh one.
inline Status build() {
  // Before the links exist, so that they inherit it as their default.
  if (Status s = write_sysctl("/proc/sys/net/ipv4/ip_forward", "1"); !s) return s;
  if (Status s = write_sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1"); !s) return s;
  if (Status s = write_sysctl("/proc/sys/net/ipv6/conf/default/forwarding", "1"); !s) return s;

  const std::string ip_tool = "/usr/sbin/ip";
  std::vector<std::vector<std::string>> steps = {
      {"link", "add", kClientLink, "address", mac_text(kClientLinkMac), "type", "veth", "peer", "name", "xlb0p"},
      {"link", "add", kBackendLink, "address", mac_text(kBackendLinkMac), "type", "veth", "peer", "name", "xlb1p"},
  };
  for (const char* link : {kClientLink, "xlb0p", kBackendLink, "xlb1p"}) steps.push_back({"link", "set", link, "up"});
  steps.push_back({"address", "add", "192.0.2.1/24", "dev", kClientLink});
  steps.push_back({"address", "add", "2001:db8:c::1/64", "dev", kClientLink, "nodad"});
  steps.push_back({"address", "add", "198.51.100.1/24", "dev", kBackendLink});
  steps.push_back({"address", "add", "2001:db8:b::1/64", "dev", kBackendLink, "nodad"});
  for (const Family& f : {v4(), v6()}) {
    steps.push_back({"neigh", "replace", f.client.str(), "lladdr", mac_text(kClientMac), "nud", "permanent", "dev",
                     kClientLink});
    steps.push_back({"neigh", "replace", f.local_backend.str(), "lladdr", mac_text(kLocalBackendMac), "nud",
                     "permanent", "dev", kClientLink});
    for (int i = 0; i < 3; ++i) {
      steps.push_back({"neigh", "replace", f.backend[i].str(), "lladdr", mac_text(backend_mac(i)), "nud", "permanent",
                       "dev", kBackendLink});
    }
  }
  for (std::vector<std::string>& step : steps) {
    step.insert(step.begin(), ip_tool);
    if (Status s = run_command(step); !s) return s;
  }
  return {};
}

inline int ifindex(const char* link) { return static_cast<int>(::if_nametoindex(link)); }

}  // namespace xlb::test::lbnet

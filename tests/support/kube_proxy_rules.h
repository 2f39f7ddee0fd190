// The rules kube-proxy would write for a set of Services and EndpointSlices, in its iptables
// layout (iptables-save -t nat) and its nftables layout (nft list table ip kube-proxy), written
// from kube-proxy's pkg/proxy/iptables and pkg/proxy/nftables: chain names hashed as kube-proxy
// hashes them (base32 of SHA-256), masquerade marks, statistic probabilities, recent/affinity sets,
// the external chains of NodePorts, external and load-balancer IPs, traffic policy Local.
// IPv4 only; every endpoint the slices list is taken as ready.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "k8s/objects.h"

namespace xlb::test {

struct KubeProxyNode {
  std::string name = "node-a";           // whose endpoints are local
  std::string cluster_cidr = "10.244.0.0/16";
};

namespace kp_detail {

// SHA-256 (FIPS 180-4), here so that the tests need no crypto library.
inline std::array<uint8_t, 32> sha256(const std::string& text) {
  static const uint32_t k[64] = {
      0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
      0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
      0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
      0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
      0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
      0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
      0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
      0xc67178f2};
  uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  std::string m = text;
  const uint64_t bits = static_cast<uint64_t>(text.size()) * 8;
  m += static_cast<char>(0x80);
  while (m.size() % 64 != 56) m += '\0';
  for (int i = 7; i >= 0; --i) m += static_cast<char>((bits >> (i * 8)) & 0xff);
  auto rotr = [](uint32_t x, int n) { return (x >> n) | (x << (32 - n)); };
  for (size_t chunk = 0; chunk < m.size(); chunk += 64) {
    uint32_t w[64];
    for (int i = 0; i < 16; ++i)
      w[i] = static_cast<uint32_t>(static_cast<uint8_t>(m[chunk + 4 * i])) << 24 |
             static_cast<uint32_t>(static_cast<uint8_t>(m[chunk + 4 * i + 1])) << 16 |
             static_cast<uint32_t>(static_cast<uint8_t>(m[chunk + 4 * i + 2])) << 8 |
             static_cast<uint32_t>(static_cast<uint8_t>(m[chunk + 4 * i + 3]));
    for (int i = 16; i < 64; ++i) {
      const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; ++i) {
      const uint32_t t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
      const uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      hh = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
  }
  std::array<uint8_t, 32> digest{};
  for (int i = 0; i < 32; ++i) digest[i] = static_cast<uint8_t>(h[i / 4] >> (24 - 8 * (i % 4)));
  return digest;
}

inline std::string base32_sha256(const std::string& text) {
  const auto digest = sha256(text);
  static const char* const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::string out;
  unsigned buffer = 0;
  int bits = 0;
  for (unsigned char byte : digest) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(buffer >> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return out;
}

// One service port as kube-proxy sees it.
struct Port {
  std::string ns, name, port_name, protocol;  // protocol lower case
  const k8s::Service* service;
  const k8s::ServicePort* port;
  std::vector<std::string> endpoints;        // "ip:port", sorted
  std::vector<std::string> local_endpoints;  // those on this node

  std::string spn() const { return ns + "/" + name + (port_name.empty() ? "" : ":" + port_name); }
  bool has_external() const {
    return (port->node_port && service->type != "ClusterIP") || !service->external_ips.empty() ||
           (service->type == "LoadBalancer" && !service->load_balancer_ips.empty());
  }
};

inline std::vector<Port> ports_of(const std::vector<k8s::Service>& services, const std::vector<k8s::EndpointSlice>& slices,
                                  const KubeProxyNode& node) {
  std::vector<Port> out;
  for (const k8s::Service& s : services) {
    if (s.type == "ExternalName" || s.cluster_ips.empty() || s.cluster_ips.front() == "None") continue;
    for (const k8s::ServicePort& p : s.ports) {
      std::string protocol = p.protocol == "UDP" ? "udp" : "tcp";
      Port port{s.ns, s.name, p.name, protocol, &s, &p, {}, {}};
      std::set<std::string> all, local;
      for (const k8s::EndpointSlice& slice : slices) {
        if (slice.ns != s.ns || slice.service_name != s.name) continue;
        for (const k8s::EndpointPort& ep : slice.ports) {
          if (ep.name != p.name || ep.protocol != p.protocol || !ep.port) continue;
          for (const k8s::Endpoint& e : slice.endpoints)
            for (const std::string& a : e.addresses) {
              all.insert(a + ":" + std::to_string(*ep.port));
              if (e.node_name == node.name) local.insert(a + ":" + std::to_string(*ep.port));
            }
        }
      }
      port.endpoints.assign(all.begin(), all.end());
      port.local_endpoints.assign(local.begin(), local.end());
      if (!port.endpoints.empty()) out.push_back(port);  // none: only a REJECT in the filter table
    }
  }
  return out;
}

// A timeout as nft lists it: 10800 -> "3h", 600 -> "10m", 90 -> "1m30s".
inline std::string nft_duration(uint32_t seconds) {
  std::string out;
  for (auto [unit, size] : {std::pair{"d", 86400u}, {"h", 3600u}, {"m", 60u}, {"s", 1u}})
    if (seconds >= size) {
      out += std::to_string(seconds / size) + unit;
      seconds %= size;
    }
  return out;
}

inline std::string probability(size_t i, size_t n) {
  char text[32];
  std::snprintf(text, sizeof text, "%.10f", 1.0 / static_cast<double>(n - i));
  return text;
}

// iptables-save quotes a comment only when it has spaces.
inline std::string comment(const std::string& text) {
  return "-m comment --comment " + (text.find(' ') == std::string::npos ? text : "\"" + text + "\"");
}

class IptablesWriter {
 public:
  explicit IptablesWriter(const KubeProxyNode& node) : node_(node) {}

  std::string write(const std::vector<Port>& ports) {
    for (const Port& p : ports) add(p);
    std::string out =
        "# Generated by iptables-save v1.8.9 (nf_tables)\n*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n"
        ":OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:KUBE-MARK-MASQ - [0:0]\n:KUBE-NODEPORTS - [0:0]\n"
        ":KUBE-POSTROUTING - [0:0]\n:KUBE-SERVICES - [0:0]\n";
    for (const auto& c : chains_) out += ":" + c + " - [0:0]\n";
    out +=
        "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
        "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
        "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n"
        "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000\n";
    out += nodeports_;
    out +=
        "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n"
        "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0\n"
        "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE "
        "--random-fully\n";
    out += services_;
    out += "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in "
           "this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n";
    out += rules_ + "COMMIT\n";
    return out;
  }

 private:
  std::string chain(const std::string& prefix, const std::string& key) {
    std::string name = prefix + base32_sha256(key).substr(0, 16);
    chains_.insert(name);
    return name;
  }

  void add(const Port& p) {
    const std::string spn = p.spn(), base = spn + p.protocol;
    const std::string svc = chain("KUBE-SVC-", base);
    const bool local_needed = p.service->external_traffic_local || p.service->internal_traffic_local;
    const std::string svl = local_needed ? chain("KUBE-SVL-", base) : "";
    const std::string match = " -p " + p.protocol + " ";
    const std::string dport = " -m " + p.protocol + " --dport ";
    for (const std::string& ip : p.service->cluster_ips)
      services_ += "-A KUBE-SERVICES -d " + ip + "/32" + match + comment(spn + " cluster IP") + dport +
                   std::to_string(p.port->port) + " -j " + (p.service->internal_traffic_local ? svl : svc) + "\n";
    rules_ += "-A " + svc + " ! -s " + node_.cluster_cidr + " -d " + p.service->cluster_ips.front() + "/32" + match +
              comment(spn + " cluster IP") + dport + std::to_string(p.port->port) + " -j KUBE-MARK-MASQ\n";
    endpoints(p, svc, p.endpoints);
    if (local_needed) endpoints(p, svl, p.local_endpoints);
    if (p.has_external()) external(p, svc, svl, match, dport);
  }

  void external(const Port& p, const std::string& svc, const std::string& svl, const std::string& match,
                const std::string& dport) {
    const std::string spn = p.spn();
    const std::string ext = chain("KUBE-EXT-", spn + p.protocol);
    if (p.service->external_traffic_local) {
      rules_ += "-A " + ext + " -s " + node_.cluster_cidr + " " + comment("pod traffic for " + spn + " external destinations") +
                " -j " + svc + "\n";
      rules_ += "-A " + ext + " " + comment("masquerade LOCAL traffic for " + spn + " external destinations") +
                " -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ\n";
      rules_ += "-A " + ext + " " + comment("route LOCAL traffic for " + spn + " external destinations") +
                " -m addrtype --src-type LOCAL -j " + svc + "\n";
      rules_ += "-A " + ext + " -j " + svl + "\n";
    } else {
      rules_ += "-A " + ext + " " + comment("masquerade traffic for " + spn + " external destinations") +
                " -j KUBE-MARK-MASQ\n";
      rules_ += "-A " + ext + " -j " + svc + "\n";
    }
    const std::string port = std::to_string(p.port->port);
    for (const std::string& ip : p.service->external_ips)
      services_ += "-A KUBE-SERVICES -d " + ip + "/32" + match + comment(spn + " external IP") + dport + port + " -j " + ext + "\n";
    if (p.service->type == "LoadBalancer")
      for (const std::string& ip : p.service->load_balancer_ips)
        services_ += "-A KUBE-SERVICES -d " + ip + "/32" + match + comment(spn + " loadbalancer IP") + dport + port +
                     " -j " + ext + "\n";
    if (p.port->node_port && p.service->type != "ClusterIP")
      nodeports_ += "-A KUBE-NODEPORTS" + match + comment(spn) + dport + std::to_string(p.port->node_port) + " -j " + ext + "\n";
  }

  // kube-proxy writes the affinity lookups first, then the random choice: the i-th of n endpoints
  // with probability 1/(n-i), the last without.
  void endpoints(const Port& p, const std::string& from, const std::vector<std::string>& eps) {
    const std::string spn = p.spn();
    const bool affinity = p.service->session_affinity_client_ip;
    std::vector<std::string> seps;
    for (const std::string& ep : eps) seps.push_back(sep(p, ep));
    if (affinity)
      for (size_t i = 0; i < eps.size(); ++i)
        rules_ += "-A " + from + " " + comment(spn + " -> " + eps[i]) + " -m recent --name " + seps[i] +
                  " --mask 255.255.255.255 --rsource --rcheck --seconds " +
                  std::to_string(p.service->session_affinity_timeout) + " --reap -j " + seps[i] + "\n";
    for (size_t i = 0; i < eps.size(); ++i)
      rules_ += "-A " + from + " " + comment(spn + " -> " + eps[i]) +
                (i + 1 < eps.size() ? " -m statistic --mode random --probability " + probability(i, eps.size()) : "") +
                " -j " + seps[i] + "\n";
  }

  std::string sep(const Port& p, const std::string& ep) {
    const std::string name = chain("KUBE-SEP-", p.spn() + p.protocol + ep);
    if (!written_.insert(name).second) return name;
    const std::string ip = ep.substr(0, ep.find(':'));
    rules_ += "-A " + name + " -s " + ip + "/32 " + comment(p.spn()) + " -j KUBE-MARK-MASQ\n";
    rules_ += "-A " + name + " -p " + p.protocol + " " + comment(p.spn()) +
              (p.service->session_affinity_client_ip ? " -m recent --set --name " + name + " --mask 255.255.255.255 --rsource" : "") +
              " -m " + p.protocol + " -j DNAT --to-destination " + ep + "\n";
    return name;
  }

  const KubeProxyNode& node_;
  std::set<std::string> chains_, written_;
  std::string services_, nodeports_, rules_;
};

class NftWriter {
 public:
  explicit NftWriter(const KubeProxyNode& node) : node_(node) {}

  std::string write(const std::vector<Port>& ports) {
    for (const Port& p : ports) add(p);
    std::string out = "table ip kube-proxy {\n\tcomment \"rules for kube-proxy\"\n";
    out += "\tset cluster-ips {\n\t\ttype ipv4_addr\n\t\tcomment \"Active ClusterIPs\"\n";
    if (!cluster_ips_.empty()) out += "\t\telements = { " + join(cluster_ips_, ", ") + " }\n";
    out += "\t}\n" + sets_;
    out += "\tmap service-ips {\n\t\ttype ipv4_addr . inet_proto . inet_service : verdict\n"
           "\t\tcomment \"ClusterIP, ExternalIP and LoadBalancer IP traffic\"\n";
    if (!service_ips_.empty()) out += "\t\telements = { " + join(service_ips_, ",\n\t\t\t     ") + " }\n";
    out += "\t}\n\tmap service-nodeports {\n\t\ttype inet_proto . inet_service : verdict\n\t\tcomment \"NodePort traffic\"\n";
    if (!node_ports_.empty()) out += "\t\telements = { " + join(node_ports_, ",\n\t\t\t     ") + " }\n";
    out += "\t}\n";
    out +=
        "\tchain nat-prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t\tjump services\n\t}\n"
        "\tchain nat-output {\n\t\ttype nat hook output priority -100; policy accept;\n\t\tjump services\n\t}\n"
        "\tchain nat-postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t\tjump masquerading\n\t}\n"
        "\tchain mark-for-masquerade {\n\t\tmeta mark set meta mark | 0x00004000\n\t}\n"
        "\tchain masquerading {\n\t\tmeta mark & 0x00004000 == 0x00000000 return\n"
        "\t\tmeta mark set meta mark ^ 0x00004000\n\t\tmasquerade fully-random\n\t}\n"
        "\tchain services {\n\t\tip daddr . meta l4proto . th dport vmap @service-ips\n"
        "\t\tfib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports\n\t}\n";
    return out + chains_ + "}\n";
  }

 private:
  static std::string join(const std::vector<std::string>& items, const std::string& separator) {
    std::string out;
    for (const auto& i : items) out += (out.empty() ? "" : separator) + i;
    return out;
  }

  static std::string base(const Port& p) {
    return p.ns + "/" + p.name + "/" + p.protocol + "/" + p.port_name;
  }

  static std::string name(const std::string& prefix, const Port& p) {
    return prefix + base32_sha256(p.spn() + p.protocol).substr(0, 8) + "-" + base(p);
  }

  static std::string endpoint_base(const Port& p, const std::string& ep) {
    const std::string ip = ep.substr(0, ep.find(':')), port = ep.substr(ep.find(':') + 1);
    return base32_sha256(p.spn() + p.protocol + ep).substr(0, 8) + "-" + base(p) + "__" + ip + "/" + port;
  }

  void add(const Port& p) {
    const std::string svc = name("service-", p), local = name("local-", p), ext = name("external-", p);
    const bool local_needed = p.service->external_traffic_local || p.service->internal_traffic_local;
    const std::string port = std::to_string(p.port->port);
    for (const std::string& ip : p.service->cluster_ips) {
      cluster_ips_.push_back(ip);
      service_ips_.push_back(ip + " . " + p.protocol + " . " + port + " : goto " +
                             (p.service->internal_traffic_local ? local : svc));
    }
    chains_ += "\tchain " + svc + " {\n\t\tip daddr " + p.service->cluster_ips.front() + " " + p.protocol + " dport " + port +
               " ip saddr != " + node_.cluster_cidr + " jump mark-for-masquerade\n";
    chains_ += dispatch(p, p.endpoints) + "\t}\n";
    if (local_needed) chains_ += "\tchain " + local + " {\n" + dispatch(p, p.local_endpoints) + "\t}\n";
    for (const std::string& ep : p.endpoints) endpoint(p, ep);
    if (p.has_external()) external(p, svc, local, ext);
  }

  void external(const Port& p, const std::string& svc, const std::string& local, const std::string& ext) {
    chains_ += "\tchain " + ext + " {\n";
    if (p.service->external_traffic_local)
      chains_ += "\t\tip saddr " + node_.cluster_cidr + " goto " + svc + " comment \"short-circuit pod traffic\"\n" +
                 "\t\tfib saddr type local jump mark-for-masquerade comment \"masquerade local traffic\"\n" +
                 "\t\tfib saddr type local goto " + svc + " comment \"short-circuit local traffic\"\n" + "\t\tgoto " +
                 local + "\n";
    else
      chains_ += "\t\tjump mark-for-masquerade\n\t\tgoto " + svc + "\n";
    chains_ += "\t}\n";
    const std::string port = std::to_string(p.port->port);
    std::vector<std::string> addresses = p.service->external_ips;
    if (p.service->type == "LoadBalancer")
      addresses.insert(addresses.end(), p.service->load_balancer_ips.begin(), p.service->load_balancer_ips.end());
    for (const std::string& ip : addresses) service_ips_.push_back(ip + " . " + p.protocol + " . " + port + " : goto " + ext);
    if (p.port->node_port && p.service->type != "ClusterIP")
      node_ports_.push_back(p.protocol + " . " + std::to_string(p.port->node_port) + " : goto " + ext);
  }

  std::string dispatch(const Port& p, const std::vector<std::string>& eps) {
    std::string out;
    if (eps.empty()) return "\t\tdrop comment \"no local endpoints\"\n";
    if (p.service->session_affinity_client_ip)
      for (const std::string& ep : eps)
        out += "\t\tip saddr @affinity-" + endpoint_base(p, ep) + " goto endpoint-" + endpoint_base(p, ep) + "\n";
    out += "\t\tnumgen random mod " + std::to_string(eps.size()) + " vmap { ";
    for (size_t i = 0; i < eps.size(); ++i)
      out += (i ? ", " : "") + std::to_string(i) + " : goto endpoint-" + endpoint_base(p, eps[i]);
    return out + " }\n";
  }

  void endpoint(const Port& p, const std::string& ep) {
    const std::string b = endpoint_base(p, ep), ip = ep.substr(0, ep.find(':'));
    const bool affinity = p.service->session_affinity_client_ip;
    if (affinity)
      sets_ += "\tset affinity-" + b + " {\n\t\ttype ipv4_addr\n\t\tflags dynamic,timeout\n\t\ttimeout " +
               nft_duration(p.service->session_affinity_timeout) + "\n\t}\n";
    chains_ += "\tchain endpoint-" + b + " {\n\t\tip saddr " + ip + " jump mark-for-masquerade\n" +
               (affinity ? "\t\tupdate @affinity-" + b + " { ip saddr }\n" : "") + "\t\tmeta l4proto " + p.protocol +
               " dnat to " + ep + "\n\t}\n";
  }

  const KubeProxyNode& node_;
  std::vector<std::string> cluster_ips_, service_ips_, node_ports_;
  std::string sets_, chains_;
};

}  // namespace kp_detail

inline std::string kube_proxy_iptables(const std::vector<k8s::Service>& services,
                                       const std::vector<k8s::EndpointSlice>& slices, const KubeProxyNode& node = {}) {
  return kp_detail::IptablesWriter(node).write(kp_detail::ports_of(services, slices, node));
}

inline std::string kube_proxy_nft(const std::vector<k8s::Service>& services, const std::vector<k8s::EndpointSlice>& slices,
                                  const KubeProxyNode& node = {}) {
  return kp_detail::NftWriter(node).write(kp_detail::ports_of(services, slices, node));
}

}  // namespace xlb::test

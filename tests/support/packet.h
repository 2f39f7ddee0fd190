// Builds test packets byte by byte: Ethernet (with an optional VLAN tag), IPv4 or IPv6, and
// TCP, UDP, ICMP or ICMPv6, with every checksum computed from scratch over the finished bytes.
// It shares no code with the BPF programs (which update checksums incrementally), so a wrong
// incremental update shows up as a byte difference against the packet built here.
//
//   PacketSpec spec{.src = ip("192.0.2.100"), .dst = ip("203.0.113.10"), .protocol = kTcp,
//                    .sport = 40000, .dport = 80};
//   Bytes frame = build_frame(spec);
#pragma once

#include <arpa/inet.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace xlb::test {

using Bytes = std::vector<uint8_t>;
using Mac = std::array<uint8_t, 6>;

inline constexpr uint8_t kIcmp = 1;
inline constexpr uint8_t kTcp = 6;
inline constexpr uint8_t kUdp = 17;
inline constexpr uint8_t kIcmpv6 = 58;

struct IpAddr {
  int family = AF_INET;
  std::array<uint8_t, 16> bytes{};  // IPv4: the first 4

  bool v6() const { return family == AF_INET6; }
  size_t size() const { return v6() ? 16 : 4; }
  // As the ABI stores addresses: 4 words in network order, IPv4 in the first.
  std::array<uint32_t, 4> words() const {
    std::array<uint32_t, 4> w{};
    std::memcpy(w.data(), bytes.data(), size());
    return w;
  }
  std::string str() const {
    char text[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(family, bytes.data(), text, sizeof text);
    return text;
  }
  bool operator==(const IpAddr&) const = default;
};

inline IpAddr ip(const std::string& text) {
  IpAddr a;
  a.family = text.find(':') == std::string::npos ? AF_INET : AF_INET6;
  if (::inet_pton(a.family, text.c_str(), a.bytes.data()) != 1) throw std::invalid_argument("bad address " + text);
  return a;
}

struct PacketSpec {
  Mac eth_src{0x02, 0, 0, 0, 0x0c, 0x01};
  Mac eth_dst{0x02, 0, 0, 0, 0, 0xa0};
  std::optional<uint16_t> vlan_tci;  // a tag with this TCI after the MAC addresses
  uint16_t vlan_tpid = 0x8100;
  std::optional<uint16_t> ethertype;  // default: that of the IP family

  IpAddr src;
  IpAddr dst;
  uint8_t protocol = kTcp;
  uint8_t ttl = 64;
  uint8_t tos = 0;
  uint16_t ip_id = 0x1234;
  uint16_t frag = 0x4000;  // IPv4 flags + fragment offset: DF
  Bytes ip_options;        // IPv4 only, a multiple of 4 bytes

  uint16_t sport = 0;
  uint16_t dport = 0;
  uint32_t seq = 1000;
  uint32_t ack = 0;
  uint8_t tcp_flags = 0x02;  // SYN
  bool udp_no_checksum = false;  // IPv4 UDP: send 0, "no checksum"

  // ICMP/ICMPv6: type, code and the 4 bytes after the checksum (e.g. the MTU).
  uint8_t icmp_type = 0;
  uint8_t icmp_code = 0;
  uint32_t icmp_rest = 0;

  Bytes payload;  // after the L4 header (for ICMP errors: the embedded packet)
};

namespace detail {

inline void put16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}
inline void put32(Bytes& b, uint32_t v) {
  put16(b, static_cast<uint16_t>(v >> 16));
  put16(b, static_cast<uint16_t>(v));
}
inline void set16(Bytes& b, size_t at, uint16_t v) {
  b[at] = static_cast<uint8_t>(v >> 8);
  b[at + 1] = static_cast<uint8_t>(v);
}

// The Internet checksum (RFC 1071) of `parts` laid end to end, summed the textbook way: every
// big-endian 16-bit word added up, carries folded, complemented.
inline uint16_t internet_checksum(std::initializer_list<const Bytes*> parts) {
  Bytes all;
  for (const Bytes* part : parts) all.insert(all.end(), part->begin(), part->end());
  if (all.size() % 2 != 0) all.push_back(0);
  uint64_t sum = 0;
  for (size_t i = 0; i < all.size(); i += 2) sum += static_cast<uint64_t>(all[i] << 8 | all[i + 1]);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum & 0xffff);
}

inline Bytes pseudo_header(const PacketSpec& s, size_t l4_length) {
  Bytes p;
  p.insert(p.end(), s.src.bytes.begin(), s.src.bytes.begin() + static_cast<long>(s.src.size()));
  p.insert(p.end(), s.dst.bytes.begin(), s.dst.bytes.begin() + static_cast<long>(s.dst.size()));
  if (s.src.v6()) {
    put32(p, static_cast<uint32_t>(l4_length));
    put32(p, s.protocol);
  } else {
    p.push_back(0);
    p.push_back(s.protocol);
    put16(p, static_cast<uint16_t>(l4_length));
  }
  return p;
}

// The L4 header and payload, checksum included.
inline Bytes l4_segment(const PacketSpec& s) {
  Bytes l4;
  size_t check_at = 0;
  bool pseudo = true;
  switch (s.protocol) {
    case kTcp:
      put16(l4, s.sport);
      put16(l4, s.dport);
      put32(l4, s.seq);
      put32(l4, s.ack);
      l4.push_back(5 << 4);  // data offset: 20 bytes
      l4.push_back(s.tcp_flags);
      put16(l4, 65535);  // window
      put16(l4, 0);      // checksum
      put16(l4, 0);      // urgent pointer
      check_at = 16;
      break;
    case kUdp:
      put16(l4, s.sport);
      put16(l4, s.dport);
      put16(l4, static_cast<uint16_t>(8 + s.payload.size()));
      put16(l4, 0);
      check_at = 6;
      break;
    case kIcmp:
    case kIcmpv6:
      l4.push_back(s.icmp_type);
      l4.push_back(s.icmp_code);
      put16(l4, 0);
      put32(l4, s.icmp_rest);
      check_at = 2;
      pseudo = s.protocol == kIcmpv6;  // ICMPv4 has no pseudo-header
      break;
    default:
      break;  // another protocol: just the payload
  }
  l4.insert(l4.end(), s.payload.begin(), s.payload.end());
  if (s.protocol == kTcp || s.protocol == kUdp || s.protocol == kIcmp || s.protocol == kIcmpv6) {
    uint16_t check = 0;
    if (!(s.protocol == kUdp && s.udp_no_checksum)) {
      const Bytes pseudo_bytes = pseudo ? pseudo_header(s, l4.size()) : Bytes{};
      check = internet_checksum({&pseudo_bytes, &l4});
      if (s.protocol == kUdp && check == 0) check = 0xffff;  // RFC 768
    }
    set16(l4, check_at, check);
  }
  return l4;
}

}  // namespace detail

// The IP packet: header(s) and everything after.
inline Bytes build_ip(const PacketSpec& s) {
  using namespace detail;
  const Bytes l4 = l4_segment(s);
  Bytes p;
  if (s.src.v6()) {
    put32(p, 0x60000000U | static_cast<uint32_t>(s.tos) << 20);
    put16(p, static_cast<uint16_t>(l4.size()));
    p.push_back(s.protocol);
    p.push_back(s.ttl);
    p.insert(p.end(), s.src.bytes.begin(), s.src.bytes.end());
    p.insert(p.end(), s.dst.bytes.begin(), s.dst.bytes.end());
  } else {
    const size_t header = 20 + s.ip_options.size();
    p.push_back(static_cast<uint8_t>(0x40 | header / 4));
    p.push_back(s.tos);
    put16(p, static_cast<uint16_t>(header + l4.size()));
    put16(p, s.ip_id);
    put16(p, s.frag);
    p.push_back(s.ttl);
    p.push_back(s.protocol);
    put16(p, 0);
    p.insert(p.end(), s.src.bytes.begin(), s.src.bytes.begin() + 4);
    p.insert(p.end(), s.dst.bytes.begin(), s.dst.bytes.begin() + 4);
    p.insert(p.end(), s.ip_options.begin(), s.ip_options.end());
    set16(p, 10, internet_checksum({&p}));
  }
  p.insert(p.end(), l4.begin(), l4.end());
  return p;
}

// The whole Ethernet frame.
inline Bytes build_frame(const PacketSpec& s) {
  using namespace detail;
  Bytes f(s.eth_dst.begin(), s.eth_dst.end());
  f.insert(f.end(), s.eth_src.begin(), s.eth_src.end());
  if (s.vlan_tci) {
    put16(f, s.vlan_tpid);
    put16(f, *s.vlan_tci);
  }
  put16(f, s.ethertype.value_or(s.src.v6() ? 0x86dd : 0x0800));
  const Bytes p = build_ip(s);
  f.insert(f.end(), p.begin(), p.end());
  return f;
}

// Bytes as hex, 16 to a line with the offset first, so that a failed comparison shows where.
inline std::string hex(const Bytes& bytes) {
  std::string out;
  char cell[24];
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (i % 16 == 0) {
      std::snprintf(cell, sizeof cell, "%s%04zx:", i ? "\n" : "", i);
      out += cell;
    }
    std::snprintf(cell, sizeof cell, " %02x", bytes[i]);
    out += cell;
  }
  return out;
}

}  // namespace xlb::test

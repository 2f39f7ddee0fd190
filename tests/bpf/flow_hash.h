// An independent implementation of the flow hash of bpf/lib/hash.h (the kernel's jhash2 over
// the flow key's words in network order, seed 0), so that tests predict what the programs
// derive from it: the ring slot of a new flow, the outer source of a dsr packet.
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "xlb_abi.h"

namespace xlb::test {

inline uint32_t rol32(uint32_t w, unsigned s) { return (w << s) | (w >> ((32 - s) & 31)); }

inline uint32_t jhash2(const std::vector<uint32_t>& k, uint32_t initval) {
  uint32_t a = 0xdeadbeef + (static_cast<uint32_t>(k.size()) << 2) + initval;
  uint32_t b = a;
  uint32_t c = a;
  size_t i = 0;
  size_t left = k.size();
  for (; left > 3; left -= 3, i += 3) {
    a += k[i];
    b += k[i + 1];
    c += k[i + 2];
    a -= c; a ^= rol32(c, 4); c += b;
    b -= a; b ^= rol32(a, 6); a += c;
    c -= b; c ^= rol32(b, 8); b += a;
    a -= c; a ^= rol32(c, 16); c += b;
    b -= a; b ^= rol32(a, 19); a += c;
    c -= b; c ^= rol32(b, 4); b += a;
  }
  if (left == 0) return c;
  if (left == 3) c += k[i + 2];
  if (left >= 2) b += k[i + 1];
  a += k[i];
  c ^= b; c -= rol32(b, 14);
  a ^= c; a -= rol32(c, 11);
  b ^= a; b -= rol32(a, 25);
  c ^= b; c -= rol32(b, 16);
  a ^= c; a -= rol32(c, 4);
  b ^= a; b -= rol32(a, 14);
  c ^= b; c -= rol32(b, 24);
  return c;
}

inline uint32_t flow_hash(const xlb_flow_key& key) {
  std::vector<uint32_t> words(sizeof key / 4);
  std::memcpy(words.data(), &key, sizeof key);
  for (uint32_t& w : words) w = ntohl(w);
  return jhash2(words, 0);
}

}  // namespace xlb::test

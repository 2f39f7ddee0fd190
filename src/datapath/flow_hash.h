// The flow hash of bpf/lib/hash.h in user space (the kernel's jhash2 over the flow key's 32-bit
// words in network order, seed 0): what a program picks for a flow it has not seen, predicted.
// xlbctl trace answers with it, and the BPF tests check the programs against it; it is written
// independently of hash.h (a loop, not unrolled macros), so a mistake in either shows.
#pragma once

#include <arpa/inet.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <span>

#include "xlb_abi.h"

namespace xlb::datapath {

inline uint32_t rol32(uint32_t w, unsigned s) { return (w << s) | (w >> ((32 - s) & 31)); }

inline uint32_t jhash2(std::span<const uint32_t> k, uint32_t initval) {
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

// The numeric values of an object's 32-bit words in network order (hash.h reads them with
// bpf_ntohl), so that every machine hashes alike.
template <size_t Words>
std::array<uint32_t, Words> network_words(const void* object) {
  std::array<uint32_t, Words> words;
  std::memcpy(words.data(), object, sizeof words);
  for (uint32_t& w : words) w = ntohl(w);
  return words;
}

// xlb_hash_flow: a new flow's ring slot is this modulo the ring's size.
inline uint32_t flow_hash(const xlb_flow_key& key) {
  return jhash2(network_words<sizeof key / 4>(&key), 0);
}

// xlb_hash_addr: with ClientIP affinity, the slot of a client with no recent backend.
inline uint32_t address_hash(const __be32 (&address)[4]) { return jhash2(network_words<4>(address), 0); }

}  // namespace xlb::datapath

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The flow hash that picks a ring slot for a new flow.
 *
 * It must give the same answer on every node, for every build: a router spreading one
 * client's packets over several xlb nodes (ECMP) must see them all pick the same backend
 * without sharing any state. So it has no random seed, and it hashes the numeric value of
 * each 32-bit word in network order (read with bpf_ntohl), which is the same on little- and
 * big-endian machines.
 *
 * The function is Bob Jenkins' lookup3 as the Linux kernel has it in include/linux/jhash.h
 * (jhash2 on 32-bit words, __jhash_mix and __jhash_final), written out here because BPF
 * programs cannot include kernel-internal headers. src/datapath/flow_hash.h has an independent
 * copy in user space: xlbctl trace predicts with it the slot a flow takes, and tests/bpf checks
 * the programs against it.
 */
#ifndef XLB_LIB_HASH_H
#define XLB_LIB_HASH_H

#include <linux/types.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "xlb_abi.h"

/* jhash.h's arbitrary initial value. */
#define XLB_JHASH_INITVAL 0xdeadbeef
/* The initval argument of jhash2: fixed, so that every node hashes alike. */
#define XLB_FLOW_HASH_SEED 0

static __always_inline __u32 xlb_rol32(__u32 word, unsigned int shift)
{
	return (word << shift) | (word >> ((-shift) & 31));
}

#define xlb_jhash_mix(a, b, c)                         \
	{                                              \
		a -= c; a ^= xlb_rol32(c, 4);  c += b; \
		b -= a; b ^= xlb_rol32(a, 6);  a += c; \
		c -= b; c ^= xlb_rol32(b, 8);  b += a; \
		a -= c; a ^= xlb_rol32(c, 16); c += b; \
		b -= a; b ^= xlb_rol32(a, 19); a += c; \
		c -= b; c ^= xlb_rol32(b, 4);  b += a; \
	}

#define xlb_jhash_final(a, b, c)                 \
	{                                        \
		c ^= b; c -= xlb_rol32(b, 14);   \
		a ^= c; a -= xlb_rol32(c, 11);   \
		b ^= a; b -= xlb_rol32(a, 25);   \
		c ^= b; c -= xlb_rol32(b, 16);   \
		a ^= c; a -= xlb_rol32(c, 4);    \
		b ^= a; b -= xlb_rol32(a, 14);   \
		c ^= b; c -= xlb_rol32(b, 24);   \
	}

/* The address's four words (IPv4: the address, then three zero words). */
static __always_inline __u32 xlb_hash_addr(const __be32 addr[4])
{
	__u32 a, b, c;

	a = b = c = XLB_JHASH_INITVAL + (4 << 2) + XLB_FLOW_HASH_SEED;
	a += bpf_ntohl(addr[0]);
	b += bpf_ntohl(addr[1]);
	c += bpf_ntohl(addr[2]);
	xlb_jhash_mix(a, b, c);
	a += bpf_ntohl(addr[3]);
	xlb_jhash_final(a, b, c);
	return c;
}

/* The whole flow key, as the ten 32-bit words it is made of: source, destination, the ports
 * (source in the high half), then protocol, family and the zero pad. */
static __always_inline __u32 xlb_hash_flow(const struct xlb_flow_key *flow)
{
	const __u32 *k = (const __u32 *)flow;
	__u32 a, b, c;

	a = b = c = XLB_JHASH_INITVAL + (10 << 2) + XLB_FLOW_HASH_SEED;
	a += bpf_ntohl(k[0]);
	b += bpf_ntohl(k[1]);
	c += bpf_ntohl(k[2]);
	xlb_jhash_mix(a, b, c);
	a += bpf_ntohl(k[3]);
	b += bpf_ntohl(k[4]);
	c += bpf_ntohl(k[5]);
	xlb_jhash_mix(a, b, c);
	a += bpf_ntohl(k[6]);
	b += bpf_ntohl(k[7]);
	c += bpf_ntohl(k[8]);
	xlb_jhash_mix(a, b, c);
	a += bpf_ntohl(k[9]);
	xlb_jhash_final(a, b, c);
	return c;
}

#endif /* XLB_LIB_HASH_H */

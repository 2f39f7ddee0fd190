/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A per-CPU cache of the route a reply takes back to its client, for the reply half of nat and
 * snat (xlb_tc). It is backend_cache.h's twin, keyed by where a reply goes instead of by
 * backend: every reply of a flow, and every flow of a client, asks the kernel for the same
 * next hop (bpf_fib_lookup, about a third of what a reply costs here), and the answer holds for
 * a second.
 *
 * What that means (as for backend_cache.h):
 *   - A changed route or neighbour toward a client is followed within a second.
 *   - An answer is reused only for replies from the same frontend address to the same client
 *     (routes chosen by source, as policy routing does, stay apart), arriving on the same
 *     link, and no longer than the one that asked (the lookup also checked the route's MTU).
 *   - Only a complete answer (SUCCESS) is kept; a reply for the stack or dropped asks again.
 *   - ECMP: the lookup hashes the reply that asked, so a client's replies within the second
 *     leave by the same next hop, whatever their ports.
 *
 * Direct-mapped by a hash of the two addresses and tagged with them: two busy pairs sharing a
 * slot take turns (each miss is a lookup, never a wrong answer). Per CPU, so an entry being
 * rewritten on one CPU is never read half-written on another; an array, so its lookup is
 * inlined by the verifier. 4096 slots of 64 bytes: 256 KiB per CPU. Nothing in user space
 * reads or writes it.
 */
#ifndef XLB_LIB_ROUTE_CACHE_H
#define XLB_LIB_ROUTE_CACHE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

#include "xlb_abi.h"
#include "hash.h"
#include "nat.h"

#define XLB_ROUTE_CACHE_SLOTS 4096 /* a power of two */
#define XLB_ROUTE_CACHE_TTL_NS 1000000000ULL

struct xlb_route_cache_entry {
	__be32 src[4]; /* the tag: the reply's source (a frontend) and destination (its client) */
	__be32 dst[4];
	__u64 checked_ns; /* when the route was looked up; 0 = empty */
	__u32 ingress_ifindex;
	__u32 ifindex; /* egress */
	__u8 dmac[ETH_ALEN];
	__u8 smac[ETH_ALEN];
	__u16 max_len; /* the longest IP length the route lookup allowed */
	__u8 family;
	__u8 pad;
};

_Static_assert(sizeof(struct xlb_route_cache_entry) == 64, "xlb_route_cache_entry is one cache line");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XLB_ROUTE_CACHE_SLOTS);
	__type(key, __u32);
	__type(value, struct xlb_route_cache_entry);
} xlb_route_cache SEC(".maps");

/* The CPU's slot for replies from src to dst (whatever it holds now). */
static __always_inline struct xlb_route_cache_entry *xlb_route_cache_entry(const __be32 *src, const __be32 *dst)
{
	__u32 slot = (xlb_hash_addr(dst) ^ xlb_hash_addr(src)) & (XLB_ROUTE_CACHE_SLOTS - 1);

	return bpf_map_lookup_elem(&xlb_route_cache, &slot);
}

/* The slot holds a fresh route from src to dst, for this link and a packet this long. */
static __always_inline int xlb_route_cache_hit(const struct xlb_route_cache_entry *entry, const __be32 *src,
					       const __be32 *dst, __u8 family, __u32 ingress_ifindex, __u16 ip_len,
					       __u64 now)
{
	return entry && entry->checked_ns && now - entry->checked_ns < XLB_ROUTE_CACHE_TTL_NS &&
	       entry->family == family && entry->ingress_ifindex == ingress_ifindex && ip_len <= entry->max_len &&
	       xlb_addr_equal(entry->dst, dst) && xlb_addr_equal(entry->src, src);
}

/* Remembers a successful route lookup from src to dst, made for a packet of ip_len. */
static __always_inline void xlb_route_cache_store(struct xlb_route_cache_entry *entry, const __be32 *src,
						  const __be32 *dst, __u8 family, const struct bpf_fib_lookup *fib,
						  __u32 ingress_ifindex, __u16 ip_len, __u64 now)
{
	if (!entry)
		return;
	/* A lookup made because a packet was longer than a fresh answer allowed raises max_len;
	 * any other answer starts from this packet's length. */
	if (!xlb_route_cache_hit(entry, src, dst, family, ingress_ifindex, 0, now) || ip_len > entry->max_len)
		entry->max_len = ip_len;
	xlb_addr_copy(entry->src, src);
	xlb_addr_copy(entry->dst, dst);
	entry->family = family;
	entry->ingress_ifindex = ingress_ifindex;
	entry->checked_ns = now;
	entry->ifindex = fib->ifindex;
	__builtin_memcpy(entry->dmac, fib->dmac, ETH_ALEN);
	__builtin_memcpy(entry->smac, fib->smac, ETH_ALEN);
}

#endif /* XLB_LIB_ROUTE_CACHE_H */

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A per-CPU cache of backends and the route to them, for the XDP program's established flows.
 *
 * Forwarding a packet of a known flow needs the backend's address (xlb_backends) and the next
 * hop toward it (bpf_fib_lookup). Both answers are the same for every packet to that backend,
 * and asking for them is most of the cost of a packet: on the machines xlb is benchmarked on,
 * a hash lookup costs 20-40 ns and a route lookup ~170 ns, where the whole budget of an
 * established flow is 90. So each CPU keeps, per backend, a copy of its entry and the last
 * successful route lookup toward it, and asks again when they are a second old.
 *
 * What that means:
 *   - A backend removed from xlb_backends (or a changed route or neighbour) is noticed by its
 *     established flows within a second. User space that wants it at once zeroes the
 *     backend's slot (xlb_backend_cache_slot) on every CPU when it removes a backend.
 *   - New flows always read xlb_backends itself (its state decides whether the backend may
 *     take them); only their next hop may come from here.
 *   - An answer is reused only for the ingress link it was made for (it decides XDP_TX versus
 *     a redirect) and for packets no longer than the one it was made for (the lookup also
 *     checked the route's MTU; a longer packet asks again). It was made with the source
 *     address of the flow that asked (the client, or the node for snat): routes toward a
 *     backend that depend on the source (policy routing by source) are not told apart within
 *     the second.
 *
 * Direct-mapped: backend id N lives in slot N % XLB_BACKEND_CACHE_SLOTS, tagged with N. Two
 * busy backends sharing a slot take turns (each miss is a lookup, never a wrong answer). Per
 * CPU, so an entry being rewritten on one CPU is never read half-written on another; an array,
 * so its lookup is inlined by the verifier. 4096 slots of 64 bytes: 256 KiB per CPU.
 */
#ifndef XLB_LIB_BACKEND_CACHE_H
#define XLB_LIB_BACKEND_CACHE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

#include "xlb_abi.h"

#define XLB_BACKEND_CACHE_SLOTS 4096 /* a power of two */
#define XLB_BACKEND_CACHE_TTL_NS 1000000000ULL

struct xlb_backend_cache_entry {
	__u32 backend_id; /* the tag; XLB_BACKEND_ID_NONE = empty */
	__u32 ingress_ifindex;
	__u64 checked_ns; /* when backend and route were read (the XDP program's clock) */
	struct xlb_backend backend;
	__u32 ifindex; /* egress */
	__u8 dmac[ETH_ALEN];
	__u8 smac[ETH_ALEN];
	__u16 max_len; /* the longest IP length the route lookup allowed */
	__u8 pad[6];
};

/* One cache line; tests/support/lb_programs.h knows the size and where checked_ns is. */
_Static_assert(sizeof(struct xlb_backend_cache_entry) == 64, "xlb_backend_cache_entry is one cache line");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XLB_BACKEND_CACHE_SLOTS);
	__type(key, __u32); /* backend id % XLB_BACKEND_CACHE_SLOTS */
	__type(value, struct xlb_backend_cache_entry);
} xlb_backend_cache SEC(".maps");

static __always_inline __u32 xlb_backend_cache_slot(__u32 backend_id)
{
	return backend_id & (XLB_BACKEND_CACHE_SLOTS - 1);
}

/* The CPU's slot for the backend (whatever it holds now). */
static __always_inline struct xlb_backend_cache_entry *xlb_backend_cache_entry(__u32 backend_id)
{
	__u32 slot = xlb_backend_cache_slot(backend_id);

	return bpf_map_lookup_elem(&xlb_backend_cache, &slot);
}

/* The slot holds this backend, answered recently, for this link and a packet this long. */
static __always_inline int xlb_backend_cache_hit(const struct xlb_backend_cache_entry *entry, __u32 backend_id,
						 __u32 ingress_ifindex, __u16 ip_len, __u64 now)
{
	return entry && entry->backend_id == backend_id && backend_id != XLB_BACKEND_ID_NONE &&
	       now - entry->checked_ns < XLB_BACKEND_CACHE_TTL_NS && entry->ingress_ifindex == ingress_ifindex &&
	       ip_len <= entry->max_len;
}

/* Remembers a successful route lookup toward the backend, made for a packet of ip_len. */
static __always_inline void xlb_backend_cache_store(struct xlb_backend_cache_entry *entry, __u32 backend_id,
						    const struct xlb_backend *backend,
						    const struct bpf_fib_lookup *fib, __u32 ingress_ifindex,
						    __u16 ip_len, __u64 now)
{
	int same;

	if (!entry)
		return;
	/* A lookup made because a packet was longer than a fresh answer allowed raises max_len;
	 * any other answer starts from this packet's length. */
	same = entry->backend_id == backend_id && entry->ingress_ifindex == ingress_ifindex &&
	       now - entry->checked_ns < XLB_BACKEND_CACHE_TTL_NS;
	if (!same || ip_len > entry->max_len)
		entry->max_len = ip_len;
	entry->backend_id = backend_id;
	entry->ingress_ifindex = ingress_ifindex;
	entry->checked_ns = now;
	entry->backend = *backend;
	entry->ifindex = fib->ifindex;
	__builtin_memcpy(entry->dmac, fib->dmac, ETH_ALEN);
	__builtin_memcpy(entry->smac, fib->smac, ETH_ALEN);
}

#endif /* XLB_LIB_BACKEND_CACHE_H */

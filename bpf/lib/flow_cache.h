/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A per-CPU cache of conntrack's answers, for the XDP program's established flows.
 *
 * A conntrack hit takes the frontend lookup (a call into the kernel's hash map code), the
 * scan of the flow's set in a table shared by every CPU, and the way's lock (two helper calls):
 * on the machines xlb is benchmarked on every return from a kernel function pays for a CPU
 * mitigation (speculative return stack overflow, "safe RET"), and that is more than an
 * established packet's budget of 90 ns. The answer is the same for every packet of a flow: its
 * backend and its snat port, which conntrack never changes for a live flow. So each CPU keeps
 * the flows it saw recently in an array, whose lookup the verifier inlines, and asks conntrack
 * again when an answer is 100 ms old: a flow of 10,000 packets a second still saves 999 lookups
 * in 1,000.
 *
 * What that means:
 *   - Asking conntrack ten times a second per busy flow keeps the entry's last_seen_ticks
 *     within ~100 ms of now (xlb_ct_refresh, due once a 67 ms tick), so new flows of its set
 *     take older ways than a busy flow's (a second would be too rare: a flood of new flows
 *     fills a set within a second, and a busy snat flow forgotten there would be given a new
 *     port); after a quiet second the refresh also writes an snat reply's reverse-NAT entry
 *     again.
 *   - A flow given another backend on another CPU (its backend was removed) may reach the old
 *     backend from this CPU for up to 100 ms more, and only while the backend cache
 *     (backend_cache.h) still holds the removed backend, which it does for up to a second
 *     anyway. When xlbd clears the removed backend's slot there, this CPU asks conntrack with
 *     the flow's next packet.
 *   - A cached flow skips the frontend lookup too: the entry keeps what the packet needs of its
 *     frontend (its mode and counter slot) and the frontends' epoch it was read in
 *     (xlb_frontend_epoch, xlb_abi.h), and is trusted only in that epoch. User space moves the
 *     epoch after every change of the frontends, so a removed frontend or a changed mode (nat,
 *     snat, dsr) is seen with the next packet; any change empties every CPU's cache at once,
 *     which costs each busy flow one conntrack lookup.
 *   - A flow is cached by its second packet (the first that finds it in conntrack), not by its
 *     first: a flow of one packet (a DNS query, a spoofed SYN) never takes a slot from a busy
 *     flow, and a new flow, already the dearest packet, does not also pay for the write.
 *
 * Direct-mapped: a flow lives in the slot of a cheap hash of its key (not the Maglev hash,
 * which must be the same on every node and costs more), tagged with the whole key. Two busy
 * flows sharing a slot take turns (each miss asks conntrack, never a wrong answer). Per CPU,
 * so an entry being rewritten on one CPU is never read half-written on another. 8192 slots of
 * 64 bytes: 512 KiB per CPU. Not part of the ABI: only this program reads or writes it.
 */
#ifndef XLB_LIB_FLOW_CACHE_H
#define XLB_LIB_FLOW_CACHE_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "xlb_abi.h"
#include "conntrack.h"

#define XLB_FLOW_CACHE_SLOTS 8192 /* a power of two */
#define XLB_FLOW_CACHE_TTL_NS 100000000ULL

struct xlb_flow_cache_entry {
	struct xlb_flow_key flow; /* the tag; family 0 = empty */
	__u32 backend_id;
	__be16 snat_port; /* 0 unless the frontend is snat */
	__u8 dsr;         /* the frontend is dsr */
	__u8 pad;
	__u64 checked_ns;  /* when conntrack was read (the XDP program's clock) */
	__u32 epoch;       /* the frontends' epoch when the frontend was read */
	__u32 service_slot; /* the frontend's counter slot */
};

_Static_assert(sizeof(struct xlb_flow_cache_entry) == 64, "xlb_flow_cache_entry is one cache line");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XLB_FLOW_CACHE_SLOTS);
	__type(key, __u32); /* xlb_flow_cache_slot */
	__type(value, struct xlb_flow_cache_entry);
} xlb_flow_cache SEC(".maps");

/* Mixes the key's words (multiply and shift, as murmur3's finaliser does): enough to spread
 * flows over the slots; a collision costs a conntrack lookup, never a wrong answer. */
static __always_inline __u32 xlb_flow_cache_slot(const struct xlb_flow_key *flow)
{
	const __u32 *k = (const __u32 *)flow;
	__u32 h;

	h = (k[0] ^ k[1] ^ k[2] ^ k[3]) * 0x9e3779b1U;
	h = (h ^ k[4] ^ k[5] ^ k[6] ^ k[7]) * 0x85ebca6bU;
	h = (h ^ k[8] ^ k[9]) * 0xc2b2ae35U;
	h ^= h >> 16;
	return h & (XLB_FLOW_CACHE_SLOTS - 1);
}

/* The CPU's slot for the flow (whatever it holds now). */
static __always_inline struct xlb_flow_cache_entry *xlb_flow_cache_entry(const struct xlb_flow_key *flow)
{
	__u32 slot = xlb_flow_cache_slot(flow);

	return bpf_map_lookup_elem(&xlb_flow_cache, &slot);
}

/* The slot holds this flow, read from conntrack less than XLB_FLOW_CACHE_TTL_NS ago, with its
 * frontend as it is in this epoch. */
static __always_inline int xlb_flow_cache_hit(const struct xlb_flow_cache_entry *entry,
					      const struct xlb_flow_key *flow, __u64 now, __u32 epoch)
{
	return entry && entry->epoch == epoch && now - entry->checked_ns < XLB_FLOW_CACHE_TTL_NS &&
	       xlb_flow_key_equal(&entry->flow, flow);
}

/* Remembers conntrack's answer for the flow (its backend and snat port) and what its packets
 * need of the frontend, read in this epoch. */
static __always_inline void xlb_flow_cache_store(struct xlb_flow_cache_entry *entry, const struct xlb_flow_key *flow,
						 __u32 backend_id, __be16 snat_port,
						 const struct xlb_service_value *service, __u32 epoch, __u64 now)
{
	if (!entry)
		return;
	entry->flow = *flow;
	entry->backend_id = backend_id;
	entry->snat_port = snat_port;
	entry->dsr = !!(service->flags & XLB_SERVICE_F_DSR);
	entry->checked_ns = now;
	entry->epoch = epoch;
	entry->service_slot = XLB_SERVICE_STATS_SLOT(service->flags);
}

#endif /* XLB_LIB_FLOW_CACHE_H */

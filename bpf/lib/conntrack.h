/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Connection tracking for balanced flows: the flow as it arrives from the client (client ->
 * frontend) -> the backend it was given (struct xlb_ct_entry). A flow keeps its backend for
 * its life, however the service's ring changes later; only when that backend is gone from
 * xlb_backends is the flow balanced again.
 *
 * A set-associative table (xlb_abi.h, struct xlb_ct_way): a flow lives in one of the ways of
 * its client's set. A new flow takes an empty way, else the way seen least recently: never is
 * a new flow refused. There is no per-flow timer: idle flows age out by use of their set.
 *
 * Readers compare keys without the way's lock and copy what they found under it, checking the
 * key again there: a way being rewritten on another CPU is either skipped or read whole.
 */
#ifndef XLB_LIB_CONNTRACK_H
#define XLB_LIB_CONNTRACK_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "xlb_abi.h"
#include "node.h"

/* How many ticks (xlb_ct_entry.last_seen_ticks) make a second. */
#define XLB_CT_TICKS_PER_S ((1000000000U >> XLB_CT_TICK_SHIFT) + 1)

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XLB_CT_FLOWS);
	/* Mappable arrays start their values on a page: each way is then one cache line. */
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct xlb_ct_way);
} xlb_conntrack SEC(".maps");

/* Word by word, one branch: keys on the stack are only 4-byte aligned. */
static __always_inline int xlb_flow_key_equal(const struct xlb_flow_key *a, const struct xlb_flow_key *b)
{
	const __u32 *x = (const __u32 *)a, *y = (const __u32 *)b;

	return !((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3]) | (x[4] ^ y[4]) | (x[5] ^ y[5]) |
		 (x[6] ^ y[6]) | (x[7] ^ y[7]) | (x[8] ^ y[8]) | (x[9] ^ y[9]));
}

static __always_inline __u32 xlb_ct_ticks(__u64 now_ns)
{
	return now_ns >> XLB_CT_TICK_SHIFT;
}

/* The node's conntrack seed (xlb_abi.h); 0 until user space writes the node's settings. */
static __always_inline __u32 xlb_ct_seed(void)
{
	const struct xlb_node_config *node = xlb_node_config();

	return node ? node->ct_seed : 0;
}

static __always_inline __u32 xlb_ct_first_way_of(const struct xlb_flow_key *flow)
{
	return xlb_ct_first_way(xlb_ct_seed(), flow->src, flow->sport, flow->protocol, flow->family);
}

static __always_inline struct xlb_ct_way *xlb_ct_way_at(__u32 index)
{
	return bpf_map_lookup_elem(&xlb_conntrack, &index);
}

/* Copies a way whole (flow and entry) as no writer is halfway through it. */
static __always_inline void xlb_ct_copy(struct xlb_ct_way *way, struct xlb_flow_key *flow, struct xlb_ct_entry *entry)
{
	bpf_spin_lock(&way->lock);
	*flow = way->flow;
	*entry = way->entry;
	bpf_spin_unlock(&way->lock);
}

/* The way whose key is the flow's, read without its lock: the caller checks again under it. */
static __always_inline struct xlb_ct_way *xlb_ct_find(const struct xlb_flow_key *flow)
{
	__u32 first = xlb_ct_first_way_of(flow);

	for (int i = 0; i < XLB_CT_WAYS; i++) {
		struct xlb_ct_way *way = xlb_ct_way_at(first + i);

		if (way && xlb_flow_key_equal(&way->flow, flow))
			return way;
	}
	return NULL;
}

/* The flow's entry, copied into *entry; NULL when conntrack does not hold the flow. */
static __always_inline struct xlb_ct_entry *xlb_ct_lookup(const struct xlb_flow_key *flow, struct xlb_ct_entry *entry)
{
	struct xlb_ct_way *way = xlb_ct_find(flow);
	int found;

	if (!way)
		return NULL;
	bpf_spin_lock(&way->lock);
	found = xlb_flow_key_equal(&way->flow, flow);
	if (found)
		*entry = way->entry;
	bpf_spin_unlock(&way->lock);
	return found ? entry : NULL;
}

/* The way a new entry for the flow goes to: the flow's own if it has one, else an empty way,
 * else the way seen longest ago. */
static __always_inline struct xlb_ct_way *xlb_ct_place(const struct xlb_flow_key *flow, __u32 now_ticks)
{
	__u32 first = xlb_ct_first_way_of(flow);
	struct xlb_ct_way *empty = NULL, *oldest = NULL;
	__u32 oldest_age = 0;

	for (int i = 0; i < XLB_CT_WAYS; i++) {
		struct xlb_ct_way *way = xlb_ct_way_at(first + i);

		if (!way)
			continue;
		if (xlb_flow_key_equal(&way->flow, flow))
			return way;
		if (!way->flow.family) {
			empty = empty ? empty : way;
		} else if (!oldest || now_ticks - way->entry.last_seen_ticks > oldest_age) {
			oldest = way;
			oldest_age = now_ticks - way->entry.last_seen_ticks;
		}
	}
	return empty ? empty : oldest;
}

/* Records (or replaces) the flow's entry. Two CPUs that see a flow's first packets at once
 * both write; the pick is a function of the flow and the ring, so they agree but for snat
 * ports, where the last writer wins and the other port's reverse entry ages out unused. */
static __always_inline void xlb_ct_create(const struct xlb_flow_key *flow, __u32 backend_id, __u32 service_id,
					  __u32 service_slot, __be16 snat_port, __u64 now)
{
	__u32 now_ticks = xlb_ct_ticks(now);
	struct xlb_ct_way *way = xlb_ct_place(flow, now_ticks);

	if (!way)
		return; /* cannot happen: an array has every index below its size */
	bpf_spin_lock(&way->lock);
	way->flow = *flow;
	way->entry.backend_id = backend_id;
	way->entry.service_id = service_id;
	way->entry.last_seen_ticks = now_ticks;
	way->entry.service_slot = service_slot;
	way->entry.snat_port = snat_port;
	way->entry.pad[0] = 0;
	way->entry.pad[1] = 0;
	bpf_spin_unlock(&way->lock);
}

/* The entry's refresh (xlb_ct_touch) is due: it was last seen in an earlier tick. A write
 * per packet would move the way's cache line between CPUs for every packet of a busy flow. */
static __always_inline int xlb_ct_refresh_due(const struct xlb_ct_entry *entry, __u64 now)
{
	return entry->last_seen_ticks != xlb_ct_ticks(now);
}

/* The flow was not seen for a second or more before now. */
static __always_inline int xlb_ct_was_quiet(const struct xlb_ct_entry *entry, __u64 now)
{
	return xlb_ct_ticks(now) - entry->last_seen_ticks >= XLB_CT_TICKS_PER_S;
}

/* The flow was seen now, under the service's current counter slot. */
static __always_inline void xlb_ct_touch(const struct xlb_flow_key *flow, __u32 service_slot, __u64 now)
{
	struct xlb_ct_way *way = xlb_ct_find(flow);
	__u32 now_ticks = xlb_ct_ticks(now);

	if (!way)
		return;
	bpf_spin_lock(&way->lock);
	if (xlb_flow_key_equal(&way->flow, flow)) {
		way->entry.last_seen_ticks = now_ticks;
		way->entry.service_slot = service_slot;
	}
	bpf_spin_unlock(&way->lock);
}

#endif /* XLB_LIB_CONNTRACK_H */

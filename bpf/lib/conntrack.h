/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Connection tracking for balanced flows: the flow as it arrives from the client (client ->
 * frontend) -> the backend it was given (struct xlb_ct_entry). A flow keeps its backend for
 * its life, however the service's ring changes later; only when that backend is gone from
 * xlb_backends is the flow balanced again.
 *
 * LRU: when the table is full the least recently used flow is forgotten to make room, never
 * is a new flow refused. There is no per-flow timer: idle flows age out by use of the table.
 */
#ifndef XLB_LIB_CONNTRACK_H
#define XLB_LIB_CONNTRACK_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "xlb_abi.h"

/* last_seen_ns is written at most this often: a write per packet would move the entry's cache
 * line between CPUs for every packet of a busy flow. */
#define XLB_CT_REFRESH_NS 1000000000ULL

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XLB_MAX_FLOWS);
	__type(key, struct xlb_flow_key);
	__type(value, struct xlb_ct_entry);
} xlb_conntrack SEC(".maps");

static __always_inline struct xlb_ct_entry *xlb_ct_lookup(const struct xlb_flow_key *flow)
{
	return bpf_map_lookup_elem(&xlb_conntrack, flow);
}

/* Records (or replaces) the flow's entry. Two CPUs that see a flow's first packets at once
 * both write; the pick is a function of the flow and the ring, so they agree but for snat
 * ports, where the last writer wins and the other port's reverse entry ages out unused. */
static __always_inline void xlb_ct_create(const struct xlb_flow_key *flow, __u32 backend_id, __u32 service_id,
					  __u32 service_slot, __be16 snat_port, __u64 now)
{
	struct xlb_ct_entry entry = {
		.backend_id = backend_id,
		.service_id = service_id,
		.last_seen_ns = now,
		.snat_port = snat_port,
		.service_slot = service_slot,
	};

	bpf_map_update_elem(&xlb_conntrack, flow, &entry, BPF_ANY);
}

#endif /* XLB_LIB_CONNTRACK_H */

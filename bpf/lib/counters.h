/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Counters: per service, per backend and per reason (struct xlb_stats). Per-CPU, so that
 * counting is a plain add with no atomic and no shared cache line; user space sums the CPUs.
 *
 * Service and backend counters are arrays indexed by a counter slot, not by id: ids come from a
 * space far larger than what a node holds (XLB_MAX_SERVICES / XLB_MAX_BACKENDS), and an array
 * over it would cost 24 bytes x ids x possible CPUs (a 64-CPU node with 1 Mi ids: 1.5 GiB); a
 * hash keyed by id would cost two hash lookups per packet (~60 ns measured). User space gives
 * each service and backend a slot below the node's capacity and writes it into their entries
 * (xlb_service_value's flags, xlb_backend.stats_slot), which the programs have read anyway, so
 * counting stays an inlined array access. max_entries (capacity + 1, slot 0 = none) is set at
 * load time from [node] max_services / max_backends; the values here are the defaults.
 *
 * Every packet the XDP program sees is counted under exactly one reason; the tc program
 * counts only the replies it translates (every other packet on the link is XDP's to count).
 */
#ifndef XLB_LIB_COUNTERS_H
#define XLB_LIB_COUNTERS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "xlb_abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XLB_DEFAULT_SERVICES + 1);
	__type(key, __u32); /* the service's counter slot */
	__type(value, struct xlb_stats);
} xlb_service_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XLB_DEFAULT_BACKENDS + 1);
	__type(key, __u32); /* the backend's counter slot */
	__type(value, struct xlb_stats);
} xlb_backend_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XLB_REASON_SLOTS);
	__type(key, __u32); /* enum xlb_reason */
	__type(value, struct xlb_stats);
} xlb_reason_stats SEC(".maps");

static __always_inline void xlb_count(void *map, __u32 index, __u64 bytes, __u32 new_flow)
{
	struct xlb_stats *stats = bpf_map_lookup_elem(map, &index);

	if (!stats)
		return;
	stats->packets++;
	stats->bytes += bytes;
	stats->new_flows += new_flow;
}

static __always_inline void xlb_count_reason(__u32 reason, __u64 bytes)
{
	xlb_count(&xlb_reason_stats, reason, bytes, 0);
}

/* A packet forwarded for a service to one of its backends (either direction), by their slots. */
static __always_inline void xlb_count_flow(__u32 service_slot, __u32 backend_slot, __u64 bytes, __u32 new_flow)
{
	xlb_count(&xlb_service_stats, service_slot, bytes, new_flow);
	xlb_count(&xlb_backend_stats, backend_slot, bytes, new_flow);
}

#endif /* XLB_LIB_COUNTERS_H */

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Counters: per service, per backend and per reason (struct xlb_stats). Per-CPU, so that
 * counting is a plain add with no atomic and no shared cache line; user space sums the CPUs.
 *
 * Service and backend counters are per-CPU hashes keyed by id, not arrays indexed by it: ids
 * come from a space far larger than what a node holds (XLB_MAX_SERVICES / XLB_MAX_BACKENDS),
 * and an array over it would cost 24 bytes x ids x possible CPUs whatever is in use (a 64-CPU
 * node with 1 Mi ids: 1.5 GiB). Without preallocation a hash costs what its entries use.
 * User space creates a service's or backend's entry (zeroed) before it writes the service or
 * backend, and deletes it after; the programs never create one, so an id without an entry is
 * simply not counted. max_entries is set at load time from the node's capacity (xlbd's
 * [node] max_services / max_backends); the values here are the defaults.
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
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, XLB_DEFAULT_SERVICES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32); /* service id */
	__type(value, struct xlb_stats);
} xlb_service_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, XLB_DEFAULT_BACKENDS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32); /* backend id */
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

/* A packet forwarded for a service to one of its backends (either direction). */
static __always_inline void xlb_count_flow(__u32 service_id, __u32 backend_id, __u64 bytes, __u32 new_flow)
{
	xlb_count(&xlb_service_stats, service_id, bytes, new_flow);
	xlb_count(&xlb_backend_stats, backend_id, bytes, new_flow);
}

#endif /* XLB_LIB_COUNTERS_H */

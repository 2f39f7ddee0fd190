/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ClientIP session affinity (XLB_SERVICE_F_AFFINITY): every new flow of one client address to
 * one service goes to the same backend while the client was last seen less than the
 * service's affinity_timeout_s ago. The first flow picks by a hash of the client address
 * alone, so even without an entry (after a timeout, or on another node) the client lands on
 * the same backend as long as the ring is unchanged.
 */
#ifndef XLB_LIB_AFFINITY_H
#define XLB_LIB_AFFINITY_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "xlb_abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XLB_MAX_AFFINITY);
	__type(key, struct xlb_affinity_key);
	__type(value, struct xlb_affinity_entry);
} xlb_affinity SEC(".maps");

static __always_inline void xlb_affinity_key_of(struct xlb_affinity_key *key, const struct xlb_flow_key *flow,
						__u32 service_id)
{
	__builtin_memset(key, 0, sizeof(*key));
	key->client[0] = flow->src[0];
	key->client[1] = flow->src[1];
	key->client[2] = flow->src[2];
	key->client[3] = flow->src[3];
	key->service_id = service_id;
	key->family = flow->family;
}

/* The client's backend while its entry is younger than the timeout; XLB_BACKEND_ID_NONE if it
 * has none or it expired. A last_seen_ns in the future counts as expired too. */
static __always_inline __u32 xlb_affinity_lookup(const struct xlb_affinity_key *key, __u32 timeout_s, __u64 now)
{
	struct xlb_affinity_entry *entry = bpf_map_lookup_elem(&xlb_affinity, key);

	if (!entry || now - entry->last_seen_ns >= (__u64)timeout_s * 1000000000ULL)
		return XLB_BACKEND_ID_NONE;
	return entry->backend_id;
}

static __always_inline void xlb_affinity_record(const struct xlb_affinity_key *key, __u32 backend_id, __u64 now)
{
	struct xlb_affinity_entry entry = {
		.backend_id = backend_id,
		.last_seen_ns = now,
	};

	bpf_map_update_elem(&xlb_affinity, key, &entry, BPF_ANY);
}

#endif /* XLB_LIB_AFFINITY_H */

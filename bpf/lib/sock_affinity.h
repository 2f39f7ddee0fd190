/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ClientIP affinity for socket-LB (XLB_SERVICE_F_AFFINITY). On the node itself every client
 * of a network namespace has the same addresses as seen by the service (the namespace's, or
 * the node's), so "the client" is the network namespace: keyed by bpf_get_netns_cookie and the
 * service id. A client keeps its backend while it connected less than affinity_timeout_s ago.
 * The packet path's affinity (affinity.h) keys by client address instead: another map.
 */
#ifndef XLB_LIB_SOCK_AFFINITY_H
#define XLB_LIB_SOCK_AFFINITY_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "xlb_abi.h"

/* Private to the socket programs: user space only ever deletes entries. */
struct xlb_sock_affinity_key {
	__u64 netns_cookie;
	__u32 service_id;
	__u32 pad; /* 0 */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XLB_MAX_AFFINITY);
	__type(key, struct xlb_sock_affinity_key);
	__type(value, struct xlb_affinity_entry); /* the packet path's value: backend, last seen */
} xlb_sock_affinity SEC(".maps");

/* The client's backend while its entry is younger than the timeout; XLB_BACKEND_ID_NONE
 * otherwise. A last_seen_ns in the future (a clock that does not match) counts as expired. */
static __always_inline __u32 sock_affinity_lookup(const struct xlb_sock_affinity_key *key, __u32 timeout_s,
						  __u64 now)
{
	struct xlb_affinity_entry *entry = bpf_map_lookup_elem(&xlb_sock_affinity, key);

	if (!entry || now < entry->last_seen_ns || now - entry->last_seen_ns >= (__u64)timeout_s * 1000000000ULL)
		return XLB_BACKEND_ID_NONE;
	return entry->backend_id;
}

/* Written on every translated connect: the timeout counts from the client's last connect. */
static __always_inline void sock_affinity_record(const struct xlb_sock_affinity_key *key, __u32 backend_id,
						 __u64 now)
{
	struct xlb_affinity_entry entry = {
		.backend_id = backend_id,
		.last_seen_ns = now,
	};

	bpf_map_update_elem(&xlb_sock_affinity, key, &entry, BPF_ANY);
}

#endif /* XLB_LIB_SOCK_AFFINITY_H */

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Service lookup and backend selection, shared by every program that load-balances.
 * How the slot is chosen is the caller's: socket-LB passes a random number (each connect
 * is its own flow), the packet path passes a hash of the flow (hash.h).
 */
#ifndef XLB_LIB_LB_H
#define XLB_LIB_LB_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "maps.h"

/* No frontend has this address, port and protocol (the filter's bit is clear, xlb_abi.h);
 * "may have" otherwise. One inlined array read. */
static __always_inline int lb_no_frontend(const __be32 address[4], __be16 port, __u8 protocol)
{
	__u32 bit = xlb_frontend_filter_bit(address, port, protocol);
	__u32 word = bit >> 6;
	const __u64 *bits = bpf_map_lookup_elem(&xlb_frontend_filter, &word);

	return bits && !(*bits & (1ULL << (bit & 63)));
}

/* The services maps themselves, with no filter in front. */
static __always_inline const struct xlb_service_value *lb4_find_service(__be32 address, __be16 port, __u8 protocol)
{
	struct xlb_service_key_v4 key = {
		.address = address,
		.port = port,
		.protocol = protocol,
		.pad = 0,
	};

	return bpf_map_lookup_elem(&xlb_services_v4, &key);
}

static __always_inline const struct xlb_service_value *lb6_find_service(const __be32 address[4], __be16 port,
									 __u8 protocol)
{
	struct xlb_service_key_v6 key = {
		.address = { address[0], address[1], address[2], address[3] },
		.port = port,
		.protocol = protocol,
		.pad = 0,
	};

	return bpf_map_lookup_elem(&xlb_services_v6, &key);
}

/* The frontend of a flow as it arrives (destination address, port and protocol), for a caller
 * that already asked the filter (lb_no_frontend). */
static __always_inline const struct xlb_service_value *lb_find_service(const struct xlb_flow_key *flow)
{
	if (flow->family == XLB_AF_INET)
		return lb4_find_service(flow->dst[0], flow->dport, flow->protocol);
	return lb6_find_service(flow->dst, flow->dport, flow->protocol);
}

/* The frontend at an address, port and protocol: the filter, then the services map. */
static __always_inline const struct xlb_service_value *lb4_lookup_service(__be32 address, __be16 port,
									   __u8 protocol)
{
	__be32 words[4] = { address, 0, 0, 0 };

	if (lb_no_frontend(words, port, protocol))
		return NULL;
	return lb4_find_service(address, port, protocol);
}

static __always_inline const struct xlb_service_value *lb6_lookup_service(const __be32 address[4], __be16 port,
									   __u8 protocol)
{
	if (lb_no_frontend(address, port, protocol))
		return NULL;
	return lb6_find_service(address, port, protocol);
}

/* The frontend of a flow as it arrives: the filter, then the services map. */
static __always_inline const struct xlb_service_value *lb_lookup_service(const struct xlb_flow_key *flow)
{
	if (lb_no_frontend(flow->dst, flow->dport, flow->protocol))
		return NULL;
	return lb_find_service(flow);
}

/* The frontends' epoch (xlb_abi.h): read before the frontend it vouches for, so that an answer
 * made from a frontend user space then changes is stored under the epoch before the change. */
static __always_inline __u32 lb_frontend_epoch(void)
{
	__u32 zero = 0;
	const __u32 *epoch = bpf_map_lookup_elem(&xlb_frontend_epoch, &zero);

	return epoch ? *epoch : 0;
}

/* Whether some frontend has this address, whatever its port and protocol (maps.h). */
static __always_inline int lb_is_frontend_address(__u8 family, const __be32 address[4])
{
	struct xlb_frontend_addr_key key = {
		.address = { address[0], address[1], address[2], address[3] },
		.family = family,
	};

	return bpf_map_lookup_elem(&xlb_frontend_addrs, &key) != NULL;
}

/* The backend id in slot (pick % ring size) of the service's ring; XLB_BACKEND_ID_NONE if it
 * has none. */
static __always_inline __u32 lb_ring_pick(const struct xlb_service_value *service, __u32 pick)
{
	__u32 ring_size = service->ring_size;
	const struct xlb_ring_pair *pair;
	__u32 slot, entry;

	if (ring_size == 0)
		return XLB_BACKEND_ID_NONE;
	slot = service->ring_offset + pick % ring_size;
	entry = slot / XLB_RING_SLOTS_PER_ENTRY;
	pair = bpf_map_lookup_elem(&xlb_ring_slots, &entry);
	if (!pair)
		return XLB_BACKEND_ID_NONE;
	return pair->backend_id[slot & (XLB_RING_SLOTS_PER_ENTRY - 1)];
}

static __always_inline const struct xlb_backend *lb_lookup_backend(__u32 backend_id)
{
	return bpf_map_lookup_elem(&xlb_backends, &backend_id);
}

/* The backend in slot (pick % ring size) of the service's ring; NULL if it has none. */
static __always_inline const struct xlb_backend *
lb_select_backend(const struct xlb_service_value *service, __u32 pick)
{
	return lb_lookup_backend(lb_ring_pick(service, pick));
}

#endif /* XLB_LIB_LB_H */

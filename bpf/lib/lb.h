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

static __always_inline const struct xlb_service_value *
lb4_lookup_service(__be32 address, __be16 port, __u8 protocol)
{
	struct xlb_service_key_v4 key = {
		.address = address,
		.port = port,
		.protocol = protocol,
		.pad = 0,
	};

	return bpf_map_lookup_elem(&xlb_services_v4, &key);
}

static __always_inline const struct xlb_service_value *
lb6_lookup_service(const __be32 address[4], __be16 port, __u8 protocol)
{
	struct xlb_service_key_v6 key = {
		.address = { address[0], address[1], address[2], address[3] },
		.port = port,
		.protocol = protocol,
		.pad = 0,
	};

	return bpf_map_lookup_elem(&xlb_services_v6, &key);
}

/* The frontend of a flow as it arrives (destination address, port and protocol): one hash
 * lookup, the only one a packet that is not for a frontend costs. */
static __always_inline const struct xlb_service_value *lb_lookup_service(const struct xlb_flow_key *flow)
{
	if (flow->family == XLB_AF_INET)
		return lb4_lookup_service(flow->dst[0], flow->dport, flow->protocol);
	return lb6_lookup_service(flow->dst, flow->dport, flow->protocol);
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

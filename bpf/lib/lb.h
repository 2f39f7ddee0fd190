/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Service lookup and backend selection, shared by every program that load-balances.
 * How the slot is chosen is the caller's: socket-LB passes a random number (each connect
 * is its own flow), the packet path will pass a hash of the flow.
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

/* The backend in slot (pick % ring size) of the service's ring; NULL if it has none. */
static __always_inline const struct xlb_backend *
lb_select_backend(const struct xlb_service_value *service, __u32 pick)
{
	__u32 service_id = service->service_id;
	__u32 ring_size = service->ring_size;
	const __u32 *backend_id;
	__u32 slot;
	void *ring;

	if (ring_size == 0)
		return NULL;
	ring = bpf_map_lookup_elem(&xlb_rings, &service_id);
	if (!ring)
		return NULL;
	slot = pick % ring_size;
	backend_id = bpf_map_lookup_elem(ring, &slot);
	if (!backend_id)
		return NULL;
	return bpf_map_lookup_elem(&xlb_backends, backend_id);
}

#endif /* XLB_LIB_LB_H */

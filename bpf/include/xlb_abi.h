/* SPDX-License-Identifier: GPL-2.0 */
/*
 * xlb_abi.h — every struct and constant shared between the BPF programs and user space.
 *
 * This header is the contract between the kernel side and xlbd. Both sides compile it, and
 * the size checks at the bottom make either build fail if the layout drifts.
 *
 * XLB_ABI_VERSION changes whenever a struct, a map's key/value or a constant here changes
 * meaning. Pinned maps live under a directory named after it (/sys/fs/bpf/xlb/v1/...), and
 * user space refuses pinned maps of any other version: a new xlbd never reads an old layout
 * as if it were its own.
 *
 * Byte order: fields typed __be* are in network byte order, everything else in host order.
 */
#ifndef XLB_ABI_H
#define XLB_ABI_H

#include <linux/types.h>

#define XLB_ABI_VERSION 1

/* Map sizes. A service here is one frontend (address, port, protocol) with its own ring. */
#define XLB_MAX_SERVICES 65536
#define XLB_MAX_BACKENDS 65536
/* The largest Maglev table size the daemon may choose (a prime, see design.md). */
#define XLB_MAX_RING_SIZE 131071

/* Backend id 0 is never a backend: it is what an unwritten ring slot holds. */
#define XLB_BACKEND_ID_NONE 0

/* xlb_services_v4: frontend -> service. */
struct xlb_service_key_v4 {
	__be32 address;
	__be16 port;
	__u8 protocol; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad;      /* always 0, so that the key hashes the same on both sides */
};

struct xlb_service_value {
	__u32 service_id; /* key of the service's ring in xlb_rings */
	/* Slots of the ring that the programs may pick from; 0 = no backend. User space keeps
	 * it no larger than the ring installed under service_id, so every picked slot exists. */
	__u32 ring_size;
	__u32 flags;    /* none defined yet; 0 */
	__u32 reserved; /* 0 */
};

/* xlb_backends: backend id -> where to send the traffic. */
enum xlb_backend_state {
	XLB_BACKEND_ACTIVE = 0, /* draining and down come with health checks and drain */
};

struct xlb_backend {
	__be32 address[4]; /* IPv4: address[0], the rest 0; IPv6: all 16 bytes */
	__be16 port;
	__u8 family; /* AF_INET or AF_INET6 (the kernel's values, 2 and 10) */
	__u8 state;  /* enum xlb_backend_state */
	__u32 reserved; /* 0 */
};

/* xlb_rings: service id -> an array map of ring_size backend ids (__u32), one per slot. */

#ifdef __cplusplus
#define XLB_ABI_ASSERT(cond, why) static_assert(cond, why)
#else
#define XLB_ABI_ASSERT(cond, why) _Static_assert(cond, why)
#endif

XLB_ABI_ASSERT(sizeof(struct xlb_service_key_v4) == 8, "xlb_service_key_v4 layout changed");
XLB_ABI_ASSERT(sizeof(struct xlb_service_value) == 16, "xlb_service_value layout changed");
XLB_ABI_ASSERT(sizeof(struct xlb_backend) == 24, "xlb_backend layout changed");

#undef XLB_ABI_ASSERT

#endif /* XLB_ABI_H */

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Socket-LB's reverse map: which service address a socket was translated from, so that the
 * application only ever sees the service. connect() and sendmsg() record the backend the
 * socket was sent to and the service address:port it asked for; getpeername() and recvmsg()
 * look the backend up and show the service instead.
 *
 * Two stores, for the two kinds of socket:
 *   - A connected socket (TCP, connected UDP: connect()) has one peer: its record lives in
 *     the socket itself (xlb_sock_peer, socket-local storage), for exactly as long as the
 *     socket. No table to fill, nothing to evict: a connect() costs the same whatever ran
 *     before it.
 *   - An unconnected UDP socket (sendmsg() with an address) may talk to several services: one
 *     entry per socket (by its cookie) and backend address:port, in an LRU hash
 *     (xlb_sock_revnat). A socket that closes leaves its entries behind to age out; one whose
 *     entry was evicted sees the backend's address (what the kernel would show without xlb),
 *     never a wrong service.
 *
 * Why not one LRU for both: a full LRU hash with one shared list refills a CPU's free list 128
 * entries at a time, evicting as many under its lock; with a connect() per entry, one connect()
 * in 128 paid ~20 us for that (p99 of connect() 50 us against 30 us without xlb).
 *
 * The socket iterator (sock_destroy.h) reads both: a socket is "connected through xlb" to a
 * backend when either says so.
 */
#ifndef XLB_LIB_SOCK_REVNAT_H
#define XLB_LIB_SOCK_REVNAT_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "xlb_abi.h"

/* Private to the socket programs (user space never writes it), so not in xlb_abi.h. */
struct xlb_sock_revnat_key {
	__u64 cookie;       /* bpf_get_socket_cookie: unique per socket for the kernel's uptime */
	__be32 address[4];  /* the backend, as the socket sees its peer */
	__be16 port;
	__u8 family;        /* XLB_AF_INET or XLB_AF_INET6 */
	__u8 pad[5];        /* 0, so that the key hashes the same whoever builds it */
};

struct xlb_sock_revnat_value {
	__be32 address[4];  /* the service address the application asked for */
	__be16 port;
	__u8 pad[2];
	__u32 service_id;
};

/* One entry per translated socket (UDP sockets that send to several services: one per service). */
#define XLB_SOCK_REVNAT_MAX 262144

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XLB_SOCK_REVNAT_MAX);
	__type(key, struct xlb_sock_revnat_key);
	__type(value, struct xlb_sock_revnat_value);
} xlb_sock_revnat SEC(".maps");

/* xlb_sock_peer's value: the backend a connected socket was sent to, and the service. */
struct xlb_sock_peer_value {
	__be32 backend[4];
	__be16 backend_port;
	__u8 family; /* XLB_AF_INET or XLB_AF_INET6; 0 = nothing recorded */
	__u8 pad;
	struct xlb_sock_revnat_value service;
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct xlb_sock_peer_value);
} xlb_sock_peer SEC(".maps");

/* The socket's own record names this backend: the service it stands for, else NULL. */
static __always_inline const struct xlb_sock_revnat_value *sock_peer_service(const struct xlb_sock_peer_value *peer,
									     __u8 family, const __be32 backend[4],
									     __be16 port)
{
	if (!peer || peer->family != family || peer->backend_port != port || peer->backend[0] != backend[0] ||
	    peer->backend[1] != backend[1] || peer->backend[2] != backend[2] || peer->backend[3] != backend[3])
		return NULL;
	return &peer->service;
}

static __always_inline void sock_revnat_key(struct xlb_sock_revnat_key *key, __u64 cookie, __u8 family,
					    const __be32 address[4], __be16 port)
{
	__builtin_memset(key, 0, sizeof(*key));
	key->cookie = cookie;
	key->family = family;
	key->address[0] = address[0];
	key->address[1] = address[1];
	key->address[2] = address[2];
	key->address[3] = address[3];
	key->port = port;
}

/*
 * Remembers that this socket's traffic to the backend is the service's. sendmsg() calls it
 * per datagram: an unchanged entry is not written again (a write to a hash map takes its
 * bucket lock; a lookup does not).
 */
static __always_inline void sock_revnat_record(const struct xlb_sock_revnat_key *key, const __be32 service[4],
					       __be16 service_port, __u32 service_id)
{
	struct xlb_sock_revnat_value value = {
		.address = { service[0], service[1], service[2], service[3] },
		.port = service_port,
		.service_id = service_id,
	};
	struct xlb_sock_revnat_value *old = bpf_map_lookup_elem(&xlb_sock_revnat, key);

	if (old && old->address[0] == value.address[0] && old->address[1] == value.address[1] &&
	    old->address[2] == value.address[2] && old->address[3] == value.address[3] &&
	    old->port == value.port && old->service_id == value.service_id)
		return;
	bpf_map_update_elem(&xlb_sock_revnat, key, &value, BPF_ANY);
}

static __always_inline const struct xlb_sock_revnat_value *sock_revnat_lookup(const struct xlb_sock_revnat_key *key)
{
	return bpf_map_lookup_elem(&xlb_sock_revnat, key);
}

#endif /* XLB_LIB_SOCK_REVNAT_H */

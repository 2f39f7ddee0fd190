/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Destroying the sockets that xlb connected to a backend that left (socket iterators +
 * bpf_sock_destroy, kernel 6.5+). Without it a connected UDP client (a resolver's socket to a
 * DNS service) keeps sending to the dead backend for as long as it lives.
 *
 * User space writes the backend into sock_destroy_target (the object's .bss) and reads an
 * iterator of iter/tcp and one of iter/udp: each visits every socket of the reader's network
 * namespace and destroys those connected to the target through xlb (xlb_sock_revnat knows the
 * socket), so a process that connected to the backend's address directly is left alone. User
 * space reads them once in every network namespace of the host (pods have their own).
 *
 * The iterator context types come from the running kernel's BTF: the local declarations below
 * hold only the fields used, and preserve_access_index lets libbpf relocate their offsets
 * (CO-RE), so no vmlinux.h is needed.
 */
#ifndef XLB_LIB_SOCK_DESTROY_H
#define XLB_LIB_SOCK_DESTROY_H

#include <linux/bpf.h>
#include <linux/in6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "xlb_abi.h"
#include "sock_revnat.h"

#define XLB_CORE __attribute__((preserve_access_index))

struct sock_common {
	__be32 skc_daddr;
	__be16 skc_dport;
	unsigned short skc_family;
	volatile unsigned char skc_state;
	struct in6_addr skc_v6_daddr;
} XLB_CORE;

struct udp_sock;

struct bpf_iter_meta {
	void *seq;
} XLB_CORE;

struct bpf_iter__tcp {
	struct bpf_iter_meta *meta;
	struct sock_common *sk_common;
} XLB_CORE;

struct bpf_iter__udp {
	struct bpf_iter_meta *meta;
	struct udp_sock *udp_sk;
} XLB_CORE;

/* The kernel's TCP states that are no full socket: bpf_sock_destroy needs a full one. */
#define XLB_TCP_TIME_WAIT 6
#define XLB_TCP_NEW_SYN_RECV 12

/*
 * A kfunc (kernel 6.5+): aborts the socket; its owner's next call fails with ECONNABORTED.
 * Weak, so that the object still loads on an older kernel (socket-LB works there, only
 * destroying sockets does not): libbpf leaves the address 0 and the verifier drops the call.
 */
extern int bpf_sock_destroy(struct sock_common *sk) __ksym __weak;

/* The backend whose sockets go, written by user space before each iteration (through the
 * object's .bss map, key 0). Plain scalars: the generated skeleton declares .bss variables
 * but not struct types, and user space compiles that declaration. */
__u32 sock_destroy_address[4]; /* network byte order, IPv4 in [0] */
__u16 sock_destroy_port;       /* network byte order */
__u8 sock_destroy_family;      /* XLB_AF_INET or XLB_AF_INET6; 0 = destroy nothing */
/* What the run did, for user space to read back (and zero before the next run). */
__u32 sock_destroy_done;       /* sockets destroyed */
__u32 sock_destroy_failed;     /* matched, but the kernel could not (or cannot: before 6.5) destroy them */

/* Whether xlb connected this socket to the target backend. */
static __always_inline int sock_destroy_matches(struct sock_common *sk)
{
	__be32 target[4] = { sock_destroy_address[0], sock_destroy_address[1], sock_destroy_address[2],
			     sock_destroy_address[3] };
	__be16 port = sock_destroy_port;
	__u8 family = sock_destroy_family;
	struct xlb_sock_revnat_key key;
	__be32 peer[4] = {};

	if (family == 0 || sk->skc_dport != port)
		return 0;
	if (sk->skc_family == XLB_AF_INET) {
		peer[0] = sk->skc_daddr;
	} else if (sk->skc_family == XLB_AF_INET6) {
		peer[0] = sk->skc_v6_daddr.in6_u.u6_addr32[0];
		peer[1] = sk->skc_v6_daddr.in6_u.u6_addr32[1];
		peer[2] = sk->skc_v6_daddr.in6_u.u6_addr32[2];
		peer[3] = sk->skc_v6_daddr.in6_u.u6_addr32[3];
		/* A dual-stack socket connected to an IPv4 backend (::ffff:a.b.c.d): socket-LB
		 * recorded it as IPv4 (xlb_sock.bpf.c). */
		if (peer[0] == 0 && peer[1] == 0 && peer[2] == bpf_htonl(0xffff)) {
			peer[0] = peer[3];
			peer[1] = peer[2] = peer[3] = 0;
		} else if (family != XLB_AF_INET6) {
			return 0;
		}
	} else {
		return 0;
	}
	if (family == XLB_AF_INET6 && sk->skc_family != XLB_AF_INET6)
		return 0;
	if (peer[0] != target[0] || peer[1] != target[1] || peer[2] != target[2] || peer[3] != target[3])
		return 0;
	sock_revnat_key(&key, bpf_get_socket_cookie(sk), family, target, port);
	return sock_revnat_lookup(&key) != NULL;
}

static __always_inline void sock_destroy_one(struct sock_common *sk)
{
	if (bpf_sock_destroy && bpf_sock_destroy(sk) == 0)
		sock_destroy_done++;
	else
		sock_destroy_failed++;
}

#endif /* XLB_LIB_SOCK_DESTROY_H */

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Destroying the sockets that xlb connected to a backend that left (socket iterators +
 * bpf_sock_destroy, kernel 6.5+). Without it a connected UDP client (a resolver's socket to a
 * DNS service) keeps sending to the dead backend for as long as it lives.
 *
 * User space writes the backends into xlb_sock_destroy_targets and reads an iterator of
 * iter/tcp and one of iter/udp: each visits every socket of the reader's network
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

/* The backends whose sockets go, written by user space before a pass (and emptied after): one
 * pass over every namespace serves all the backends that left in one change. Private to the
 * socket programs and user space's datapath code, so not in xlb_abi.h. */
struct xlb_sock_destroy_target {
	__be32 address[4]; /* the backend, as its sockets see their peer; IPv4 in [0] */
	__be16 port;
	__u8 family;       /* XLB_AF_INET or XLB_AF_INET6: as socket-LB recorded the socket */
	__u8 pad;          /* 0 */
};

#define XLB_SOCK_DESTROY_TARGETS 4096

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XLB_SOCK_DESTROY_TARGETS);
	__type(key, struct xlb_sock_destroy_target);
	__type(value, __u8);
} xlb_sock_destroy_targets SEC(".maps");

/* What the run did, for user space to read back (and zero before the next run), through the
 * object's .bss map (key 0). */
__u32 sock_destroy_done;       /* sockets destroyed */
__u32 sock_destroy_failed;     /* matched, but the kernel could not (or cannot: before 6.5) destroy them */

/* Whether xlb connected this socket to one of the target backends. */
static __always_inline int sock_destroy_matches(struct sock_common *sk)
{
	struct xlb_sock_destroy_target target = {};
	struct xlb_sock_revnat_key key;

	target.port = sk->skc_dport;
	if (sk->skc_family == XLB_AF_INET) {
		target.address[0] = sk->skc_daddr;
		target.family = XLB_AF_INET;
	} else if (sk->skc_family == XLB_AF_INET6) {
		target.address[0] = sk->skc_v6_daddr.in6_u.u6_addr32[0];
		target.address[1] = sk->skc_v6_daddr.in6_u.u6_addr32[1];
		target.address[2] = sk->skc_v6_daddr.in6_u.u6_addr32[2];
		target.address[3] = sk->skc_v6_daddr.in6_u.u6_addr32[3];
		target.family = XLB_AF_INET6;
		/* A dual-stack socket connected to an IPv4 backend (::ffff:a.b.c.d): socket-LB
		 * recorded it as IPv4 (xlb_sock.bpf.c). */
		if (target.address[0] == 0 && target.address[1] == 0 && target.address[2] == bpf_htonl(0xffff)) {
			target.address[0] = target.address[3];
			target.address[2] = target.address[3] = 0;
			target.family = XLB_AF_INET;
		}
	} else {
		return 0;
	}
	if (!bpf_map_lookup_elem(&xlb_sock_destroy_targets, &target))
		return 0;
	if (sock_peer_service(bpf_sk_storage_get(&xlb_sock_peer, sk, 0, 0), target.family, target.address, target.port))
		return 1;
	sock_revnat_key(&key, bpf_get_socket_cookie(sk), target.family, target.address, target.port);
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

// SPDX-License-Identifier: GPL-2.0
/*
 * Socket-LB: a process in the attached cgroup that connects (or sends a datagram) to a
 * service address is connected straight to one of its backends. The translation happens in
 * the socket call, before any packet exists, so the packets need no NAT and no conntrack entry.
 *
 * One program per attach point:
 *   connect4/6      TCP and connected UDP: pick a backend, rewrite the destination.
 *   sendmsg4/6      unconnected UDP: the same, per datagram.
 *   recvmsg4/6      unconnected UDP: a reply from the backend shows the service as its source.
 *   getpeername4/6  the application sees the service as its peer.
 *   sock_destroy_tcp/udp  iterators that user space runs when a backend leaves (sock_destroy.h).
 *
 * Every frontend in xlb_services_v4/v6 is translated, whatever its kind: the maps do not carry
 * the kind, and a node that reaches its own VIP or NodePort through a backend directly is what
 * the packet path would do too.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "xlb_abi.h"
#include "counters.h"
#include "lb.h"
#include "sock_affinity.h"
#include "sock_destroy.h"
#include "sock_revnat.h"

/* cgroup sock_addr programs return 1 to let the call go on (to the address now in ctx), 0 to
 * fail it: with EPERM, or with the error set by bpf_set_retval (kernel 5.18+). */
#define SOCK_PROCEED 1
#define SOCK_REJECT 0

/* The kernel's value (asm-generic/errno.h, not includable from BPF code). */
#define XLB_ECONNREFUSED 111

/*
 * The kernel offers some helpers (bpf_trace_printk, bpf_probe_read_kernel, ...) only to
 * programs whose license is GPL-compatible, and refuses to load others that call them;
 * bpf_sock_destroy is one of them.
 */
char LICENSE[] SEC("license") = "GPL";

/* A destination as the socket call sees it; IPv4 in address[0]. */
struct sock_dest {
	__be32 address[4];
	__be16 port;
	__u8 family;
};

/* A new flow through socket-LB: only new_flows moves, there is no packet to count (the
 * packets of the flow go straight to the backend, past every xlb program). */
static __always_inline void sock_count_new_flow(void *map, __u32 index)
{
	struct xlb_stats *stats = bpf_map_lookup_elem(map, &index);

	if (stats)
		stats->new_flows++;
}

/* A connect or datagram refused for want of a backend: under the reason "no backend", where
 * the packet path counts the packets it drops for the same reason; here one per refused call. */
static __always_inline void sock_count_refused(void)
{
	xlb_count_reason(XLB_DROP_NO_BACKEND, 0);
}

/* A backend of the destination's family, or NULL. */
static __always_inline const struct xlb_backend *sock_backend_of_family(__u32 backend_id, __u8 family)
{
	const struct xlb_backend *backend = lb_lookup_backend(backend_id);

	if (!backend || backend->family != family)
		return NULL;
	return backend;
}

/*
 * Whether a client's affinity backend may still take its new flows: it exists and is not
 * draining. (The ring is user space's word and is taken as it is: it never holds a draining
 * backend for long, and refusing the connect would be worse.)
 */
static __always_inline int sock_affinity_usable(__u32 backend_id, __u8 family)
{
	const struct xlb_backend *backend = sock_backend_of_family(backend_id, family);

	return backend && backend->state == XLB_BACKEND_ACTIVE;
}

/*
 * The backend for a new flow to the service: the client's affinity backend while it is still
 * usable, else a random slot of the ring (each socket call is its own flow, so a random slot
 * spreads them as the ring says). With affinity, the choice is remembered for the client.
 */
static __always_inline __u32 sock_pick(void *ctx, const struct xlb_service_value *service, __u8 family)
{
	struct xlb_sock_affinity_key key = {};
	__u64 now = 0;
	__u32 backend_id;

	if (service->flags & XLB_SERVICE_F_AFFINITY) {
		key.netns_cookie = bpf_get_netns_cookie(ctx);
		key.service_id = service->service_id;
		now = bpf_ktime_get_coarse_ns();
		backend_id = sock_affinity_lookup(&key, service->affinity_timeout_s, now);
		if (backend_id != XLB_BACKEND_ID_NONE && sock_affinity_usable(backend_id, family)) {
			sock_affinity_record(&key, backend_id, now);
			return backend_id;
		}
	}
	backend_id = lb_ring_pick(service, bpf_get_prandom_u32());
	if (backend_id != XLB_BACKEND_ID_NONE && (service->flags & XLB_SERVICE_F_AFFINITY))
		sock_affinity_record(&key, backend_id, now);
	return backend_id;
}

/* What getpeername() and recvmsg() will show for the backend (sock_revnat.h): in the socket
 * itself for connect(), in the LRU for a datagram's own address (and for a connect() whose
 * storage the kernel could not allocate). */
static __always_inline void sock_record(struct bpf_sock_addr *ctx, int connecting, const struct sock_dest *dest,
					const struct xlb_backend *backend, __u32 service_id)
{
	struct xlb_sock_revnat_key key;

	if (connecting) {
		struct xlb_sock_peer_value *peer =
			bpf_sk_storage_get(&xlb_sock_peer, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);

		if (peer) {
			__builtin_memcpy(peer->backend, backend->address, sizeof(peer->backend));
			peer->backend_port = backend->port;
			peer->family = dest->family;
			__builtin_memcpy(peer->service.address, dest->address, sizeof(peer->service.address));
			peer->service.port = dest->port;
			peer->service.service_id = service_id;
			return;
		}
	}
	sock_revnat_key(&key, bpf_get_socket_cookie(ctx), dest->family, backend->address, backend->port);
	sock_revnat_record(&key, dest->address, dest->port, service_id);
}

/*
 * Translates dest (a service) to a backend in place. Returns SOCK_PROCEED, also for addresses
 * that are no service; SOCK_REJECT with ECONNREFUSED when the service has no backend (as
 * kube-proxy's REJECT rule: the application learns at once instead of timing out).
 */
static __always_inline int sock_translate(struct bpf_sock_addr *ctx, struct sock_dest *dest, __u8 protocol,
					  int connecting)
{
	const struct xlb_service_value *service;
	const struct xlb_backend *backend;
	__u32 backend_id;

	if (protocol != IPPROTO_TCP && protocol != IPPROTO_UDP)
		return SOCK_PROCEED;
	if (dest->family == XLB_AF_INET)
		service = lb4_lookup_service(dest->address[0], dest->port, protocol);
	else
		service = lb6_lookup_service(dest->address, dest->port, protocol);
	if (!service)
		return SOCK_PROCEED;

	backend_id = sock_pick(ctx, service, dest->family);
	backend = sock_backend_of_family(backend_id, dest->family);
	if (!backend) {
		/* No backend, or (a user space bug) a ring slot of another family: refuse rather than
		 * let the call go to the service address, where nothing answers. */
		sock_count_refused();
		bpf_set_retval(-XLB_ECONNREFUSED);
		return SOCK_REJECT;
	}

	sock_record(ctx, connecting, dest, backend, service->service_id);
	sock_count_new_flow(&xlb_service_stats, XLB_SERVICE_STATS_SLOT(service->flags));
	sock_count_new_flow(&xlb_backend_stats, backend->stats_slot);

	dest->address[0] = backend->address[0];
	dest->address[1] = backend->address[1];
	dest->address[2] = backend->address[2];
	dest->address[3] = backend->address[3];
	dest->port = backend->port;
	return SOCK_PROCEED;
}

/* user_port holds the port in network byte order in its low 16 bits. */
static __always_inline int sock4_translate(struct bpf_sock_addr *ctx, int connecting)
{
	struct sock_dest dest = { .address = { ctx->user_ip4 }, .port = (__be16)ctx->user_port, .family = XLB_AF_INET };
	int verdict = sock_translate(ctx, &dest, (__u8)ctx->protocol, connecting);

	if (verdict == SOCK_PROCEED) {
		ctx->user_ip4 = dest.address[0];
		ctx->user_port = dest.port;
	}
	return verdict;
}

/*
 * An AF_INET6 socket reaches IPv4 addresses as IPv4-mapped ones (::ffff:a.b.c.d): dual-stack
 * applications (Java's default, for one) connect to an IPv4 service that way. Such an address
 * is the IPv4 address for socket-LB, in the IPv4 maps, and is written back mapped.
 */
static __always_inline int sock6_is_v4_mapped(const __be32 address[4])
{
	return address[0] == 0 && address[1] == 0 && address[2] == bpf_htonl(0xffff);
}

static __always_inline void sock6_dest(const struct bpf_sock_addr *ctx, struct sock_dest *dest)
{
	__be32 address[4] = { ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3] };

	__builtin_memset(dest, 0, sizeof(*dest));
	dest->port = (__be16)ctx->user_port;
	if (sock6_is_v4_mapped(address)) {
		dest->family = XLB_AF_INET;
		dest->address[0] = address[3];
		return;
	}
	dest->family = XLB_AF_INET6;
	dest->address[0] = address[0];
	dest->address[1] = address[1];
	dest->address[2] = address[2];
	dest->address[3] = address[3];
}

static __always_inline void sock6_set_dest(struct bpf_sock_addr *ctx, const struct sock_dest *dest)
{
	if (dest->family == XLB_AF_INET) {
		ctx->user_ip6[3] = dest->address[0]; /* the mapped prefix stays */
	} else {
		ctx->user_ip6[0] = dest->address[0];
		ctx->user_ip6[1] = dest->address[1];
		ctx->user_ip6[2] = dest->address[2];
		ctx->user_ip6[3] = dest->address[3];
	}
	ctx->user_port = dest->port;
}

static __always_inline int sock6_translate(struct bpf_sock_addr *ctx, int connecting)
{
	struct sock_dest dest;
	int verdict;

	sock6_dest(ctx, &dest);
	verdict = sock_translate(ctx, &dest, (__u8)ctx->protocol, connecting);
	if (verdict == SOCK_PROCEED)
		sock6_set_dest(ctx, &dest);
	return verdict;
}

/* The peer (or a datagram's source) the application sees: the service it asked for, if xlb
 * translated this socket's traffic to this backend. Always proceeds: these hooks cannot fail. */
static __always_inline void sock_restore(struct bpf_sock_addr *ctx, struct sock_dest *peer)
{
	const struct xlb_sock_revnat_value *service;
	struct xlb_sock_revnat_key key;

	service = sock_peer_service(bpf_sk_storage_get(&xlb_sock_peer, ctx->sk, 0, 0), peer->family, peer->address,
				    peer->port);
	if (!service) {
		sock_revnat_key(&key, bpf_get_socket_cookie(ctx), peer->family, peer->address, peer->port);
		service = sock_revnat_lookup(&key);
	}
	if (!service)
		return;
	peer->address[0] = service->address[0];
	peer->address[1] = service->address[1];
	peer->address[2] = service->address[2];
	peer->address[3] = service->address[3];
	peer->port = service->port;
}

static __always_inline void sock4_restore(struct bpf_sock_addr *ctx)
{
	struct sock_dest peer = { .address = { ctx->user_ip4 }, .port = (__be16)ctx->user_port, .family = XLB_AF_INET };

	sock_restore(ctx, &peer);
	ctx->user_ip4 = peer.address[0];
	ctx->user_port = peer.port;
}

static __always_inline void sock6_restore(struct bpf_sock_addr *ctx)
{
	struct sock_dest peer;

	sock6_dest(ctx, &peer);
	sock_restore(ctx, &peer);
	sock6_set_dest(ctx, &peer);
}

SEC("cgroup/connect4")
int xlb_connect4(struct bpf_sock_addr *ctx)
{
	return sock4_translate(ctx, 1);
}

SEC("cgroup/connect6")
int xlb_connect6(struct bpf_sock_addr *ctx)
{
	return sock6_translate(ctx, 1);
}

/* Only a datagram with an address of its own (sendto/sendmsg with msg_name) reaches these. */
SEC("cgroup/sendmsg4")
int xlb_sendmsg4(struct bpf_sock_addr *ctx)
{
	return sock4_translate(ctx, 0);
}

SEC("cgroup/sendmsg6")
int xlb_sendmsg6(struct bpf_sock_addr *ctx)
{
	return sock6_translate(ctx, 0);
}

SEC("cgroup/recvmsg4")
int xlb_recvmsg4(struct bpf_sock_addr *ctx)
{
	sock4_restore(ctx);
	return SOCK_PROCEED;
}

SEC("cgroup/recvmsg6")
int xlb_recvmsg6(struct bpf_sock_addr *ctx)
{
	sock6_restore(ctx);
	return SOCK_PROCEED;
}

SEC("cgroup/getpeername4")
int xlb_getpeername4(struct bpf_sock_addr *ctx)
{
	sock4_restore(ctx);
	return SOCK_PROCEED;
}

SEC("cgroup/getpeername6")
int xlb_getpeername6(struct bpf_sock_addr *ctx)
{
	sock6_restore(ctx);
	return SOCK_PROCEED;
}

SEC("iter/tcp")
int xlb_sock_destroy_tcp(struct bpf_iter__tcp *ctx)
{
	struct sock_common *sk = ctx->sk_common;

	if (!sk || sk->skc_state == XLB_TCP_TIME_WAIT || sk->skc_state == XLB_TCP_NEW_SYN_RECV)
		return 0;
	if (sock_destroy_matches(sk))
		sock_destroy_one(sk);
	return 0;
}

SEC("iter/udp")
int xlb_sock_destroy_udp(struct bpf_iter__udp *ctx)
{
	struct sock_common *sk = (struct sock_common *)ctx->udp_sk;

	if (!sk)
		return 0;
	if (sock_destroy_matches(sk))
		sock_destroy_one(sk);
	return 0;
}

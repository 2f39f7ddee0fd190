// SPDX-License-Identifier: GPL-2.0
/*
 * Socket-LB: a process in the attached cgroup that connects to a service address is
 * connected straight to one of its backends. The translation happens once, at connect(),
 * so its packets need no NAT and no conntrack entry.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>

#include "xlb_abi.h"
#include "lb.h"

/* The kernel's value; the uapi headers that BPF code can include do not define AF_INET. */
#define XLB_AF_INET 2

/* cgroup/connect* programs return 1 to let connect() go on (to the address now in ctx). */
#define SOCK_PROCEED 1

/*
 * The kernel offers some helpers (bpf_trace_printk, bpf_probe_read_kernel, ...) only to
 * programs whose license is GPL-compatible, and refuses to load others that call them.
 */
char LICENSE[] SEC("license") = "GPL";

/*
 * connect() of an AF_INET socket. Sockets of other protocols, addresses that are no
 * service, and services without a backend pass untouched.
 */
SEC("cgroup/connect4")
int xlb_connect4(struct bpf_sock_addr *ctx)
{
	const struct xlb_service_value *service;
	const struct xlb_backend *backend;
	__u8 protocol = (__u8)ctx->protocol;

	if (protocol != IPPROTO_TCP && protocol != IPPROTO_UDP)
		return SOCK_PROCEED;

	/* user_port holds the port in network byte order in its low 16 bits. */
	service = lb4_lookup_service(ctx->user_ip4, (__be16)ctx->user_port, protocol);
	if (!service)
		return SOCK_PROCEED;

	/* Each connect() is a new flow, so a random slot spreads them like the ring says. */
	backend = lb_select_backend(service, bpf_get_prandom_u32());
	if (!backend || backend->family != XLB_AF_INET)
		return SOCK_PROCEED;

	ctx->user_ip4 = backend->address[0];
	ctx->user_port = backend->port;
	return SOCK_PROCEED;
}

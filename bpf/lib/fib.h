/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The next hop of a translated packet, from the kernel's routing and neighbour tables
 * (bpf_fib_lookup), so xlb follows the node's routes instead of keeping its own.
 *
 * The lookup is made as for a packet received on the ingress link (flags 0: an input route
 * lookup with policy rules), with the addresses the packet will have after translation. That
 * needs forwarding enabled on the ingress link (net.ipv4.conf.<link>.forwarding,
 * net.ipv6.conf.all.forwarding): without it the kernel would not route the packet either,
 * and the lookup fails (counted as no route).
 *
 *   SUCCESS      send it ourselves: new MAC addresses, then XDP_TX when it leaves by the link
 *                it came in on, else a redirect to the egress link;
 *   NO_NEIGH     the route is known but not the next hop's MAC: the kernel's stack forwards it
 *                (translated) and resolves the neighbour; later packets find it;
 *   FRAG_NEEDED  the packet exceeds the egress MTU: the stack forwards it (translated) and
 *                fragments it or answers with ICMP, as for any routed packet;
 *   otherwise    no usable route: dropped.
 */
#ifndef XLB_LIB_FIB_H
#define XLB_LIB_FIB_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

#include "xlb_abi.h"
#include "nat.h"
#include "parse.h"

enum xlb_next_hop {
	XLB_NEXT_HOP_SEND,  /* params hold the egress ifindex and MACs */
	XLB_NEXT_HOP_STACK, /* let the kernel's stack forward it */
	XLB_NEXT_HOP_DROP,
};

/* The lookup for the packet as it will be after translation to `to`. */
static __always_inline void xlb_fib_params(struct bpf_fib_lookup *params, const struct xlb_packet *pkt,
					   const struct xlb_nat_target *to, __u32 ingress_ifindex)
{
	__builtin_memset(params, 0, sizeof(*params));
	/* XLB_AF_* are the kernel's AF_* values. */
	params->family = pkt->flow.family;
	params->l4_protocol = pkt->flow.protocol;
	params->sport = to->sport;
	params->dport = to->dport;
	params->tot_len = pkt->ip_len; /* XDP: compared with the route's MTU */
	params->ifindex = ingress_ifindex;
	if (pkt->flow.family == XLB_AF_INET) {
		params->tos = pkt->tos;
		params->ipv4_src = to->src[0];
		params->ipv4_dst = to->dst[0];
	} else {
		params->flowinfo = pkt->flowinfo;
		xlb_addr_copy(params->ipv6_src, to->src);
		xlb_addr_copy(params->ipv6_dst, to->dst);
	}
}

/* ctx: the XDP or tc context. *reason gets the enum xlb_reason that the outcome counts as. */
static __always_inline int xlb_fib_next_hop(void *ctx, struct bpf_fib_lookup *params, __u32 *reason)
{
	long rc = bpf_fib_lookup(ctx, params, sizeof(*params), 0);

	switch (rc) {
	case BPF_FIB_LKUP_RET_SUCCESS:
		*reason = XLB_REASON_FORWARDED;
		return XLB_NEXT_HOP_SEND;
	case BPF_FIB_LKUP_RET_NO_NEIGH:
		*reason = XLB_PASS_NO_NEIGHBOUR;
		return XLB_NEXT_HOP_STACK;
	case BPF_FIB_LKUP_RET_FRAG_NEEDED:
		*reason = XLB_PASS_FRAG_NEEDED;
		return XLB_NEXT_HOP_STACK;
	default:
		*reason = XLB_DROP_NO_ROUTE;
		return XLB_NEXT_HOP_DROP;
	}
}

/* XDP: the next hop's MAC as destination, the egress link's as source. */
static __always_inline void xlb_set_macs(void *data, void *data_end, const __u8 *dmac, const __u8 *smac)
{
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return;
	__builtin_memcpy(eth->h_dest, dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, smac, ETH_ALEN);
}

#endif /* XLB_LIB_FIB_H */

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Direct server return, the backend's half: xlb_tc removes the outer header that a load
 * balancer's XDP program put on (dsr.h), in place of an ipip/ip6_tunnel device, which this
 * node may not have and which would take every IP-in-IP packet from anyone.
 *
 * A packet is decapsulated only when all of these hold, and is otherwise left untouched:
 *   - this node has decap on (xlb_dsr_config.decap);
 *   - it is IPv4 in IPv4 (protocol 4) or IPv6 in IPv6 (next header 41), the outer IPv4 header
 *     without options and not a fragment;
 *   - the inner packet is well-formed TCP or UDP to a frontend of a dsr service in this node's
 *     maps (the same catalog as the load balancers').
 * The last rule is what keeps the program from being an open relay: a forged IP-in-IP packet
 * can reach nothing here that a plain packet to the VIP could not.
 *
 * The inner packet then goes up the stack as if it had arrived as it is: to the VIP, which
 * xlbd made a local address, from the client, whom the server answers directly.
 */
#ifndef XLB_LIB_DECAP_H
#define XLB_LIB_DECAP_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "xlb_abi.h"
#include "counters.h"
#include "dsr.h"
#include "lb.h"
#include "parse.h"

/* The most bytes decapsulation reads: Ethernet, a VLAN tag, the outer and inner IPv6 headers
 * and TCP. */
#define XLB_DECAP_HEADERS (14 + 4 + 40 + 40 + 20)

/* Whether the outer header says IP-in-IP of its own family (xlb_parse called it OTHER). */
static __always_inline int xlb_is_ip_in_ip(const struct xlb_packet *outer)
{
	return outer->flow.family == XLB_AF_INET ? outer->flow.protocol == IPPROTO_IPIP
						 : outer->flow.protocol == IPPROTO_IPV6;
}

/* The inner packet, parsed as xlb_parse parses a frame's IP packet; XLB_PARSED_L4 if whole.
 * frame_len is the skb's whole length: only the headers are in its linear part (data_end),
 * the rest of a large packet often lies in pages. */
static __always_inline int xlb_parse_inner(const struct xlb_packet *outer, void *data_end, __u32 frame_len,
					   struct xlb_packet *inner)
{
	__u32 malformed = 0;
	__u32 available = frame_len > outer->l4_off ? frame_len - outer->l4_off : 0;

	__builtin_memset(inner, 0, sizeof(*inner));
	inner->l3 = outer->l4;
	inner->l3_off = outer->l4_off;
	if (outer->flow.family == XLB_AF_INET)
		return xlb_parse_ipv4(inner, data_end, available, &malformed);
	return xlb_parse_ipv6(inner, data_end, available, &malformed);
}

/*
 * For a frame xlb_parse called OTHER: decapsulates it if the rules above allow. Returns
 * TC_ACT_OK either way (the decapsulated packet continues up the stack), or TC_ACT_SHOT when
 * the skb could not be shrunk.
 */
static __always_inline int xlb_decap(struct __sk_buff *skb, struct xlb_packet *outer)
{
	const struct xlb_dsr_config *dsr = xlb_dsr_settings();
	const struct xlb_service_value *service;
	struct xlb_packet inner;
	void *data, *data_end;
	__u32 overhead, l3_off, len = skb->len;
	__u32 want = len < XLB_DECAP_HEADERS ? len : XLB_DECAP_HEADERS;
	int ipv4 = outer->flow.family == XLB_AF_INET;

	if (!dsr || !dsr->decap || !xlb_is_ip_in_ip(outer))
		return TC_ACT_OK;
	/* The outer IPv6 header parsed whole (else OTHER would not have its next header) but
	 * its payload was not checked: the parser stops at a next header it does not walk. */
	overhead = ipv4 ? XLB_DSR_OVERHEAD_V4 : XLB_DSR_OVERHEAD_V6;
	/* Plain Ethernet only: the stack takes VLAN tags off into skb->vlan_tci before tc ingress,
	 * so a tag still in the frame here is one more (QinQ), which bpf_skb_adjust_room cannot
	 * step over. Said with a constant, the offset is also one the verifier knows small. */
	if (outer->l3_off != ETH_HLEN)
		return TC_ACT_OK;
	l3_off = ETH_HLEN;
	if (bpf_skb_pull_data(skb, want) < 0)
		return TC_ACT_OK;
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	/* Pulling moved the data: the offsets still hold, the pointers must be made again. */
	outer->l3 = data + l3_off;
	outer->l3_off = l3_off;
	outer->l4 = data + l3_off + overhead;
	outer->l4_off = l3_off + overhead;
	if (xlb_parse_inner(outer, data_end, len, &inner) != XLB_PARSED_L4)
		return TC_ACT_OK;
	service = lb_lookup_service(&inner.flow);
	if (!service || !(service->flags & XLB_SERVICE_F_DSR))
		return TC_ACT_OK;

	/* FIXED_GSO: a GRO'd train of segments keeps its segment size, which the outer header
	 * never counted in (without it the kernel would grow each segment by the header). */
	if (bpf_skb_adjust_room(skb, -(__s32)overhead, BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_FIXED_GSO)) {
		xlb_count_reason(XLB_DROP_TRUNCATED, len);
		return TC_ACT_SHOT;
	}
	xlb_count_reason(XLB_DECAPSULATED, len);
	xlb_count(&xlb_service_stats, XLB_SERVICE_STATS_SLOT(service->flags), len - overhead, 0);
	return TC_ACT_OK;
}

#endif /* XLB_LIB_DECAP_H */

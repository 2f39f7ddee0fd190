/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ICMP errors about balanced flows, so that path MTU discovery works through xlb.
 *
 * When a reply (frontend:fport -> client:cport) is too big for a link on the way to the
 * client, a router there sends "fragmentation needed" (ICMPv4 type 3 code 4) or "packet too
 * big" (ICMPv6 type 2) to the reply's source: the frontend address. The error carries the
 * start of the reply. The backend that sent it must learn the smaller MTU, so the error goes
 * to the backend that conntrack has for the flow (client -> frontend), rewritten as if the
 * backend's own packet had been too big:
 *
 *   nat   outer destination -> backend; embedded source -> backend:bport
 *         (the embedded destination stays client:cport, as the backend sent it)
 *   snat  the same, and also outer source -> node, embedded destination -> node:nport: the
 *         backend's packet went to the node, and that is the connection it must fix
 *
 * Every checksum that covers a changed word is updated: the outer IPv4 header, the embedded
 * IPv4 header, the embedded TCP/UDP checksum when the error carries it, and the ICMP checksum
 * (which for ICMPv6 also covers the outer addresses through its pseudo-header).
 */
#ifndef XLB_LIB_ICMP_H
#define XLB_LIB_ICMP_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>

#include "xlb_abi.h"
#include "csum.h"
#include "nat.h"
#include "parse.h"

/* linux/icmp.h would pull in libc's socket headers, which BPF code cannot use: the few
 * values needed, from RFC 792 and RFC 4443. */
#define XLB_ICMP_DEST_UNREACH 3
#define XLB_ICMP_FRAG_NEEDED 4
#define XLB_ICMPV6_PKT_TOOBIG 2

/* The ICMP and ICMPv6 header: the same 8 bytes for both. */
struct xlb_icmp_hdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be32 rest; /* for the errors here: unused (v4) and the next hop's MTU */
};
#define XLB_ICMP_HLEN sizeof(struct xlb_icmp_hdr)
/* How far into the embedded TCP/UDP header its checksum field is. */
#define XLB_TCP_CHECK_OFF 16
#define XLB_UDP_CHECK_OFF 6

/* The packet embedded in an ICMP error: its flow (frontend -> client) as it was sent. */
struct xlb_icmp_inner {
	struct xlb_flow_key flow;
	/* Whether the embedded TCP/UDP checksum lies within the ICMP message; a TCP one often
	 * does not (an ICMPv4 error need carry only 8 bytes of it). */
	__u8 has_l4_check;
};

/* The embedded packet's offsets from the outer IP header. */
static __always_inline __u32 xlb_icmp_inner_l3(__u8 family)
{
	return (family == XLB_AF_INET ? sizeof(struct iphdr) : sizeof(struct ipv6hdr)) + XLB_ICMP_HLEN;
}

static __always_inline __u32 xlb_icmp_inner_l4(__u8 family)
{
	return xlb_icmp_inner_l3(family) + (family == XLB_AF_INET ? sizeof(struct iphdr) : sizeof(struct ipv6hdr));
}

/*
 * Whether the ICMP message is an error we forward (frag-needed, packet-too-big) whose embedded
 * packet is TCP or UDP with its ports within the message; fills *inner. Anything else (other
 * ICMP types, an embedded IPv4 header with options, ...) is not ours.
 */
static __always_inline int xlb_icmp_parse_error(const struct xlb_packet *pkt, void *data_end,
						struct xlb_icmp_inner *inner)
{
	__u8 *icmp = pkt->l4;
	__u32 l4_off = xlb_icmp_inner_l4(pkt->flow.family);
	struct xlb_ports *ports;
	__u8 protocol;

	if ((void *)(icmp + XLB_ICMP_HLEN) > data_end)
		return 0;
	__builtin_memset(inner, 0, sizeof(*inner));
	if (pkt->flow.family == XLB_AF_INET) {
		struct iphdr *ip = (void *)(icmp + XLB_ICMP_HLEN);

		if (icmp[0] != XLB_ICMP_DEST_UNREACH || icmp[1] != XLB_ICMP_FRAG_NEEDED)
			return 0;
		if ((void *)(ip + 1) > data_end || *(__u8 *)ip != 0x45)
			return 0;
		protocol = ip->protocol;
		inner->flow.src[0] = ip->saddr;
		inner->flow.dst[0] = ip->daddr;
		ports = (void *)(ip + 1);
	} else {
		struct ipv6hdr *ip6 = (void *)(icmp + XLB_ICMP_HLEN);

		if (icmp[0] != XLB_ICMPV6_PKT_TOOBIG)
			return 0;
		if ((void *)(ip6 + 1) > data_end)
			return 0;
		protocol = ip6->nexthdr;
		xlb_copy_addr6(inner->flow.src, &ip6->saddr);
		xlb_copy_addr6(inner->flow.dst, &ip6->daddr);
		ports = (void *)(ip6 + 1);
	}
	if (protocol != IPPROTO_TCP && protocol != IPPROTO_UDP)
		return 0;
	/* 8 bytes of TCP/UDP: the ports, and the whole UDP header with its checksum. */
	if ((void *)ports + 8 > data_end || pkt->ip_len < l4_off + 8)
		return 0;
	inner->flow.sport = ports->source;
	inner->flow.dport = ports->dest;
	inner->flow.protocol = protocol;
	inner->flow.family = pkt->flow.family;
	inner->has_l4_check =
		pkt->ip_len >= l4_off + (protocol == IPPROTO_TCP ? XLB_TCP_CHECK_OFF : XLB_UDP_CHECK_OFF) + 2;
	return 1;
}

/* The conntrack key of the flow the embedded packet answers: client -> frontend. */
static __always_inline void xlb_icmp_flow_of(struct xlb_flow_key *key, const struct xlb_icmp_inner *inner)
{
	__builtin_memset(key, 0, sizeof(*key));
	xlb_addr_copy(key->src, inner->flow.dst);
	xlb_addr_copy(key->dst, inner->flow.src);
	key->sport = inner->flow.dport;
	key->dport = inner->flow.sport;
	key->protocol = inner->flow.protocol;
	key->family = inner->flow.family;
}

/*
 * Rewrites the error in place: outer addresses to `outer` (its ports are unused), the embedded
 * packet's addresses and ports to `embedded`, every checksum fixed; with dec_ttl the outer
 * TTL/hop limit goes down by one (see xlb_xdp_rewrite).
 */
static __always_inline void xlb_icmp_rewrite(const struct xlb_packet *pkt, void *data_end,
					     const struct xlb_icmp_inner *inner, const struct xlb_nat_target *outer,
					     const struct xlb_nat_target *embedded, int dec_ttl)
{
	__u32 outer_diff = xlb_csum_diff_addr(0, pkt->flow.src, outer->src);
	__u32 inner_addr_diff = xlb_csum_diff_addr(0, inner->flow.src, embedded->src);
	__u32 port_diff = 0;
	__u32 icmp_diff;
	struct xlb_ports *ports;
	struct xlb_icmp_hdr *icmp = pkt->l4;

	outer_diff = xlb_csum_diff_addr(outer_diff, pkt->flow.dst, outer->dst);
	inner_addr_diff = xlb_csum_diff_addr(inner_addr_diff, inner->flow.dst, embedded->dst);
	port_diff = xlb_csum_diff16(port_diff, inner->flow.sport, embedded->sport);
	port_diff = xlb_csum_diff16(port_diff, inner->flow.dport, embedded->dport);
	/* The embedded addresses and ports are part of the ICMP message. */
	icmp_diff = xlb_csum_add(inner_addr_diff, port_diff);

	if (pkt->flow.family == XLB_AF_INET) {
		struct iphdr *ip = pkt->l3;
		struct iphdr *iip = (void *)(icmp + 1);
		__u32 ip_diff = outer_diff;
		__sum16 old_check;

		/* All bounds before the first write: the error is rewritten whole or not at all. */
		ports = (void *)(iip + 1);
		if ((void *)(ip + 1) > data_end || (void *)ports + 8 > data_end)
			return;
		if (dec_ttl) {
			__u16 old = *(__u16 *)&ip->ttl;

			ip->ttl--;
			ip_diff = xlb_csum_diff16(ip_diff, old, *(__u16 *)&ip->ttl);
		}
		ip->saddr = outer->src[0];
		ip->daddr = outer->dst[0];
		ip->check = xlb_csum_apply(ip->check, ip_diff);

		/* The embedded header's own checksum changes too, and it is in the ICMP message. */
		old_check = iip->check;
		iip->saddr = embedded->src[0];
		iip->daddr = embedded->dst[0];
		iip->check = xlb_csum_apply(old_check, inner_addr_diff);
		icmp_diff = xlb_csum_diff16(icmp_diff, old_check, iip->check);
	} else {
		struct ipv6hdr *ip6 = pkt->l3;
		struct ipv6hdr *iip6 = (void *)(icmp + 1);

		ports = (void *)(iip6 + 1);
		if ((void *)(ip6 + 1) > data_end || (void *)ports + 8 > data_end)
			return;
		if (dec_ttl)
			ip6->hop_limit--;
		__builtin_memcpy(&ip6->saddr, outer->src, 16);
		__builtin_memcpy(&ip6->daddr, outer->dst, 16);
		__builtin_memcpy(&iip6->saddr, embedded->src, 16);
		__builtin_memcpy(&iip6->daddr, embedded->dst, 16);
		/* ICMPv6's pseudo-header holds the outer addresses. */
		icmp_diff = xlb_csum_add(icmp_diff, outer_diff);
	}

	ports->source = embedded->sport;
	ports->dest = embedded->dport;
	if (inner->has_l4_check) {
		int tcp = inner->flow.protocol == IPPROTO_TCP;
		__sum16 *check = (void *)ports + (tcp ? XLB_TCP_CHECK_OFF : XLB_UDP_CHECK_OFF);
		__u32 l4_diff = xlb_csum_add(inner_addr_diff, port_diff);
		__sum16 old;

		/* Within the IP length (has_l4_check), hence within the frame: this only tells the
		 * verifier so. */
		if ((void *)(check + 1) <= data_end) {
			old = *check;
			*check = tcp ? xlb_csum_apply(old, l4_diff) : xlb_csum_apply_udp(old, l4_diff);
			icmp_diff = xlb_csum_diff16(icmp_diff, old, *check);
		}
	}
	icmp->checksum = xlb_csum_apply(icmp->checksum, icmp_diff);
}

#endif /* XLB_LIB_ICMP_H */

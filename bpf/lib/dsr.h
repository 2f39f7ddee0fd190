/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Direct server return, the load balancer's half: IP-in-IP encapsulation in XDP (and on the
 * skb, for the tc balancer), and the ICMP answer to a packet that no longer fits once
 * encapsulated.
 *
 *   client:cport -> vip:port            (as it arrives)
 *   outer src -> backend | client:cport -> vip:port   (as it leaves: IPv4 in IPv4, protocol 4;
 *                                        IPv6 in IPv6, next header 41)
 *
 * The inner packet is left exactly as the client sent it (its TTL too: to the client, xlb
 * and the backend are one hop, as with any tunnel). The backend's xlb_tc (decap.h) removes
 * the outer header, its stack sees a packet to the VIP, which xlbd made a local address
 * there, and its server answers the client straight from the VIP. So no reverse entry is
 * written, and the replies never cross this node.
 *
 * The outer header: source from xlb_dsr_config's prefix with the host bits of every 32-bit
 * word taken from the flow's hash (hash.h), so each flow keeps one outer source and flows
 * spread over the backend's receive queues; destination the backend; IPv4 with DF, ID 0
 * (RFC 6864 allows it for an atomic datagram), TTL 64, the inner TOS; IPv6 with the inner
 * traffic class and flow label, hop limit 64.
 *
 * MTU. The route lookup is made for the encapsulated length, and fails with FRAG_NEEDED and
 * the route's MTU when it does not fit. xlb fragments nothing; instead:
 *   - an IPv6 packet, or an IPv4 packet with DF (every TCP segment of Linux and most stacks),
 *     is answered from the VIP with ICMP "fragmentation needed" (type 3 code 4) or ICMPv6
 *     "packet too big", whose MTU is the route's less the 20/40 bytes of encapsulation: the
 *     client's path MTU discovery shrinks the flow's packets to what fits. The message carries
 *     the packet's IP header and its first 8 bytes of TCP/UDP, which is what the client's
 *     stack needs to find the socket (RFC 792; RFC 4443 asks for more, no stack requires it);
 *   - an IPv4 packet without DF is dropped and counted (XLB_DROP_TOO_BIG): its sender asked
 *     for fragmentation, which XDP cannot do. Operators avoid it with a larger MTU toward the
 *     backends than toward the clients (20/40 bytes suffice).
 */
#ifndef XLB_LIB_DSR_H
#define XLB_LIB_DSR_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "xlb_abi.h"
#include "csum.h"
#include "hash.h"
#include "icmp.h"
#include "parse.h"

#define XLB_DSR_TTL 64
#define XLB_IP_DF 0x4000
/* What an ICMP error quotes of the packet that caused it: its IP header and 8 bytes. */
#define XLB_ICMP_QUOTE_L4 8

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xlb_dsr_config);
} xlb_dsr SEC(".maps");

static __always_inline const struct xlb_dsr_config *xlb_dsr_settings(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&xlb_dsr, &zero);
}

/* The prefix bits of a 32-bit word (host order) that a prefix of `len` bits leaves fixed,
 * for word `index` of the address. */
static __always_inline __u32 xlb_prefix_mask(__u32 len, __u32 index)
{
	__u32 bits = len > index * 32 ? len - index * 32 : 0;

	if (bits >= 32)
		return 0xffffffff;
	return bits ? ~(0xffffffffU >> bits) : 0;
}

/* The outer source of a flow's packets in *out; 0 when the node has no prefix for its family. */
static __always_inline int xlb_dsr_source(const struct xlb_flow_key *flow, __be32 out[4])
{
	const struct xlb_dsr_config *dsr = xlb_dsr_settings();
	__u32 hash = xlb_hash_flow(flow);
	__u32 mask;

	__builtin_memset(out, 0, 16);
	if (!dsr)
		return 0; /* cannot happen: an array always has entry 0 */
	if (flow->family == XLB_AF_INET) {
		if (dsr->src_v4_prefix_len == 0)
			return 0;
		mask = xlb_prefix_mask(dsr->src_v4_prefix_len, 0);
		out[0] = bpf_htonl((bpf_ntohl(dsr->src_v4) & mask) | (hash & ~mask));
		return 1;
	}
	if (dsr->src_v6_prefix_len == 0)
		return 0;
#pragma unroll
	for (__u32 i = 0; i < 4; i++) {
		mask = xlb_prefix_mask(dsr->src_v6_prefix_len, i);
		out[i] = bpf_htonl((bpf_ntohl(dsr->src_v6[i]) & mask) | (hash & ~mask));
	}
	return 1;
}

/* The route lookup toward the backend for the encapsulated packet (fib.h's rules). */
static __always_inline void xlb_dsr_fib_params(struct bpf_fib_lookup *params, const struct xlb_packet *pkt,
					       const __be32 *src, const __be32 *dst, __u16 encap_len,
					       __u32 ingress_ifindex)
{
	__builtin_memset(params, 0, sizeof(*params));
	params->family = pkt->flow.family;
	params->l4_protocol = pkt->flow.family == XLB_AF_INET ? IPPROTO_IPIP : IPPROTO_IPV6;
	params->tot_len = encap_len;
	params->ifindex = ingress_ifindex;
	if (pkt->flow.family == XLB_AF_INET) {
		params->tos = pkt->tos;
		params->ipv4_src = src[0];
		params->ipv4_dst = dst[0];
	} else {
		params->flowinfo = pkt->flowinfo;
		__builtin_memcpy(params->ipv6_src, src, 16);
		__builtin_memcpy(params->ipv6_dst, dst, 16);
	}
}

/* The checksum of a header of `words` 32-bit words whose checksum field is 0, plus `sum`. */
static __always_inline __sum16 xlb_csum_words(const __u32 *p, __u32 words, __u32 sum)
{
	for (__u32 i = 0; i < words; i++)
		sum = xlb_csum_add(sum, p[i]);
	return (__sum16)~xlb_csum_fold(sum);
}

/* The outer IPv4 header of an inner packet of ip_len bytes, at ip (in the frame or a buffer). */
static __always_inline void xlb_dsr_outer_v4(struct iphdr *ip, __u8 tos, __u16 ip_len, const __be32 *src,
					     const __be32 *dst)
{
	*(__u8 *)ip = 0x45;
	ip->tos = tos;
	ip->tot_len = bpf_htons(ip_len + XLB_DSR_OVERHEAD_V4);
	ip->id = 0;
	ip->frag_off = bpf_htons(XLB_IP_DF);
	ip->ttl = XLB_DSR_TTL;
	ip->protocol = IPPROTO_IPIP;
	ip->check = 0;
	ip->saddr = src[0];
	ip->daddr = dst[0];
	ip->check = xlb_csum_words((const __u32 *)ip, sizeof(*ip) / 4, 0);
}

/* The outer IPv6 header of an inner packet of ip_len bytes, at ip6. */
static __always_inline void xlb_dsr_outer_v6(struct ipv6hdr *ip6, __be32 flowinfo, __u16 ip_len, const __be32 *src,
					     const __be32 *dst)
{
	*(__be32 *)ip6 = bpf_htonl(0x60000000) | flowinfo;
	ip6->payload_len = bpf_htons(ip_len);
	ip6->nexthdr = IPPROTO_IPV6;
	ip6->hop_limit = XLB_DSR_TTL;
	__builtin_memcpy(&ip6->saddr, src, 16);
	__builtin_memcpy(&ip6->daddr, dst, 16);
}

/* The link layer of a frame whose start moved `shift` bytes earlier: the new MAC addresses,
 * and the VLAN tag (if l2_len says there is one) and EtherType carried over. */
static __always_inline int xlb_move_l2(void *data, void *data_end, __u32 l2_len, __u32 shift, const __u8 *dmac,
				       const __u8 *smac)
{
	struct ethhdr *eth = data;
	void *old = data + shift;

	if (old + l2_len > data_end)
		return -1;
	/* Tag and EtherType first: the new MACs overwrite where the old ones were. */
	if (l2_len == ETH_HLEN + 4)
		*(__u32 *)(data + ETH_ALEN * 2) = *(__u32 *)(old + ETH_ALEN * 2);
	*(__u16 *)(data + l2_len - 2) = *(__u16 *)(old + l2_len - 2);
	__builtin_memcpy(eth->h_dest, dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, smac, ETH_ALEN);
	return 0;
}

/* xlb_dsr_encap with the link layer's length known at compile time, as the verifier wants
 * constant offsets. */
static __always_inline int xlb_dsr_encap_l2(struct xdp_md *ctx, const struct xlb_packet *pkt, const __be32 *src,
					    const __be32 *dst, const __u8 *dmac, const __u8 *smac, const __u32 l2_len)
{
	/* The inner header's values, read before the packet moves. */
	__u8 family = pkt->flow.family;
	__u16 ip_len = pkt->ip_len;
	__u8 tos = pkt->tos;
	__be32 flowinfo = pkt->flowinfo;
	__u32 overhead = family == XLB_AF_INET ? XLB_DSR_OVERHEAD_V4 : XLB_DSR_OVERHEAD_V6;
	void *data, *data_end;

	if (bpf_xdp_adjust_head(ctx, -(int)overhead))
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (xlb_move_l2(data, data_end, l2_len, overhead, dmac, smac))
		return -1;

	if (family == XLB_AF_INET) {
		struct iphdr *ip = data + l2_len;

		if ((void *)(ip + 1) > data_end)
			return -1;
		xlb_dsr_outer_v4(ip, tos, ip_len, src, dst);
	} else {
		struct ipv6hdr *ip6 = data + l2_len;

		if ((void *)(ip6 + 1) > data_end)
			return -1;
		xlb_dsr_outer_v6(ip6, flowinfo, ip_len, src, dst);
	}
	return 0;
}

/* Wraps the packet in an outer header src -> dst, with the next hop's MACs. 0, or -1 when
 * the packet could not be grown (it is then unchanged or unusable: the caller drops it). */
static __always_inline int xlb_dsr_encap(struct xdp_md *ctx, const struct xlb_packet *pkt, const __be32 *src,
					 const __be32 *dst, const __u8 *dmac, const __u8 *smac)
{
	if (pkt->has_vlan)
		return xlb_dsr_encap_l2(ctx, pkt, src, dst, dmac, smac, ETH_HLEN + 4);
	return xlb_dsr_encap_l2(ctx, pkt, src, dst, dmac, smac, ETH_HLEN);
}

/* The ICMP answer to a packet too big once encapsulated, from its IP header to the end of the
 * quote of the packet (which is copied in first; xlb_too_big_fill writes the rest). */
struct xlb_too_big_v4 {
	struct iphdr ip;
	struct xlb_icmp_hdr icmp;
	__u8 quote[sizeof(struct iphdr) + XLB_ICMP_QUOTE_L4];
};

struct xlb_too_big_v6 {
	struct ipv6hdr ip6;
	struct xlb_icmp_hdr icmp;
	__u8 quote[sizeof(struct ipv6hdr) + XLB_ICMP_QUOTE_L4];
};

union xlb_too_big {
	struct xlb_too_big_v4 v4;
	struct xlb_too_big_v6 v6;
};

/* The message's headers, from the VIP to the client, and their checksums: the IPv4 header's;
 * ICMP's over the message (header and quote), for ICMPv6 with its pseudo-header too. */
static __always_inline void xlb_too_big_fill(union xlb_too_big *m, __u8 family, const __be32 *client,
					     const __be32 *vip, __u16 mtu)
{
	if (family == XLB_AF_INET) {
		struct iphdr *ip = &m->v4.ip;

		*(__u8 *)ip = 0x45;
		ip->tos = 0;
		ip->tot_len = bpf_htons(sizeof(m->v4));
		ip->id = 0;
		ip->frag_off = 0;
		ip->ttl = XLB_DSR_TTL;
		ip->protocol = IPPROTO_ICMP;
		ip->check = 0;
		ip->saddr = vip[0];
		ip->daddr = client[0];
		ip->check = xlb_csum_words((const __u32 *)ip, sizeof(*ip) / 4, 0);

		m->v4.icmp.type = XLB_ICMP_DEST_UNREACH;
		m->v4.icmp.code = XLB_ICMP_FRAG_NEEDED;
		m->v4.icmp.checksum = 0;
		m->v4.icmp.rest = bpf_htonl(mtu); /* unused 16 bits, then the next hop's MTU */
		m->v4.icmp.checksum =
			xlb_csum_words((const __u32 *)&m->v4.icmp, (sizeof(m->v4) - sizeof(struct iphdr)) / 4, 0);
	} else {
		struct ipv6hdr *ip6 = &m->v6.ip6;
		__u32 icmp_len = sizeof(m->v6) - sizeof(struct ipv6hdr);
		__u32 pseudo = 0;

		*(__be32 *)ip6 = bpf_htonl(0x60000000);
		ip6->payload_len = bpf_htons(icmp_len);
		ip6->nexthdr = IPPROTO_ICMPV6;
		ip6->hop_limit = XLB_DSR_TTL;
		__builtin_memcpy(&ip6->saddr, vip, 16);
		__builtin_memcpy(&ip6->daddr, client, 16);

		m->v6.icmp.type = XLB_ICMPV6_PKT_TOOBIG;
		m->v6.icmp.code = 0;
		m->v6.icmp.checksum = 0;
		m->v6.icmp.rest = bpf_htonl(mtu);
		/* ICMPv6's pseudo-header: both addresses, the length and the next header. */
		pseudo = xlb_csum_add(pseudo, bpf_htonl(icmp_len));
		pseudo = xlb_csum_add(pseudo, bpf_htonl(IPPROTO_ICMPV6));
#pragma unroll
		for (int i = 0; i < 4; i++) {
			pseudo = xlb_csum_add(pseudo, vip[i]);
			pseudo = xlb_csum_add(pseudo, client[i]);
		}
		m->v6.icmp.checksum = xlb_csum_words((const __u32 *)&m->v6.icmp, icmp_len / 4, pseudo);
	}
}

/* The ICMP answer, with the link layer's length known at compile time. */
static __always_inline int xlb_dsr_too_big_l2(struct xdp_md *ctx, const struct xlb_packet *pkt, __u16 mtu,
					      const __u32 l2_len)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 family = pkt->flow.family;
	__u32 size = family == XLB_AF_INET ? sizeof(struct xlb_too_big_v4) : sizeof(struct xlb_too_big_v6);
	__u32 keep = family == XLB_AF_INET ? sizeof(((struct xlb_too_big_v4 *)0)->quote)
					   : sizeof(((struct xlb_too_big_v6 *)0)->quote);
	__u32 length = data_end - data;
	struct ethhdr *eth = data;
	__u8 client_mac[ETH_ALEN], our_mac[ETH_ALEN];
	union xlb_too_big m;

	if ((void *)(eth + 1) > data_end)
		return -1;
	__builtin_memcpy(client_mac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(our_mac, eth->h_dest, ETH_ALEN);
	/* The parser saw whole TCP/UDP headers, so the frame holds the quote. */
	if (family == XLB_AF_INET) {
		if (data + l2_len + sizeof(m.v4.quote) > data_end)
			return -1;
		__builtin_memcpy(m.v4.quote, data + l2_len, sizeof(m.v4.quote));
	} else {
		if (data + l2_len + sizeof(m.v6.quote) > data_end)
			return -1;
		__builtin_memcpy(m.v6.quote, data + l2_len, sizeof(m.v6.quote));
	}
	xlb_too_big_fill(&m, family, pkt->flow.src, pkt->flow.dst, mtu);

	/* The frame becomes the link layer and the message: the quote's bytes, then room before. */
	if (length > l2_len + keep && bpf_xdp_adjust_tail(ctx, -(int)(length - l2_len - keep)))
		return -1;
	if (bpf_xdp_adjust_head(ctx, -(int)(size - keep)))
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (xlb_move_l2(data, data_end, l2_len, size - keep, client_mac, our_mac))
		return -1;
	if (family == XLB_AF_INET) {
		if (data + l2_len + sizeof(m.v4) > data_end)
			return -1;
		__builtin_memcpy(data + l2_len, &m.v4, sizeof(m.v4));
	} else {
		if (data + l2_len + sizeof(m.v6) > data_end)
			return -1;
		__builtin_memcpy(data + l2_len, &m.v6, sizeof(m.v6));
	}
	return 0;
}

/*
 * Turns the packet in place into the ICMP error that tells the client the largest packet that
 * passes: `mtu` is the inner packet's MTU (the route's less the encapsulation). Sent back
 * where the packet came from (XDP_TX). 0, or -1 when the packet could not be rewritten.
 */
static __always_inline int xlb_dsr_too_big(struct xdp_md *ctx, const struct xlb_packet *pkt, __u16 mtu)
{
	if (pkt->has_vlan)
		return xlb_dsr_too_big_l2(ctx, pkt, mtu, ETH_HLEN + 4);
	return xlb_dsr_too_big_l2(ctx, pkt, mtu, ETH_HLEN);
}

/*
 * xlb_dsr_too_big for the tc balancer: the skb is cut to the link layer and the message's
 * length (bpf_skb_change_tail, which also ends a GSO skb's segmentation) and the message
 * written over it, the MACs swapped; the caller redirects it out of the link it came in on.
 * The frame has no VLAN tag in it (tc ingress). 0, or -1 when it could not be rewritten.
 */
static __always_inline int xlb_dsr_too_big_skb(struct __sk_buff *skb, const struct xlb_packet *pkt, __u16 mtu)
{
	__u8 family = pkt->flow.family;
	__u8 macs[2 * ETH_ALEN], swapped[2 * ETH_ALEN];
	union xlb_too_big m;

	if (bpf_skb_load_bytes(skb, 0, macs, sizeof(macs)))
		return -1;
	__builtin_memcpy(swapped, macs + ETH_ALEN, ETH_ALEN);
	__builtin_memcpy(swapped + ETH_ALEN, macs, ETH_ALEN);
	if (family == XLB_AF_INET) {
		if (bpf_skb_load_bytes(skb, ETH_HLEN, m.v4.quote, sizeof(m.v4.quote)))
			return -1;
		xlb_too_big_fill(&m, family, pkt->flow.src, pkt->flow.dst, mtu);
		if (bpf_skb_change_tail(skb, ETH_HLEN + sizeof(m.v4), 0) ||
		    bpf_skb_store_bytes(skb, ETH_HLEN, &m.v4, sizeof(m.v4), 0))
			return -1;
	} else {
		if (bpf_skb_load_bytes(skb, ETH_HLEN, m.v6.quote, sizeof(m.v6.quote)))
			return -1;
		xlb_too_big_fill(&m, family, pkt->flow.src, pkt->flow.dst, mtu);
		if (bpf_skb_change_tail(skb, ETH_HLEN + sizeof(m.v6), 0) ||
		    bpf_skb_store_bytes(skb, ETH_HLEN, &m.v6, sizeof(m.v6), 0))
			return -1;
	}
	return bpf_skb_store_bytes(skb, 0, swapped, sizeof(swapped), 0) ? -1 : 0;
}

/* Whether the IPv4 packet asked not to be fragmented; IPv6 packets never are, on the way. */
static __always_inline int xlb_dont_fragment(const struct xlb_packet *pkt, void *data_end)
{
	struct iphdr *ip = pkt->l3;

	if (pkt->flow.family != XLB_AF_INET)
		return 1;
	if ((void *)(ip + 1) > data_end)
		return 0;
	return (ip->frag_off & bpf_htons(XLB_IP_DF)) != 0;
}

/*
 * xlb_dsr_encap for the tc balancer: the skb grows by the outer header right after its link
 * layer (ETH_HLEN: the stack has taken any VLAN tag off into the skb before tc ingress), which
 * is written there. The inner packet is not touched, so its checksums, and a checksum the NIC
 * is still to fill in (CHECKSUM_PARTIAL), stay right; the ENCAP flags make the skb a tunnel
 * packet, so that a GSO skb is cut into segments that each carry the outer header (whose
 * length and checksum the kernel then sets per segment). 0, or -1 when it could not grow.
 */
static __always_inline int xlb_dsr_encap_skb(struct __sk_buff *skb, const struct xlb_packet *pkt, const __be32 *src,
					     const __be32 *dst)
{
	union {
		struct iphdr v4;
		struct ipv6hdr v6;
	} outer;

	if (pkt->flow.family == XLB_AF_INET) {
		xlb_dsr_outer_v4(&outer.v4, pkt->tos, pkt->ip_len, src, dst);
		if (bpf_skb_adjust_room(skb, XLB_DSR_OVERHEAD_V4, BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_ENCAP_L3_IPV4))
			return -1;
		return bpf_skb_store_bytes(skb, ETH_HLEN, &outer.v4, sizeof(outer.v4), 0) ? -1 : 0;
	}
	xlb_dsr_outer_v6(&outer.v6, pkt->flowinfo, pkt->ip_len, src, dst);
	if (bpf_skb_adjust_room(skb, XLB_DSR_OVERHEAD_V6, BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_ENCAP_L3_IPV6))
		return -1;
	return bpf_skb_store_bytes(skb, ETH_HLEN, &outer.v6, sizeof(outer.v6), 0) ? -1 : 0;
}

#endif /* XLB_LIB_DSR_H */

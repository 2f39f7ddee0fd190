/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Direct server return, the load balancer's half: IP-in-IP encapsulation in XDP, and the ICMP
 * answer to a packet that no longer fits once encapsulated.
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

/* The outer source of a flow's packets in *out; 0 when the family has no prefix. */
static __always_inline int xlb_dsr_source(const struct xlb_dsr_config *dsr, const struct xlb_flow_key *flow,
					  __be32 out[4])
{
	__u32 hash = xlb_hash_flow(flow);
	__u32 mask;

	__builtin_memset(out, 0, 16);
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
	} else {
		struct ipv6hdr *ip6 = data + l2_len;

		if ((void *)(ip6 + 1) > data_end)
			return -1;
		*(__be32 *)ip6 = bpf_htonl(0x60000000) | flowinfo;
		ip6->payload_len = bpf_htons(ip_len);
		ip6->nexthdr = IPPROTO_IPV6;
		ip6->hop_limit = XLB_DSR_TTL;
		__builtin_memcpy(&ip6->saddr, src, 16);
		__builtin_memcpy(&ip6->daddr, dst, 16);
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

/* The ICMP answer, with the link layer's length known at compile time. */
static __always_inline int xlb_dsr_too_big_l2(struct xdp_md *ctx, const struct xlb_packet *pkt, __u16 mtu,
					      const __u32 l2_len)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 family = pkt->flow.family;
	__u32 ip_hlen = family == XLB_AF_INET ? sizeof(struct iphdr) : sizeof(struct ipv6hdr);
	/* The new IP and ICMP headers go in front of the quoted packet. */
	__u32 added = ip_hlen + XLB_ICMP_HLEN;
	__u32 keep = l2_len + ip_hlen + XLB_ICMP_QUOTE_L4;
	__u32 length = data_end - data;
	struct ethhdr *eth = data;
	__u8 client_mac[ETH_ALEN], our_mac[ETH_ALEN];
	__be32 client[4], vip[4];
	struct xlb_icmp_hdr *icmp;

	if ((void *)(eth + 1) > data_end)
		return -1;
	__builtin_memcpy(client_mac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(our_mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(client, pkt->flow.src, 16);
	__builtin_memcpy(vip, pkt->flow.dst, 16);

	/* The parser saw whole TCP/UDP headers, so the frame holds at least `keep` bytes. */
	if (length > keep && bpf_xdp_adjust_tail(ctx, -(int)(length - keep)))
		return -1;
	if (bpf_xdp_adjust_head(ctx, -(int)added))
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (xlb_move_l2(data, data_end, l2_len, added, client_mac, our_mac))
		return -1;

	if (family == XLB_AF_INET) {
		struct iphdr *ip = data + l2_len;

		icmp = (void *)(ip + 1);
		if ((void *)icmp + XLB_ICMP_HLEN + sizeof(struct iphdr) + XLB_ICMP_QUOTE_L4 > data_end)
			return -1;
		*(__u8 *)ip = 0x45;
		ip->tos = 0;
		ip->tot_len = bpf_htons(sizeof(*ip) + XLB_ICMP_HLEN + sizeof(struct iphdr) + XLB_ICMP_QUOTE_L4);
		ip->id = 0;
		ip->frag_off = 0;
		ip->ttl = XLB_DSR_TTL;
		ip->protocol = IPPROTO_ICMP;
		ip->check = 0;
		ip->saddr = vip[0];
		ip->daddr = client[0];
		ip->check = xlb_csum_words((const __u32 *)ip, sizeof(*ip) / 4, 0);

		icmp->type = XLB_ICMP_DEST_UNREACH;
		icmp->code = XLB_ICMP_FRAG_NEEDED;
		icmp->checksum = 0;
		icmp->rest = bpf_htonl(mtu); /* unused 16 bits, then the next hop's MTU */
		/* ICMP's checksum covers the message only: its header and the quote, 36 bytes. */
		icmp->checksum = xlb_csum_words((const __u32 *)icmp, (XLB_ICMP_HLEN + sizeof(struct iphdr) + 8) / 4, 0);
	} else {
		struct ipv6hdr *ip6 = data + l2_len;
		__u32 icmp_len = XLB_ICMP_HLEN + sizeof(struct ipv6hdr) + XLB_ICMP_QUOTE_L4;
		__u32 pseudo = 0;

		icmp = (void *)(ip6 + 1);
		if ((void *)icmp + XLB_ICMP_HLEN + sizeof(struct ipv6hdr) + XLB_ICMP_QUOTE_L4 > data_end)
			return -1;
		*(__be32 *)ip6 = bpf_htonl(0x60000000);
		ip6->payload_len = bpf_htons(icmp_len);
		ip6->nexthdr = IPPROTO_ICMPV6;
		ip6->hop_limit = XLB_DSR_TTL;
		__builtin_memcpy(&ip6->saddr, vip, 16);
		__builtin_memcpy(&ip6->daddr, client, 16);

		icmp->type = XLB_ICMPV6_PKT_TOOBIG;
		icmp->code = 0;
		icmp->checksum = 0;
		icmp->rest = bpf_htonl(mtu);
		/* ICMPv6's pseudo-header: both addresses, the length and the next header. */
		pseudo = xlb_csum_add(pseudo, bpf_htonl(icmp_len));
		pseudo = xlb_csum_add(pseudo, bpf_htonl(IPPROTO_ICMPV6));
#pragma unroll
		for (int i = 0; i < 4; i++) {
			pseudo = xlb_csum_add(pseudo, vip[i]);
			pseudo = xlb_csum_add(pseudo, client[i]);
		}
		icmp->checksum = xlb_csum_words((const __u32 *)icmp, (XLB_ICMP_HLEN + sizeof(struct ipv6hdr) + 8) / 4,
						pseudo);
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

#endif /* XLB_LIB_DSR_H */

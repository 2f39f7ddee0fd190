/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Packet parsing: Ethernet with at most one 802.1Q/802.1ad tag, IPv4 or IPv6, and the first
 * bytes of TCP, UDP, ICMP or ICMPv6. Every read is preceded by a comparison against data_end
 * that the verifier can see; nothing is read past what was checked.
 *
 * The parser only describes the packet; what to do with it (pass, drop, balance) is the
 * program's rule (see the top of xlb_xdp.bpf.c). It sorts packets into:
 *   XLB_PARSED_L4       TCP or UDP with whole headers: ports known, flow key filled;
 *   XLB_PARSED_ICMP     ICMP/ICMPv6 with at least its 8-byte header;
 *   XLB_PARSED_OTHER    IP, but another protocol (or IPv6 extension headers, which are not
 *                       walked), or an ICMP message shorter than its header;
 *   XLB_PARSED_MALFORMED IP whose header can be read (so the addresses are known) but which we
 *                       cannot balance: *malformed says why (XLB_DROP_*);
 *   XLB_PARSED_NOT_IP   another EtherType, or a frame too short for its Ethernet, VLAN or IP
 *                       header: not recognisable as IP at all.
 */
#ifndef XLB_LIB_PARSE_H
#define XLB_LIB_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "xlb_abi.h"

/* The uapi headers that BPF code can include have no VLAN header struct. */
struct xlb_vlan_hdr {
	__be16 tci;
	__be16 encapsulated_proto;
};

/* IPv4 flags/fragment-offset field: "more fragments" and the 13-bit offset. DF is fine. */
#define XLB_IP_MF 0x2000
#define XLB_IP_OFFSET 0x1fff
/* IPv6 fragment extension header; its presence means a fragment. */
#define XLB_NEXTHDR_FRAGMENT 44

/* The 16-bit words both TCP and UDP headers start with: ports. The checksum's place differs. */
struct xlb_ports {
	__be16 source;
	__be16 dest;
};

enum xlb_parsed {
	XLB_PARSED_L4,
	XLB_PARSED_ICMP,
	XLB_PARSED_OTHER,
	XLB_PARSED_MALFORMED,
	XLB_PARSED_NOT_IP,
};

struct xlb_packet {
	void *l3;   /* struct iphdr or struct ipv6hdr, whole */
	void *l4;   /* TCP/UDP: whole header; ICMP: at least 8 bytes */
	__u16 l3_off; /* from the start of the frame, for the skb helpers of the tc program */
	__u16 l4_off;
	__u16 ip_len; /* L3 length from the IP header: tot_len, or 40 + payload_len */
	__u8 ttl;     /* TTL or hop limit */
	__u8 tos;     /* IPv4 TOS, for the route lookup */
	__u8 has_vlan;
	__u8 syn;     /* TCP with SYN and not ACK: a connection's first packet (or its retransmission) */
	__be32 flowinfo; /* IPv6 traffic class and flow label, for the route lookup */
	/* The flow as it arrives; for ICMP and OTHER only addresses, protocol and family. Every
	 * byte is set (zeroes where unused), so it is usable as a map key as it is. */
	struct xlb_flow_key flow;
};

static __always_inline void xlb_copy_addr6(__be32 dst[4], const struct in6_addr *src)
{
	dst[0] = src->in6_u.u6_addr32[0];
	dst[1] = src->in6_u.u6_addr32[1];
	dst[2] = src->in6_u.u6_addr32[2];
	dst[3] = src->in6_u.u6_addr32[3];
}

/* Whole L4 headers of the flow's protocol, within the frame and within the IP length. */
static __always_inline int xlb_parse_ports(struct xlb_packet *pkt, void *data_end, __u32 l4_len,
					   __u32 *malformed)
{
	struct xlb_ports *ports = pkt->l4;

	/* The comparison with data_end is what the verifier needs; the one with the IP length is
	 * the rule (a header cut short by the length field is as truncated as a short frame). */
	if (pkt->flow.protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = pkt->l4;

		if (pkt->l4 + sizeof(struct tcphdr) > data_end || l4_len < sizeof(struct tcphdr))
			goto truncated;
		pkt->syn = tcp->syn && !tcp->ack;
	} else {
		if (pkt->l4 + sizeof(struct udphdr) > data_end || l4_len < sizeof(struct udphdr))
			goto truncated;
	}
	pkt->flow.sport = ports->source;
	pkt->flow.dport = ports->dest;
	return XLB_PARSED_L4;
truncated:
	*malformed = XLB_DROP_TRUNCATED;
	return XLB_PARSED_MALFORMED;
}

static __always_inline int xlb_parse_ipv4(struct xlb_packet *pkt, void *data_end, __u32 available,
					  __u32 *malformed)
{
	struct iphdr *ip = pkt->l3;
	__u8 version_ihl;

	if ((void *)(ip + 1) > data_end)
		return XLB_PARSED_NOT_IP;
	pkt->flow.family = XLB_AF_INET;
	pkt->flow.protocol = ip->protocol;
	pkt->flow.src[0] = ip->saddr;
	pkt->flow.dst[0] = ip->daddr;
	pkt->ttl = ip->ttl;
	pkt->tos = ip->tos;
	pkt->ip_len = bpf_ntohs(ip->tot_len);

	/* One byte decides the common case: version 4 and a 20-byte header. */
	version_ihl = *(__u8 *)ip;
	if (version_ihl != 0x45) {
		*malformed = (version_ihl >> 4) != 4 || (version_ihl & 0xf) < 5 ? XLB_DROP_BAD_IHL
									 : XLB_DROP_IPV4_OPTIONS;
		return XLB_PARSED_MALFORMED;
	}
	/* Zero or too small a length, or more than the frame holds (Ethernet padding after the
	 * IP packet is normal; missing bytes are not). */
	if (pkt->ip_len < sizeof(*ip) || pkt->ip_len > available) {
		*malformed = XLB_DROP_TRUNCATED;
		return XLB_PARSED_MALFORMED;
	}
	if (ip->frag_off & bpf_htons(XLB_IP_MF | XLB_IP_OFFSET)) {
		*malformed = XLB_DROP_FRAGMENT;
		return XLB_PARSED_MALFORMED;
	}

	pkt->l4 = (void *)(ip + 1);
	pkt->l4_off = pkt->l3_off + sizeof(*ip);
	switch (ip->protocol) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
		return xlb_parse_ports(pkt, data_end, pkt->ip_len - sizeof(*ip), malformed);
	case IPPROTO_ICMP:
		if (pkt->l4 + 8 > data_end || pkt->ip_len < sizeof(*ip) + 8)
			return XLB_PARSED_OTHER;
		return XLB_PARSED_ICMP;
	default:
		return XLB_PARSED_OTHER;
	}
}

static __always_inline int xlb_parse_ipv6(struct xlb_packet *pkt, void *data_end, __u32 available,
					  __u32 *malformed)
{
	struct ipv6hdr *ip6 = pkt->l3;
	__u32 payload_len;

	if ((void *)(ip6 + 1) > data_end)
		return XLB_PARSED_NOT_IP;
	pkt->flow.family = XLB_AF_INET6;
	pkt->flow.protocol = ip6->nexthdr;
	xlb_copy_addr6(pkt->flow.src, &ip6->saddr);
	xlb_copy_addr6(pkt->flow.dst, &ip6->daddr);
	pkt->ttl = ip6->hop_limit;
	pkt->flowinfo = *(__be32 *)ip6 & bpf_htonl(0x0fffffff);
	payload_len = bpf_ntohs(ip6->payload_len);
	pkt->ip_len = sizeof(*ip6) + payload_len;

	if (ip6->version != 6) {
		*malformed = XLB_DROP_BAD_IHL;
		return XLB_PARSED_MALFORMED;
	}
	switch (ip6->nexthdr) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
	case IPPROTO_ICMPV6:
		break;
	case XLB_NEXTHDR_FRAGMENT:
		*malformed = XLB_DROP_FRAGMENT;
		return XLB_PARSED_MALFORMED;
	default:
		/* Other extension headers are not walked: such packets are not ours to balance. */
		return XLB_PARSED_OTHER;
	}
	if (payload_len == 0 || sizeof(*ip6) + payload_len > available) {
		*malformed = XLB_DROP_TRUNCATED;
		return XLB_PARSED_MALFORMED;
	}

	pkt->l4 = (void *)(ip6 + 1);
	pkt->l4_off = pkt->l3_off + sizeof(*ip6);
	if (ip6->nexthdr == IPPROTO_ICMPV6) {
		if (pkt->l4 + 8 > data_end || payload_len < 8)
			return XLB_PARSED_OTHER;
		return XLB_PARSED_ICMP;
	}
	return xlb_parse_ports(pkt, data_end, payload_len, malformed);
}

/* Fills *pkt and says what the frame is (enum xlb_parsed); for MALFORMED, *malformed holds
 * the drop reason the rule would give it. frame_len is the whole frame's length, which the IP
 * length is checked against: for XDP data_end - data; for tc skb->len, since an skb's linear
 * part (data .. data_end, where the headers are read) may end before its payload does. */
static __always_inline int xlb_parse_frame(void *data, void *data_end, __u32 frame_len, struct xlb_packet *pkt,
					   __u32 *malformed)
{
	struct ethhdr *eth = data;
	__be16 proto;
	__u16 off = sizeof(*eth);

	__builtin_memset(pkt, 0, sizeof(*pkt));
	if ((void *)(eth + 1) > data_end)
		return XLB_PARSED_NOT_IP;
	proto = eth->h_proto;
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		struct xlb_vlan_hdr *vlan = (void *)(eth + 1);

		if ((void *)(vlan + 1) > data_end)
			return XLB_PARSED_NOT_IP;
		proto = vlan->encapsulated_proto;
		off += sizeof(*vlan);
		pkt->has_vlan = 1;
	}
	pkt->l3 = data + off;
	pkt->l3_off = off;
	if (frame_len < off)
		return XLB_PARSED_NOT_IP;
	if (proto == bpf_htons(ETH_P_IP))
		return xlb_parse_ipv4(pkt, data_end, frame_len - off, malformed);
	if (proto == bpf_htons(ETH_P_IPV6))
		return xlb_parse_ipv6(pkt, data_end, frame_len - off, malformed);
	/* Another EtherType, a second VLAN tag (QinQ) among them. */
	return XLB_PARSED_NOT_IP;
}

/* A frame whose bytes are all between data and data_end (XDP). */
static __always_inline int xlb_parse(void *data, void *data_end, struct xlb_packet *pkt, __u32 *malformed)
{
	return xlb_parse_frame(data, data_end, data_end - data, pkt, malformed);
}

#endif /* XLB_LIB_PARSE_H */

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Address translation: the rewrite of a packet's addresses and ports (XDP in place, tc with
 * the skb helpers), the reverse-NAT table that lets replies be restored, and the allocation
 * of snat source ports.
 *
 *   nat   client:cport -> frontend:fport  becomes  client:cport -> backend:bport
 *         reply backend:bport -> client:cport  becomes  frontend:fport -> client:cport
 *   snat  client:cport -> frontend:fport  becomes  node:nport -> backend:bport
 *         reply backend:bport -> node:nport  becomes  frontend:fport -> client:cport
 *
 * xlb_reverse_nat holds snat's replies, keyed as they arrive from the backend, so the tc
 * program needs one lookup; the key's node:nport part is what makes a source port "taken": a
 * port is allocated by inserting the key with BPF_NOEXIST, which cannot succeed twice. A nat
 * reply needs no entry of its own: it goes to the client, whose conntrack set holds its flow.
 */
#ifndef XLB_LIB_NAT_H
#define XLB_LIB_NAT_H

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
#include "csum.h"
#include "parse.h"

/* How many random ports snat tries before it gives up on a packet. With the range a quarter
 * full, 8 tries all fail for 1 flow in 65536; the next packet of the flow tries again. */
#define XLB_SNAT_TRIES 8

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XLB_MAX_FLOWS);
	__type(key, struct xlb_flow_key);
	__type(value, struct xlb_reverse_nat);
} xlb_reverse_nat SEC(".maps");

/* Where a packet goes after translation: its new addresses and ports. */
struct xlb_nat_target {
	__be32 src[4];
	__be32 dst[4];
	__be16 sport;
	__be16 dport;
};

static __always_inline void xlb_addr_copy(__be32 dst[4], const __be32 src[4])
{
	dst[0] = src[0];
	dst[1] = src[1];
	dst[2] = src[2];
	dst[3] = src[3];
}

static __always_inline int xlb_addr_equal(const __be32 a[4], const __be32 b[4])
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

/* The reply the backend will send for a packet translated to src:sport -> backend, as the tc
 * program sees it: from the backend, to the translated source. */
static __always_inline void xlb_reverse_key_of(struct xlb_flow_key *key, const struct xlb_flow_key *flow,
					       const __be32 *src, __be16 sport, const struct xlb_backend *backend)
{
	__builtin_memset(key, 0, sizeof(*key));
	xlb_addr_copy(key->src, backend->address);
	if (flow->family == XLB_AF_INET)
		key->dst[0] = src[0];
	else
		xlb_addr_copy(key->dst, src);
	key->sport = backend->port;
	key->dport = sport;
	key->protocol = flow->protocol;
	key->family = flow->family;
}

/* What a reply gets back: the frontend as source, the client as destination. */
static __always_inline void xlb_reverse_value_of(struct xlb_reverse_nat *value, const struct xlb_flow_key *flow,
						 __u32 service_id)
{
	xlb_addr_copy(value->frontend, flow->dst);
	xlb_addr_copy(value->client, flow->src);
	value->frontend_port = flow->dport;
	value->client_port = flow->sport;
	value->service_id = service_id;
}

/*
 * Claims a free source port in [snat_port_min, snat_port_max] toward the backend in *key (its
 * dport is set to each candidate) by inserting the reverse entry; returns the port (network
 * order) or 0 when the node has no range or every try was taken. Random tries rather than a
 * scan: a scan's cost grows with the ports in use, and it would hand out ports in an order
 * an observer can predict.
 */
static __always_inline __be16 xlb_snat_claim_port(const struct xlb_node_config *node, struct xlb_flow_key *key,
						  const struct xlb_reverse_nat *value)
{
	__u32 min = node->snat_port_min;
	__u32 max = node->snat_port_max;
	__u32 span;

	if (min == 0 || max < min)
		return 0;
	span = max - min + 1;
	for (int i = 0; i < XLB_SNAT_TRIES; i++) {
		key->dport = bpf_htons((__u16)(min + bpf_get_prandom_u32() % span));
		/* A lookup first: a failed LRU insert may still evict an entry to make room. */
		if (bpf_map_lookup_elem(&xlb_reverse_nat, key))
			continue;
		if (bpf_map_update_elem(&xlb_reverse_nat, key, value, BPF_NOEXIST) == 0)
			return key->dport;
	}
	return 0;
}

/*
 * XDP: rewrites the packet's addresses and ports to src:sport -> dst:dport in place, with the
 * IPv4 header and TCP/UDP checksums updated (the L4 pseudo-header has the addresses). For
 * IPv4 only src[0] and dst[0] are read. With dec_ttl the TTL or hop limit goes down by one:
 * we forward the packet ourselves, as a router would. Without it the kernel's stack forwards
 * it and decrements it itself. Bounds are checked again here (the verifier needs them at the
 * access).
 */
static __always_inline void xlb_xdp_rewrite(const struct xlb_packet *pkt, void *data_end, const __be32 *src,
					    const __be32 *dst, __be16 sport, __be16 dport, int dec_ttl)
{
	__u32 addr_diff, l4_diff;

	/* IPv4 addresses are one word: the other three are zero on both sides. */
	if (pkt->flow.family == XLB_AF_INET) {
		addr_diff = xlb_csum_diff32(0, pkt->flow.src[0], src[0]);
		addr_diff = xlb_csum_diff32(addr_diff, pkt->flow.dst[0], dst[0]);
	} else {
		addr_diff = xlb_csum_diff_addr(0, pkt->flow.src, src);
		addr_diff = xlb_csum_diff_addr(addr_diff, pkt->flow.dst, dst);
	}
	l4_diff = xlb_csum_diff16(addr_diff, pkt->flow.sport, sport);
	l4_diff = xlb_csum_diff16(l4_diff, pkt->flow.dport, dport);

	if (pkt->flow.family == XLB_AF_INET) {
		struct iphdr *ip = pkt->l3;
		__u32 ip_diff = addr_diff;

		if ((void *)(ip + 1) > data_end)
			return;
		if (dec_ttl) {
			/* TTL shares a 16-bit word with the protocol. */
			__u16 old = *(__u16 *)&ip->ttl;

			ip->ttl--;
			ip_diff = xlb_csum_diff16(ip_diff, old, *(__u16 *)&ip->ttl);
		}
		ip->saddr = src[0];
		ip->daddr = dst[0];
		ip->check = xlb_csum_apply(ip->check, ip_diff);
	} else {
		struct ipv6hdr *ip6 = pkt->l3;

		if ((void *)(ip6 + 1) > data_end)
			return;
		if (dec_ttl)
			ip6->hop_limit--;
		__builtin_memcpy(&ip6->saddr, src, 16);
		__builtin_memcpy(&ip6->daddr, dst, 16);
	}

	if (pkt->flow.protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = pkt->l4;

		if ((void *)(tcp + 1) > data_end)
			return;
		tcp->source = sport;
		tcp->dest = dport;
		tcp->check = xlb_csum_apply(tcp->check, l4_diff);
	} else {
		struct udphdr *udp = pkt->l4;

		if ((void *)(udp + 1) > data_end)
			return;
		udp->source = sport;
		udp->dest = dport;
		udp->check = xlb_csum_apply_udp(udp->check, l4_diff);
	}
}

/* bpf_l4_csum_replace's flag for IPv6 (kernel 6.16): the pseudo-header change must not be
 * folded into skb->csum, because for IPv6 the address bytes themselves are in it. Older
 * kernels refuse the flag with -EINVAL; they are retried without it. */
static __always_inline long xlb_skb_l4_csum_pseudo(struct __sk_buff *skb, __u32 off, __u32 diff, __u64 flags,
						   int ipv6)
{
	long err;

	if (!ipv6)
		return bpf_l4_csum_replace(skb, off, 0, diff, flags | BPF_F_PSEUDO_HDR);
	err = bpf_l4_csum_replace(skb, off, 0, diff, flags | BPF_F_PSEUDO_HDR | BPF_F_IPV6);
	if (err == -22 /* EINVAL */)
		err = bpf_l4_csum_replace(skb, off, 0, diff, flags | BPF_F_PSEUDO_HDR);
	return err;
}

/*
 * tc: the same rewrite on an skb, with the kernel's checksum helpers, which also keep
 * skb->csum right for CHECKSUM_COMPLETE and CHECKSUM_PARTIAL packets. Returns 0 or a
 * negative error. The helpers invalidate packet pointers: nothing here reads the packet.
 */
static __always_inline long xlb_skb_rewrite(struct __sk_buff *skb, const struct xlb_packet *pkt,
					    const struct xlb_nat_target *to, int dec_ttl)
{
	int tcp = pkt->flow.protocol == IPPROTO_TCP;
	__u32 l4_check = pkt->l4_off + (tcp ? offsetof(struct tcphdr, check) : offsetof(struct udphdr, check));
	/* UDP: a zero checksum (none) stays zero, a computed zero becomes all ones. */
	__u64 l4_flags = tcp ? 0 : BPF_F_MARK_MANGLED_0;
	__u32 addr_diff = xlb_csum_diff_addr(0, pkt->flow.src, to->src);
	__u32 port_diff = 0;
	struct xlb_ports ports = { .source = to->sport, .dest = to->dport };
	long err;

	addr_diff = xlb_csum_diff_addr(addr_diff, pkt->flow.dst, to->dst);
	port_diff = xlb_csum_diff16(port_diff, pkt->flow.sport, to->sport);
	port_diff = xlb_csum_diff16(port_diff, pkt->flow.dport, to->dport);

	if (pkt->flow.family == XLB_AF_INET) {
		__u32 ip_check = pkt->l3_off + offsetof(struct iphdr, check);
		__be32 addrs[2] = { to->src[0], to->dst[0] };
		__u32 ip_diff = addr_diff;

		if (dec_ttl) {
			/* TTL and protocol form one 16-bit word (network order: TTL high). */
			__u16 old = bpf_htons(((__u16)pkt->ttl << 8) | pkt->flow.protocol);
			__u16 new = bpf_htons(((__u16)(pkt->ttl - 1) << 8) | pkt->flow.protocol);
			__u8 ttl = pkt->ttl - 1;

			ip_diff = xlb_csum_diff16(ip_diff, old, new);
			err = bpf_skb_store_bytes(skb, pkt->l3_off + offsetof(struct iphdr, ttl), &ttl, 1, 0);
			if (err)
				return err;
		}
		err = bpf_l3_csum_replace(skb, ip_check, 0, ip_diff, 0);
		if (err)
			return err;
		err = xlb_skb_l4_csum_pseudo(skb, l4_check, addr_diff, l4_flags, 0);
		if (err)
			return err;
		err = bpf_skb_store_bytes(skb, pkt->l3_off + offsetof(struct iphdr, saddr), addrs, sizeof(addrs), 0);
	} else {
		__be32 addrs[8] = {
			to->src[0], to->src[1], to->src[2], to->src[3],
			to->dst[0], to->dst[1], to->dst[2], to->dst[3],
		};

		if (dec_ttl) {
			__u8 hop_limit = pkt->ttl - 1;

			err = bpf_skb_store_bytes(skb, pkt->l3_off + offsetof(struct ipv6hdr, hop_limit), &hop_limit, 1, 0);
			if (err)
				return err;
		}
		err = xlb_skb_l4_csum_pseudo(skb, l4_check, addr_diff, l4_flags, 1);
		if (err)
			return err;
		err = bpf_skb_store_bytes(skb, pkt->l3_off + offsetof(struct ipv6hdr, saddr), addrs, sizeof(addrs), 0);
	}
	if (err)
		return err;
	err = bpf_l4_csum_replace(skb, l4_check, 0, port_diff, l4_flags);
	if (err)
		return err;
	return bpf_skb_store_bytes(skb, pkt->l4_off, &ports, sizeof(ports), 0);
}

#endif /* XLB_LIB_NAT_H */

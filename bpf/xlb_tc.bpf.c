// SPDX-License-Identifier: GPL-2.0
/*
 * xlb_tc: the reply half of nat and snat, at tc ingress (clsact) of the links where replies
 * from backends arrive.
 *
 * A reply is recognised in conntrack (nat: the flow whose client the reply goes to and whose
 * backend sends it, conntrack.h) or in xlb_reverse_nat (snat: the node's port it goes to),
 * both written by the XDP program when it translated the flow's first packet. It is restored
 * so that the client only ever sees the frontend: source -> frontend:fport, and for snat
 * destination -> client:cport (for nat the destination is the client already). Then it is
 * forwarded toward the client like the forward path does (fib.h): redirected to the egress
 * link with the next hop's MAC, or, when the neighbour is not known yet (or the MTU is
 * smaller), left to the kernel's stack translated, which forwards it and resolves the
 * neighbour.
 *
 * On a backend node of dsr services it also decapsulates the IP-in-IP packets a load balancer
 * sent this node (decap.h), before anything else looks at them.
 *
 * Everything else (the vast majority of packets on the link) leaves untouched and uncounted:
 * the XDP program on the same link counted it already, and counting it here again would show
 * every packet twice.
 *
 * xlb_tc_lb (the second program here) is the balancer for links where XDP cannot attach
 * ([node] xdp_mode = "tc"): what xlb_xdp does for TCP and UDP to a frontend (the frontend's
 * lookup, conntrack, the Maglev pick, nat or snat, the route lookup and the redirect), on the
 * skb with the checksum helpers, and then the reply half above for everything else, in one
 * program: a link has one xlb program at tc ingress. It counts every packet under its reason
 * as xlb_xdp does (there is no XDP program to count them). dsr frontends are encapsulated as
 * xlb_xdp does (dsr.h), and answered with ICMP when too big once encapsulated; ICMP errors
 * about balanced flows go to the flow's backend (icmp.h). Not done at tc: dsr of a frame that
 * still carries a VLAN tag at tc ingress (a second tag; dropped, XLB_DROP_DSR_UNSUPPORTED).
 *
 * Why tc and not XDP: a reply may come from a backend on this node (a veth of a pod), whose
 * packets are often CHECKSUM_PARTIAL skbs that XDP cannot rewrite correctly; the skb helpers
 * keep every checksum state right. Replies are also the smaller half of the traffic for most
 * services.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "xlb_abi.h"
#include "backend_cache.h"
#include "balance.h"
#include "conntrack.h"
#include "counters.h"
#include "decap.h"
#include "dsr.h"
#include "events.h"
#include "fib.h"
#include "nat.h"
#include "parse.h"
#include "route_cache.h"

char LICENSE[] SEC("license") = "GPL";

/* The most header bytes a reply needs in the skb's linear part: Ethernet, a VLAN tag, IPv6
 * and TCP. Drivers and GRO may leave less there; parsing cannot see beyond it. */
#define XLB_TC_HEADERS (14 + 4 + 40 + 20)

/* balance.h's per-packet values and clock, this object's own (xlb_xdp has xlb_xdp_scratch). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xlb_scratch);
} xlb_tc_scratch SEC(".maps");

/* A backend as the reply path needs it (its address, port and counter slot): from this CPU's
 * backend cache when it holds the backend (the XDP program filled it; a backend id names one
 * address and port for its life, and user space empties the cache slot when it removes one),
 * else from xlb_backends. NULL if it is gone. */
static __always_inline const struct xlb_backend *xlb_reply_backend(__u32 backend_id)
{
	const struct xlb_backend_cache_entry *cached = xlb_backend_cache_entry(backend_id);

	if (backend_id == XLB_BACKEND_ID_NONE)
		return NULL;
	if (cached && cached->backend_id == backend_id)
		return &cached->backend;
	return lb_lookup_backend(backend_id);
}

/* A backend's counter slot; 0 (counted nowhere read) if it is gone. */
static __always_inline __u32 xlb_backend_slot(__u32 backend_id)
{
	const struct xlb_backend *backend = xlb_reply_backend(backend_id);

	return backend ? backend->stats_slot : 0;
}

/* The flow (client -> frontend) has the reply's destination as its client. */
static __always_inline int xlb_flow_has_client(const struct xlb_flow_key *flow, const struct xlb_flow_key *reply)
{
	return flow->family == reply->family && flow->protocol == reply->protocol && flow->sport == reply->dport &&
	       xlb_addr_equal(flow->src, reply->dst);
}

/*
 * A nat reply (backend -> client): conntrack's flow in the set of the reply's destination
 * whose client that is, whose backend sends the reply, and that has no snat port (an snat
 * reply goes to the node's port, and has a reverse entry). The way back in *to, the flow's
 * counter slots. Returns 0 if conntrack has no such flow.
 */
static __always_inline int xlb_nat_reply(const struct xlb_flow_key *reply, struct xlb_nat_target *to,
					 __u32 *service_slot, __u32 *backend_slot)
{
	__u32 first = xlb_ct_first_way(xlb_ct_seed(), reply->dst, reply->dport, reply->protocol, reply->family);
	struct xlb_ct_entry entry;
	struct xlb_flow_key flow;

	for (int i = 0; i < XLB_CT_WAYS; i++) {
		struct xlb_ct_way *way = xlb_ct_way_at(first + i);
		const struct xlb_backend *backend;

		if (!way || !xlb_flow_has_client(&way->flow, reply))
			continue;
		xlb_ct_copy(way, &flow, &entry);
		if (!xlb_flow_has_client(&flow, reply) || entry.snat_port)
			continue;
		backend = xlb_reply_backend(entry.backend_id);
		if (!backend || backend->port != reply->sport || !xlb_addr_equal(backend->address, reply->src))
			continue;
		xlb_addr_copy(to->src, flow.dst);
		xlb_addr_copy(to->dst, flow.src);
		to->sport = flow.dport;
		to->dport = flow.sport;
		*service_slot = entry.service_slot;
		*backend_slot = backend->stats_slot;
		return 1;
	}
	return 0;
}

/* The counter slots of the service and the backend an snat reply belongs to: from the flow's
 * conntrack entry, found from the client and frontend the reverse entry names; when conntrack
 * forgot the flow before the reverse table did, the service's from its entry, no backend's. */
static __always_inline void xlb_snat_reply_slots(const struct xlb_reverse_nat *reverse, const struct xlb_packet *pkt,
						 __u32 *service_slot, __u32 *backend_slot)
{
	const struct xlb_service_value *service;
	struct xlb_flow_key flow = {};
	struct xlb_ct_entry entry;

	xlb_addr_copy(flow.src, reverse->client);
	xlb_addr_copy(flow.dst, reverse->frontend);
	flow.sport = reverse->client_port;
	flow.dport = reverse->frontend_port;
	flow.protocol = pkt->flow.protocol;
	flow.family = pkt->flow.family;
	if (xlb_ct_lookup(&flow, &entry)) {
		*service_slot = entry.service_slot;
		*backend_slot = xlb_backend_slot(entry.backend_id);
		return;
	}
	*backend_slot = 0;
	service = lb_lookup_service(&flow);
	*service_slot = service ? XLB_SERVICE_STATS_SLOT(service->flags) : 0;
}

/* An snat reply (backend -> node:port): the way back its reverse entry holds, in *to, and its
 * counter slots. Returns 0 if the reverse table has no entry for it. */
static __always_inline int xlb_snat_reply(const struct xlb_packet *pkt, struct xlb_nat_target *to,
					  __u32 *service_slot, __u32 *backend_slot)
{
	const struct xlb_reverse_nat *reverse = bpf_map_lookup_elem(&xlb_reverse_nat, &pkt->flow);

	if (!reverse)
		return 0;
	/* A copy: the entry may change under us, and the helpers below need stable values. */
	xlb_addr_copy(to->src, reverse->frontend);
	xlb_addr_copy(to->dst, reverse->client);
	to->sport = reverse->frontend_port;
	to->dport = reverse->client_port;
	xlb_snat_reply_slots(reverse, pkt, service_slot, backend_slot);
	return 1;
}

/* The headers in the skb's linear part, where direct access (and xlb_parse) can read them.
 * Returns -1 if the skb cannot be made so. */
static __always_inline int xlb_tc_pull(struct __sk_buff *skb)
{
	__u32 want = skb->len < XLB_TC_HEADERS ? skb->len : XLB_TC_HEADERS;

	if ((void *)(long)skb->data + want > (void *)(long)skb->data_end && bpf_skb_pull_data(skb, want) < 0)
		return -1;
	return 0;
}

/* The IP length of each packet that leaves, for the route's MTU: the packet's own, or for a
 * GSO skb (a train of segments from GRO or a veth, sent as segments of gso_size each with their
 * IP and L4 headers) a segment's. 0 if the TCP header cannot be read (the kernel's own check
 * of the skb then). */
static __always_inline __u16 xlb_tc_segment_len(struct __sk_buff *skb, const struct xlb_packet *pkt)
{
	void *data_end = (void *)(long)skb->data_end;
	struct tcphdr *tcp = pkt->l4;
	__u32 l4_hlen = sizeof(struct udphdr);

	if (!skb->gso_size)
		return pkt->ip_len;
	if (pkt->flow.protocol == IPPROTO_TCP) {
		if ((void *)(tcp + 1) > data_end)
			return 0;
		l4_hlen = tcp->doff * 4;
	}
	return (pkt->l4_off - pkt->l3_off) + l4_hlen + skb->gso_size;
}

/* A TCP or UDP packet that may be a reply from a backend: restored and sent to the client,
 * or XLB_TC_NOT_REPLY (untouched) if it is none. */
#define XLB_TC_NOT_REPLY (-1)

static __always_inline int xlb_tc_reply(struct __sk_buff *skb, const struct xlb_packet *pkt)
{
	struct xlb_route_cache_entry *cached;
	struct xlb_nat_target to;
	struct xlb_scratch *s;
	__u32 reason, ifindex, service_slot, backend_slot, zero = 0;
	__u8 macs[2 * ETH_ALEN]; /* Ethernet destination then source, as they lie in the header */
	int next_hop;
	__u16 len;
	__u64 now;

	if (!xlb_nat_reply(&pkt->flow, &to, &service_slot, &backend_slot) &&
	    !xlb_snat_reply(pkt, &to, &service_slot, &backend_slot))
		return XLB_TC_NOT_REPLY;
	if (pkt->ttl <= 1) {
		xlb_count_reason(XLB_PASS_TTL_EXPIRED, skb->len);
		return TC_ACT_OK;
	}

	s = bpf_map_lookup_elem(&xlb_tc_scratch, &zero);
	if (!s)
		return TC_ACT_SHOT; /* cannot happen: a one-entry array always has its entry */
	now = xlb_now(s);

	/* skb->ifindex is the link the reply arrived on (tc ingress). A length the program could
	 * not work out (0) is left to the kernel's own check of the skb, and not cached. */
	len = xlb_tc_segment_len(skb, pkt);
	cached = xlb_route_cache_entry(to.src, to.dst);
	if (len && xlb_route_cache_hit(cached, to.src, to.dst, pkt->flow.family, skb->ifindex, len, now)) {
		next_hop = XLB_NEXT_HOP_SEND;
		reason = XLB_REASON_FORWARDED;
		ifindex = cached->ifindex;
		__builtin_memcpy(macs, cached->dmac, ETH_ALEN);
		__builtin_memcpy(macs + ETH_ALEN, cached->smac, ETH_ALEN);
	} else {
		xlb_fib_params(&s->fib, pkt, &to, skb->ifindex);
		s->fib.tot_len = len;
		next_hop = xlb_fib_next_hop(skb, &s->fib, &reason);
		if (next_hop == XLB_NEXT_HOP_DROP) {
			xlb_count_reason(reason, skb->len);
			xlb_emit_event(reason, skb->ifindex, &pkt->flow);
			return TC_ACT_SHOT;
		}
		if (next_hop == XLB_NEXT_HOP_SEND && len)
			xlb_route_cache_store(cached, to.src, to.dst, pkt->flow.family, &s->fib, skb->ifindex, len,
					      now);
		ifindex = s->fib.ifindex;
		__builtin_memcpy(macs, s->fib.dmac, ETH_ALEN);
		__builtin_memcpy(macs + ETH_ALEN, s->fib.smac, ETH_ALEN);
	}

	if (xlb_skb_rewrite(skb, pkt, &to, next_hop == XLB_NEXT_HOP_SEND) < 0) {
		/* Only a broken skb (not writable, not linear where it must be) gets here. */
		xlb_count_reason(XLB_DROP_TRUNCATED, skb->len);
		xlb_emit_event(XLB_DROP_TRUNCATED, skb->ifindex, &pkt->flow);
		return TC_ACT_SHOT;
	}
	xlb_count_reason(reason, skb->len);
	xlb_count_flow(service_slot, backend_slot, skb->len, 0);
	if (next_hop == XLB_NEXT_HOP_STACK)
		return TC_ACT_OK;

	if (bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0) < 0)
		return TC_ACT_SHOT;
	return bpf_redirect(ifindex, 0);
}

SEC("tc")
int xlb_tc(struct __sk_buff *skb)
{
	struct xlb_packet pkt;
	__u32 malformed = 0;
	int action;

	if (xlb_tc_pull(skb) < 0)
		return TC_ACT_OK;
	switch (xlb_parse_frame((void *)(long)skb->data, (void *)(long)skb->data_end, skb->len, &pkt, &malformed)) {
	case XLB_PARSED_L4:
		action = xlb_tc_reply(skb, &pkt);
		return action == XLB_TC_NOT_REPLY ? TC_ACT_OK : action;
	case XLB_PARSED_OTHER:
		return xlb_decap(skb, &pkt);
	default:
		return TC_ACT_OK;
	}
}

/* ---- xlb_tc_lb: the balancer at tc ingress ------------------------------------------------ */

/* Every exit of a packet the balancer looked at: counted under its reason, a drop reported. */
static __always_inline int xlb_tc_exit(struct __sk_buff *skb, const struct xlb_packet *pkt, int action, __u32 reason,
				       __u64 bytes)
{
	xlb_count_reason(reason, bytes);
	if (action == TC_ACT_SHOT)
		xlb_emit_event(reason, skb->ifindex, &pkt->flow);
	return action;
}

/* Sent on to the next hop the route lookup found: its MACs written, redirected to its link. */
static __always_inline int xlb_tc_send(struct __sk_buff *skb, const struct xlb_packet *pkt,
				       const struct bpf_fib_lookup *fib, __u32 reason, __u64 bytes)
{
	__u8 macs[2 * ETH_ALEN]; /* Ethernet destination then source, as they lie in the header */

	__builtin_memcpy(macs, fib->dmac, ETH_ALEN);
	__builtin_memcpy(macs + ETH_ALEN, fib->smac, ETH_ALEN);
	if (bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0) < 0)
		return xlb_tc_exit(skb, pkt, TC_ACT_SHOT, XLB_DROP_TRUNCATED, bytes);
	return xlb_tc_exit(skb, pkt, bpf_redirect(fib->ifindex, 0), reason, bytes);
}

/*
 * A translated packet (s->to) toward its next hop: the backend's cached route when this CPU
 * has a fresh one, else the kernel's (fib.h). Sent on by a redirect with new MACs, or left to
 * the stack translated (neighbour unknown, MTU), or dropped without a route.
 *
 * The route lookup and the backend cache are given the length of each packet that leaves
 * (xlb_tc_segment_len: a GSO skb's segments, not the whole train); a length the program could
 * not work out (0) is the kernel's to check against the egress MTU, and is not cached.
 */
static __always_inline int xlb_tc_forward(struct __sk_buff *skb, const struct xlb_packet *pkt, struct xlb_scratch *s,
					  __u64 bytes)
{
	struct xlb_backend_cache_entry *cached = xlb_backend_cache_entry(s->backend_id);
	__u16 len = xlb_tc_segment_len(skb, pkt);
	__u8 macs[2 * ETH_ALEN];
	__u32 reason, ifindex;
	int next_hop;

	if (len && xlb_backend_cache_hit(cached, s->backend_id, skb->ifindex, len, s->now)) {
		next_hop = XLB_NEXT_HOP_SEND;
		reason = XLB_REASON_FORWARDED;
		ifindex = cached->ifindex;
		__builtin_memcpy(macs, cached->dmac, ETH_ALEN);
		__builtin_memcpy(macs + ETH_ALEN, cached->smac, ETH_ALEN);
	} else {
		xlb_fib_params(&s->fib, pkt, &s->to, skb->ifindex);
		s->fib.tot_len = len;
		next_hop = xlb_fib_next_hop(skb, &s->fib, &reason);
		if (next_hop == XLB_NEXT_HOP_DROP)
			return xlb_tc_exit(skb, pkt, TC_ACT_SHOT, reason, bytes);
		ifindex = s->fib.ifindex;
		if (next_hop == XLB_NEXT_HOP_SEND && len)
			xlb_backend_cache_store(cached, s->backend_id, &s->backend, &s->fib, skb->ifindex, len, s->now);
		__builtin_memcpy(macs, s->fib.dmac, ETH_ALEN);
		__builtin_memcpy(macs + ETH_ALEN, s->fib.smac, ETH_ALEN);
	}

	if (xlb_skb_rewrite(skb, pkt, &s->to, next_hop == XLB_NEXT_HOP_SEND) < 0)
		return xlb_tc_exit(skb, pkt, TC_ACT_SHOT, XLB_DROP_TRUNCATED, bytes);
	xlb_count_flow(s->service_slot, s->backend_slot, bytes, s->new_flow);
	if (next_hop != XLB_NEXT_HOP_SEND)
		return xlb_tc_exit(skb, pkt, TC_ACT_OK, reason, bytes);
	/* Ethernet destination then source, as they lie in the header. */
	if (bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0) < 0)
		return xlb_tc_exit(skb, pkt, TC_ACT_SHOT, XLB_DROP_TRUNCATED, bytes);
	return xlb_tc_exit(skb, pkt, bpf_redirect(ifindex, 0), reason, bytes);
}

/* The packet would not fit the route toward the backend once encapsulated: answered as
 * xlb_xdp answers it (dsr.h: MTU), back out of the link it came in on. */
static __always_inline int xlb_tc_dsr_too_big(struct __sk_buff *skb, const struct xlb_packet *pkt, __u16 route_mtu,
					      __u32 overhead, __u64 bytes)
{
	__u16 mtu = route_mtu > overhead ? route_mtu - overhead : 0;

	if (!xlb_dont_fragment(pkt, (void *)(long)skb->data_end))
		return xlb_tc_exit(skb, pkt, TC_ACT_SHOT, XLB_DROP_TOO_BIG, bytes);
	if (xlb_dsr_too_big_skb(skb, pkt, mtu))
		return xlb_tc_exit(skb, pkt, TC_ACT_SHOT, XLB_DROP_TRUNCATED, bytes);
	return xlb_tc_exit(skb, pkt, bpf_redirect(skb->ifindex, 0), XLB_TX_ICMP_TOO_BIG, bytes);
}

/*
 * A TCP or UDP packet to a dsr frontend: its backend as for xlb_xdp (balance.h), then wrapped
 * in an outer header toward it (dsr.h) and sent on with the next hop's MACs, or left to the
 * stack encapsulated when the neighbour is not resolved yet. The route comes from this CPU's
 * backend cache when it holds a fresh one long enough for the packet, as for nat.
 */
static __always_inline int xlb_tc_dsr(struct __sk_buff *skb, const struct xlb_packet *pkt,
				      const struct xlb_service_value *service, struct xlb_scratch *s, __u64 bytes)
{
	__u32 overhead = pkt->flow.family == XLB_AF_INET ? XLB_DSR_OVERHEAD_V4 : XLB_DSR_OVERHEAD_V6;
	struct xlb_backend_cache_entry *cached;
	__u32 reason;
	__u16 len;
	int next_hop;

	if (pkt->has_vlan)
		return xlb_tc_exit(skb, pkt, TC_ACT_SHOT, XLB_DROP_DSR_UNSUPPORTED, bytes);
	if (!xlb_dsr_source(&pkt->flow, s->to.src))
		return xlb_tc_exit(skb, pkt, TC_ACT_SHOT, XLB_DROP_NO_DSR_SOURCE, bytes);
	reason = xlb_dsr_choose(pkt, service, xlb_ct_lookup(&pkt->flow, &s->ct), s, xlb_now(s));
	if (reason)
		return xlb_tc_exit(skb, pkt, TC_ACT_SHOT, reason, bytes);

	/* A length the program could not work out (0) is left to the kernel's own check. */
	len = xlb_tc_segment_len(skb, pkt);
	if (len)
		len += overhead;
	cached = xlb_backend_cache_entry(s->backend_id);
	if (len && xlb_backend_cache_hit(cached, s->backend_id, skb->ifindex, len, s->now)) {
		next_hop = XLB_NEXT_HOP_SEND;
		reason = XLB_REASON_FORWARDED;
		s->fib.ifindex = cached->ifindex;
		__builtin_memcpy(s->fib.dmac, cached->dmac, ETH_ALEN);
		__builtin_memcpy(s->fib.smac, cached->smac, ETH_ALEN);
	} else {
		xlb_dsr_fib_params(&s->fib, pkt, s->to.src, s->to.dst, len, skb->ifindex);
		next_hop = xlb_fib_next_hop(skb, &s->fib, &reason);
		if (reason == XLB_PASS_FRAG_NEEDED)
			return xlb_tc_dsr_too_big(skb, pkt, s->fib.mtu_result, overhead, bytes);
		if (next_hop == XLB_NEXT_HOP_DROP)
			return xlb_tc_exit(skb, pkt, TC_ACT_SHOT, reason, bytes);
		if (next_hop == XLB_NEXT_HOP_SEND && len)
			xlb_backend_cache_store(cached, s->backend_id, &s->backend, &s->fib, skb->ifindex, len, s->now);
	}
	if (xlb_dsr_encap_skb(skb, pkt, s->to.src, s->to.dst))
		return xlb_tc_exit(skb, pkt, TC_ACT_SHOT, XLB_DROP_TRUNCATED, bytes);
	xlb_count_flow(s->service_slot, s->backend_slot, bytes, s->new_flow);
	if (next_hop != XLB_NEXT_HOP_SEND)
		return xlb_tc_exit(skb, pkt, TC_ACT_OK, reason, bytes);
	return xlb_tc_send(skb, pkt, &s->fib, reason, bytes);
}

/* A TCP or UDP packet: balanced if it is to a frontend, else perhaps a reply (xlb_tc_reply),
 * else passed untouched. */
static __always_inline int xlb_tc_balance(struct __sk_buff *skb, struct xlb_packet *pkt, __u64 bytes)
{
	const struct xlb_service_value *service;
	struct xlb_scratch *s;
	struct xlb_ct_entry *ct;
	__u32 reason, zero = 0;
	int action;

	service = lb_lookup_service(&pkt->flow);
	if (!service) {
		/* A reply counts itself; anything else is not ours, counted as xlb_xdp does. */
		action = xlb_tc_reply(skb, pkt);
		if (action != XLB_TC_NOT_REPLY)
			return action;
		xlb_count_reason(XLB_PASS_NOT_SERVICE, bytes);
		return TC_ACT_OK;
	}
	if (pkt->ttl <= 1)
		return xlb_tc_exit(skb, pkt, TC_ACT_OK, XLB_PASS_TTL_EXPIRED, bytes);

	s = bpf_map_lookup_elem(&xlb_tc_scratch, &zero);
	if (!s)
		return TC_ACT_SHOT; /* cannot happen: a one-entry array always has its entry */
	if (service->flags & XLB_SERVICE_F_DSR)
		return xlb_tc_dsr(skb, pkt, service, s, bytes);
	ct = xlb_ct_lookup(&pkt->flow, &s->ct);
	reason = xlb_translate(pkt, service, ct, s, xlb_now(s));
	if (reason)
		return xlb_tc_exit(skb, pkt, TC_ACT_SHOT, reason, bytes);
	return xlb_tc_forward(skb, pkt, s, bytes);
}

/* The most bytes an ICMP error about a balanced flow needs in the linear part: Ethernet, a VLAN
 * tag, the IPv6 header, ICMP's, and the quoted IPv6 header with its TCP header as far as the
 * checksum (icmp.h rewrites the quoted ports and checksums). */
#define XLB_TC_ICMP_HEADERS (14 + 4 + 40 + 8 + 40 + 20)

/*
 * An ICMP packet: an error about a balanced flow goes to the flow's backend as xlb_xdp sends it
 * (icmp.h), anything else passes untouched. The quoted packet lies beyond what xlb_tc_pull
 * made readable, so more is pulled and the frame parsed again (a pull moves the data).
 */
static __always_inline int xlb_tc_icmp(struct __sk_buff *skb, struct xlb_packet *pkt, __u64 bytes)
{
	__u32 want = skb->len < XLB_TC_ICMP_HEADERS ? skb->len : XLB_TC_ICMP_HEADERS;
	__u32 reason, malformed = 0, zero = 0;
	void *data_end;
	struct xlb_scratch *s;
	int next_hop;

	if (bpf_skb_pull_data(skb, want) < 0) {
		xlb_count_reason(xlb_other_reason(pkt), bytes);
		return TC_ACT_OK;
	}
	data_end = (void *)(long)skb->data_end;
	if (xlb_parse_frame((void *)(long)skb->data, data_end, skb->len, pkt, &malformed) != XLB_PARSED_ICMP)
		return TC_ACT_OK; /* cannot happen: the same bytes parsed as ICMP before the pull */
	s = bpf_map_lookup_elem(&xlb_tc_scratch, &zero);
	if (!s)
		return TC_ACT_SHOT; /* cannot happen: a one-entry array always has its entry */
	reason = xlb_icmp_translate(pkt, data_end, s);
	if (reason)
		return xlb_tc_exit(skb, pkt, TC_ACT_OK, reason, bytes);

	xlb_fib_params(&s->fib, pkt, &s->to, skb->ifindex);
	next_hop = xlb_fib_next_hop(skb, &s->fib, &reason);
	if (next_hop == XLB_NEXT_HOP_DROP)
		return xlb_tc_exit(skb, pkt, TC_ACT_SHOT, reason, bytes);
	/* Written in place (the pull made the bytes writable): every checksum is updated by icmp.h. */
	xlb_icmp_rewrite(pkt, data_end, &s->inner, &s->to, &s->embedded, next_hop == XLB_NEXT_HOP_SEND);
	xlb_count_flow(s->service_slot, s->backend_slot, bytes, 0);
	if (next_hop != XLB_NEXT_HOP_SEND)
		return xlb_tc_exit(skb, pkt, TC_ACT_OK, reason, bytes);
	return xlb_tc_send(skb, pkt, &s->fib, reason, bytes);
}

/* The balancer at tc ingress: the rules for malformed input of xlb_xdp.bpf.c hold here too. */
SEC("tc")
int xlb_tc_lb(struct __sk_buff *skb)
{
	struct xlb_packet pkt;
	__u32 malformed = 0;
	__u64 bytes = skb->len;

	if (xlb_tc_pull(skb) < 0) {
		xlb_count_reason(XLB_PASS_NOT_IP, bytes);
		return TC_ACT_OK;
	}
	switch (xlb_parse_frame((void *)(long)skb->data, (void *)(long)skb->data_end, skb->len, &pkt, &malformed)) {
	case XLB_PARSED_L4:
		return xlb_tc_balance(skb, &pkt, bytes);
	case XLB_PARSED_ICMP:
		return xlb_tc_icmp(skb, &pkt, bytes);
	case XLB_PARSED_OTHER:
		xlb_count_reason(xlb_other_reason(&pkt), bytes);
		return TC_ACT_OK; /* a node that decapsulates does not balance (config.cpp) */
	case XLB_PARSED_MALFORMED:
		if (lb_is_frontend_address(pkt.flow.family, pkt.flow.dst))
			return xlb_tc_exit(skb, &pkt, TC_ACT_SHOT, malformed, bytes);
		xlb_count_reason(XLB_PASS_NOT_SERVICE, bytes);
		return TC_ACT_OK;
	default:
		xlb_count_reason(XLB_PASS_NOT_IP, bytes);
		return TC_ACT_OK;
	}
}

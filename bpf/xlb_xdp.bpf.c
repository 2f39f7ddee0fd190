// SPDX-License-Identifier: GPL-2.0
/*
 * xlb_xdp: north-south load balancing in XDP, before the kernel's stack sees the packet.
 *
 * A TCP or UDP packet to a frontend (address, port, protocol in xlb_services_v4/v6) is given a
 * backend: the one conntrack has for its flow, else a new pick from the service's Maglev ring
 * (by a hash of the flow, or of the client address with ClientIP affinity), recorded in
 * conntrack. It is translated (nat: DNAT to the backend; snat: DNAT plus SNAT to the node's
 * address and an allocated port, whose reply's way back is written to xlb_reverse_nat for the
 * tc program), and it is sent on to the next hop from the kernel's routing table (fib.h).
 * ICMP errors about balanced flows follow their flow to its backend (icmp.h). A dsr service's
 * packets are not translated but encapsulated toward the backend instead (dsr.h, xlb_dsr).
 *
 * Most packets belong to established flows, and those take a short path (xlb_send_cached_flow):
 * no hash lookup at all. The flow's backend and what its packets need of the frontend come from
 * a per-CPU cache of conntrack's answers (flow_cache.h, at most 100 ms old and made since the
 * frontends last changed), the backend's address and next hop from a per-CPU cache of those
 * (backend_cache.h, at most a second old). Everything else takes the general path (the frontend
 * lookup, xlb_translate, xlb_forward). Most packets that are not for a frontend cost one array
 * read: the frontend filter (xlb_abi.h) says no frontend has their address, port and protocol.
 *
 * THE RULE FOR MALFORMED INPUT. Traffic that is not for a frontend must never be harmed, and
 * traffic for a frontend that we cannot balance must not leak past us:
 *
 *  1. A frame that cannot be recognised as IP (another EtherType, also behind one VLAN tag; or
 *     a frame too short for its Ethernet, VLAN or IP header) is passed untouched, counted
 *     XLB_PASS_NOT_IP. It is the kernel's business (ARP, LLDP, ...).
 *  2. An IP packet whose addresses can be read but that cannot be balanced (an IPv4 header
 *     length below 5 or a version that does not match the EtherType, IPv4 options, a fragment
 *     (MF or an offset; an IPv6 fragment header), an IP length of zero or too short for the
 *     headers or longer than the frame, a TCP or UDP header cut short) is:
 *       - dropped if its destination is a frontend address (xlb_frontend_addrs), counted with
 *         its reason (XLB_DROP_BAD_IHL, _IPV4_OPTIONS, _FRAGMENT, _TRUNCATED) and reported as
 *         an event: it cannot be given a backend (no ports to hash, or a header we do not
 *         rewrite), and passing it on would hand half a flow to whatever the stack does with
 *         a frontend address;
 *       - passed untouched otherwise, counted XLB_PASS_NOT_SERVICE: it is not ours, and this
 *         node may be its destination or its router.
 *  3. Well-formed IP of another protocol (or with IPv6 extension headers, which are not
 *     walked) is passed untouched: XLB_PASS_NOT_TCP_UDP if to a frontend address, else
 *     XLB_PASS_NOT_SERVICE. The ICMP errors of icmp.h about a balanced flow are forwarded.
 *  4. Well-formed TCP and UDP cost at most one hash lookup (none when the frontend filter rules
 *     the frontend out); if it is not a frontend the packet is passed untouched, counted
 *     XLB_PASS_NOT_SERVICE.
 *
 * Every packet is counted under exactly one reason (xlb_reason_stats); every drop also emits a
 * rate-limited event (events.h). A packet whose TTL would reach 0 is passed untranslated
 * (XLB_PASS_TTL_EXPIRED) so that the kernel answers with ICMP time exceeded, as a router does.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "xlb_abi.h"
#include "affinity.h"
#include "balance.h"
#include "backend_cache.h"
#include "conntrack.h"
#include "counters.h"
#include "dsr.h"
#include "events.h"
#include "fib.h"
#include "flow_cache.h"
#include "hash.h"
#include "icmp.h"
#include "lb.h"
#include "nat.h"
#include "node.h"
#include "parse.h"

char LICENSE[] SEC("license") = "GPL";

/* The link the packet came in on. Read with one instruction of its own each time: left to
 * itself clang may keep the field's address (ctx + 12) in a register or on the stack for later
 * reads, and the verifier refuses any access through a ctx pointer that was moved. */
static __always_inline __u32 xlb_ingress_ifindex(const struct xdp_md *ctx)
{
	__u32 ifindex;

	asm volatile("%0 = *(u32 *)(%1 + %2)" : "=r"(ifindex) : "r"(ctx), "i"(offsetof(struct xdp_md, ingress_ifindex)));
	return ifindex;
}

/* Every exit: the packet counted under its reason, and a drop reported. */
static __always_inline int xlb_exit(struct xdp_md *ctx, const struct xlb_packet *pkt, int action, __u32 reason,
				    __u64 bytes)
{
	xlb_count_reason(reason, bytes);
	if (action == XDP_DROP)
		xlb_emit_event(reason, xlb_ingress_ifindex(ctx), &pkt->flow);
	return action;
}

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xlb_scratch);
} xlb_xdp_scratch SEC(".maps");

/* The CPU's cached backend and next hop serve this packet: the backend's, answered recently,
 * for the link the packet came in on, a packet this long (len: as it will leave) and its family. */
static __always_inline int xlb_backend_cache_usable(const struct xlb_backend_cache_entry *cached, __u32 backend_id,
						    __u32 ingress_ifindex, const struct xlb_packet *pkt, __u16 len,
						    __u64 now)
{
	return xlb_backend_cache_hit(cached, backend_id, ingress_ifindex, len, now) &&
	       cached->backend.family == pkt->flow.family;
}

/*
 * The common case, kept short: a packet of an established flow whose backend and next hop
 * this CPU has cached (backend_cache.h). No backends lookup, no route lookup, no copies. ct
 * is the flow's conntrack entry when it was just read (to refresh it when due, with its
 * service), NULL when its answer came from the flow cache.
 */
static __always_inline int xlb_forward_cached(struct xdp_md *ctx, const struct xlb_packet *pkt, __u32 service_slot,
					      const struct xlb_service_value *service, struct xlb_ct_entry *ct,
					      __be16 snat_port, const struct xlb_backend_cache_entry *cached,
					      struct xlb_scratch *s, __u64 now, __u64 bytes)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	const __be32 *src = pkt->flow.src;
	__be16 sport = pkt->flow.sport;
	int action;

	if (snat_port) {
		const struct xlb_node_config *node = xlb_node_config();

		if (!node)
			return XDP_ABORTED; /* cannot happen: an array always has entry 0 */
		src = xlb_snat_address(node, pkt->flow.family);
		sport = snat_port;
	}
	if (ct && service && xlb_ct_refresh_due(ct, now))
		xlb_ct_refresh(ct, &pkt->flow, service, src, sport, &cached->backend, s, now);

	xlb_xdp_rewrite(pkt, data_end, src, cached->backend.address, sport, cached->backend.port, 1);
	xlb_set_macs(data, data_end, cached->dmac, cached->smac);
	xlb_count_flow(service_slot, cached->backend.stats_slot, bytes, 0);
	action = cached->ifindex == xlb_ingress_ifindex(ctx) ? XDP_TX : bpf_redirect(cached->ifindex, 0);
	return xlb_exit(ctx, pkt, action, XLB_REASON_FORWARDED, bytes);
}

/*
 * A translated packet toward its next hop (fib.h): sent on with new MACs by XDP_TX or a
 * redirect, or passed to the stack translated, or dropped without a route. A TCP/UDP packet
 * whose backend's route this CPU knows reuses it (backend_cache.h) and a new answer is kept;
 * ICMP errors, rare, always ask.
 */
static __always_inline int xlb_forward(struct xdp_md *ctx, const struct xlb_packet *pkt, struct xlb_scratch *s,
				       __u64 bytes)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct xlb_backend_cache_entry *cached = s->icmp ? NULL : xlb_backend_cache_entry(s->backend_id);
	const __u8 *dmac = s->fib.dmac, *smac = s->fib.smac;
	__u32 reason, ifindex = 0;
	int next_hop, action = XDP_PASS;

	if (xlb_backend_cache_hit(cached, s->backend_id, xlb_ingress_ifindex(ctx), pkt->ip_len, s->now)) {
		next_hop = XLB_NEXT_HOP_SEND;
		reason = XLB_REASON_FORWARDED;
		ifindex = cached->ifindex;
		dmac = cached->dmac;
		smac = cached->smac;
	} else {
		xlb_fib_params(&s->fib, pkt, &s->to, xlb_ingress_ifindex(ctx));
		next_hop = xlb_fib_next_hop(ctx, &s->fib, &reason);
		if (next_hop == XLB_NEXT_HOP_DROP)
			return xlb_exit(ctx, pkt, XDP_DROP, reason, bytes);
		ifindex = s->fib.ifindex;
		/* Only a complete answer is kept; the others ask again with the next packet. */
		if (next_hop == XLB_NEXT_HOP_SEND && !s->icmp)
			xlb_backend_cache_store(cached, s->backend_id, &s->backend, &s->fib, xlb_ingress_ifindex(ctx),
						pkt->ip_len, s->now);
	}

	if (s->icmp)
		xlb_icmp_rewrite(pkt, data_end, &s->inner, &s->to, &s->embedded, next_hop == XLB_NEXT_HOP_SEND);
	else
		xlb_xdp_rewrite(pkt, data_end, s->to.src, s->to.dst, s->to.sport, s->to.dport,
				next_hop == XLB_NEXT_HOP_SEND);
	xlb_count_flow(s->service_slot, s->backend_slot, bytes, s->new_flow);

	if (next_hop == XLB_NEXT_HOP_SEND) {
		xlb_set_macs(data, data_end, dmac, smac);
		/* Out of the link it came in on, or another one. */
		action = ifindex == xlb_ingress_ifindex(ctx) ? XDP_TX : bpf_redirect(ifindex, 0);
	}
	return xlb_exit(ctx, pkt, action, reason, bytes);
}

/* A dsr flow's packet, encapsulated toward its next hop: sent on, or passed to the stack when
 * the neighbour is not resolved yet (it forwards the encapsulated packet and resolves it). */
static __always_inline int xlb_dsr_send(struct xdp_md *ctx, const struct xlb_packet *pkt, const __be32 *src,
					const __be32 *dst, const __u8 *dmac, const __u8 *smac, __u32 ifindex,
					__u32 reason, __u64 bytes)
{
	int action;

	if (xlb_dsr_encap(ctx, pkt, src, dst, dmac, smac))
		return xlb_exit(ctx, pkt, XDP_DROP, XLB_DROP_TRUNCATED, bytes);
	if (reason != XLB_REASON_FORWARDED)
		action = XDP_PASS;
	else
		action = ifindex == xlb_ingress_ifindex(ctx) ? XDP_TX : bpf_redirect(ifindex, 0);
	return xlb_exit(ctx, pkt, action, reason, bytes);
}

/* A dsr flow's packet toward a backend whose next hop this CPU has cached. */
static __always_inline int xlb_dsr_send_cached(struct xdp_md *ctx, const struct xlb_packet *pkt, __u32 service_slot,
					       const struct xlb_backend_cache_entry *cached, const __be32 *src,
					       __u8 new_flow, __u64 bytes)
{
	xlb_count_flow(service_slot, cached->backend.stats_slot, bytes, new_flow);
	return xlb_dsr_send(ctx, pkt, src, cached->backend.address, cached->dmac, cached->smac, cached->ifindex,
			    XLB_REASON_FORWARDED, bytes);
}

/* The packet would not fit the route toward the backend once encapsulated (dsr.h: MTU). */
static __always_inline int xlb_dsr_too_big_exit(struct xdp_md *ctx, const struct xlb_packet *pkt, __u16 route_mtu,
						__u64 bytes)
{
	void *data_end = (void *)(long)ctx->data_end;
	__u32 overhead = pkt->flow.family == XLB_AF_INET ? XLB_DSR_OVERHEAD_V4 : XLB_DSR_OVERHEAD_V6;
	__u16 mtu = route_mtu > overhead ? route_mtu - overhead : 0;

	if (!xlb_dont_fragment(pkt, data_end))
		return xlb_exit(ctx, pkt, XDP_DROP, XLB_DROP_TOO_BIG, bytes);
	if (xlb_dsr_too_big(ctx, pkt, mtu))
		return xlb_exit(ctx, pkt, XDP_DROP, XLB_DROP_TRUNCATED, bytes);
	return xlb_exit(ctx, pkt, XDP_TX, XLB_TX_ICMP_TOO_BIG, bytes);
}

/* How long a dsr packet is once encapsulated: what its route and the backend cache are
 * checked for. */
static __always_inline __u16 xlb_dsr_encap_len(const struct xlb_packet *pkt)
{
	return pkt->ip_len + (pkt->flow.family == XLB_AF_INET ? XLB_DSR_OVERHEAD_V4 : XLB_DSR_OVERHEAD_V6);
}

/*
 * A TCP or UDP packet to a dsr frontend that the flow cache did not serve: the flow's backend
 * (balance.h xlb_dsr_choose, as the tc balancer finds it), then encapsulation toward it
 * (dsr.h). Established flows whose backend's next hop this CPU knows take the short way first,
 * as in xlb_forward_cached. The cached route was checked for the encapsulated length, which is
 * what the cache compares. flow is the flow's slot of the flow cache, epoch the frontends'
 * epoch the service was read in.
 */
static __always_inline int xlb_dsr_balance(struct xdp_md *ctx, const struct xlb_packet *pkt,
					   const struct xlb_service_value *service, struct xlb_flow_cache_entry *flow,
					   __u32 epoch, struct xlb_scratch *s, __u64 now, __u64 bytes)
{
	struct xlb_backend_cache_entry *cached;
	__u32 ingress = xlb_ingress_ifindex(ctx);
	struct xlb_ct_entry *ct;
	__u16 encap_len = xlb_dsr_encap_len(pkt);
	__u32 reason;
	int next_hop;

	if (!xlb_dsr_source(&pkt->flow, s->to.src))
		return xlb_exit(ctx, pkt, XDP_DROP, XLB_DROP_NO_DSR_SOURCE, bytes);

	ct = xlb_ct_lookup(&pkt->flow, &s->ct);
	if (ct && !ct->snat_port && !pkt->syn) {
		cached = xlb_backend_cache_entry(ct->backend_id);
		if (xlb_backend_cache_usable(cached, ct->backend_id, ingress, pkt, encap_len, now)) {
			xlb_dsr_ct_refresh(ct, &pkt->flow, service, now);
			xlb_flow_cache_store(flow, &pkt->flow, ct->backend_id, 0, service, epoch, now);
			return xlb_dsr_send_cached(ctx, pkt, XLB_SERVICE_STATS_SLOT(service->flags), cached, s->to.src, 0,
						   bytes);
		}
	}
	reason = xlb_dsr_choose(pkt, service, ct, s, now);
	if (reason)
		return xlb_exit(ctx, pkt, XDP_DROP, reason, bytes);
	if (!s->new_flow)
		xlb_flow_cache_store(flow, &pkt->flow, s->backend_id, 0, service, epoch, now);

	/* A new flow to a backend this CPU has a route for needs no route lookup. */
	cached = xlb_backend_cache_entry(s->backend_id);
	if (xlb_backend_cache_usable(cached, s->backend_id, ingress, pkt, encap_len, now))
		return xlb_dsr_send_cached(ctx, pkt, s->service_slot, cached, s->to.src, s->new_flow, bytes);

	xlb_dsr_fib_params(&s->fib, pkt, s->to.src, s->to.dst, encap_len, xlb_ingress_ifindex(ctx));
	next_hop = xlb_fib_next_hop(ctx, &s->fib, &reason);
	if (reason == XLB_PASS_FRAG_NEEDED)
		return xlb_dsr_too_big_exit(ctx, pkt, s->fib.mtu_result, bytes);
	if (next_hop == XLB_NEXT_HOP_DROP)
		return xlb_exit(ctx, pkt, XDP_DROP, reason, bytes);
	if (next_hop == XLB_NEXT_HOP_SEND)
		xlb_backend_cache_store(cached, s->backend_id, &s->backend, &s->fib, ingress, encap_len, now);
	xlb_count_flow(s->service_slot, s->backend_slot, bytes, s->new_flow);
	if (next_hop == XLB_NEXT_HOP_STACK) {
		/* The stack forwards it and writes the MACs; until then they stay as they arrived
		 * (ours as destination, so that the stack takes the frame). */
		struct ethhdr *eth = (void *)(long)ctx->data;

		if ((void *)(eth + 1) > (void *)(long)ctx->data_end)
			return xlb_exit(ctx, pkt, XDP_DROP, XLB_DROP_TRUNCATED, bytes);
		__builtin_memcpy(s->fib.dmac, eth->h_dest, ETH_ALEN);
		__builtin_memcpy(s->fib.smac, eth->h_source, ETH_ALEN);
	}
	return xlb_dsr_send(ctx, pkt, s->to.src, s->to.dst, s->fib.dmac, s->fib.smac, s->fib.ifindex, reason, bytes);
}

/*
 * A packet of a flow the flow cache knows in this epoch, whose backend and next hop this CPU
 * has cached too: sent on with no hash lookup at all. flow is the cache's entry for it.
 */
static __always_inline int xlb_send_cached_flow(struct xdp_md *ctx, const struct xlb_packet *pkt,
						const struct xlb_flow_cache_entry *flow,
						const struct xlb_backend_cache_entry *cached, struct xlb_scratch *s,
						__u64 now, __u64 bytes)
{
	if (pkt->ttl <= 1)
		return xlb_exit(ctx, pkt, XDP_PASS, XLB_PASS_TTL_EXPIRED, bytes);
	if (!flow->dsr)
		return xlb_forward_cached(ctx, pkt, flow->service_slot, NULL, NULL, flow->snat_port, cached, s, now,
					  bytes);
	if (!xlb_dsr_source(&pkt->flow, s->to.src))
		return xlb_exit(ctx, pkt, XDP_DROP, XLB_DROP_NO_DSR_SOURCE, bytes);
	return xlb_dsr_send_cached(ctx, pkt, flow->service_slot, cached, s->to.src, 0, bytes);
}

/* A TCP or UDP packet (rule 4). */
static __always_inline int xlb_balance(struct xdp_md *ctx, const struct xlb_packet *pkt, __u64 bytes)
{
	const struct xlb_service_value *service;
	struct xlb_backend_cache_entry *cached;
	struct xlb_flow_cache_entry *flow;
	__u32 ingress = xlb_ingress_ifindex(ctx);
	struct xlb_scratch *s;
	struct xlb_ct_entry *ct;
	__u32 epoch, reason, zero = 0;
	__u16 len;
	__u64 now;

	/* What most packets that are not for a frontend cost: one inlined array read. */
	if (lb_no_frontend(pkt->flow.dst, pkt->flow.dport, pkt->flow.protocol))
		return xlb_exit(ctx, pkt, XDP_PASS, XLB_PASS_NOT_SERVICE, bytes);

	s = bpf_map_lookup_elem(&xlb_xdp_scratch, &zero);
	if (!s)
		return XDP_ABORTED; /* cannot happen: a one-entry array always has its entry */
	now = xlb_now(s);
	epoch = lb_frontend_epoch();
	flow = xlb_flow_cache_entry(&pkt->flow);
	/* A SYN asks xlb_backends whether its backend still takes connections; the caches
	 * do not know (xlb_backend_keeps_flow). */
	if (!pkt->syn && xlb_flow_cache_hit(flow, &pkt->flow, now, epoch)) {
		len = flow->dsr ? xlb_dsr_encap_len(pkt) : pkt->ip_len;
		cached = xlb_backend_cache_entry(flow->backend_id);
		if (xlb_backend_cache_usable(cached, flow->backend_id, ingress, pkt, len, now))
			return xlb_send_cached_flow(ctx, pkt, flow, cached, s, now, bytes);
	}

	service = lb_find_service(&pkt->flow);
	if (!service)
		return xlb_exit(ctx, pkt, XDP_PASS, XLB_PASS_NOT_SERVICE, bytes);
	if (pkt->ttl <= 1)
		return xlb_exit(ctx, pkt, XDP_PASS, XLB_PASS_TTL_EXPIRED, bytes);
	if (service->flags & XLB_SERVICE_F_DSR)
		return xlb_dsr_balance(ctx, pkt, service, flow, epoch, s, now, bytes);

	ct = xlb_ct_lookup(&pkt->flow, &s->ct);
	if (ct && !pkt->syn && !(service->flags & XLB_SERVICE_F_SNAT) == !ct->snat_port) {
		cached = xlb_backend_cache_entry(ct->backend_id);
		if (xlb_backend_cache_usable(cached, ct->backend_id, ingress, pkt, pkt->ip_len, now)) {
			xlb_flow_cache_store(flow, &pkt->flow, ct->backend_id, ct->snat_port, service, epoch, now);
			return xlb_forward_cached(ctx, pkt, XLB_SERVICE_STATS_SLOT(service->flags), service, ct,
						  ct->snat_port, cached, s, now, bytes);
		}
	}

	reason = xlb_translate(pkt, service, ct, s, now);
	if (reason)
		return xlb_exit(ctx, pkt, XDP_DROP, reason, bytes);
	if (ct && !s->new_flow) /* conntrack's flow, whose backend needed a lookup or a route */
		xlb_flow_cache_store(flow, &pkt->flow, ct->backend_id, ct->snat_port, service, epoch, now);
	return xlb_forward(ctx, pkt, s, bytes);
}

SEC("xdp")
int xlb_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 bytes = data_end - data;
	struct xlb_scratch *s;
	struct xlb_packet pkt;
	__u32 malformed = 0, reason, zero = 0;

	switch (xlb_parse(data, data_end, &pkt, &malformed)) {
	case XLB_PARSED_L4:
		return xlb_balance(ctx, &pkt, bytes);
	case XLB_PARSED_ICMP:
		s = bpf_map_lookup_elem(&xlb_xdp_scratch, &zero);
		if (!s)
			return XDP_ABORTED;
		reason = xlb_icmp_translate(&pkt, data_end, s);
		if (reason)
			return xlb_exit(ctx, &pkt, XDP_PASS, reason, bytes);
		return xlb_forward(ctx, &pkt, s, bytes);
	case XLB_PARSED_OTHER:
		return xlb_exit(ctx, &pkt, XDP_PASS, xlb_other_reason(&pkt), bytes);
	case XLB_PARSED_MALFORMED:
		if (lb_is_frontend_address(pkt.flow.family, pkt.flow.dst))
			return xlb_exit(ctx, &pkt, XDP_DROP, malformed, bytes);
		return xlb_exit(ctx, &pkt, XDP_PASS, XLB_PASS_NOT_SERVICE, bytes);
	default:
		return xlb_exit(ctx, &pkt, XDP_PASS, XLB_PASS_NOT_IP, bytes);
	}
}

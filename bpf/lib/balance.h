/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Balancing a TCP or UDP packet to a frontend, and an ICMP error about a balanced flow,
 * whatever program carries it (XDP in xlb_xdp, tc in xlb_tc's xlb_tc_lb): the backend of its
 * flow (conntrack's, or a new Maglev pick, with ClientIP affinity if the service has it,
 * recorded in conntrack) and the translation to it, with an snat reply's reverse-NAT entry
 * written (a nat reply finds its flow in conntrack). No packet bytes are read or written here: the caller rewrites the packet its own way (nat.h: xlb_xdp_rewrite or
 * xlb_skb_rewrite) and forwards it.
 *
 * The per-packet values live in a struct xlb_scratch; each program has its own per-CPU map of
 * one (xlb_xdp_scratch, xlb_tc_scratch).
 */
#ifndef XLB_LIB_BALANCE_H
#define XLB_LIB_BALANCE_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "xlb_abi.h"
#include "affinity.h"
#include "conntrack.h"
#include "hash.h"
#include "icmp.h"
#include "lb.h"
#include "nat.h"
#include "node.h"
#include "parse.h"

/* Why a packet we do not balance passes: to a frontend address, or not even that. */
static __always_inline __u32 xlb_other_reason(const struct xlb_packet *pkt)
{
	return lb_is_frontend_address(pkt->flow.family, pkt->flow.dst) ? XLB_PASS_NOT_TCP_UDP : XLB_PASS_NOT_SERVICE;
}

/* A backend may take a new flow: it exists, is not draining, and is of the packet's family
 * (xlb translates addresses within a family only). */
static __always_inline const struct xlb_backend *xlb_usable_backend(__u32 backend_id, __u8 family)
{
	const struct xlb_backend *backend = lb_lookup_backend(backend_id);

	if (!backend || backend->state != XLB_BACKEND_ACTIVE || backend->family != family)
		return NULL;
	return backend;
}

/*
 * Conntrack's backend still serves the flow: it exists, in the flow's family, and, for a TCP
 * SYN, still takes new connections. A SYN whose 5-tuple conntrack knows opens a new connection
 * on a client port used before (the old connection is over: a port is reused once it left
 * TIME_WAIT, or by a NAT in front of the clients), so it is balanced as a new flow rather than
 * sent to a draining or dead backend that would refuse it. A retransmitted SYN to an active
 * backend stays where the first went.
 */
static __always_inline int xlb_backend_keeps_flow(const struct xlb_backend *backend, const struct xlb_packet *pkt)
{
	return backend && backend->family == pkt->flow.family && (!pkt->syn || backend->state == XLB_BACKEND_ACTIVE);
}

/*
 * The larger per-packet values live in a per-CPU scratch map, not on the stack: together they
 * need more than the 512 bytes of stack a BPF program may use (a route lookup alone is 64).
 * A program runs to its end on one CPU before the next starts there, so the values of one
 * packet never mix with another's. Only the clock below outlives a packet, and losing it
 * costs one clock read: the loader need not pin or share the map. Its lookup is inlined by
 * the verifier into a few instructions.
 */
struct xlb_scratch {
	/* The time of the last timer tick (bpf_ktime_get_coarse_ns), read again only when
	 * jiffies moved: the coarse clock changes only at a tick, and reading jiffies is inlined
	 * into one load, where the clock is a helper call that costs more than a hash lookup. */
	__u64 clock_jiffies;
	__u64 clock_ns;
	struct bpf_fib_lookup fib;
	struct xlb_nat_target to;       /* the packet's (ICMP: the outer header's) new addresses */
	struct xlb_nat_target embedded; /* ICMP: the embedded packet's new addresses and ports */
	struct xlb_icmp_inner inner;    /* ICMP: the embedded packet as it arrived */
	struct xlb_reverse_nat reverse;
	struct xlb_flow_key key; /* the reply's reverse-NAT key, or an ICMP error's flow */
	struct xlb_ct_entry ct;  /* conntrack's entry for the packet's flow, as read */
	struct xlb_affinity_key affinity;
	struct xlb_backend backend; /* the backend, as read from xlb_backends */
	__u64 now;
	__u32 service_id;
	__u32 backend_id;
	__u32 service_slot; /* counter slots (counters.h) */
	__u32 backend_slot;
	__u8 new_flow;
	__u8 icmp; /* an ICMP error, rewritten by icmp.h */
};


/* Now, to the last timer tick (CLOCK_MONOTONIC, as bpf_ktime_get_coarse_ns). */
static __always_inline __u64 xlb_now(struct xlb_scratch *s)
{
	__u64 jiffies = bpf_jiffies64();

	if (jiffies != s->clock_jiffies) {
		s->clock_jiffies = jiffies;
		s->clock_ns = bpf_ktime_get_coarse_ns();
	}
	return s->clock_ns;
}

/*
 * The backend for a flow conntrack does not know: by ClientIP affinity when the service has
 * it (the client's recent backend, else the ring slot of a hash of the client address), else
 * the ring slot of a hash of the whole flow. NULL when there is none to give: an empty ring,
 * or a slot that names a draining or missing backend (user space gives draining backends no
 * slots, so this means a ring being replaced).
 */
static __always_inline const struct xlb_backend *
xlb_pick_backend(const struct xlb_service_value *service, const struct xlb_flow_key *flow, __u64 now,
		 struct xlb_scratch *s, __u32 *backend_id)
{
	const struct xlb_backend *backend;

	if (!(service->flags & XLB_SERVICE_F_AFFINITY)) {
		*backend_id = lb_ring_pick(service, xlb_hash_flow(flow));
		return xlb_usable_backend(*backend_id, flow->family);
	}

	xlb_affinity_key_of(&s->affinity, flow, service->service_id);
	*backend_id = xlb_affinity_lookup(&s->affinity, service->affinity_timeout_s, now);
	backend = xlb_usable_backend(*backend_id, flow->family);
	if (!backend) {
		*backend_id = lb_ring_pick(service, xlb_hash_addr(flow->src));
		backend = xlb_usable_backend(*backend_id, flow->family);
		if (!backend)
			return NULL;
	}
	xlb_affinity_record(&s->affinity, *backend_id, now);
	return backend;
}

/* The snat source of a flow: the node's address of the flow's family (IPv4: its one word). */
static __always_inline const __be32 *xlb_snat_address(const struct xlb_node_config *node, __u8 family)
{
	return family == XLB_AF_INET ? &node->snat_v4 : node->snat_v6;
}

/*
 * At most once a tick per flow (xlb_ct_refresh_due): the conntrack entry's last_seen_ticks; and
 * after a quiet second an snat reply's reverse-NAT entry written again in case the LRU table
 * dropped it meanwhile, if the port is still free (never taking another flow's).
 */
static __always_inline void xlb_ct_refresh(const struct xlb_ct_entry *ct, const struct xlb_flow_key *flow,
					   const struct xlb_service_value *service, const __be32 *src, __be16 sport,
					   const struct xlb_backend *backend, struct xlb_scratch *s, __u64 now)
{
	xlb_ct_touch(flow, XLB_SERVICE_STATS_SLOT(service->flags), now);
	if (!ct->snat_port || !xlb_ct_was_quiet(ct, now))
		return;
	xlb_reverse_value_of(&s->reverse, flow, service->service_id);
	xlb_reverse_key_of(&s->key, flow, src, sport, backend);
	bpf_map_update_elem(&xlb_reverse_nat, &s->key, &s->reverse, BPF_NOEXIST);
}

/* What the caller forwards by: the flow's service and backend, their counter slots, the time. */
static __always_inline void xlb_scratch_chosen(struct xlb_scratch *s, const struct xlb_service_value *service,
					       __u32 backend_id, const struct xlb_backend *backend, __u64 now,
					       __u8 new_flow)
{
	s->now = now;
	s->service_id = service->service_id;
	s->backend_id = backend_id;
	s->service_slot = XLB_SERVICE_STATS_SLOT(service->flags);
	s->backend_slot = backend->stats_slot;
	s->new_flow = new_flow;
	s->icmp = 0;
}

/*
 * TCP/UDP to a frontend, in general: the backend (conntrack's, or a new pick recorded in
 * conntrack) and the translation to it in s->to, with an snat reply's reverse entry written.
 * ct is a copy of the flow's conntrack entry if it has one. Returns 0, or the reason to drop the packet.
 */
static __always_inline __u32 xlb_translate(const struct xlb_packet *pkt, const struct xlb_service_value *service,
					   struct xlb_ct_entry *ct, struct xlb_scratch *s, __u64 now)
{
	const struct xlb_flow_key *flow = &pkt->flow;
	const struct xlb_node_config *node = NULL;
	const struct xlb_backend *backend = NULL;
	struct xlb_nat_target *to = &s->to;
	int snat = service->flags & XLB_SERVICE_F_SNAT;
	int established = 0;
	__be16 snat_port = 0;
	__u32 backend_id = 0;

	if (snat) {
		node = xlb_node_config();
		if (!node)
			return XLB_DROP_SNAT_PORTS_EXHAUSTED;
	}

	if (ct && !snat == !ct->snat_port) {
		/* The flow keeps its backend while that backend exists (draining or not, but
		 * see xlb_backend_keeps_flow), and while the service's mode is the one the flow
		 * began with. */
		backend_id = ct->backend_id;
		snat_port = ct->snat_port;
		backend = lb_lookup_backend(backend_id);
		established = xlb_backend_keeps_flow(backend, pkt);
	}
	if (!established) {
		backend = xlb_pick_backend(service, flow, now, s, &backend_id);
		if (!backend)
			return XLB_DROP_NO_BACKEND;
		snat_port = 0;
	}
	s->backend = *backend;

	/* To the backend; for snat from the node and its port. */
	xlb_addr_copy(to->src, flow->src);
	to->sport = flow->sport;
	if (snat) {
		if (flow->family == XLB_AF_INET) {
			__builtin_memset(to->src, 0, sizeof(to->src));
			to->src[0] = node->snat_v4;
		} else {
			xlb_addr_copy(to->src, node->snat_v6);
		}
		if (!to->src[0] && !to->src[1] && !to->src[2] && !to->src[3])
			return XLB_DROP_SNAT_PORTS_EXHAUSTED;
		to->sport = snat_port;
	}
	xlb_addr_copy(to->dst, backend->address);
	to->dport = backend->port;

	if (!established) {
		/* For snat the claim of a source port, which is the reply's way back. */
		if (snat) {
			xlb_reverse_value_of(&s->reverse, flow, service->service_id);
			xlb_reverse_key_of(&s->key, flow, to->src, to->sport, backend);
			snat_port = xlb_snat_claim_port(node, &s->key, &s->reverse);
			if (!snat_port)
				return XLB_DROP_SNAT_PORTS_EXHAUSTED;
			to->sport = snat_port;
		}
		xlb_ct_create(flow, backend_id, service->service_id, XLB_SERVICE_STATS_SLOT(service->flags), snat_port,
			      now);
	} else if (xlb_ct_refresh_due(ct, now)) {
		xlb_ct_refresh(ct, flow, service, to->src, to->sport, backend, s, now);
	}

	xlb_scratch_chosen(s, service, backend_id, backend, now, !established);
	return 0;
}

/* At most once a tick per dsr flow: the conntrack entry's last_seen_ticks (a dsr flow has no
 * reverse entry to write again). */
static __always_inline void xlb_dsr_ct_refresh(const struct xlb_ct_entry *ct, const struct xlb_flow_key *flow,
					       const struct xlb_service_value *service, __u64 now)
{
	if (xlb_ct_refresh_due(ct, now))
		xlb_ct_touch(flow, XLB_SERVICE_STATS_SLOT(service->flags), now);
}

/*
 * TCP/UDP to a dsr frontend: the flow's backend as xlb_translate finds it (conntrack's while
 * it exists in the flow's family, draining or not; else a new pick recorded in conntrack), with
 * no translation and no reverse entry: the packet is encapsulated toward s->to.dst (dsr.h) and
 * the backend answers the client itself. Returns 0, or the reason to drop the packet.
 */
static __always_inline __u32 xlb_dsr_choose(const struct xlb_packet *pkt, const struct xlb_service_value *service,
					    struct xlb_ct_entry *ct, struct xlb_scratch *s, __u64 now)
{
	const struct xlb_backend *backend = NULL;
	__u32 backend_id = 0;
	int established = 0;

	if (ct && !ct->snat_port) {
		xlb_dsr_ct_refresh(ct, &pkt->flow, service, now);
		backend_id = ct->backend_id;
		backend = lb_lookup_backend(backend_id);
		established = xlb_backend_keeps_flow(backend, pkt);
	}
	if (!established) {
		backend = xlb_pick_backend(service, &pkt->flow, now, s, &backend_id);
		if (!backend)
			return XLB_DROP_NO_BACKEND;
		xlb_ct_create(&pkt->flow, backend_id, service->service_id, XLB_SERVICE_STATS_SLOT(service->flags), 0,
			      now);
	}
	s->backend = *backend;
	xlb_addr_copy(s->to.dst, backend->address);
	xlb_scratch_chosen(s, service, backend_id, backend, now, !established);
	return 0;
}

/*
 * An ICMP error about a balanced flow (icmp.h): the outer translation in s->to, the embedded
 * packet's in s->embedded. Returns 0, or the reason to pass the message untouched
 * (xlb_xdp.bpf.c's rule 3).
 */
static __always_inline __u32 xlb_icmp_translate(const struct xlb_packet *pkt, void *data_end, struct xlb_scratch *s)
{
	const struct xlb_backend *backend;
	struct xlb_ct_entry *ct;

	if (!xlb_icmp_parse_error(pkt, data_end, &s->inner))
		return xlb_other_reason(pkt);
	/* Only an error sent to the frontend (the source of the packet it is about) is xlb's: one
	 * addressed to another host is passed on untouched, whatever flow it quotes. */
	if (!xlb_addr_equal(pkt->flow.dst, s->inner.flow.src))
		return xlb_other_reason(pkt);
	xlb_icmp_flow_of(&s->key, &s->inner);
	ct = xlb_ct_lookup(&s->key, &s->ct);
	if (!ct)
		return xlb_other_reason(pkt);
	backend = lb_lookup_backend(ct->backend_id);
	if (!backend || backend->family != pkt->flow.family)
		return xlb_other_reason(pkt);
	if (pkt->ttl <= 1)
		return XLB_PASS_TTL_EXPIRED;

	/* Outer: to the backend. Embedded: the backend's own packet, from backend:bport to the
	 * client (nat) or to node:nport (snat). */
	__builtin_memset(&s->to, 0, sizeof(s->to));
	xlb_addr_copy(s->to.src, pkt->flow.src);
	xlb_addr_copy(s->to.dst, backend->address);
	xlb_addr_copy(s->embedded.src, backend->address);
	s->embedded.sport = backend->port;
	xlb_addr_copy(s->embedded.dst, s->inner.flow.dst);
	s->embedded.dport = s->inner.flow.dport;
	if (ct->snat_port) {
		const struct xlb_node_config *node = xlb_node_config();

		if (!node)
			return xlb_other_reason(pkt);
		if (pkt->flow.family == XLB_AF_INET) {
			__builtin_memset(s->embedded.dst, 0, sizeof(s->embedded.dst));
			s->embedded.dst[0] = node->snat_v4;
		} else {
			xlb_addr_copy(s->embedded.dst, node->snat_v6);
		}
		s->embedded.dport = ct->snat_port;
		xlb_addr_copy(s->to.src, s->embedded.dst);
	}
	s->now = xlb_now(s);
	s->service_id = ct->service_id;
	s->backend_id = ct->backend_id;
	s->service_slot = ct->service_slot;
	s->backend_slot = backend->stats_slot;
	s->new_flow = 0;
	s->icmp = 1;
	return 0;
}

#endif /* XLB_LIB_BALANCE_H */

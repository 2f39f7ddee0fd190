// SPDX-License-Identifier: GPL-2.0
/*
 * xlb_tc: the reply half of nat and snat, at tc ingress (clsact) of the links where replies
 * from backends arrive.
 *
 * A reply is recognised by one lookup of its flow in xlb_reverse_nat, written by the XDP
 * program when it translated the flow's first packet. It is restored so that the client
 * only ever sees the frontend: source -> frontend:fport, and for snat destination ->
 * client:cport (for nat the destination is the client already). Then it is forwarded toward
 * the client like the forward path does (fib.h): redirected to the egress link with the next
 * hop's MAC, or, when the neighbour is not known yet (or the MTU is smaller), left to the
 * kernel's stack translated, which forwards it and resolves the neighbour.
 *
 * On a backend node of dsr services it also decapsulates the IP-in-IP packets a load balancer
 * sent this node (decap.h), before anything else looks at them.
 *
 * Everything else (the vast majority of packets on the link) leaves untouched and uncounted:
 * the XDP program on the same link counted it already, and counting it here again would show
 * every packet twice.
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
#include "conntrack.h"
#include "counters.h"
#include "decap.h"
#include "events.h"
#include "fib.h"
#include "nat.h"
#include "parse.h"

char LICENSE[] SEC("license") = "GPL";

/* The most header bytes a reply needs in the skb's linear part: Ethernet, a VLAN tag, IPv6
 * and TCP. Drivers and GRO may leave less there; parsing cannot see beyond it. */
#define XLB_TC_HEADERS (14 + 4 + 40 + 20)

/* A backend's counter slot: from this CPU's backend cache when it holds the backend (the XDP
 * program filled it; a backend keeps its slot for its life, and user space empties the cache
 * slot when it removes one), else from xlb_backends. 0 (counted nowhere read) if it is gone. */
static __always_inline __u32 xlb_backend_slot(__u32 backend_id)
{
	const struct xlb_backend_cache_entry *cached = xlb_backend_cache_entry(backend_id);
	const struct xlb_backend *backend;

	if (backend_id == XLB_BACKEND_ID_NONE)
		return 0;
	if (cached && cached->backend_id == backend_id)
		return cached->backend.stats_slot;
	backend = lb_lookup_backend(backend_id);
	return backend ? backend->stats_slot : 0;
}

/* The counter slots of the service and the backend a reply belongs to: from the flow's
 * conntrack entry, found from the client and frontend the reverse entry names; when conntrack
 * forgot the flow before the reverse table did, the service's from its entry, no backend's. */
static __always_inline void xlb_reply_slots(const struct xlb_reverse_nat *reverse, const struct xlb_packet *pkt,
					    __u32 *service_slot, __u32 *backend_slot)
{
	const struct xlb_service_value *service;
	struct xlb_flow_key flow = {};
	struct xlb_ct_entry *ct;

	xlb_addr_copy(flow.src, reverse->client);
	xlb_addr_copy(flow.dst, reverse->frontend);
	flow.sport = reverse->client_port;
	flow.dport = reverse->frontend_port;
	flow.protocol = pkt->flow.protocol;
	flow.family = pkt->flow.family;
	ct = xlb_ct_lookup(&flow);
	*service_slot = 0;
	*backend_slot = 0;
	if (ct && ct->service_slot) {
		*service_slot = ct->service_slot;
		*backend_slot = xlb_backend_slot(ct->backend_id);
		return;
	}
	/* No entry, or one an older program made (no slot yet): the service's entry says. */
	if (ct)
		*backend_slot = xlb_backend_slot(ct->backend_id);
	service = lb_lookup_service(&flow);
	if (service)
		*service_slot = XLB_SERVICE_STATS_SLOT(service->flags);
}

SEC("tc")
int xlb_tc(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	const struct xlb_reverse_nat *reverse;
	struct xlb_nat_target to;
	struct bpf_fib_lookup fib;
	struct xlb_packet pkt;
	__u32 malformed = 0, reason, service_slot, backend_slot;
	__u32 want = skb->len < XLB_TC_HEADERS ? skb->len : XLB_TC_HEADERS;
	int next_hop;

	if (data + want > data_end) {
		if (bpf_skb_pull_data(skb, want) < 0)
			return TC_ACT_OK;
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
	}
	switch (xlb_parse(data, data_end, &pkt, &malformed)) {
	case XLB_PARSED_L4:
		break;
	case XLB_PARSED_OTHER:
		return xlb_decap(skb, &pkt);
	default:
		return TC_ACT_OK;
	}
	reverse = bpf_map_lookup_elem(&xlb_reverse_nat, &pkt.flow);
	if (!reverse)
		return TC_ACT_OK;
	if (pkt.ttl <= 1) {
		xlb_count_reason(XLB_PASS_TTL_EXPIRED, skb->len);
		return TC_ACT_OK;
	}

	/* A copy: the entry may change under us, and the helpers below need stable values. */
	xlb_addr_copy(to.src, reverse->frontend);
	xlb_addr_copy(to.dst, reverse->client);
	to.sport = reverse->frontend_port;
	to.dport = reverse->client_port;
	xlb_reply_slots(reverse, &pkt, &service_slot, &backend_slot);

	/* skb->ifindex is the link the reply arrived on (tc ingress). */
	xlb_fib_params(&fib, &pkt, &to, skb->ifindex);
	next_hop = xlb_fib_next_hop(skb, &fib, &reason);
	if (next_hop == XLB_NEXT_HOP_DROP) {
		xlb_count_reason(reason, skb->len);
		xlb_emit_event(reason, skb->ifindex, &pkt.flow);
		return TC_ACT_SHOT;
	}

	if (xlb_skb_rewrite(skb, &pkt, &to, next_hop == XLB_NEXT_HOP_SEND) < 0) {
		/* Only a broken skb (not writable, not linear where it must be) gets here. */
		xlb_count_reason(XLB_DROP_TRUNCATED, skb->len);
		xlb_emit_event(XLB_DROP_TRUNCATED, skb->ifindex, &pkt.flow);
		return TC_ACT_SHOT;
	}
	xlb_count_reason(reason, skb->len);
	xlb_count_flow(service_slot, backend_slot, skb->len, 0);
	if (next_hop == XLB_NEXT_HOP_STACK)
		return TC_ACT_OK;

	/* Ethernet destination then source, as they lie in the header. */
	__u8 macs[2 * ETH_ALEN];

	__builtin_memcpy(macs, fib.dmac, ETH_ALEN);
	__builtin_memcpy(macs + ETH_ALEN, fib.smac, ETH_ALEN);
	if (bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0) < 0)
		return TC_ACT_SHOT;
	return bpf_redirect(fib.ifindex, 0);
}

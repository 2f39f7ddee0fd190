/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Drop events for user space (struct xlb_event) through a ring buffer, at most
 * xlb_node_config.events_per_second per CPU: a flood of bad packets must not turn into a
 * flood of events (the counters count every packet regardless).
 *
 * The budget is a window per CPU, so that no CPU waits for another: when a second has passed
 * since the window opened, a new one opens with nothing sent. Per CPU means a machine may send
 * up to CPUs x events_per_second events a second in total. What the budget or a full ring
 * holds back is counted in xlb_event_budget.unreported, per CPU.
 */
#ifndef XLB_LIB_EVENTS_H
#define XLB_LIB_EVENTS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "xlb_abi.h"
#include "node.h"

#define XLB_NSEC_PER_SEC 1000000000ULL

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024); /* about 4600 events of 56 bytes + 8 of header */
} xlb_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xlb_event_budget);
} xlb_event_budget SEC(".maps");

static __always_inline void xlb_emit_event(__u32 reason, __u32 ifindex, const struct xlb_flow_key *flow)
{
	const struct xlb_node_config *node = xlb_node_config();
	struct xlb_event_budget *budget;
	struct xlb_event *event;
	__u32 zero = 0;
	__u64 now;

	if (!node || node->events_per_second == 0)
		return;
	budget = bpf_map_lookup_elem(&xlb_event_budget, &zero);
	if (!budget)
		return;
	now = bpf_ktime_get_ns();
	if (now - budget->window_start_ns >= XLB_NSEC_PER_SEC) {
		budget->window_start_ns = now;
		budget->sent = 0;
	}
	/* Counted, so that a reader knows how much it did not see (the counters still have
	 * every packet, by reason). */
	if (budget->sent >= node->events_per_second) {
		budget->unreported++;
		return;
	}

	/* A full ring (user space not reading) loses the event. */
	event = bpf_ringbuf_reserve(&xlb_events, sizeof(*event), 0);
	if (!event) {
		budget->unreported++;
		return;
	}
	budget->sent++;
	event->timestamp_ns = now;
	event->reason = reason;
	event->ifindex = ifindex;
	event->flow = *flow;
	bpf_ringbuf_submit(event, 0);
}

#endif /* XLB_LIB_EVENTS_H */

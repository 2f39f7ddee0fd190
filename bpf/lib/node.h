/* SPDX-License-Identifier: GPL-2.0 */
/*
 * This node's settings (struct xlb_node_config): the snat source addresses and port range,
 * the event budget and conntrack's seed. User space writes the one entry at start; the programs only read it.
 */
#ifndef XLB_LIB_NODE_H
#define XLB_LIB_NODE_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "xlb_abi.h"

/* An array, not a hash: a lookup of a constant key in an array is inlined by the verifier
 * into a bounds check and an add, and the entry always exists (zeroes until written). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xlb_node_config);
} xlb_node SEC(".maps");

static __always_inline const struct xlb_node_config *xlb_node_config(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&xlb_node, &zero);
}

#endif /* XLB_LIB_NODE_H */

// SPDX-License-Identifier: GPL-2.0
/*
 * The baseline of bench/xdp_bench.cpp: an XDP program that does nothing. Timed the same way
 * as xlb_xdp, it measures what BPF_PROG_TEST_RUN itself costs per packet, which the benchmark
 * subtracts to leave the program's own cost.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int xlb_xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

/* The baseline of the tc balancer (xlb_tc_lb): TC_ACT_OK (0), on an skb. */
SEC("tc")
int xlb_tc_pass(struct __sk_buff *skb)
{
	return 0;
}

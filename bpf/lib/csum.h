/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Incremental checksum updates (RFC 1624): when words of a packet change from old to new, a
 * checksum field HC over them becomes HC' = ~(~HC + ~old + new) in ones' complement
 * arithmetic, so a rewrite never has to read the payload.
 *
 * XDP rewrites packets in place and fixes checksums with the inline arithmetic below: it is
 * what the kernel's csum_diff/csum_fold do, without a helper call per field. A "diff" collects
 * ~old + new over every changed word; xlb_csum_apply folds it into a checksum field.
 *
 * Words are taken as they lie in memory (network order) without swapping: ones' complement
 * sums are byte-order independent as long as every word is read the same way, which is how
 * the kernel's csum code works too. 32-bit words must start at even offsets (all IP
 * addresses and port pairs do), so each is two 16-bit words of the checksum.
 *
 * The tc program works on an skb and uses the kernel's helpers instead (bpf_l3_csum_replace,
 * bpf_l4_csum_replace): they also keep skb->csum right for CHECKSUM_COMPLETE and
 * CHECKSUM_PARTIAL packets, which a plain write would corrupt.
 */
#ifndef XLB_LIB_CSUM_H
#define XLB_LIB_CSUM_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>

/* A computed UDP checksum of 0 is sent as all ones: 0 means "no checksum" (RFC 768). */
#define XLB_CSUM_MANGLED_0 ((__sum16)0xffff)

/* Ones' complement addition of 32-bit words: add, and fold the carry back in. In 64 bits
 * rather than with a comparison: a comparison compiles to a branch, and the verifier would
 * walk both sides of every one of the dozens of additions of a rewrite. */
static __always_inline __u32 xlb_csum_add(__u32 sum, __u32 addend)
{
	__u64 s = (__u64)sum + addend;

	return (__u32)s + (__u32)(s >> 32);
}

static __always_inline __u32 xlb_csum_diff32(__u32 diff, __be32 old, __be32 new)
{
	return xlb_csum_add(xlb_csum_add(diff, ~old), new);
}

/* A 16-bit word: its complement is the 16-bit one, zero-extended. */
static __always_inline __u32 xlb_csum_diff16(__u32 diff, __u16 old, __u16 new)
{
	return xlb_csum_add(xlb_csum_add(diff, (__u16)~old), new);
}

/* A 128-bit IPv6 address (or an IPv4 one in element 0 and zeroes, which changes nothing). */
static __always_inline __u32 xlb_csum_diff_addr(__u32 diff, const __be32 old[4], const __be32 new[4])
{
	diff = xlb_csum_diff32(diff, old[0], new[0]);
	diff = xlb_csum_diff32(diff, old[1], new[1]);
	diff = xlb_csum_diff32(diff, old[2], new[2]);
	return xlb_csum_diff32(diff, old[3], new[3]);
}

static __always_inline __u16 xlb_csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* The checksum field `check` after the changes summed in `diff`. */
static __always_inline __sum16 xlb_csum_apply(__sum16 check, __u32 diff)
{
	return (__sum16)~xlb_csum_fold(xlb_csum_add((__u16)~check, diff));
}

/* The same for a UDP checksum: 0 (none, legal in IPv4) stays 0, and a result of 0 is sent as
 * all ones. IPv6 forbids 0; such a packet is invalid already, and is left as invalid. */
static __always_inline __sum16 xlb_csum_apply_udp(__sum16 check, __u32 diff)
{
	__sum16 updated;

	if (check == 0)
		return 0;
	updated = xlb_csum_apply(check, diff);
	return updated == 0 ? XLB_CSUM_MANGLED_0 : updated;
}

#endif /* XLB_LIB_CSUM_H */

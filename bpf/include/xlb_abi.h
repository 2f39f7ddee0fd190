/* SPDX-License-Identifier: GPL-2.0 */
/*
 * xlb_abi.h — every struct and constant shared between the BPF programs and user space.
 *
 * This header is the contract between the kernel side and xlbd. Both sides compile it, and
 * the size checks at the bottom make either build fail if the layout drifts.
 *
 * XLB_ABI_VERSION changes whenever a struct, a map's key/value or a constant here changes
 * meaning. Pinned maps live under a directory named after it (/sys/fs/bpf/xlb/v3/...), and
 * user space refuses pinned maps of any other version: a new xlbd never reads an old layout
 * as if it were its own.
 *
 * Byte order: fields typed __be* are in network byte order, everything else in host order.
 * Addresses are always 16 bytes (__be32[4]): IPv4 uses element 0 and leaves the rest 0, so one
 * struct serves both families and keys hash the same on both sides.
 */
#ifndef XLB_ABI_H
#define XLB_ABI_H

#include <linux/bpf.h>
#include <linux/types.h>

#define XLB_ABI_VERSION 3

/* Ids and capacity. A "service" in the maps is one frontend (address, port, protocol) with
 * its own ring. User space gives each frontend a service id and each backend a backend id
 * below these bounds; no map is indexed by id (the counters are indexed by a slot of their own,
 * below), so the bounds cost nothing and only keep ids in a range both sides agree on. They
 * were 65536 when the counters were arrays indexed by id; raising them changed no key or value,
 * and the maps of a pin from then hold ids below the old bound, which are below the new one. */
#define XLB_MAX_SERVICES (1U << 22)
#define XLB_MAX_BACKENDS (1U << 22)
/* How many services (frontends) and backends the maps hold: their max_entries, set by user
 * space at load time from the node's configuration; these are the defaults: 10,000 Services of
 * 10 endpoints fit; 100,000 Services need max_services raised. Hash maps without preallocation:
 * the memory a map takes follows its entries, plus 16 bytes per entry of capacity for its
 * buckets.
 * The counters are per-CPU arrays of capacity + 1 entries (24 bytes x entries x possible CPUs:
 * at the defaults 4.5 MiB per possible CPU, 288 MiB on a node with 64),
 * indexed by a counter slot that user space gives each service and backend: slot 0 is no slot
 * (what entries written before slots existed hold; its counts are never read). */
#define XLB_DEFAULT_SERVICES 65536
#define XLB_DEFAULT_BACKENDS 131072
/* How many ring slots xlb_ring_slots holds ([node] max_ring_slots; its max_entries is half): every
 * service's Maglev table is a range of it. An array, allocated whole at load: 4 bytes a slot,
 * 64 MiB at this default, which holds 32,000 Services of up to 5 endpoints (509-slot rings) or
 * 16,000 of up to 10 (1021 slots). */
#define XLB_DEFAULT_RING_SLOTS (1U << 24)
/* The largest Maglev table size the daemon may choose (a prime, see design.md). */
#define XLB_MAX_RING_SIZE 131071
/* Flow tables forget the flow seen least recently to make room (conntrack: of the new flow's
 * set; the LRU maps: of the table), never refuse a new one. */
#define XLB_MAX_FLOWS 262144
#define XLB_MAX_AFFINITY 65536

/* Backend id 0 is never a backend: it is what an unwritten ring slot holds. */
#define XLB_BACKEND_ID_NONE 0

/* Address families, the kernel's values (BPF code cannot include the libc headers). */
#define XLB_AF_INET 2
#define XLB_AF_INET6 10

/* ---- services ---------------------------------------------------------------------------- */

/* xlb_services_v4 / xlb_services_v6 (HASH): frontend -> service. */
struct xlb_service_key_v4 {
	__be32 address;
	__be16 port;
	__u8 protocol; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad;      /* always 0, so that the key hashes the same on both sides */
};

struct xlb_service_key_v6 {
	__be32 address[4];
	__be16 port;
	__u8 protocol;
	__u8 pad;
};

/* xlb_frontend_addrs (HASH): every address that has at least one frontend -> how many
 * frontends it has (user space's count; the programs only test presence). The programs need
 * it for packets whose ports they cannot read (a non-first fragment, a header cut short, a bad
 * IHL): such a packet to a frontend address is dropped and counted, one to any other address
 * is passed untouched (the rule at the top of bpf/xlb_xdp.bpf.c). Without an entry here, a
 * malformed packet to a frontend address passes as "not a service". */
struct xlb_frontend_addr_key {
	__be32 address[4];
	__u8 family; /* XLB_AF_INET or XLB_AF_INET6 */
	__u8 pad[3]; /* 0 */
};

/* xlb_frontend_filter (ARRAY of __u64 words, mmappable): one bit per hash of a frontend's
 * (address, port, protocol), set while some frontend has that hash. Most TCP and UDP a node
 * sees is not for a frontend; a clear bit tells a program so with one array read, which the
 * verifier inlines, instead of a hash lookup, a kernel call that costs ~25 ns here. A set bit
 * only means "maybe": the services map decides. User space sets a bit before it writes the
 * frontend and clears it after the last frontend of that hash is gone, and rebuilds the filter
 * from the services maps whenever it opens them. 4M bits (512 KiB): at 100,000 frontends 2.4% of
 * other packets still pay the lookup. Added without a new ABI version: older programs do not
 * read it, and a newer xlbd fills it before its programs attach. */
#define XLB_FRONTEND_FILTER_BITS_LOG2 22
#define XLB_FRONTEND_FILTER_WORDS (1U << (XLB_FRONTEND_FILTER_BITS_LOG2 - 6))

/* The filter's bit for a frontend (address as in the flow key: IPv4 in word 0). Both sides
 * compute it with this function; it must never change without a new ABI version. */
static inline __u32 xlb_frontend_filter_bit(const __be32 address[4], __be16 port, __u8 protocol)
{
	__u32 h = address[0] * 0x9e3779b1U;

	h = (h ^ address[1]) * 0x85ebca6bU;
	h = (h ^ address[2]) * 0xc2b2ae35U;
	h = (h ^ address[3]) * 0x9e3779b1U;
	h = (h ^ ((__u32)port << 8 | protocol)) * 0x85ebca6bU;
	h ^= h >> 13;
	h *= 0xc2b2ae35U;
	return h >> (32 - XLB_FRONTEND_FILTER_BITS_LOG2);
}

/* xlb_frontend_epoch (ARRAY, one __u32 at key 0): user space adds one after every write or
 * removal of frontends (never 0 once xlbd has opened the maps). The XDP program's flow cache
 * (bpf/lib/flow_cache.h) stores the epoch an answer was made in and trusts it only in the same
 * epoch, so a cached flow skips the frontend lookup and still sees a removed or changed
 * frontend with its next packet. */

/* xlb_service_value.flags */
#define XLB_SERVICE_F_SNAT (1U << 0)     /* DNAT plus SNAT to the node address (xlb_node) */
#define XLB_SERVICE_F_AFFINITY (1U << 1) /* ClientIP affinity: one backend per client address */
/* Direct server return: the packet goes to the backend unchanged inside an IP-in-IP header
 * (IPv4 in IPv4, IPv6 in IPv6) from an address of xlb_dsr_config's prefix; the backend
 * decapsulates it (xlb_tc with decap on) and answers the client itself. No reverse entry.
 * Added without a new ABI version: an older program never sees the flag set by an older
 * xlbd, and a newer xlbd replaces the programs before it writes the flag. */
#define XLB_SERVICE_F_DSR (1U << 2)

/* The service's counter slot: its entry in xlb_service_stats (1 .. capacity; 0 = none). In the
 * high bits of flags, added without a new ABI version: an older program tests single flags and
 * never looks there, and entries an older xlbd wrote have slot 0 until a newer one rewrites
 * them (it does when it adopts the maps). */
#define XLB_SERVICE_FLAGS_MASK 0xffU
#define XLB_SERVICE_SLOT_SHIFT 8
#define XLB_SERVICE_STATS_SLOT(flags) ((flags) >> XLB_SERVICE_SLOT_SHIFT)

struct xlb_service_value {
	__u32 service_id; /* the service in conntrack, affinity and events */
	/* The ring: slots ring_offset .. ring_offset + ring_size - 1 of xlb_ring_slots; ring_size
	 * 0 = no backend. User space writes the slots before an entry points at them, and never
	 * reuses a range while an entry may still point at it. */
	__u32 ring_size;
	__u32 flags;              /* XLB_SERVICE_F_* in bits 0-7; the counter slot in bits 8-31 */
	__u32 affinity_timeout_s; /* with XLB_SERVICE_F_AFFINITY: idle time before a client may move */
	__u32 ring_offset;        /* first slot of the ring in xlb_ring_slots */
};

/* xlb_backends (HASH): backend id -> where to send the traffic. A backend id always means the
 * same address and port: user space gives a changed backend a new id. */
enum xlb_backend_state {
	XLB_BACKEND_ACTIVE = 0,
	XLB_BACKEND_DRAINING = 1, /* no new flows; flows in conntrack continue */
};

struct xlb_backend {
	__be32 address[4];
	__be16 port;
	__u8 family; /* XLB_AF_INET or XLB_AF_INET6 */
	__u8 state;  /* enum xlb_backend_state */
	/* Its entry in xlb_backend_stats (1 .. capacity). Was a reserved 0: entries an older xlbd
	 * wrote have slot 0 (counted nowhere read) until a newer one rewrites them on adoption. */
	__u32 stats_slot;
};

/* xlb_ring_slots (ARRAY, mmappable): slot / 2 -> the backend ids of slots 2k and 2k+1. Every
 * service's Maglev table is a range of slots (xlb_service_value.ring_offset, ring_size), so that
 * a new or resized ring is a write to an array, never to a map of maps (each write there waits
 * for an RCU grace period). Two slots an entry because the kernel rounds an array's elements up
 * to 8 bytes: so a slot costs 4 bytes, and the array as user space maps it is a plain __u32
 * array, slot i at index i. */
#define XLB_RING_SLOTS_PER_ENTRY 2
struct xlb_ring_pair {
	__u32 backend_id[XLB_RING_SLOTS_PER_ENTRY];
};

/* ---- flows ------------------------------------------------------------------------------- */

/* A flow as it is on the wire at the point of lookup. */
struct xlb_flow_key {
	__be32 src[4];
	__be32 dst[4];
	__be16 sport;
	__be16 dport;
	__u8 protocol;
	__u8 family;
	__u8 pad[2]; /* 0 */
};

/*
 * xlb_conntrack (ARRAY of XLB_CT_FLOWS ways): client -> frontend flow -> the backend it was
 * given. A flow keeps its backend for its life, whatever later happens to the ring.
 *
 * Set-associative, not a hash map: a flow lives in one of the XLB_CT_WAYS consecutive ways of
 * its set, xlb_ct_set() of its client half (client address and port, protocol, family). A new
 * flow takes an empty way of its set, else the one seen least recently. The programs read and
 * write the ways inline, without a call into the kernel's hash map code: a new flow's lookup
 * brings in the lines its insert then writes, and there is no LRU list to lock (a new flow cost
 * 2.5 times as much with the kernel's LRU hash maps: the README's XDP figures).
 *
 * The set comes from the client half alone so that a nat reply (backend -> client) finds its
 * flow in the same set, by its client and backend: nat flows need no reverse entry. The cost:
 * one client address and port to more than XLB_CT_WAYS frontends at once (a UDP socket that
 * talks to many services) keeps only the most recent flows, and the others are balanced again
 * (to the same backend, unless their ring changed). And eviction is by set, not by table: a
 * quiet flow in a full set of busier ones goes with the next new flow its set gets. So the table
 * has four times the flows of the LRU table it replaced (262,144): on average a quiet flow lives
 * about as long as there (262,144 new flows), but by chance, not by age.
 *
 * Each way has its own bpf_spin_lock: readers compare keys without it (a torn read only means
 * a miss or a candidate checked again) and copy an entry under it; writers write under it. User
 * space reads and writes ways with BPF_F_LOCK. family 0 marks an empty way.
 */
#define XLB_CT_WAYS 4
#define XLB_CT_SETS 262144
#define XLB_CT_FLOWS (XLB_CT_SETS * XLB_CT_WAYS) /* 64 MiB */
#define XLB_CT_TICK_SHIFT 26

struct xlb_ct_entry {
	__u32 backend_id;
	__u32 service_id;
	/* CLOCK_MONOTONIC (bpf_ktime_get_coarse_ns) in ticks of 2^XLB_CT_TICK_SHIFT ns (67 ms;
	 * wraps after 9 years), written at most once a tick: a busy flow, whose entry its packets
	 * read every 100 ms (flow_cache.h), never looks older than that to the new flows of its set. */
	__u32 last_seen_ticks;
	/* The service's counter slot when the entry was made or last refreshed, for the replies'
	 * counts (tc). */
	__u32 service_slot;
	__be16 snat_port; /* snat: this node's source port toward the backend; else 0 */
	__u8 pad[2];
};

struct xlb_ct_way {
	struct bpf_spin_lock lock;
	struct xlb_flow_key flow; /* as it arrives: client -> frontend; family 0 = empty */
	struct xlb_ct_entry entry;
};

/* The first way of the set of a client (address, port) on a protocol and family, under the
 * node's seed (xlb_node_config.ct_seed): the same in the programs (for a flow, and for a nat
 * reply's destination) and in user space. Each word is mixed in by a multiply, with the high
 * bits folded down in between (as murmur3's finaliser does), so that every bit of the client
 * and of the seed moves the set. */
static inline __u32 xlb_ct_first_way(__u32 seed, const __be32 client[4], __be16 client_port, __u8 protocol,
				     __u8 family)
{
	__u32 h = seed ^ (((__u32)client_port << 16) | ((__u32)protocol << 8) | family);

	h = (h ^ client[3]) * 0x9e3779b1U;
	h = (h ^ (h >> 15) ^ client[2]) * 0x85ebca6bU;
	h = (h ^ (h >> 15) ^ client[1]) * 0xc2b2ae35U;
	h = (h ^ (h >> 15) ^ client[0]) * 0x9e3779b1U;
	h = (h ^ (h >> 16) ^ seed) * 0x85ebca6bU;
	h ^= h >> 13;
	return (h % XLB_CT_SETS) * XLB_CT_WAYS;
}

/* xlb_reverse_nat (LRU_HASH): an snat reply as it arrives from the backend (backend ->
 * node:snat_port) -> how to restore it, so that the client only ever sees the frontend: the
 * frontend as source, the client as destination. The forward path writes it; the tc program
 * reads it. (A nat reply, backend -> client, is found in xlb_conntrack by its client.) */
struct xlb_reverse_nat {
	__be32 frontend[4]; /* the reply's new source address */
	__be32 client[4];   /* the reply's new destination address */
	__be16 frontend_port;
	__be16 client_port;
	__u32 service_id; /* for counters */
};

/* xlb_affinity (LRU_HASH): with XLB_SERVICE_F_AFFINITY, client address -> its backend. */
struct xlb_affinity_key {
	__be32 client[4];
	__u32 service_id;
	__u8 family;
	__u8 pad[3];
};

struct xlb_affinity_entry {
	__u32 backend_id;
	__u32 pad;
	__u64 last_seen_ns; /* CLOCK_MONOTONIC (bpf_ktime_get_coarse_ns) */
};

/* ---- node -------------------------------------------------------------------------------- */

/* xlb_node (ARRAY, one entry at key 0): this node's settings for the programs. */
struct xlb_node_config {
	__be32 snat_v4;    /* source address of snat'ed flows toward IPv4 backends */
	__be32 snat_v6[4]; /* same for IPv6 */
	__u16 snat_port_min; /* host order, inclusive: the source ports snat may allocate */
	__u16 snat_port_max;
	__u32 events_per_second; /* per CPU budget of xlb_events; 0 = no events */
	/* Mixed into conntrack's set index (xlb_ct_first_way): random, made by xlbd when it finds
	 * 0 and kept for the life of the pinned maps (another seed would move every flow's set),
	 * so that nobody who knows a flow's client can aim new flows at its set to push it out. */
	__u32 ct_seed;
};

/* xlb_dsr (ARRAY, one entry at key 0): this node's settings for direct server return. A map
 * of its own rather than more fields in xlb_node_config, so that the maps pinned by an xlbd of
 * this ABI version before dsr existed are adopted unchanged.
 *
 * The outer source of an encapsulated packet is the prefix with its host bits taken from a
 * hash of the flow: every packet of a flow has the same outer source, different flows spread
 * over the prefix, so the backend's receive-side scaling (which hashes the outer header of a
 * tunnel it does not know) spreads them over its queues. A prefix length of 0 = no prefix:
 * dsr flows of that family are dropped (XLB_DROP_NO_DSR_SOURCE). */
struct xlb_dsr_config {
	__be32 src_v4;        /* the prefix, host bits 0 */
	__be32 src_v6[4];
	__u8 src_v4_prefix_len; /* 1..32 */
	__u8 src_v6_prefix_len; /* 1..128 */
	__u8 decap;           /* xlb_tc decapsulates IP-in-IP to this node's dsr frontends */
	__u8 pad;
};

/* Bytes that encapsulation adds: the outer IPv4 or IPv6 header. */
#define XLB_DSR_OVERHEAD_V4 20
#define XLB_DSR_OVERHEAD_V6 40

/* ---- counters and events ----------------------------------------------------------------- */

/* xlb_service_stats, xlb_backend_stats (PERCPU_ARRAY, by counter slot: see XLB_DEFAULT_*) and
 * xlb_reason_stats (PERCPU_ARRAY, below): user space sums over CPUs. */
struct xlb_stats {
	__u64 packets;
	__u64 bytes;
	__u64 new_flows;
};

/* Why a packet left the program the way it did; xlb_reason_stats[reason] (PERCPU_ARRAY of
 * struct xlb_stats, new_flows unused) counts each. User space has the words for each code. */
enum xlb_reason {
	XLB_REASON_FORWARDED = 0, /* balanced or reverse-translated and sent on */
	/* passed to the kernel's stack untouched (or, for PASS_NO_NEIGHBOUR, already translated) */
	XLB_PASS_NOT_IP,          /* not readable as IP: an EtherType other than IPv4/IPv6 (after one
				   * VLAN tag), or a frame too short for its Ethernet, VLAN or IP header */
	XLB_PASS_NOT_SERVICE,     /* no frontend at this address, port and protocol */
	XLB_PASS_NOT_TCP_UDP,     /* to a frontend address, but neither TCP, UDP nor a handled ICMP */
	XLB_PASS_NO_NEIGHBOUR,    /* translated, but the next hop's MAC is unknown: the kernel resolves it */
	XLB_PASS_TTL_EXPIRED,     /* TTL/hop limit would reach 0: the kernel answers with ICMP */
	/* dropped */
	XLB_DROP_TRUNCATED,       /* a header is shorter than its type needs */
	XLB_DROP_BAD_IHL,         /* IPv4 header length field below 5 (or an IP version field that
				   * does not match the EtherType) */
	XLB_DROP_IPV4_OPTIONS,    /* IPv4 options on a packet to a frontend */
	XLB_DROP_FRAGMENT,        /* a fragment of a packet to a frontend (no L4 header to hash) */
	XLB_DROP_NO_BACKEND,      /* the frontend's ring is empty */
	XLB_DROP_NO_ROUTE,        /* no route to the backend (or back to the client) */
	XLB_DROP_SNAT_PORTS_EXHAUSTED, /* no free snat source port after a few tries (or no snat
					* address or port range in xlb_node) */
	/* Added after the drops so that no code above changes: passed to the kernel's stack
	 * translated, because the route toward the backend (or client) has a smaller MTU than the
	 * packet. The stack fragments it or answers with ICMP, as for any routed packet. */
	XLB_PASS_FRAG_NEEDED,
	/* Direct server return, added after the others for the same reason. */
	XLB_TX_ICMP_TOO_BIG,      /* dsr: too big once encapsulated; answered with ICMP fragmentation
				   * needed / packet too big carrying the MTU left for the inner packet */
	XLB_DROP_TOO_BIG,         /* dsr: too big once encapsulated, IPv4 without DF (xlb does not
				   * fragment): dropped */
	XLB_DROP_NO_DSR_SOURCE,   /* dsr: no outer source prefix for the family in xlb_dsr */
	XLB_DECAPSULATED,         /* tc on a backend node: an IP-in-IP packet to a dsr frontend,
				   * decapsulated and passed to the stack */
	XLB_DROP_DSR_UNSUPPORTED, /* a dsr frontend's packet at the tc balancer (xdp_mode "tc") in
				   * a frame that still carries a VLAN tag (a second one: the stack
				   * takes the first off before tc), which it does not encapsulate */
	XLB_REASON_MAX,
};

/* Entries of xlb_reason_stats: room for reasons still to come, so that a new reason does not
 * change the size of a pinned map. */
#define XLB_REASON_SLOTS 32

/* xlb_events (RINGBUF): one record per dropped packet (and per trace, later), at most
 * xlb_node_config.events_per_second per CPU; the counters above count every packet. */
struct xlb_event {
	__u64 timestamp_ns;
	__u32 reason; /* enum xlb_reason */
	__u32 ifindex;
	struct xlb_flow_key flow;
};

/* xlb_event_budget (PERCPU_ARRAY, one entry): the rate limiter's state, and what it held back.
 * `unreported` was padding before: an older program leaves it 0 (nothing counted), so the
 * pinned map is adopted as it is, with no new ABI version. */
struct xlb_event_budget {
	__u64 window_start_ns;
	__u32 sent;
	__u32 unreported; /* drops with no event (over the budget, or the ring full); wraps */
};

#ifdef __cplusplus
#define XLB_ABI_ASSERT(cond, why) static_assert(cond, why)
#else
#define XLB_ABI_ASSERT(cond, why) _Static_assert(cond, why)
#endif

XLB_ABI_ASSERT(sizeof(struct xlb_service_key_v4) == 8, "xlb_service_key_v4 layout changed");
XLB_ABI_ASSERT(sizeof(struct xlb_service_key_v6) == 20, "xlb_service_key_v6 layout changed");
XLB_ABI_ASSERT(sizeof(struct xlb_frontend_addr_key) == 20, "xlb_frontend_addr_key layout changed");
XLB_ABI_ASSERT(sizeof(struct xlb_service_value) == 20, "xlb_service_value layout changed");
XLB_ABI_ASSERT(sizeof(struct xlb_backend) == 24, "xlb_backend layout changed");
XLB_ABI_ASSERT(sizeof(struct xlb_ring_pair) == 8, "xlb_ring_pair layout changed");
XLB_ABI_ASSERT(sizeof(struct xlb_flow_key) == 40, "xlb_flow_key layout changed");
XLB_ABI_ASSERT(sizeof(struct xlb_ct_entry) == 20, "xlb_ct_entry layout changed");
XLB_ABI_ASSERT(sizeof(struct xlb_ct_way) == 64, "xlb_ct_way is no longer one cache line");
XLB_ABI_ASSERT(sizeof(struct xlb_reverse_nat) == 40, "xlb_reverse_nat layout changed");
XLB_ABI_ASSERT(sizeof(struct xlb_affinity_key) == 24, "xlb_affinity_key layout changed");
XLB_ABI_ASSERT(sizeof(struct xlb_affinity_entry) == 16, "xlb_affinity_entry layout changed");
XLB_ABI_ASSERT(sizeof(struct xlb_node_config) == 32, "xlb_node_config layout changed");
XLB_ABI_ASSERT(XLB_REASON_MAX <= XLB_REASON_SLOTS, "more reasons than xlb_reason_stats has entries");
XLB_ABI_ASSERT(sizeof(struct xlb_dsr_config) == 24, "xlb_dsr_config layout changed");
XLB_ABI_ASSERT(sizeof(struct xlb_stats) == 24, "xlb_stats layout changed");
XLB_ABI_ASSERT(sizeof(struct xlb_event) == 56, "xlb_event layout changed");
XLB_ABI_ASSERT(sizeof(struct xlb_event_budget) == 16, "xlb_event_budget layout changed");

#undef XLB_ABI_ASSERT

#endif /* XLB_ABI_H */

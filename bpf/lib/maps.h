/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The load-balancing maps: frontends, their rings and the backends the rings point at.
 * Layouts are in xlb_abi.h; user space writes these maps, the programs only read them.
 *
 * The hash maps are BPF_F_NO_PREALLOC: user space replaces values while programs read them,
 * and a preallocated element is recycled at once when its value is replaced, so a program
 * could read half of the next value. Without preallocation, old elements are freed only
 * after every reader is done (RCU). Writes come from the control plane, rarely, so the
 * allocation at update time costs nothing that matters.
 *
 * Their max_entries here are defaults: xlbd sets them at load time from the node's capacity
 * ([node] max_services for the services and addresses, max_ring_slots for the rings, max_backends
 * for the backends),
 * or keeps those of the maps it adopts from the pin directory.
 */
#ifndef XLB_LIB_MAPS_H
#define XLB_LIB_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "xlb_abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XLB_DEFAULT_SERVICES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct xlb_service_key_v4);
	__type(value, struct xlb_service_value);
} xlb_services_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XLB_DEFAULT_SERVICES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct xlb_service_key_v6);
	__type(value, struct xlb_service_value);
} xlb_services_v6 SEC(".maps");

/* Read only for packets that are malformed or of another protocol, never on the fast path:
 * well-formed TCP and UDP need just the one lookup in xlb_services_v4/v6. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XLB_DEFAULT_SERVICES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct xlb_frontend_addr_key);
	__type(value, __u32); /* frontends at this address */
} xlb_frontend_addrs SEC(".maps");

/* The filter in front of the services maps (xlb_abi.h): mmappable, so that user space sets and
 * clears bits with an atomic instruction rather than a system call per frontend. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XLB_FRONTEND_FILTER_WORDS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
} xlb_frontend_filter SEC(".maps");

/* The frontends' epoch (xlb_abi.h). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} xlb_frontend_epoch SEC(".maps");

/* Every ring, one range each (xlb_abi.h). Mmappable: user space writes rings with memcpy. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XLB_DEFAULT_RING_SLOTS / XLB_RING_SLOTS_PER_ENTRY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32); /* slot / 2 */
	__type(value, struct xlb_ring_pair);
} xlb_ring_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XLB_DEFAULT_BACKENDS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32); /* backend id */
	__type(value, struct xlb_backend);
} xlb_backends SEC(".maps");

#endif /* XLB_LIB_MAPS_H */

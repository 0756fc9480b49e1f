/* SPDX-License-Identifier: Apache-2.0 */
/* Gateway maps, shared by gw_ingress and gw_return through pinning by name
 * (the loader sets the pin root, /sys/fs/bpf/veilmesh by default). */
#ifndef VEIL_BPF_GW_MAPS_H
#define VEIL_BPF_GW_MAPS_H

#include "common.h"
#include "veil/route.h"
#include "veil/flowkey.h"   /* vm_flow_bits_at */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, VM_ROUTES_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct route_hkey);
	__type(value, struct route_ent);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} routes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, VM_NEXT_HOPS_MAX);
	__type(key, struct next_hop_key);
	__type(value, struct next_hop_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} next_hops SEC(".maps");

/* The generation of next_hops: the daemon moves it after every change, so
 * a flow's copy of its next hop (flow_val.nh) is taken again. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} next_hops_gen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct vip_key);
	__type(value, struct vip_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} vips SEC(".maps");

/* The generation of vips: the daemon moves it after every change, so each
 * CPU's copies of the VIPs it saw last (gw_scratch.vipc) are taken again. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} vips_gen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct flow_key);
	__type(value, struct flow_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flows SEC(".maps");

/* The filter in front of flows (struct flow_bits_val, include/veil/wire.h).
 * Mapped by veil-gw, which rebuilds it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VM_FLOW_BITS_ENTRIES);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct flow_bits_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flow_bits SEC(".maps");

/* The filter's entry that holds key k's bits, and their mask. */
VM_INLINE struct flow_bits_val *gw_flow_bits_of(const struct flow_key *k, __u64 *bits)
{
	__u32 i;

	vm_flow_bits_at(k, &i, bits);
	return bpf_map_lookup_elem(&flow_bits, &i);
}

/* 0 when no flow of key k can be in flows (neither half holds all its
 * bits). */
VM_INLINE int gw_flow_maybe(const struct flow_key *k)
{
	__u64 bits;
	struct flow_bits_val *b = gw_flow_bits_of(k, &bits);

	return !b || vm_flow_bits_either(b, bits);
}

/* A new flow of key k: its bits in both halves. */
VM_INLINE void gw_flow_bits_set(const struct flow_key *k)
{
	__u64 bits;
	struct flow_bits_val *b = gw_flow_bits_of(k, &bits);

	if (b) {
		__sync_fetch_and_or(&b->half[0], bits);
		__sync_fetch_and_or(&b->half[1], bits);
	}
}

/* Loads the filter's word that key k's new flow will set, and nothing
 * waits for the value (the empty asm keeps the load): its miss runs beside
 * what comes before the put rather than stalling the put's atomic OR
 * (gw_flow_bits_set).  gw_ingress (vm_env_flow_soon, for a hello) and
 * gw_asm (every segment it is handed). */
VM_INLINE void gw_flow_bits_touch(const struct flow_key *k)
{
	__u64 bits;
	struct flow_bits_val *b = gw_flow_bits_of(k, &bits);

	if (b) {
		__u64 w = *(volatile __u64 *)&b->half[0];
		asm volatile("" : : "r"(w));
	}
}

/* The seed of the flows' keys (struct flow_seed, include/veil/wire.h):
 * written once by the loader when the map is new, kept with the pinned
 * flows it keyed. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct flow_seed);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flow_seed SEC(".maps");

VM_INLINE const struct flow_seed *gw_flow_seed(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&flow_seed, &zero);
}

/* Hellos being reassembled by gw_asm, and routed ones held until the VM
 * acknowledges them (gw_return releases them).  An array of slots, two of
 * which may hold a given connection (vm_asm_slots), not a hash map: a hash
 * map's insert copies the whole value (22.8 KB, 16 KB of it payload room)
 * and takes its locks; claiming a slot writes its header alone.  A slot
 * whose owner word is 0 is free. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VM_ASM_SLOTS);
	__type(key, __u32);
	__type(value, struct asm_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} hello_asm SEC(".maps");

/* The two slots that may hold key k (*o: its owner digest), NULL when the
 * map is not there. */
VM_INLINE struct asm_val *gw_asm_slots(const struct flow_key *k, struct asm_val **b, __u64 *o)
{
	__u32 i0, i1;
	struct asm_val *a;

	vm_asm_slots(k, gw_flow_seed(), &i0, &i1, o);
	a = bpf_map_lookup_elem(&hello_asm, &i0);
	*b = bpf_map_lookup_elem(&hello_asm, &i1);
	return *b ? a : NULL;
}

/* Which of k's two slots a and b (owner digest o) holds its hello, or NULL. */
VM_INLINE struct asm_val *gw_asm_holder(struct asm_val *a, struct asm_val *b, __u64 o, const struct flow_key *k)
{
	if (a->owner == o && vm_flow_key_eq(&a->key, k))
		return a;
	if (b->owner == o && vm_flow_key_eq(&b->key, k))
		return b;
	return NULL;
}

/* Key k's hello, or NULL. */
VM_INLINE struct asm_val *gw_asm_find(const struct flow_key *k)
{
	struct asm_val *a, *b;
	__u64 o;

	a = gw_asm_slots(k, &b, &o);
	return a ? gw_asm_holder(a, b, o, k) : NULL;
}

/* A slot for key k: the one that holds it already (another CPU's, just
 * made), else a free one of its two, else the one holding the older hello
 * (a hello past VM_ASM_TIMEOUT_NS is always older than a live one), its
 * holder's hello dropped as an LRU map's would be.  Claimed by one atomic
 * swap of the owner word; the header then made a fresh entry's (family 0:
 * gw_asm.h's test for one another CPU made; first_ns is the caller's, set
 * next, to read the clock once).  The rest of the value (the
 * segments, the payload) is left as it is: the reassembly reads only the
 * nseg segments and the have bytes it wrote.  NULL when another CPU
 * claimed the slot in the meantime. */
VM_INLINE struct asm_val *gw_asm_claim(const struct flow_key *k)
{
	struct asm_val *a, *b, *v;
	__u64 o, held;

	a = gw_asm_slots(k, &b, &o);
	if (!a)
		return NULL;
	if ((v = gw_asm_holder(a, b, o, k)))
		return v;
	if (!a->owner)
		v = a;
	else if (!b->owner)
		v = b;
	else
		v = (__s64)(a->first_ns - b->first_ns) <= 0 ? a : b;
	held = v->owner;
	if (__sync_val_compare_and_swap(&v->owner, held, o) != held)
		return NULL;
	v->key = *k;
	v->family = 0;
	v->nseg = 0;
	v->have = 0;
	v->routed = 0;
	return v;
}

/* Frees key k's slot (a, found for k), unless another key claimed it
 * since (its owner word is then not k's digest). */
VM_INLINE void gw_asm_free(const struct flow_key *k, struct asm_val *a)
{
	__u32 i0, i1;
	__u64 o;

	if (!a)
		return;
	vm_asm_slots(k, gw_flow_seed(), &i0, &i1, &o);
	__sync_val_compare_and_swap(&a->owner, o, 0);
}

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cookie_secret);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cookie_secret SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gw_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} gw_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gw_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} gw_stats SEC(".maps");

#define GW_COUNT(st, field) do { if (st) (st)->field++; } while (0)

VM_INLINE struct gw_stats *gw_stats_get(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&gw_stats, &zero);
}

#endif

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

/* The filter in front of routes (include/veil/wire.h): mapped and kept by
 * libveil, read here. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VM_ROUTE_BITS_WORDS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} route_bits SEC(".maps");

/* 0 when route_bits' word i lacks bit (no route there). */
VM_INLINE int gw_route_bits_have(__u32 i, __u64 bit)
{
	__u64 *w = bpf_map_lookup_elem(&route_bits, &i);

	return !w || (*w & bit);
}

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

/* The flow table (include/veil/flowtab.h): buckets of slots, in an array
 * whose lookups the verifier inlines.  Mapped by veil-gw (the sweep, the
 * filter's rebuild, veilctl), which sizes it from flows_max. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VM_FT_BUCKETS_DEFAULT);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct flow_bucket);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flows SEC(".maps");

/* The flows map's buckets: the loader sets it with the map's size. */
const volatile __u32 gw_flow_buckets = VM_FT_BUCKETS_DEFAULT;

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

VM_INLINE struct vm_ft_head *gw_flow_bucket(__u32 i)
{
	return bpf_map_lookup_elem(&flows, &i);
}

#define VM_FT_BUCKET(ctx, i) gw_flow_bucket(i)
#include "veil/flowtab.h"

/* The flow under key k (whoever's: the callers compare its tuple), or NULL. */
VM_INLINE struct flow_val *gw_flow_get(const struct flow_key *k)
{
	return vm_ft_get(0, k, gw_flow_seed(), gw_flow_buckets, sizeof(struct flow_val));
}

/* A new flow under key k: 0, VM_FLOW_PUT_TAKEN when one is there (another
 * CPU's, put meanwhile), another negative value when its slot went to
 * another writer.  A full pair of buckets gives up its least recently
 * used flow, as the LRU hash before it did when full.  Put and delete are
 * global functions, verified once, their stack apart from the caller's: a
 * new flow's and a retired one's paths, not an established packet's. */
__attribute__((noinline)) int gw_flow_put(const struct flow_key *k, const struct flow_val *v)
{
	struct flow_key gone;
	int rc;

	if (!k || !v)
		return -1;
	rc = vm_ft_put(0, k, v, sizeof(*v), gw_flow_seed(), gw_flow_buckets, &gone);

	return rc == 1 ? 0 : rc;
}

/* vm_ft_put_home: the put's common case, home's tag line read alone (the
 * second bucket is a cold line); its own global function, so that each
 * frame stays within the caller's combined stack (gw_asm's is at 512). */
__attribute__((noinline)) int gw_flow_put_home(const struct flow_key *k, const struct flow_val *v)
{
	if (!k || !v)
		return -1;
	return vm_ft_put_home(0, k, v, sizeof(*v), gw_flow_seed(), gw_flow_buckets);
}

/* A new flow (VM_FT_NEW: the common case first, then the whole put). */
VM_INLINE int gw_flow_new(const struct flow_key *k, const struct flow_val *v)
{
	return VM_FT_NEW(gw_flow_put_home, gw_flow_put, k, v);
}

__attribute__((noinline)) int gw_flow_del(const struct flow_key *k)
{
	if (!k)
		return -1;
	return vm_ft_del(0, k, gw_flow_seed(), gw_flow_buckets, sizeof(struct flow_val));
}

/* Hellos being reassembled by gw_asm, and routed ones held until the VM
 * acknowledges them (gw_return releases them).  An array of slots in
 * buckets of VM_ASM_WAYS, any slot of its bucket may hold a given
 * connection (vm_asm_bucket), not a hash map: a hash map's insert copies
 * the whole value (22.8 KB, 16 KB of it payload room) and takes its locks;
 * claiming a slot writes its header alone.  A slot whose owner word is 0
 * is free.  Mappable (vm_asm_map): the micro bench frees a slot in place
 * and flushes its lines from the caches (hello_1800_seg1_free_tc), which
 * a write of the whole 22.8 KB value through bpf() would bring in. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VM_ASM_SLOTS);
	__type(key, __u32);
	__type(value, struct asm_val);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} hello_asm SEC(".maps");

/* Each bucket's owner words in one line (struct asm_tags): gw_asm_find_way
 * and gw_asm_claim read them instead of the eight slots' (eight lines on
 * eight sets of pages, cold for a new hello).  A slot's own word decides
 * (its claim and its free are compare-and-swaps of it); the tag is set
 * after, and a hello whose tag is not yet set is missed as one whose key
 * is not yet written always was.  The load makes tags and owner words
 * agree (vm_asm_tags_sync: a table copied, moved or written by a build
 * before the tags).  Mappable: that sync and the micro bench's in-place
 * free write it from user space. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VM_ASM_BUCKETS_MAX);
	__type(key, __u32);
	__type(value, struct asm_tags);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} hello_asm_tags SEC(".maps");

/* hello_asm holds 2^gw_asm_bits slots: the loader sets both from the
 * config's hellos_max before it loads the programs. */
const volatile __u32 gw_asm_bits = VM_ASM_SLOTS_BITS;

VM_INLINE struct asm_val *gw_asm_at(__u32 i)
{
	return bpf_map_lookup_elem(&hello_asm, &i);
}

/* The tags of the bucket whose first slot is first. */
VM_INLINE struct asm_tags *gw_asm_tags(__u32 first)
{
	__u32 b = first / VM_ASM_WAYS;

	return bpf_map_lookup_elem(&hello_asm_tags, &b);
}

/* Key k's hello, or NULL: the slot whose tag is k's digest, if its own
 * word and key say so too.  *way: its index in the bucket. */
VM_INLINE struct asm_val *gw_asm_find_way(const struct flow_key *k, __u32 *way)
{
	struct asm_tags *t;
	__u32 first;
	__u64 o;

	vm_asm_bucket(k, gw_flow_seed(), gw_asm_bits, &first, &o);
	t = gw_asm_tags(first);
	if (!t)
		return NULL;
	for (__u32 j = 0; j < VM_ASM_WAYS; j++) {
		if (t->w[j] != o)
			continue;
		struct asm_val *v = gw_asm_at(first + j);
		if (v && v->owner == o && vm_flow_key_eq(&v->key, k)) {
			*way = j;
			return v;
		}
	}
	return NULL;
}

/* A slot for key k: the one that holds it already (another CPU's, just
 * made), else a free one of its bucket, else the one holding the hello
 * begun first (a hello past VM_ASM_TIMEOUT_NS is always older than a live
 * one), its holder's hello dropped as an LRU map's would be: a live hello
 * is lost only once VM_ASM_WAYS newer ones share its bucket.  The tags
 * tell which slot holds k and which are free; only a bucket whose tags are
 * all taken reads its slots (their age; a slot free under a stale tag is
 * taken first, as before the tags; a slot held under a tag of 0, in a
 * table kept from a build before the tags until the load syncs them,
 * gives up its hello as the oldest would).  Claimed by one atomic swap of the
 * owner word, the tag set after; the header then made a fresh entry's
 * (family 0: gw_asm.h's test for one another CPU made; first_ns is the
 * caller's, set next, to read the clock once).  The rest of the value (the
 * segments, the payload) is left as it is: the reassembly reads only the
 * nseg segments and the have bytes it wrote.  NULL when another CPU
 * claimed the slot in the meantime.  *lost: 1 when the hello dropped is
 * one whose connection cannot complete, then *gone its key and tomb its
 * tombstone (vm_asm_tomb_make; now: the coarse clock).  *way: the slot's
 * index in its bucket (for gw_asm_free_way). */
VM_INLINE struct asm_val *gw_asm_claim(const struct flow_key *k, __u64 now, struct asm_tomb *tomb,
				       struct flow_key *gone, int *lost, __u32 *way)
{
	struct asm_tags *t;
	struct asm_val *v;
	__u32 first, pick = VM_ASM_WAYS;
	__u64 o, held, oldest = 0;

	vm_asm_bucket(k, gw_flow_seed(), gw_asm_bits, &first, &o);
	t = gw_asm_tags(first);
	if (!t)
		return NULL;
	for (__u32 j = 0; j < VM_ASM_WAYS; j++) {
		__u64 w = t->w[j];

		if (w == o) {
			v = gw_asm_at(first + j);
			if (v && v->owner == o && vm_flow_key_eq(&v->key, k)) {
				*way = j;
				return v;
			}
		} else if (!w && pick == VM_ASM_WAYS) {
			pick = j;
		}
	}
	if (pick == VM_ASM_WAYS) {
		int free_seen = 0;

		for (__u32 j = 0; j < VM_ASM_WAYS; j++) {
			v = gw_asm_at(first + j);
			if (!v)
				return NULL;
			if (free_seen)
				continue;
			if (!v->owner) {
				free_seen = 1;
				pick = j;
			} else if (pick == VM_ASM_WAYS || (__s64)(v->first_ns - oldest) < 0) {
				pick = j;
				oldest = v->first_ns;
			}
		}
	}
	pick &= VM_ASM_WAYS - 1;
	v = gw_asm_at(first + pick);
	if (!v)
		return NULL;
	*way = pick;
	held = v->owner;
	if (held == o && vm_flow_key_eq(&v->key, k)) {
		/* k's own, under a tag not set yet (or stale) */
		t->w[pick] = o;
		return v;
	}
	*lost = held && vm_asm_tomb_make(tomb, v, now);
	if (*lost)
		*gone = v->key;
	if (__sync_val_compare_and_swap(&v->owner, held, o) != held) {
		*lost = 0;
		return NULL;
	}
	t->w[pick] = o;
	v->key = *k;
	v->family = 0;
	v->nseg = 0;
	v->have = 0;
	v->routed = 0;
	return v;
}

/* Frees key k's slot (a, found for k at index way of its bucket), unless
 * another key claimed it since (its owner word is then not k's digest);
 * its tag after it, unless another claim set it since. */
VM_INLINE void gw_asm_free_way(const struct flow_key *k, struct asm_val *a, __u32 way)
{
	struct asm_tags *t;
	__u32 first;
	__u64 o;

	if (!a)
		return;
	vm_asm_bucket(k, gw_flow_seed(), gw_asm_bits, &first, &o);
	if (__sync_val_compare_and_swap(&a->owner, o, 0) != o)
		return;
	t = gw_asm_tags(first);
	if (t)
		__sync_val_compare_and_swap(&t->w[way & (VM_ASM_WAYS - 1)], o, 0);
}

/* Frees key k's slot, if it holds one. */
VM_INLINE void gw_asm_drop(const struct flow_key *k)
{
	__u32 way = 0;
	struct asm_val *a = gw_asm_find_way(k, &way);

	gw_asm_free_way(k, a, way);
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

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The flow tables: struct flow_key -> a value of vs bytes (the gateway's
 * flows: struct flow_val; the node's conns: struct conn_val), kept in a
 * BPF array of buckets (BPF_F_MMAPABLE) rather than a hash map, so that a
 * lookup is the program's own code.  A hash map's
 * lookup is a call into the kernel (__htab_map_lookup_elem, which calls
 * the bucket walk, the hash and memcmp); an array's lookup the verifier
 * inlines.  On a host whose returns go through a mitigation thunk (AMD's
 * Safe RET) those calls cost ~28 ns per packet, about half the established
 * path (docs/perf-log.md).
 *
 * Layout: a bucket is one cache line of tags (a 32-bit tag per way: 0
 * free, VM_FT_BUSY being written, else the key's tag, odd), the spill
 * count and the moves count, then VM_FT_WAYS slots (key, flags, value).
 * A key has two buckets, both from a 64-bit hash keyed by the table's
 * flow_seed (so senders cannot aim keys at one bucket without it): its
 * home, and a second one.  A put goes home while home has VM_FT_HOME_ROOM
 * free ways, else to the less full of the two (two choices keep buckets even: in a
 * table of half again as many slots as flows_max, no flow is put in
 * another's place below flows_max, where home alone took live flows'
 * places at half of it; tests/test_flowtab.c).
 * The home counts its keys that went to the second bucket (spill): a
 * lookup reads the home's tag line, the slot whose tag matches, and the
 * second bucket's tags only while the home's spill is not 0.  A bucket
 * holds a tag once, so the tag's way is the only candidate.  So does a
 * put in the common case (vm_ft_put_home: home has the room, holds no key
 * of the tag and counts no spilled key); vm_ft_put, the rest, reads both.
 *
 * Within a bucket a key has a preferred way, from its tag (vm_ft_pref):
 * a put takes it while it is free (vm_ft_free_for); a lookup tries that
 * way's tag and slot first and scans the tags only when the key is not
 * there.  So the slot's line is read beside the tag line rather than after
 * it (where both are cold, one wait instead of two: established_many
 * -100 ns), and most lookups skip the scan: 85% of keys sit at their way at
 * half the flows, 71% at all of them, 42% where flows come and go in a full
 * table (a key is not moved aside for another's way: vm_ft_claim says why).
 *
 * When both are full, a way is taken by the clock rule (the kernel's LRU
 * hash approximates LRU with a ref bit too): each slot's ref is set when
 * a lookup finds it (a new flow's is clear); the put takes the first way
 * whose ref is clear, and when every ref is set clears them all and takes
 * the way its tag points at.  That flow moves to its own other bucket if
 * that has room (cuckoo hashing's move, one deep), else gives way.  Its
 * home counts its moves, and a lookup that misses while one is under way
 * looks again (vm_ft_locate).
 *
 * Writers claim a slot by compare-and-swap of its tag (free or the victim's
 * tag -> VM_FT_BUSY), write the key and the value, then publish the tag by
 * an exchange: a reader that sees the tag sees the key and value.  A slot
 * taken from a flow while a reader on another CPU uses it is rewritten
 * under that reader, as an LRU hash's element is reused under its readers.
 * Two CPUs putting the same key at once: after publishing, each looks for
 * another copy of the key, and whoever sees two frees the one in the later
 * place (vm_ft_dedup).  A claim lost to another writer fails the put,
 * which is tried again (BPF once, then counts a full table: gw_flow_new,
 * conn_new; user space up to 8 times).
 *
 * The functions take the bucket through VM_FT_BUCKET(ctx, i), which the
 * includer defines before including this header: BPF, an inlined array
 * lookup of its table's map (one table a program); user space
 * (dataplane/flowtab.c), the mapped array.  The same code places, finds,
 * puts and frees on both sides.  The value's size vs is every function's
 * argument: a constant in BPF (the offsets the verifier checks are then
 * constants and a way's bounded multiple), the table's in user space.
 * A bucket is a struct vm_ft_head, then VM_FT_WAYS slots of
 * VM_FT_STRIDE(vs) bytes: a struct vm_ft_slot and the value.
 */
#ifndef VEIL_FLOWTAB_H
#define VEIL_FLOWTAB_H

#include "flowkey.h"

#ifndef VM_FLOW_PUT_TAKEN        /* as include/veil/gw.h */
#define VM_FLOW_PUT_TAKEN (-17)
#endif

#ifndef VM_FT_BUCKET
#error "define VM_FT_BUCKET(ctx, i): bucket i of the table (struct vm_ft_head *), or NULL"
#endif

/* A slot's bytes: its head and a value of vs bytes (8-byte aligned). */
#define VM_FT_STRIDE(vs) (sizeof(struct vm_ft_slot) + (vs))

/* Way w of bucket b (w masked to the ways), for values of vs bytes. */
VM_INLINE struct vm_ft_slot *vm_ft_slot_at(const struct vm_ft_head *b, __u32 w, __u32 vs)
{
	return (struct vm_ft_slot *)((char *)(b + 1) + (__u64)(w & (VM_FT_WAYS - 1)) * VM_FT_STRIDE(vs));
}

/* The value of slot sl. */
VM_INLINE void *vm_ft_val(const struct vm_ft_slot *sl)
{
	return (void *)(sl + 1);
}

/* A value of vs bytes copied in 8-byte words (both 8-byte aligned: a
 * slot's value, a value struct with a __u64; through void * the compiler
 * would copy byte by byte). */
VM_INLINE void vm_ft_copy(void *to, const void *from, __u32 vs)
{
	__builtin_memcpy((__u64 *)to, (const __u64 *)from, vs);
}
/* A slot's tag stored after its key and value, and before the put looks
 * for another CPU's copy of its key (vm_ft_dedup): an exchange, a full
 * barrier, so that of two puts of one key at once each sees the other's
 * tag or is seen (a plain store could wait in the store buffer while the
 * loads after it pass it, and both copies stay). */
#ifndef VM_FT_PUBLISH
#ifdef __bpf__
#define VM_FT_PUBLISH(p, v) ((void)__sync_lock_test_and_set((p), (v)))
#else
#define VM_FT_PUBLISH(p, v) ((void)__atomic_exchange_n((p), (v), __ATOMIC_SEQ_CST))
#endif
#endif

/* Buckets for a table of n flows: half again as many slots (no flow has
 * taken another's place below n in tests/test_flowtab.c's fills; with an
 * eighth more, 0.06% had at 88% of n), at least 2. */
VM_INLINE __u32 vm_ft_buckets_for(__u32 n)
{
	__u64 b = ((__u64)n * 3 + 2 * VM_FT_WAYS - 1) / (2 * VM_FT_WAYS);

	return b < 2 ? 2 : b > 0x7fffffffu ? 0x7fffffffu : (__u32)b;
}

/* Where key k lives in a table of nb buckets under seed s (NULL: zero):
 * its home and its tag; its second bucket from `lo` (vm_ft_other), read
 * only by a lookup that goes on to it and by a put. */
struct vm_ft_place {
	__u32 home, other, tag, lo;
};

/* The second bucket: from the hash's low half's top bits, not home. */
VM_INLINE __u32 vm_ft_other(const struct vm_ft_place *pl, __u32 nb)
{
	__u32 o = (__u32)(((__u64)pl->lo * nb) >> 32);

	return o != pl->home ? o : pl->home + 1 < nb ? pl->home + 1 : 0;
}

VM_INLINE void vm_ft_place(const struct flow_key *k, const struct flow_seed *s, __u32 nb, struct vm_ft_place *pl)
{
	__u64 a = ((__u64)k->client_word << 32 | k->vip_word) ^ (s ? s->k[0] : 0);
	__u64 b = ((__u64)k->client_port_be << 16 | k->vip_port_be) ^ (s ? s->k[1] : 0);
	/* two multiplies side by side, then one: the keyed words mixed */
	__u64 h = (a * 0xbf58476d1ce4e5b9ull) ^ ((b ^ (a >> 32)) * 0x94d049bb133111ebull);
	__u32 lo, hi;

	h ^= h >> 31;
	h *= 0x9e3779b97f4a7c15ull;
	lo = (__u32)h;
	hi = (__u32)(h >> 32);
	/* home from the top bits of the high half, the tag from the low bits
	 * of both, the second bucket from the top bits of the low half */
	pl->home = (__u32)(((__u64)hi * nb) >> 32);
	pl->lo = lo;
	pl->tag = (lo << 16 | (hi & 0xffff)) | 1;
	pl->other = 0;
}

/* The searches below choose a way without branching on each way's
 * test: the verifier follows both sides of every branch, and a way chosen
 * by branches would be a different constant on each path (eight ways, two
 * buckets: the program's later code verified dozens of times over; gw_asm
 * went past the verifier's million instructions).  Chosen arithmetically,
 * the way is one unknown number in 0..VM_FT_WAYS: one path.  The empty asm
 * keeps the compiler from turning the arithmetic back into compares. */
#define VM_FT_OPAQUE(v) asm volatile("" : "+r"(v))

/* 1 when x is 0, else 0. */
VM_INLINE __u64 vm_ft_is0(__u64 x)
{
	__u64 n = 0 - x;

	VM_FT_OPAQUE(n);
	return ((x | n) >> 63) ^ 1;
}

/* 1 when slot s holds key k, else 0. */
VM_INLINE __u64 vm_ft_key_is(const struct vm_ft_slot *s, const struct flow_key *k)
{
	__u64 x = ((__u64)(s->key.client_word ^ k->client_word) << 32 | (__u32)(s->key.vip_word ^ k->vip_word)) |
		  (__u32)(s->key.client_port_be ^ k->client_port_be) | (__u32)(s->key.vip_port_be ^ k->vip_port_be);

	return vm_ft_is0(x);
}

/* The first way of b whose tag is t, or VM_FT_WAYS. */
VM_INLINE __u32 vm_ft_tag_at(const struct vm_ft_head *b, __u32 t)
{
	__u64 w = VM_FT_WAYS;

	VM_UNROLL
	for (int j = VM_FT_WAYS - 1; j >= 0; j--)
		w ^= (w ^ (__u64)j) & (0 - vm_ft_is0(b->tag[j] ^ t));
	return (__u32)w;
}

/* The way a key of tag t takes when that way is free (vm_ft_free_for):
 * its tag's bits 1-3 (bit 0 is always set; home comes from the hash's
 * top bits, so the way is independent of the bucket). */
VM_INLINE __u32 vm_ft_pref(__u32 t)
{
	return (t >> 1) & (VM_FT_WAYS - 1);
}

/* The way of bucket b that holds key k (tag t), or -1.  A bucket holds
 * each tag once (vm_ft_put), so the tag's first way is the only one.
 * The key's preferred way is tried first: most keys sit there (a put
 * takes it when free), and then neither the scan of the eight tags nor
 * its wait stands between the tag line and the slot; the slot's line is
 * read beside the tags', not after them, where both are cold. */
VM_INLINE int vm_ft_way(const struct vm_ft_head *b, __u32 t, const struct flow_key *k, __u32 vs)
{
	__u32 w = vm_ft_pref(t);

	if (b->tag[w] == t && vm_ft_key_is(vm_ft_slot_at(b, w, vs), k))
		return (int)w;
	w = vm_ft_tag_at(b, t);

	if (w >= VM_FT_WAYS || !vm_ft_key_is(vm_ft_slot_at(b, w, vs), k))
		return -1;
	return (int)(w & (VM_FT_WAYS - 1));
}

/* A key's moves between its buckets (vm_ft_kick) are counted in its
 * home's `moves`: VM_FT_MOVE_START when one begins, VM_FT_MOVE_END when it
 * ends (the low 16 bits: moves under way; the high: moves done).  A move
 * takes the key's old way, then publishes its copy at the new place, and a
 * lookup on another CPU can read the old way after it is taken and the new
 * place before the copy is there: a live flow missed.  Such a lookup sees
 * home's `moves` under way when it starts or changed when it ends, and
 * looks again (VM_FT_LOOK_TRIES; rte_hash's lookups do the same with one
 * counter per table, tbl_chng_cnt).  A lookup that finds the key needs no
 * check.  tests/test_flowtab.c racing_moves: a key moved under lookups and
 * deletes, missed millions of times without the second look. */
#define VM_FT_MOVE_START 1u
#define VM_FT_MOVE_END (0x10000u - 1u)
#define VM_FT_MOVING 0xffffu

/* Loads of the tags after the first read of `moves`, and the second read
 * after them (x86's loads are not reordered with loads: BPF needs only
 * the compiler's order). */
#ifndef VM_FT_RMB
#ifdef __bpf__
#define VM_FT_RMB() asm volatile("" ::: "memory")
#else
#define VM_FT_RMB() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#endif
#endif

/* Lookups a miss may make while a key of home's moves: BPF two (a move
 * in BPF is a few stores on a CPU that is not preempted meanwhile); user
 * space, whose movers can be preempted in the middle, waits a while
 * (bounded: a mover killed in the middle leaves `moves` under way). */
#ifndef VM_FT_LOOK_TRIES
#ifdef __bpf__
#define VM_FT_LOOK_TRIES 2
#else
#define VM_FT_LOOK_TRIES 4096
#endif
#endif
#ifndef VM_FT_RELAX
#if !defined(__bpf__) && (defined(__x86_64__) || defined(__i386__))
#define VM_FT_RELAX() __builtin_ia32_pause()
#else
#define VM_FT_RELAX() ((void)0)
#endif
#endif

/* A test's hook inside a move, between taking the old way and publishing
 * the copy (tests/test_flowtab.c widens that moment with it). */
#ifndef VM_FT_MOVE_PAUSE
#define VM_FT_MOVE_PAUSE() ((void)0)
#endif

/* Where key k is: its way in bucket b (home, index pl->home), else in its
 * second bucket while home counts a spilled key, or -1; *bo and *ato the
 * bucket looked at last. */
VM_INLINE int vm_ft_look(void *ctx, struct vm_ft_head *b, const struct flow_key *k, __u32 nb, __u32 vs,
			 struct vm_ft_place *pl, struct vm_ft_head **bo, __u32 *ato)
{
	__u32 at = pl->home;
	int w = vm_ft_way(b, pl->tag, k, vs);

	if (w < 0 && *(volatile __u32 *)&b->spill) {
		at = vm_ft_other(pl, nb);
		b = VM_FT_BUCKET(ctx, at);
		if (!b)
			return -1;
		w = vm_ft_way(b, pl->tag, k, vs);
	}
	*bo = b;
	*ato = at;
	return w;
}

/* Where key k is: its way, or -1, in bucket *bo (index *ato); *pl its
 * place.  The home bucket's tags, then the second's while home counts a
 * spilled key; once more when it missed while a key of home's moved. */
VM_INLINE int vm_ft_locate(void *ctx, const struct flow_key *k, const struct flow_seed *s, __u32 nb, __u32 vs,
			   struct vm_ft_place *pl, struct vm_ft_head **bo, __u32 *ato)
{
	struct vm_ft_head *b;
	__u32 m;
	int w;

	vm_ft_place(k, s, nb, pl);
	b = VM_FT_BUCKET(ctx, pl->home);
	if (!b)
		return -1;
	for (int i = 1;; i++) {
		m = *(volatile __u32 *)&b->moves;
		VM_FT_RMB();
		w = vm_ft_look(ctx, b, k, nb, vs, pl, bo, ato);
		if (__builtin_expect(w >= 0, 1) || i >= VM_FT_LOOK_TRIES)
			break;
		VM_FT_RMB();
		if (!(m & VM_FT_MOVING) && *(volatile __u32 *)&b->moves == m)
			break;  /* no key of home's moved meanwhile: not there */
		VM_FT_RELAX();
	}
	return w;
}

/* Where key k is: bucket * VM_FT_WAYS + way, or -1; *pl its place.
 * (BPF's gw_asm takes the slot itself from this, through a global
 * function: its verification then follows one path for a found flow.) */
VM_INLINE long vm_ft_index(void *ctx, const struct flow_key *k, const struct flow_seed *s, __u32 nb, __u32 vs,
			   struct vm_ft_place *pl)
{
	struct vm_ft_head *b;
	__u32 at;
	int w = vm_ft_locate(ctx, k, s, nb, vs, pl, &b, &at);

	return w < 0 ? -1 : (long)at * VM_FT_WAYS + w;
}

/* Key k's slot, or NULL; *bo its bucket, *wo its way, *pl its place. */
VM_INLINE struct vm_ft_slot *vm_ft_find(void *ctx, const struct flow_key *k, const struct flow_seed *s, __u32 nb,
					__u32 vs, struct vm_ft_head **bo, int *wo, struct vm_ft_place *pl)
{
	__u32 at;
	int w = vm_ft_locate(ctx, k, s, nb, vs, pl, bo, &at);

	if (w < 0)
		return 0;
	*wo = w & (VM_FT_WAYS - 1);
	return vm_ft_slot_at(*bo, (__u32)w, vs);
}

/* Key k's value, or NULL; marks its slot used (the clock's ref). */
VM_INLINE void *vm_ft_get(void *ctx, const struct flow_key *k, const struct flow_seed *s, __u32 nb, __u32 vs)
{
	struct vm_ft_place pl;
	struct vm_ft_head *b;
	struct vm_ft_slot *sl;
	int w;

	sl = vm_ft_find(ctx, k, s, nb, vs, &b, &w, &pl);
	if (!sl)
		return 0;
	sl->ref = 1;   /* a store, not a branch: the flow's line is this CPU's */
	return vm_ft_val(sl);
}

/* Frees way w of bucket b if it still holds tag t: 1 when freed here.  A
 * spilled key's home (bucket home) counts one less. */
VM_INLINE int vm_ft_free_way(void *ctx, struct vm_ft_head *b, int w, __u32 t, __u32 home, __u32 vs)
{
	__u8 sp;

	w &= VM_FT_WAYS - 1;
	sp = vm_ft_slot_at(b, (__u32)w, vs)->spilled;
	if (__sync_val_compare_and_swap(&b->tag[w], t, 0) != t)
		return 0;
	if (sp) {
		struct vm_ft_head *h = VM_FT_BUCKET(ctx, home);
		if (h)
			__sync_fetch_and_add(&h->spill, -1);
	}
	return 1;
}

/* Deletes key k: 0, or -1 when it was not there.  Found, and its way
 * taken before the free (by a move, vm_ft_kick, or another CPU's delete
 * or put): looked for once more, at its new place if it moved. */
VM_INLINE int vm_ft_del(void *ctx, const struct flow_key *k, const struct flow_seed *s, __u32 nb, __u32 vs)
{
	struct vm_ft_place pl;
	struct vm_ft_head *b;
	int w;

	if (!vm_ft_find(ctx, k, s, nb, vs, &b, &w, &pl))
		return -1;
	if (vm_ft_free_way(ctx, b, w, pl.tag, pl.home, vs))
		return 0;
	if (!vm_ft_find(ctx, k, s, nb, vs, &b, &w, &pl))
		return -1;
	return vm_ft_free_way(ctx, b, w, pl.tag, pl.home, vs) ? 0 : -1;
}

/* The first free way of b, or VM_FT_WAYS. */
VM_INLINE __u32 vm_ft_free_at(const struct vm_ft_head *b)
{
	return vm_ft_tag_at(b, 0);
}

/* The way of b a key of tag t is put in: its preferred way (vm_ft_pref)
 * when free, else the first free way, else VM_FT_WAYS. */
VM_INLINE __u32 vm_ft_free_for(const struct vm_ft_head *b, __u32 t)
{
	__u64 w = vm_ft_free_at(b), p = vm_ft_pref(t);

	w ^= (w ^ p) & (0 - vm_ft_is0(b->tag[p]));
	return (__u32)w;
}

/* Claims way f of bucket b, free when chosen (vm_ft_free_for: the key's
 * preferred way while that is free, else the first free one): f, now
 * VM_FT_BUSY, or -1 when another writer claimed it first.  A key sitting
 * at another key's preferred way is not moved aside for it (fc8c8cc did,
 * until 2026-12-07: keys at their way after churn 64% instead of 42%).  A
 * move within a bucket publishes the key's copy at the free way before it
 * claims the old one, and meanwhile a lookup on another CPU can read the
 * free way's tag before the copy is there and the old way's after the
 * claim, and miss a live flow (a deletion the same), and a put of the same
 * key sees both copies and frees one while the move takes the other: a
 * key lost.  tests/test_flowtab racing_puts_crowded failed one run in ten
 * with it.  vm_ft_kick's move between buckets has the same moment, and
 * lookups look again when it met them (home's `moves`, vm_ft_locate). */
VM_INLINE int vm_ft_claim(struct vm_ft_head *b, __u32 f)
{
	f &= VM_FT_WAYS - 1;
	return __sync_val_compare_and_swap(&b->tag[f], 0, VM_FT_BUSY) == 0 ? (int)f : -1;
}

/* The clock's pick in a full bucket: the first way whose ref is clear;
 * when every ref is set, all are cleared and way `dflt` is taken. */
VM_INLINE __u32 vm_ft_victim(struct vm_ft_head *b, __u32 dflt, __u32 vs)
{
	__u64 w = VM_FT_WAYS;

	VM_UNROLL
	for (int j = VM_FT_WAYS - 1; j >= 0; j--)
		w ^= (w ^ (__u64)j) & (0 - vm_ft_is0(vm_ft_slot_at(b, j, vs)->ref));
	if (w >= VM_FT_WAYS) {
		VM_UNROLL
		for (int j = 0; j < VM_FT_WAYS; j++)
			vm_ft_slot_at(b, j, vs)->ref = 0;
		w = dflt;
	}
	return (__u32)w & (VM_FT_WAYS - 1);
}

/* The free ways of b. */
VM_INLINE __u32 vm_ft_free_n(const struct vm_ft_head *b)
{
	__u64 n = 0;

	VM_UNROLL
	for (int j = 0; j < VM_FT_WAYS; j++)
		n += vm_ft_is0(b->tag[j]);
	return (__u32)n;
}

/* After a put of key k (tag t) at place `mine` (hb's ways 0..7, then
 * ob's 8..15) was published: another CPU's put of k at the same moment
 * made a second copy, which whoever sees both removes, the one at the
 * later place.  VM_FLOW_PUT_TAKEN when ours was (the key is in, with the
 * other put's value), else 0.  ob == hb: home alone is looked at (no key
 * of home's is in its second bucket: vm_ft_put_home).  The tags first:
 * only where another way holds t are the slots' keys read (each its own
 * cold line; the tags' test and the keys' combined without branches read
 * all eight on every put). */
VM_INLINE int vm_ft_dedup(void *ctx, struct vm_ft_head *hb, struct vm_ft_head *ob, __u32 mine, __u32 t,
			  const struct flow_key *k, __u32 home, __u32 vs)
{
	__u64 m = 0;

	VM_UNROLL
	for (int j = 0; j < VM_FT_WAYS; j++)
		m |= vm_ft_is0(hb->tag[j] ^ t) << j;
	if (ob != hb) {
		VM_UNROLL
		for (int j = 0; j < VM_FT_WAYS; j++)
			m |= vm_ft_is0(ob->tag[j] ^ t) << (VM_FT_WAYS + j);
	}
	mine &= 2 * VM_FT_WAYS - 1;
	m &= ~(1ull << mine);
	if (!m)
		return 0;       /* no other way holds the tag: no other copy */
	VM_UNROLL
	for (int j = 0; j < VM_FT_WAYS; j++)
		m &= ~((vm_ft_key_is(vm_ft_slot_at(hb, j, vs), k) ^ 1) << j);
	if (ob != hb) {
		VM_UNROLL
		for (int j = 0; j < VM_FT_WAYS; j++)
			m &= ~((vm_ft_key_is(vm_ft_slot_at(ob, j, vs), k) ^ 1) << (VM_FT_WAYS + j));
	}
	if (!m)
		return 0;
	if (m & ((1ull << mine) - 1)) {
		/* an earlier copy: ours goes */
		vm_ft_free_way(ctx, mine < VM_FT_WAYS ? hb : ob, mine, t, home, vs);
		return VM_FLOW_PUT_TAKEN;
	}
	VM_UNROLL
	for (int j = 0; j < VM_FT_WAYS; j++) {
		if (m & (1ull << j))
			vm_ft_free_way(ctx, hb, j, t, home, vs);
		if (m & (1ull << (VM_FT_WAYS + j)))
			vm_ft_free_way(ctx, ob, j, t, home, vs);
	}
	return 0;
}

/* Room in bucket b (index bi) at way j, made by moving its flow to its
 * other bucket (a key at its home to its second bucket, a spilled one
 * back home) where that has a free way and no key of its tag: cuckoo
 * hashing's move, one deep.  1 when moved (way j then claimed, BUSY, for
 * the caller), 0 when not.  The flow is copied to a way claimed at its
 * new place, its old way taken, and then the copy published: never two
 * copies (a key deleted or evicted from its old way meanwhile makes the
 * old way's claim fail, and the copy, which no one saw, is dropped; until
 * 2026-12-07 the copy was published first and stayed: a deleted flow lived
 * on, tests/test_flowtab.c racing_kicks).  A lookup between the old way's
 * claim and the publish misses, and looks again (home's `moves`,
 * vm_ft_locate); a put of the key that missed it there made a second
 * copy, which the move's dedup or the put's removes.  A write to the flow
 * between its copy and the claim is lost, as one to an LRU element being
 * reused is. */
VM_INLINE int vm_ft_kick(void *ctx, struct vm_ft_head *b, __u32 bi, __u32 j, const struct flow_seed *s, __u32 nb,
			 __u32 vs)
{
	struct vm_ft_slot *from = vm_ft_slot_at(b, j, vs), *ts;
	struct vm_ft_place vp;
	struct vm_ft_head *to, *home;
	__u32 t = b->tag[j & (VM_FT_WAYS - 1)], w;
	int back, moved = 0;

	if (!(t & 1))
		return 0;
	vm_ft_place(&from->key, s, nb, &vp);
	vp.other = vm_ft_other(&vp, nb);
	if (vp.tag != t)
		return 0;       /* rewritten under us */
	back = vp.home != bi;   /* spilled here: it goes home */
	to = VM_FT_BUCKET(ctx, back ? vp.home : vp.other);
	home = VM_FT_BUCKET(ctx, vp.home);
	if (!to || !home || vm_ft_tag_at(to, t) < VM_FT_WAYS)
		return 0;
	w = vm_ft_free_for(to, t);
	if (w >= VM_FT_WAYS)
		return 0;
	w &= VM_FT_WAYS - 1;
	if (__sync_val_compare_and_swap(&to->tag[w], 0, VM_FT_BUSY) != 0)
		return 0;
	ts = vm_ft_slot_at(to, w, vs);
	ts->key = from->key;
	ts->ref = from->ref;
	ts->spilled = !back;
	ts->pad = 0;
	vm_ft_copy(vm_ft_val(ts), vm_ft_val(from), vs);
	__sync_fetch_and_add(&home->moves, VM_FT_MOVE_START);
	if (__sync_val_compare_and_swap(&b->tag[j & (VM_FT_WAYS - 1)], t, VM_FT_BUSY) == t) {
		/* a key going to its second bucket is counted by home before it
		 * is there (a lookup that misses at home then goes on); one
		 * coming home is no longer counted once it is home */
		if (!back)
			__sync_fetch_and_add(&home->spill, 1);
		VM_FT_MOVE_PAUSE();
		VM_FT_PUBLISH(&to->tag[w], t);
		if (back)
			__sync_fetch_and_add(&home->spill, -1);
		/* a put of the key that missed it meanwhile made a second copy:
		 * as between two puts, whoever sees both removes the later */
		vm_ft_dedup(ctx, home, back ? b : to, back ? w : VM_FT_WAYS + w, t, &ts->key, vp.home, vs);
		moved = 1;
	} else {
		VM_FT_PUBLISH(&to->tag[w], 0);   /* taken meanwhile: the copy, unseen, goes */
	}
	__sync_fetch_and_add(&home->moves, VM_FT_MOVE_END);
	return moved;
}

/* Puts key k with value v where no slot holds it (BPF_NOEXIST): 0 put,
 * 1 put in place of another flow (evicted: *gone its key),
 * VM_FLOW_PUT_TAKEN when k is there already (or another CPU put it
 * meanwhile), -1 when another writer claimed the chosen way first (the
 * caller may try again) or both buckets hold another key of k's tag (one
 * in 2^62).
 *
 * The bucket: home while it has VM_FT_HOME_ROOM free ways or more, or as
 * many as the other; else the other one (two choices, the less full:
 * buckets stay even to ~95% of the slots, where home alone would start
 * taking live flows' places at half), so most keys sit at home and a
 * lookup reads one tag line.  A bucket never holds a tag twice: a key
 * whose tag one bucket holds goes to the other.  Both full: the clock's
 * pick moves to its own other bucket if that has room, else gives way. */
#define VM_FT_HOME_ROOM 4
VM_INLINE int vm_ft_put(void *ctx, const struct flow_key *k, const void *v, __u32 vs, const struct flow_seed *s,
			__u32 nb, struct flow_key *gone)
{
	struct vm_ft_place pl;
	struct vm_ft_head *hb, *ob, *b;
	struct vm_ft_slot *sl;
	__u32 old = 0, w, hw, ow, hf, of;
	int spilled, rc = 0;

	vm_ft_place(k, s, nb, &pl);
	pl.other = vm_ft_other(&pl, nb);
	hb = VM_FT_BUCKET(ctx, pl.home);
	ob = VM_FT_BUCKET(ctx, pl.other);
	if (!hb || !ob)
		return -1;
	hw = vm_ft_tag_at(hb, pl.tag);
	ow = vm_ft_tag_at(ob, pl.tag);
	if ((hw < VM_FT_WAYS && vm_ft_key_is(vm_ft_slot_at(hb, hw, vs), k)) ||
	    (ow < VM_FT_WAYS && vm_ft_key_is(vm_ft_slot_at(ob, ow, vs), k)))
		return VM_FLOW_PUT_TAKEN;
	if (hw < VM_FT_WAYS && ow < VM_FT_WAYS)
		return -1;
	hf = hw < VM_FT_WAYS ? 0 : vm_ft_free_n(hb);
	of = ow < VM_FT_WAYS ? 0 : vm_ft_free_n(ob);
	spilled = hw < VM_FT_WAYS || (hf < VM_FT_HOME_ROOM && of > hf);
	b = spilled ? ob : hb;
	w = vm_ft_free_for(b, pl.tag);
	if (w >= VM_FT_WAYS) {
		w = vm_ft_victim(b, pl.tag >> 1, vs);
		if (vm_ft_kick(ctx, b, spilled ? pl.other : pl.home, w, s, nb, vs)) {
			old = VM_FT_BUSY;   /* moved: the way claimed for us */
		} else {
			old = b->tag[w & (VM_FT_WAYS - 1)];
			if (old == VM_FT_BUSY || !old)
				return -1;
		}
	} else {
		int c = vm_ft_claim(b, w);

		if (c < 0)
			return -1;
		w = (__u32)c;
		old = VM_FT_BUSY;   /* claimed */
	}
	w &= VM_FT_WAYS - 1;
	sl = vm_ft_slot_at(b, w, vs);
	if (old != VM_FT_BUSY && __sync_val_compare_and_swap(&b->tag[w], old, VM_FT_BUSY) != old)
		return -1;
	if (old == VM_FT_BUSY)
		old = 0;    /* nothing evicted */
	if (old) {
		/* the flow taken: its key out, its home's spill down */
		*gone = sl->key;
		if (sl->spilled) {
			struct vm_ft_place vp;
			struct vm_ft_head *vh;

			vm_ft_place(&sl->key, s, nb, &vp);
			vh = VM_FT_BUCKET(ctx, vp.home);
			if (vh)
				__sync_fetch_and_add(&vh->spill, -1);
		}
		rc = 1;
	}
	sl->key = *k;
	sl->ref = 0;   /* used once a lookup finds it: a new flow gives way first */
	sl->spilled = spilled;
	sl->pad = 0;
	vm_ft_copy(vm_ft_val(sl), v, vs);
	if (spilled)
		__sync_fetch_and_add(&hb->spill, 1);
	VM_FT_PUBLISH(&b->tag[w], pl.tag);
	if (vm_ft_dedup(ctx, hb, ob, spilled * VM_FT_WAYS + w, pl.tag, k, pl.home, vs))
		return VM_FLOW_PUT_TAKEN;
	return rc;
}

/* vm_ft_put's most common case on its own, reading home's tag line alone:
 * home holds no key of k's tag, none of its keys is in its second bucket
 * (spill 0: so k is not there either) and it has VM_FT_HOME_ROOM free
 * ways or more, where vm_ft_put would choose home's first free way too.
 * 0 put, VM_FLOW_PUT_TAKEN when another CPU put k meanwhile, -1 without a
 * table, else VM_FT_NOT_HOME: not that case, or the way was claimed by
 * another writer first; vm_ft_put then (a new flow's second bucket is a
 * cold line: hello_first read it on every put, docs/perf-log.md).  A put
 * of k into the second bucket by another CPU at the same moment counts
 * home's spill up before it publishes: home's spill read again after our
 * publish sees it (the dedup then reads the second bucket too), or that
 * put publishes after ours and its dedup sees our copy in home. */
#define VM_FT_NOT_HOME 2
VM_INLINE int vm_ft_put_home(void *ctx, const struct flow_key *k, const void *v, __u32 vs, const struct flow_seed *s,
			     __u32 nb)
{
	struct vm_ft_place pl;
	struct vm_ft_head *hb, *ob;
	struct vm_ft_slot *sl;
	__u32 w;
	int c;

	vm_ft_place(k, s, nb, &pl);
	hb = VM_FT_BUCKET(ctx, pl.home);
	if (!hb)
		return -1;
	if (vm_ft_tag_at(hb, pl.tag) < VM_FT_WAYS || *(volatile __u32 *)&hb->spill ||
	    vm_ft_free_n(hb) < VM_FT_HOME_ROOM)
		return VM_FT_NOT_HOME;
	c = vm_ft_claim(hb, vm_ft_free_for(hb, pl.tag));
	if (c < 0)
		return VM_FT_NOT_HOME;
	w = (__u32)c & (VM_FT_WAYS - 1);
	sl = vm_ft_slot_at(hb, w, vs);
	sl->key = *k;
	sl->ref = 0;
	sl->spilled = 0;
	sl->pad = 0;
	vm_ft_copy(vm_ft_val(sl), v, vs);
	VM_FT_PUBLISH(&hb->tag[w], pl.tag);
	ob = hb;
	if (*(volatile __u32 *)&hb->spill) {
		pl.other = vm_ft_other(&pl, nb);
		ob = VM_FT_BUCKET(ctx, pl.other);
		if (!ob)
			ob = hb;
	}
	return vm_ft_dedup(ctx, hb, ob, w, pl.tag, k, pl.home, vs) ? VM_FLOW_PUT_TAKEN : 0;
}

/* A new key in BPF, from the includer's two global functions over one
 * table (home: vm_ft_put_home's, put: vm_ft_put's; each its own frame, so
 * neither stacks on the other): home's case first, the whole put when it
 * is not that, and once more when another writer claimed its way first
 * (-1), which only a second loss counts as a full table. */
#define VM_FT_NEW(home, put, k, v)                              \
	({                                                      \
		int __rc = home((k), (v));                      \
		if (__rc == VM_FT_NOT_HOME)                     \
			__rc = put((k), (v));                   \
		__rc == -1 ? put((k), (v)) : __rc;              \
	})

#endif /* VEIL_FLOWTAB_H */

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Route names as map keys, the same in BPF (gw_ingress, gw_asm), the
 * daemons and the tools: a 64-bit hash over the zero-padded name, eight
 * bytes at a time, and the comparison with the name kept in the value.
 *
 * Both run over the words 0 .. len/8 of a VM_NAME_MAX buffer that is zero
 * from len on: the last word holds the name's terminating zero, so equal
 * words mean equal names of equal length.  Header-only, no libc.
 */
#ifndef VEIL_ROUTE_H
#define VEIL_ROUTE_H

#include "wire.h"
#include "hello.h"   /* VM_LOOP, VM_CALLBACK */

/* Loop state (the callbacks run under bpf_loop in BPF: verified once, not
 * once per possible name length). */
struct vm_name_walk {
	__u32 last;               /* the word holding the terminating zero */
	__u32 eq;
	__u64 h;
};

/* bpf_loop's context must be on the stack, and pointers keep their type
 * only there: the buffers' pointers on the stack, the rest in w (map memory
 * in BPF). */
struct vm_name_ref {
	const char *a, *b;
	struct vm_name_walk *w;
};

VM_CALLBACK long vm_name_hash_step(__u32 i, void *ctx)
{
	struct vm_name_ref *r = ctx;
	struct vm_name_walk *w = r->w;

	if (i > w->last)
		return 1;
	w->h = vm_name_hash_word(w->h, vm_name_word(r->a, i));
	return 0;
}

VM_STEP long vm_name_eq_step(__u32 i, void *ctx)
{
	struct vm_name_ref *r = ctx;
	struct vm_name_walk *w = r->w;

	if (i > w->last)
		return 1;
	if (vm_name_word(r->a, i) != vm_name_word(r->b, i)) {
		w->eq = 0;
		return 1;
	}
	return 0;
}
VM_STEP4(vm_name_eq_step4, vm_name_eq_step)

/* The routes map key of a name of len bytes (len < VM_NAME_MAX), with the
 * loop state in w (BPF keeps it in map memory: the stack is small). */
VM_INLINE __u64 vm_name_hash_in(struct vm_name_walk *w, const char *name, __u32 len)
{
	w->last = (len & (VM_NAME_MAX - 1)) / 8;
	w->h = vm_name_hash_seed(len);
	struct vm_name_ref ref = { .a = name, .w = w };
	VM_LOOP(VM_NAME_MAX / 8, vm_name_hash_step, &ref);
	return vm_name_hash_final(w->h);
}

/* route_bits (include/veil/wire.h): the word and the bit of a route key,
 * from the hash's high bits (the map hashes the key again for its buckets;
 * the parse's fold puts its last multiply's best bits there). */
VM_INLINE void vm_route_bit_at(__u64 hash, __u32 *word, __u64 *bit)
{
	__u32 b = (__u32)(hash >> (64 - VM_ROUTE_BITS_LOG));

	*word = VM_ROUTE_WILD_WORDS + b / 64;
	*bit = 1ULL << (b & 63);
}

/* The word and the bit of a wildcard route's name length. */
VM_INLINE void vm_route_wild_at(__u32 len, __u32 *word, __u64 *bit)
{
	*word = (len / 64) & (VM_ROUTE_WILD_WORDS - 1);
	*bit = 1ULL << (len & 63);
}

/* 1 when a route named name (a host name, or "*." + suffix) sets its
 * wildcard length bit. */
VM_INLINE int vm_route_is_wild(const char *name)
{
	return name[0] == '*' && name[1] == '.';
}

/* 1 when the kept name (a route_ent's, NUL-padded) is the len-byte name:
 * the words up to the one holding the name's end equal (the name's bytes
 * past len are zero there), and the kept name's last byte not NUL.  Without
 * that byte a name of the route's name and NUL bytes after it (which a
 * routed name's lookup does not judge) would equal the padding; only the
 * key's hash, which takes the length, kept it from the route (the DPDK
 * gateway's compare, fp_env.c's conf_route, had no hash to keep it). */
VM_INLINE int vm_name_eq_in(struct vm_name_walk *w, const char *kept, const char *name, __u32 len)
{
	len &= VM_NAME_MAX - 1;
	if (!len || !kept[(len - 1) & (VM_NAME_MAX - 1)])
		return 0;
	w->last = len / 8;
	w->eq = 1;
	struct vm_name_ref ref = { .a = kept, .b = name, .w = w };
	VM_LOOP(VM_NAME_MAX / 32, vm_name_eq_step4, &ref);
	return w->eq;
}

#ifndef __bpf__
VM_INLINE __u64 vm_name_hash(const char *name, __u32 len)
{
	struct vm_name_walk w;
	return vm_name_hash_in(&w, name, len);
}

/* A wildcard route's length bit in route_bits: 1 with its word and bit,
 * 0 when name is not a wildcard route's. */
VM_INLINE int vm_route_wild_bit(const char *name, __u32 *word, __u64 *bit)
{
	__u32 len = 0;

	if (!vm_route_is_wild(name))
		return 0;
	while (len < VM_NAME_MAX - 1 && name[len])
		len++;
	vm_route_wild_at(len, word, bit);
	return 1;
}

/* The bits a route named name (its routes map key hash) sets in
 * route_bits: its key's, and a wildcard route's length's.  Returns how
 * many (1 or 2) in word[] and bit[]. */
VM_INLINE int vm_route_bits(__u64 hash, const char *name, __u32 word[2], __u64 bit[2])
{
	vm_route_bit_at(hash, &word[0], &bit[0]);
	return 1 + vm_route_wild_bit(name, &word[1], &bit[1]);
}
#endif

#endif /* VEIL_ROUTE_H */

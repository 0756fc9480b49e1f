/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The flows map's 12-byte key (struct flow_key, include/veil/wire.h), made
 * once for the BPF programs, the fast path and the tools: IPv4 addresses
 * as they are; an IPv6 client folded to 32 bits by a keyed universal
 * hash (NH, then multiply-shift) under the gateway's flow_seed, an IPv6
 * VIP by an unkeyed mix (vm_vip_fold).  The seed keeps an attacker from
 * choosing client addresses whose folds collide; the tuple kept in the
 * value (vm_flow_is) keeps a collision that happens anyway from serving
 * one connection with another's entry.
 */
#ifndef VEIL_FLOWKEY_H
#define VEIL_FLOWKEY_H

#include "wire.h"
#include "cookie.h"   /* VM_INLINE */

/* Word i (32 bits, as it sits in memory) of an address kept at a 4-byte
 * aligned place: every address these functions take sits in a struct at a
 * multiple of 4 (vm_pkt, flow_val, asm_val, asm_early, flow_tuple), or in
 * the packet (gw_ingress's key: BPF loads from the packet may be unaligned
 * where the CPU allows it, as the parser's are).  In BPF
 * one load: clang reads a __u8 array it cannot prove aligned byte by byte
 * (a load, a shift and an or per byte: ~15 ns per IPv6 packet for the folds
 * and the tuple's compare).  Elsewhere memcpy, which compilers make one
 * load whatever the alignment. */
#ifdef __bpf__
typedef __u32 __attribute__((may_alias, aligned(4))) vm_fk_u32;
#define VM_FK_W32(p, i) (((const vm_fk_u32 *)(p))[i])
#else
VM_INLINE __u32 vm_fk_w32(const __u8 *p, int i)
{
	__u32 w;
	__builtin_memcpy(&w, p + 4 * i, 4);
	return w;
}
#define VM_FK_W32(p, i) vm_fk_w32((p), (i))
#endif

/* The fold an entry's key was made with (flow_seed.fold): the loader
 * re-keys the IPv6 entries of pinned maps made with another
 * (flow_seed_init, dataplane/loader.c).  1 was SipHash-1-3; 2 NH with
 * murmur3's finaliser (two more multiplies in a chain) and a three-multiply
 * VIP mix. */
#define VM_FLOW_FOLD 3

/* An IPv6 client folded to 32 bits under the gateway's flow_seed: NH, the
 * universal hash of UMAC and VMAC, over the address's four 32-bit words,
 *   h = (w0 + K0)(w1 + K1) + (w2 + K2)(w3 + K3)
 * (sums mod 2^32, products and total mod 2^64): for any two addresses,
 * whoever chose them, h meets for at most one key in 2^32.  Then
 * multiply-shift (Dietzfelbinger et al. 1997) under the seed's own odd
 * multiplier M: the top 32 bits of h * M mod 2^64, for two different h the
 * same for at most 2 multipliers in 2^32.  Two addresses fold alike for at
 * most 3 seeds in 2^32: a bound, where the fixed mix this replaced (fold 2)
 * had none for the 32 bits kept.  Senders choose client addresses; without
 * the seed they cannot choose ones that collide (and a collision that
 * happens anyway is caught: lookups compare the tuple).  Three multiplies,
 * two of them side by side: the key is ready two multiplies after the
 * address, against four before (the established IPv6 path ~2 ns faster).
 * s NULL: the zero key (collisions then are only a matter of chance). */
VM_INLINE __u32 vm_addr_fold(const struct flow_seed *s, const __u8 *addr)
{
	__u64 k0 = s ? s->k[0] : 0, k1 = s ? s->k[1] : 0, m = (s ? s->mul : 0) | 1, h;
	__u32 w0 = VM_FK_W32(addr, 0), w1 = VM_FK_W32(addr, 1), w2 = VM_FK_W32(addr, 2), w3 = VM_FK_W32(addr, 3);

	/* the words as a little-endian host reads them (the key's words too) */
	h = (__u64)(__u32)(w0 + (__u32)k0) * (__u32)(w1 + (__u32)(k0 >> 32)) +
	    (__u64)(__u32)(w2 + (__u32)k1) * (__u32)(w3 + (__u32)(k1 >> 32));
	return (__u32)((h * m) >> 32);
}

/* An IPv6 VIP folded to 32 bits, unkeyed: VIPs are the operator's, not
 * chosen by whoever sends packets, so they need no secret (the client's
 * fold does); two VIPs whose folds meet only make their clients' keys
 * meet, which the tuple in the value catches.  The address as two 64-bit
 * words, each times a fixed odd constant, summed, the top 32 bits kept:
 * two multiplies side by side.  Addresses that differ in one of the two
 * words by d fold alike only where d times its constant lands within 2^32
 * of a multiple of 2^64: for no d below 2^21, nor d = j * 2^32 with j below
 * 2^21 (a 32-bit word's difference), with these constants (checked: the
 * nearest is 758 * 2^32 away). */
VM_INLINE __u32 vm_vip_fold(const __u8 *addr)
{
	__u64 a = VM_FK_W32(addr, 0) | (__u64)VM_FK_W32(addr, 1) << 32;   /* as 8 bytes read little-endian */
	__u64 b = VM_FK_W32(addr, 2) | (__u64)VM_FK_W32(addr, 3) << 32;

	return (__u32)((a * 0x9e3779b97f4a7c15ULL + b * 0xc4ceb9fe1a85ec53ULL) >> 32);
}

/* Where a key is stored as words (vm_flow_key_set): 8-byte aligned.  BPF:
 * the verifier wants a stack store aligned to its size, and a 12-byte
 * struct of 32-bit fields is only 4-byte aligned by itself; every BPF
 * caller's key variable carries this. */
#define VM_KEY_ALIGN 8
#define VM_KEY_ALIGNED __attribute__((aligned(VM_KEY_ALIGN)))

/* A flow key from its words, stored as one 64-bit word (client, VIP) and
 * one 32-bit word (the ports): the kernel's hash map compares a key it
 * finds with memcmp, which reads the first 8 bytes as one word, and a wide
 * load of narrower stores waits for them to reach the cache (no
 * store-to-load forwarding): ~3-4 ns of return_to_client and
 * node_client_to_vm (README).  The same bytes as storing the fields one by
 * one.  k: VM_KEY_ALIGNED.  Through may_alias types: the fields are read
 * back as fields.  (conn_rev's key has the same layout; stored this way it
 * made no difference node_vm_live resolves, so vm_conn_rev_key_make stores
 * its fields.) */
#ifdef __bpf__
typedef __u64 __attribute__((may_alias, aligned(VM_KEY_ALIGN))) vm_key_u64;
typedef __u32 __attribute__((may_alias, aligned(4))) vm_key_u32;
#endif
VM_INLINE void vm_flow_key_set(struct flow_key *k, __u32 client_word, __u32 vip_word, __be16 client_port_be,
			       __be16 vip_port_be)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	__u64 a = (__u64)client_word | (__u64)vip_word << 32;
	__u32 b = (__u32)(__u16)client_port_be | (__u32)(__u16)vip_port_be << 16;
#else   /* the first field in the high half, where a big-endian store puts it first */
	__u64 a = (__u64)client_word << 32 | vip_word;
	__u32 b = (__u32)(__u16)client_port_be << 16 | (__u16)vip_port_be;
#endif

#ifdef __bpf__
	*(vm_key_u64 *)k = a;
	*(vm_key_u32 *)((__u8 *)k + 8) = b;
#else
	__builtin_memcpy(k, &a, 8);
	__builtin_memcpy((__u8 *)k + 8, &b, 4);
#endif
}
_Static_assert(sizeof(struct flow_key) == 12 && __builtin_offsetof(struct flow_key, vip_word) == 4 &&
		       __builtin_offsetof(struct flow_key, client_port_be) == 8 &&
		       __builtin_offsetof(struct flow_key, vip_port_be) == 10,
	       "vm_flow_key_set's layout: flow_key");

/* The key of a connection (client and VIP as 16-byte addresses, IPv4
 * mapped), stored as words (vm_flow_key_set; k: VM_KEY_ALIGNED).  The
 * seed is read only for IPv6. */
VM_INLINE void vm_flow_key_make(__u8 family, const __u8 *client, const __u8 *vip, __be16 client_port_be,
				__be16 vip_port_be, const struct flow_seed *s, struct flow_key *k)
{
	if (family == VM_AF_INET)
		vm_flow_key_set(k, VM_FK_W32(client, VM_ADDR4_OFF / 4), VM_FK_W32(vip, VM_ADDR4_OFF / 4),
				client_port_be, vip_port_be);
	else
		vm_flow_key_set(k, vm_addr_fold(s, client), vm_vip_fold(vip), client_port_be, vip_port_be);
}

/* Two keys equal, field by field: each load lies within one store, whether
 * the key was stored as words (vm_flow_key_set) or copied field by field, so
 * it is forwarded from the store (a wider load than the stores waits). */
VM_INLINE int vm_flow_key_eq(const struct flow_key *a, const struct flow_key *b)
{
	return ((a->client_word ^ b->client_word) | (a->vip_word ^ b->vip_word) |
		(__u32)(a->client_port_be ^ b->client_port_be) | (__u32)(a->vip_port_be ^ b->vip_port_be)) == 0;
}

VM_INLINE void vm_flow_key_tuple(const struct flow_tuple *t, const struct flow_seed *s, struct flow_key *k)
{
	vm_flow_key_make(t->family, t->client, t->vip, t->client_port_be, t->vip_port_be, s, k);
}

/* Where a flow key's bits lie in a flow filter (flow_bits, wire.h; the
 * DPDK worker's, struct vm_fp): entry *idx, and in each half the
 * VM_FLOW_BITS_K bits of mask *bits (distinct positions in one word: a
 * Bloom filter blocked to a word, its positions by double hashing, a
 * start and an odd step).  The hash is a multiplicative mix of the key's
 * three words, unkeyed: a flow whose bits others' cover only costs its
 * lookup.  The index takes its top bits; the positions the top twelve of
 * the hash times an odd constant (its low bits depend only on the words'
 * low bits: an IPv4 client's first octet, as a little-endian host loads
 * it).  Four bits rather than two (until 2026-12-07): of an ACK flood's
 * unknown tuples, with 131072 flows in the table, 1.3-1.9% went on to
 * its cold buckets, 0.7-1.1% now; with 262144, 5.2-5.4% and 3.3-3.9%
 * (simulated over the filter; veil-bench-micro's ack_many about -30 ns
 * a packet; three or five bits do no better, six or seven worse).  A
 * filter twice the size took them to 0.24% (0.31% counted in ack_many)
 * and 0.86% but made a hello's put dearer (its cold line). */
#define VM_FLOW_BITS_K 4
VM_INLINE __u32 vm_flow_bits_hash(const struct flow_key *k)
{
	return (k->client_word * 0x9E3779B1u) ^ (k->vip_word * 0x85EBCA77u) ^
	       (((__u32)k->client_port_be | (__u32)k->vip_port_be << 16) * 0xC2B2AE3Du);
}

/* A filter of 2^idx_bits entries (idx_bits at most VM_FLOW_BITS_IDX_MAX:
 * the DPDK worker's largest; the positions come from all of the hash's
 * bits, mixed, not from those the index leaves). */
#define VM_FLOW_BITS_IDX_MAX 20
VM_INLINE void vm_flow_bits_at_n(const struct flow_key *k, __u32 idx_bits, __u32 *idx, __u64 *bits)
{
	__u32 h = vm_flow_bits_hash(k), p = (h * 0x9E3779B9u) >> 20;
	__u32 a = p & 63, d = (p >> 6) | 1;   /* odd: the four positions differ */

	*idx = h >> (32 - idx_bits);
	*bits = 1ULL << a | 1ULL << ((a + d) & 63) | 1ULL << ((a + 2 * d) & 63) | 1ULL << ((a + 3 * d) & 63);
}
_Static_assert(VM_FLOW_BITS_K == 4, "vm_flow_bits_at_n sets four bits");

VM_INLINE void vm_flow_bits_at(const struct flow_key *k, __u32 *idx, __u64 *bits)
{
	vm_flow_bits_at_n(k, VM_FLOW_BITS_IDX_BITS, idx, bits);
}

/* Whether one half's word w holds every bit of mask bits. */
VM_INLINE int vm_flow_bits_has(__u64 w, __u64 bits)
{
	return (w & bits) == bits;
}

/* Whether either half of entry b holds every bit of mask bits: 0 when no
 * flow whose key has them can be in the table behind the filter. */
VM_INLINE int vm_flow_bits_either(const struct flow_bits_val *b, __u64 bits)
{
	return vm_flow_bits_has(b->half[0], bits) | vm_flow_bits_has(b->half[1], bits);
}

/* The node's conn_rev key of an IPv4 connection as its VM sees it, from
 * the addresses' words (vm_conn_rev_key_make below, for IPv4). */
VM_INLINE void vm_conn_rev_key_make4(__be32 vm, __be32 client, __be16 vm_port_be, __be16 client_port_be,
				     struct conn_rev_key *r)
{
	r->vm_word = vm;
	r->client_word = client;
	r->vm_port_be = vm_port_be;
	r->client_port_be = client_port_be;
}

/* The node's conn_rev key of a connection as its VM sees it (addresses
 * 16 bytes, IPv4 mapped, 4-byte aligned): the VM's address in the place
 * of the VIP, the client's folded under the node's conn_seed as in the
 * conns key.  The seed is read only for IPv6. */
VM_INLINE void vm_conn_rev_key_make(__u8 family, const __u8 *vm, const __u8 *client, __be16 vm_port_be,
				    __be16 client_port_be, const struct flow_seed *s, struct conn_rev_key *r)
{
	if (family == VM_AF_INET) {
		vm_conn_rev_key_make4(VM_FK_W32(vm, VM_ADDR4_OFF / 4), VM_FK_W32(client, VM_ADDR4_OFF / 4), vm_port_be,
				      client_port_be, r);
		return;
	}
	r->vm_word = vm_vip_fold(vm);
	r->client_word = vm_addr_fold(s, client);
	r->vm_port_be = vm_port_be;
	r->client_port_be = client_port_be;
}

/* The conn_gen slot of a conns key (below VM_CONN_GEN_SLOTS): a
 * multiplicative hash of its words.  Keys that meet in a slot only cost
 * their connections a conns lookup each (the slot moved: conn_rev's copy
 * is checked against conns once, then used again). */
VM_INLINE __u32 vm_conn_gen_idx(const struct flow_key *k)
{
	__u32 h = (k->client_word ^ (k->vip_word * 0x9e3779b1u)) * 0x85ebca6bu;

	h ^= ((__u32)k->client_port_be << 16 | k->vip_port_be) * 0xc2b2ae35u;
	h ^= h >> 15;
	h *= 0x27d4eb2fu;
	return h >> 16;   /* the top 16 bits: VM_CONN_GEN_SLOTS */
}
_Static_assert(VM_CONN_GEN_SLOTS == 1 << 16, "vm_conn_gen_idx keeps 16 bits");

/* node_vm's per-CPU cache of conn_rev copies (conn_rev_cache,
 * bpf/node_vm.bpf.c) and the generation of each of its slots
 * (conn_rev_gen, bpf/lib/node_maps.h): how many slots (a power of 2).
 * 1024 slots of 128 bytes are 128 KB a CPU, within a core's L2; a VM
 * packet's connection is looked up in one slot, so the cache keeps one
 * copy per slot, of the VM view whose packet filled it last. */
#define VM_REV_CACHE_BITS  10
#define VM_REV_CACHE_SLOTS (1u << VM_REV_CACHE_BITS)

/* The slot of conn_rev key r in conn_rev_cache and conn_rev_gen: a
 * multiplicative hash of its words, the top bits kept.  The programs and
 * the loader (which moves a slot after it writes conn_rev) use this one. */
VM_INLINE __u32 vm_conn_rev_slot(const struct conn_rev_key *r)
{
	__u32 h = (r->vm_word * 0x85ebca6bu) ^ r->client_word ^ ((__u32)r->client_port_be << 16 | r->vm_port_be);

	return (h * 0x9e3779b1u) >> (32 - VM_REV_CACHE_BITS);
}

/* The bucket of gw_asm's hello_asm array (2^bits slots, VM_ASM_SLOTS_BITS
 * by default, hellos_max in the config) that may hold key k: VM_ASM_WAYS
 * slots from *first, and the digest its holder writes into
 * the slot's owner word (never 0: 0 is a free slot).  A multiply of the
 * key's 96 bits under the seed's random odd multiplier, so which keys
 * share a bucket is not known outside, then an xor-shift-multiply round
 * (splitmix64's): without it, for some multipliers one client's
 * consecutive ports (a NAT's, or any client's ephemeral ports in turn)
 * crowded into a few buckets, their products being an arithmetic
 * progression whose top bits moved slowly (96 consecutive ports into 64
 * slots: at most 48 slots used for 67 seeds in 100,000, as few as 33;
 * with the round, as for random keys).  The bucket takes the top bits.
 * The programs and the loader (which moves entries when the seed or this
 * function changes) use this one. */
VM_INLINE void vm_asm_bucket(const struct flow_key *k, const struct flow_seed *s, __u32 bits, __u32 *first,
			     __u64 *owner)
{
	__u64 x = ((__u64)k->client_word << 32 | k->vip_word) ^
		  ((__u64)((__u32)k->client_port_be << 16 | k->vip_port_be) + 1) * 0x9E3779B97F4A7C15ull;
	__u64 h = x * ((s ? s->mul : 0x2545F4914F6CDD1Dull) | 1);

	h ^= h >> 31;
	h *= 0xBF58476D1CE4E5B9ull;
	h ^= h >> 29;

	*first = (__u32)(h >> (64 - (bits & 63))) & ~(VM_ASM_WAYS - 1);
	*owner = h | 1;
}

/* A hello being reassembled whose slot a newer one takes (old, at time
 * now): when part of it was ACKed (have), it is not routed (a routed one's
 * flow keeps held_len) and it is still in time, its connection cannot
 * complete: the client will not send what the gateway ACKed again.  Made
 * into t, a tombstone (asm_lost) that the connection's next segment finds
 * and is refused by (vm_gw_asm_in).  1 when t was made. */
VM_INLINE int vm_asm_tomb_make(struct asm_tomb *t, const struct asm_val *old, __u64 now)
{
	if (!old->family || !old->have || old->routed || now - old->first_ns > VM_ASM_TIMEOUT_NS)
		return 0;
	t->family = old->family;
	__builtin_memcpy(t->client, old->client, 16);
	__builtin_memcpy(t->vip, old->vip, 16);
	t->tpad[0] = t->tpad[1] = t->tpad[2] = 0;
	t->ack = old->cookie_isn + 1;
	t->seen_ns = now;
	return 1;
}

/* What the VM's SYN-ACK fixes, from connection c into its conn_rev copy v
 * (gen: the conn_gen slot read before c was), the state last: a copy read
 * on another CPU is ESTABLISHED only with its deltas. */
VM_INLINE void vm_conn_rev_val_refresh(struct conn_rev_val *v, const struct conn_val *c, __u32 gen)
{
	v->seq_delta = c->seq_delta;
	v->ts_delta = c->ts_delta;
	v->vm_wscale = c->vm_wscale;
	v->gen = gen;
	__asm__ __volatile__("" ::: "memory");
	v->state = (__u8)c->state;
}

/* conn_rev's value for connection c under conns key k (gen: the conn_gen
 * slot's value once node_mesh moved it for k, or as the loader reads it). */
VM_INLINE void vm_conn_rev_val_make(const struct flow_key *k, const struct conn_val *c, __u32 gen,
				    struct conn_rev_val *v)
{
	v->conn = *k;
	v->mesh_ifindex = c->mesh_ifindex;
	v->family = c->family;
	v->gw_family = c->gw_family;
	v->gw_wscale = c->gw_wscale;
	v->pad = 0;
	v->mesh_sport = c->mesh_sport;
	__builtin_memcpy(v->gw_mac, c->gw_mac, 6);
	__builtin_memcpy(v->mesh_mac, c->mesh_mac, 6);
	__builtin_memcpy(v->gw, c->gw, 16);
	__builtin_memcpy(v->vm, c->vm, 16);
	__builtin_memcpy(v->client, c->client, 16);
	__builtin_memcpy(v->vip, c->vip, 16);
	vm_conn_rev_val_refresh(v, c, gen);
}

/* 1 when an entry found under a connection's key (its tuple: family,
 * client, vip, as kept in the value) is that connection's.  An IPv4 key
 * is exact, so the family says it; an IPv6 one is compared whole.  The
 * ports are the key's own. */
VM_INLINE int vm_flow_is(__u8 kept_family, const __u8 *kept_client, const __u8 *kept_vip, __u8 family,
			 const __u8 *client, const __u8 *vip)
{
	__u32 d = 0;

	if (kept_family != family)
		return 0;
	if (family == VM_AF_INET)
		return 1;
	for (int i = 0; i < 4; i++)
		d |= (VM_FK_W32(kept_client, i) ^ VM_FK_W32(client, i)) | (VM_FK_W32(kept_vip, i) ^ VM_FK_W32(vip, i));
	return d == 0;
}

/* Records the tuple in a new entry (flow_val, asm_val, asm_early). */
#define VM_FLOW_TUPLE_SET(v, fam, c, vp) do {                 \
	(v)->family = (fam);                                    \
	__builtin_memcpy((v)->client, (c), 16);                 \
	__builtin_memcpy((v)->vip, (vp), 16);                   \
} while (0)

#define VM_FLOW_IS(v, fam, c, vp) vm_flow_is((v)->family, (v)->client, (v)->vip, (fam), (c), (vp))

#endif /* VEIL_FLOWKEY_H */

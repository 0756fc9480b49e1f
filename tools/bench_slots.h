/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A flow table as an array of slots, for two floors of veil-bench-micro
 * (slot_lookup_floor, slot_insert_floor; tools/bench_base.bpf.c): what the
 * gateway's flow lookup and insert would cost at the least if the flows
 * were kept in a BPF array of slots claimed by an atomic compare-and-swap
 * (as hello_asm's slots are) instead of an LRU hash.  A measurement of a
 * design, not one: the floors do neither the deletion (a hole would cut
 * another key's probe sequence: a real table needs tombstones or
 * backward shifts), nor eviction when full, nor a reader's check against
 * a slot being rewritten under it.  Shared by the programs (clang -target
 * bpf) and veil-bench-micro, which fills the table and empties the round's
 * slots, with the same hash and probe order.
 */
#ifndef VEIL_BENCH_SLOTS_H
#define VEIL_BENCH_SLOTS_H

/* The 12-byte key as it lies in an IPv4 packet from offset 14 + 12 (the
 * gateway's flow_key for an IPv4 client: addresses, then ports). */
struct bench_flow_key {
	__u32 client, vip;
	__u16 client_port, vip_port;
};

struct bench_flow_val {
	__u32 w[36];              /* 144 bytes, as struct flow_val */
};

/* One slot: the owner word (0 free, else the key's hash, odd) and the key
 * in the first cache line with the value's first 40 bytes; 192 bytes. */
struct bench_slot {
	__u64 owner;
	struct bench_flow_key key;
	__u32 pad;
	struct bench_flow_val val;
	__u8 pad2[24];
};

#define BENCH_SLOT_PROBES 64   /* at half full, 131072 random keys reach 35 */

static inline __u64 bench_slot_hash(const struct bench_flow_key *k)
{
	__u64 a = (__u64)k->client << 32 | k->vip, b = (__u64)k->client_port << 16 | k->vip_port;
	__u64 h = (a ^ 0x9e3779b97f4a7c15ull) * 0xff51afd7ed558ccdull;

	h ^= (b + (h >> 29)) * 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 32;
	return h | 1;
}

/* The first slot of hash h's probe sequence in a table of n. */
static inline __u32 bench_slot_first(__u64 h, __u32 n)
{
	return (__u32)(((h >> 32) * n) >> 32);
}

#endif

// SPDX-License-Identifier: Apache-2.0
/*
 * A map's entry count for the daemons' status and metrics, from the
 * kernel's own count (a BPF iterator over the host's maps, read through
 * the file descriptor bpf_iter_create gives: dataplane/mapwalk.c).
 * Counting from user space takes a get_next_key call per entry: 0.5 s for a
 * full flows map (262,144 entries) on each status request or metrics
 * scrape, and the walk starts again from the first key whenever the key it
 * stands on is deleted meanwhile (the programs delete flows, the LRU
 * evicts).
 *
 *   map_counts  every map of the host: its id and bpf_map_sum_elem_count
 *               (kept for every hash map since Linux 6.6; 0 for arrays).
 *   asm_counts  the array map whose id user space wrote in asm_want (gw_asm's
 *               hello_asm): its id and how many of its slots' owner words are
 *               not 0, read in the kernel, 8 bytes a slot, where a lookup
 *               from user space copies the whole 22.8 KB value out (3.4 ms
 *               at 1024 slots, 59 ms at 16384, per status request or
 *               metrics scrape).
 *
 * (A bpf_map_elem iterator, which would walk one map's entries in the
 * kernel, is refused at load with EPERM by the kernel here.)
 */
#include "lib/common.h"
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

extern __s64 bpf_map_sum_elem_count(const struct bpf_map *map) __ksym;

/* What map_counts writes per map (struct vm_walk_count in dataplane/mapwalk.c). */
struct walk_count {
	__u32 id;
	__u32 pad;
	__s64 n;
};

SEC("iter/bpf_map")
int map_counts(struct bpf_iter__bpf_map *ctx)
{
	struct bpf_map *map = ctx->map;
	struct walk_count r;

	if (!map)
		return 0;
	r.id = map->id;
	r.pad = 0;
	r.n = bpf_map_sum_elem_count(map);
	bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
	return 0;
}

/* asm_counts: the map to count (0: none) and where its slots' owner words
 * lie in each value (offsetof(struct asm_val, owner)). */
__u32 asm_want;
const volatile __u32 asm_owner_off = __builtin_offsetof(struct asm_val, owner);

struct asm_walk {
	__u64 value;              /* the array's first element's kernel address, as a number */
	__u32 elem_size;
	__s64 n;
};

static long asm_slot(__u32 i, void *ctx)
{
	struct asm_walk *w = ctx;
	__u64 owner = 0;

	if (bpf_probe_read_kernel(&owner, sizeof(owner), (const void *)(w->value + (__u64)i * w->elem_size + asm_owner_off)))
		return 1;
	if (owner)
		w->n++;
	return 0;
}

SEC("iter/bpf_map")
int asm_counts(struct bpf_iter__bpf_map *ctx)
{
	struct bpf_map *map = ctx->map;
	struct walk_count r;
	struct asm_walk w = {};

	if (!map || !asm_want || map->id != asm_want || map->map_type != BPF_MAP_TYPE_ARRAY ||
	    map->value_size != sizeof(struct asm_val))
		return 0;
	struct bpf_array *arr = (struct bpf_array *)map;
	w.elem_size = BPF_CORE_READ(arr, elem_size);
	/* the map's address as a number (read, not the verifier's pointer,
	 * which takes no variable offset): the slots are read by probe */
	if (bpf_probe_read_kernel(&w.value, sizeof(w.value), &ctx->map))
		return 0;
	w.value += bpf_core_field_offset(struct bpf_array, value);
	if (w.elem_size < sizeof(struct asm_val))
		return 0;
	bpf_loop(map->max_entries, asm_slot, &w, 0);
	r.id = map->id;
	r.pad = 0;
	r.n = w.n;
	bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
	return 0;
}

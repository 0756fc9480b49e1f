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
 *
 * (A bpf_map_elem iterator, which would walk one map's entries in the
 * kernel, is refused at load with EPERM by the kernel here.)
 */
#include "lib/common.h"

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

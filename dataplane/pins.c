// SPDX-License-Identifier: Apache-2.0
/* Pinned maps whose layout no longer matches the programs being loaded.
 *
 * A restart reuses the maps pinned under pin_root, so established flows
 * survive it.  After an upgrade that changed a map's key or value (or a
 * restart with another flows_max), libbpf refuses the pinned map ("couldn't
 * reuse pinned map") and the daemon would not start, with no word on why.
 * Before the load, each pin that the new programs cannot reuse is removed
 * and said so in one log line with what changed; the load then makes and
 * pins a new map.  Where only the size or the flags changed (flows_max,
 * hellos_max, conns_max, or a flag an upgrade added) the old map is kept
 * open and what it held is copied into the new one once that is loaded
 * (vm_pins_migrate), so the connections live across it; where the key or
 * the value changed, what the old map held is lost (the connections of an
 * old flow table end): the price of a layout change, named in the log. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "veil.h"

static void differs(char *why, size_t len, const char *what, __u32 was, __u32 now)
{
	size_t n = strlen(why);

	if (was != now && n < len)
		snprintf(why + n, len - n, "%s%s %u -> %u", n ? ", " : "", what, was, now);
}

/* A pinned object's fd is a map's when its fdinfo names a map_type. */
static bool is_map(int fd)
{
	char path[64], line[128];
	bool map = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	if (!f)
		return false;
	while (!map && fgets(line, sizeof(line), f))
		map = !strncmp(line, "map_type:", 9);
	fclose(f);
	return map;
}

/* Map types whose entries are plain bytes, copied from an old map to a new
 * one by the syscalls (not fds, not ifindexes, not programs). */
static bool copyable(__u32 type)
{
	switch (type) {
	case BPF_MAP_TYPE_ARRAY:
	case BPF_MAP_TYPE_PERCPU_ARRAY:
	case BPF_MAP_TYPE_HASH:
	case BPF_MAP_TYPE_LRU_HASH:
	case BPF_MAP_TYPE_PERCPU_HASH:
	case BPF_MAP_TYPE_LRU_PERCPU_HASH:
		return true;
	default:
		return false;
	}
}

static bool percpu(__u32 type)
{
	return type == BPF_MAP_TYPE_PERCPU_ARRAY || type == BPF_MAP_TYPE_PERCPU_HASH ||
	       type == BPF_MAP_TYPE_LRU_PERCPU_HASH;
}

static bool all_zero(const __u8 *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (v[i])
			return false;
	return true;
}

/* A flow table (include/veil/flowtab.h: the gateway's flows, the node's
 * conns) where the pin holds its entries in another form: a table of
 * another size (flows_max, conns_max), or the LRU hash of flow_key -> the
 * kind's value that held them until 2026-12-06.  Its entries are put into
 * the new table at the load, each where the new size places it. */
static bool is_flow_table(const struct bpf_map *m, const struct bpf_map_info *old)
{
	const struct vm_ft_kind *k = vm_flows_kind(bpf_map__name(m), bpf_map__value_size(m));

	if (!k || bpf_map__type(m) != BPF_MAP_TYPE_ARRAY)
		return false;
	if (old->type == BPF_MAP_TYPE_ARRAY)
		return old->value_size == bpf_map__value_size(m) && (old->map_flags & BPF_F_MMAPABLE);
	return (old->type == BPF_MAP_TYPE_LRU_HASH || old->type == BPF_MAP_TYPE_HASH) &&
	       old->key_size == sizeof(struct flow_key) && old->value_size == k->vs;
}

/* The seed map (seed: its name) beside a pin at path (the same
 * directory), or -errno. */
static int seed_beside(const char *path, const char *seed)
{
	char p[320];
	const char *slash = strrchr(path, '/');

	snprintf(p, sizeof(p), "%.*s/%s", slash ? (int)(slash - path) : 1, slash ? path : ".", seed);
	return bpf_obj_get(p);
}

struct flows_into {
	struct vm_flows *to;
	long *moved, *lost;
};

static int flow_into(void *arg, const struct flow_key *k, const void *v)
{
	struct flows_into *c = arg;

	if (vm_flows_put(c->to, k, v, 0))
		(*c->lost)++;
	else
		(*c->moved)++;
	return 0;
}

/* The flows of the old map (fd from, info fi: a table or the old hash)
 * put into the new table (to), each under the seed both are placed by. */
static int flows_copy(int from, int to, const char *path, const struct bpf_map_info *fi, long *moved, long *lost)
{
	struct vm_flows nt, ot;
	struct flows_into c = { &nt, moved, lost };
	struct bpf_map_info ti;
	__u32 len = sizeof(ti);
	const struct vm_ft_kind *kind;
	int sfd, err;

	memset(&ti, 0, sizeof(ti));
	if (bpf_obj_get_info_by_fd(to, &ti, &len))
		return -errno;
	kind = vm_flows_kind(ti.name, ti.value_size);
	if (!kind)
		return -EINVAL;
	sfd = seed_beside(path, kind->seed);
	err = vm_flows_open(&nt, to, sfd);
	if (!err && fi->type == BPF_MAP_TYPE_ARRAY) {
		err = vm_flows_open(&ot, from, sfd);
		if (!err) {
			vm_flows_walk(&ot, flow_into, &c);
			vm_flows_close(&ot);
		}
	} else if (!err) {
		struct flow_key k, next;
		__u64 v[VM_FT_VALUE_MAX / 8];   /* the kind's value (kind->vs bytes) */
		void *prev = NULL;

		if (kind->vs > sizeof(v))
			err = -EINVAL;

		while (!err && !bpf_map_get_next_key(from, prev, &next)) {
			k = next;
			prev = &k;
			if (!bpf_map_lookup_elem(from, &k, v))
				flow_into(&c, &k, v);
		}
	}
	vm_flows_close(&nt);
	if (sfd >= 0)
		close(sfd);
	return err;
}

int vm_pins_refresh(struct bpf_object *obj, struct vm_pins_kept *kept)
{
	struct bpf_map *m;
	int replaced = 0;

	bpf_object__for_each_map(m, obj) {
		const char *path = bpf_map__pin_path(m);
		struct bpf_map_info info;
		__u32 len = sizeof(info);
		char why[200] = "";
		int fd;

		if (!path || bpf_map__is_internal(m))
			continue;
		fd = bpf_obj_get(path);
		if (fd < 0)
			continue;       /* nothing pinned yet (or not a map we can open): the load says */
		if (!is_map(fd)) {      /* a program or link pinned there: not ours to remove */
			close(fd);
			continue;
		}
		memset(&info, 0, sizeof(info));
		if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
			close(fd);
			continue;
		}
		/* what libbpf compares before it reuses a pin */
		differs(why, sizeof(why), "type", info.type, (__u32)bpf_map__type(m));
		differs(why, sizeof(why), "key bytes", info.key_size, bpf_map__key_size(m));
		differs(why, sizeof(why), "value bytes", info.value_size, bpf_map__value_size(m));
		if (bpf_map__max_entries(m))  /* 0: sized by libbpf at creation */
			differs(why, sizeof(why), "max_entries", info.max_entries, bpf_map__max_entries(m));
		differs(why, sizeof(why), "flags", info.map_flags, bpf_map__map_flags(m));
		if (!why[0]) {
			close(fd);
			continue;
		}
		if (unlink(path)) {
			int err = -errno;

			close(fd);
			vm_log("event=pinned_map_stale map=%s path=%s reason=\"layout changed (%s) and the pin cannot be removed: %s\"",
			       bpf_map__name(m), path, why, strerror(-err));
			return err;
		}
		/* the same entries in a map of another size or flags: kept
		 * open, copied into the new one after the load */
		bool table = is_flow_table(m, &info);
		bool keep = kept && kept->n < VM_PINS_KEPT_MAX &&
			    (table || (copyable(info.type) && info.type == (__u32)bpf_map__type(m) &&
				       info.key_size == bpf_map__key_size(m) &&
				       info.value_size == bpf_map__value_size(m)));
		if (keep) {
			kept->e[kept->n].fd = fd;
			snprintf(kept->e[kept->n].path, sizeof(kept->e[0].path), "%s", path);
			snprintf(kept->e[kept->n].name, sizeof(kept->e[0].name), "%s", bpf_map__name(m));
			kept->e[kept->n].slots = false;
			for (const char *const *sm = kept->slot_maps; sm && *sm; sm++)
				kept->e[kept->n].slots |= !strcmp(bpf_map__name(m), *sm);
			kept->e[kept->n].flows = table;
			kept->n++;
		} else {
			close(fd);
		}
		vm_log("event=pinned_map_replaced map=%s path=%s reason=\"layout changed (%s): a new map, %s\"",
		       bpf_map__name(m), path, why,
		       keep ? "what the old one holds is copied into it at the load" : "what the old one held is gone");
		replaced++;
	}
	return replaced;
}

/* A hash map's entries copied by the batch calls, COPY_BATCH at a time
 * (131,072 flows into an LRU map: 0.58 s, against 1.26 s key by key).  1 when done, 0
 * when the kernel has no batch calls for the map (the caller walks it key
 * by key), or -errno.  An insert the new map refuses (full) is retried
 * alone and counted in *lost. */
#define COPY_BATCH 4096
struct batch_copy {
	int to;
	size_t ksize, vsize;
	long *written, *lost;
};

static int copy_some(void *arg, const void *keys, const void *vals, __u32 n)
{
	struct batch_copy *c = arg;
	__u32 put = n;

	if (bpf_map_update_batch(c->to, keys, vals, &put, NULL)) {
		/* the first put entries are in; the rest one at a time */
		for (__u32 i = put; i < n; i++) {
			if (bpf_map_update_elem(c->to, (const __u8 *)keys + (size_t)i * c->ksize,
						(const __u8 *)vals + (size_t)i * c->vsize, BPF_ANY))
				(*c->lost)++;
			else
				(*c->written)++;
		}
	}
	*c->written += put;
	return 0;
}

static int hash_copy_batched(int from, int to, const struct bpf_map_info *fi, size_t vsize, long *written,
			     long *lost)
{
	struct batch_copy c = { .to = to, .ksize = fi->key_size, .vsize = vsize, .written = written, .lost = lost };

	return vm_map_each_batch(from, fi->key_size, vsize, COPY_BATCH, copy_some, &c);
}

/* Every entry of the old map (fd from, info fi) written to the new one
 * (to, ti): an array's by index, a hash map's by key.  *moved: entries
 * written (an array's non-zero ones); *lost: entries the new one has no
 * room for (an array's non-zero ones past its end, a hash map's refused
 * inserts; an LRU map smaller than what it is given keeps its newest
 * inserts and drops the rest, counted here too).  slots: an array whose
 * entries may sit at any index (kept->slot_maps): those past a smaller map's
 * end go to its free indices instead. */
static int map_copy(int from, int to, const struct bpf_map_info *fi, const struct bpf_map_info *ti, bool slots,
		    long *moved, long *lost)
{
	size_t vsize = fi->value_size;
	__u8 *key = NULL, *next = NULL, *val = NULL, *used = NULL;
	__u32 spare = 0;
	int err = 0;

	if (percpu(fi->type)) {
		int ncpu = libbpf_num_possible_cpus();

		if (ncpu <= 0)
			return ncpu ? ncpu : -EINVAL;
		vsize = ((vsize + 7) & ~(size_t)7) * (size_t)ncpu;
	}
	key = malloc(fi->key_size ? fi->key_size : 1);
	next = malloc(fi->key_size ? fi->key_size : 1);
	val = malloc(vsize);
	if (!key || !next || !val) {
		err = -ENOMEM;
		goto out;
	}
	if (fi->type == BPF_MAP_TYPE_ARRAY || fi->type == BPF_MAP_TYPE_PERCPU_ARRAY) {
		if (slots && !(used = calloc(ti->max_entries ? ti->max_entries : 1, 1))) {
			err = -ENOMEM;
			goto out;
		}
		/* indices in order: those a smaller map keeps are all
		 * written before the first one past its end */
		for (__u32 i = 0; i < fi->max_entries; i++) {
			__u32 at = i;

			if (bpf_map_lookup_elem(from, &i, val)) {
				err = -errno;
				break;
			}
			if (all_zero(val, vsize))
				continue;       /* the new map's entries start as zeros */
			if (i >= ti->max_entries && used) {
				while (spare < ti->max_entries && used[spare])
					spare++;
				at = spare;
			}
			if (at >= ti->max_entries || bpf_map_update_elem(to, &at, val, BPF_ANY)) {
				(*lost)++;
				continue;
			}
			if (used)
				used[at] = 1;
			(*moved)++;
		}
		goto out;
	}
	void *prev = NULL;
	long written = 0;
	int b = hash_copy_batched(from, to, fi, vsize, &written, lost);

	if (b < 0)
		err = b;
	while (!b && !bpf_map_get_next_key(from, prev, next)) {
		memcpy(key, next, fi->key_size);
		prev = key;
		if (bpf_map_lookup_elem(from, key, val))
			continue;       /* gone since the walk found it */
		if (bpf_map_update_elem(to, key, val, BPF_ANY))
			(*lost)++;
		else
			written++;
	}
	if ((fi->type == BPF_MAP_TYPE_LRU_HASH || fi->type == BPF_MAP_TYPE_LRU_PERCPU_HASH) &&
	    written > (long)ti->max_entries) {
		*lost += written - ti->max_entries;
		written = ti->max_entries;
	}
	*moved += written;
out:
	free(key);
	free(next);
	free(val);
	free(used);
	return err;
}

int vm_pins_migrate(struct vm_pins_kept *kept)
{
	int done = 0;

	if (!kept)
		return 0;
	for (int i = 0; i < kept->n; i++) {
		struct bpf_map_info fi, ti;
		__u32 flen = sizeof(fi), tlen = sizeof(ti);
		long moved = 0, lost = 0;
		int to, err;

		if (kept->e[i].fd < 0)
			continue;
		to = bpf_obj_get(kept->e[i].path);
		if (to < 0)
			continue;       /* not loaded yet: a later call copies it */
		memset(&fi, 0, sizeof(fi));
		memset(&ti, 0, sizeof(ti));
		if (bpf_obj_get_info_by_fd(kept->e[i].fd, &fi, &flen) || bpf_obj_get_info_by_fd(to, &ti, &tlen))
			err = -errno;
		else if (kept->e[i].flows)
			err = flows_copy(kept->e[i].fd, to, kept->e[i].path, &fi, &moved, &lost);
		else if (ti.type != fi.type || ti.key_size != fi.key_size || ti.value_size != fi.value_size)
			err = -EINVAL;  /* something else pinned there meanwhile */
		else
			err = map_copy(kept->e[i].fd, to, &fi, &ti, kept->e[i].slots, &moved, &lost);
		close(to);
		close(kept->e[i].fd);
		kept->e[i].fd = -1;
		if (err)
			vm_log("event=pinned_map_not_copied map=%s path=%s error=\"%s\" moved=%ld lost=%ld",
			       kept->e[i].name, kept->e[i].path, strerror(-err), moved, lost);
		else
			vm_log("event=pinned_map_copied map=%s path=%s moved=%ld lost=%ld entries_max=%u->%u",
			       kept->e[i].name, kept->e[i].path, moved, lost, fi.max_entries, ti.max_entries);
		done++;
	}
	return done;
}

void vm_pins_kept_close(struct vm_pins_kept *kept)
{
	if (!kept)
		return;
	for (int i = 0; i < kept->n; i++) {
		if (kept->e[i].fd >= 0) {
			vm_log("event=pinned_map_not_copied map=%s path=%s error=\"the new map was never loaded\"",
			       kept->e[i].name, kept->e[i].path);
			close(kept->e[i].fd);
		}
		kept->e[i].fd = -1;
	}
	kept->n = 0;
}

// SPDX-License-Identifier: Apache-2.0
/*
 * The gateway's flow table from user space: the flows map (an array of
 * buckets, include/veil/flowtab.h) mapped into the process, placed, found,
 * put and freed by the same functions the BPF programs run, with the same
 * compare-and-swaps on the tags.  veil-gw's sweep and filter rebuild,
 * veilctl, the loader's copies and re-keying, the tests and the benchmarks
 * read and write flows through it; bpftool shows the buckets
 * (`bpftool map dump pinned .../flows`: the tags, then the slots' keys
 * and values).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "veil.h"

#define VM_FT_BUCKET(t, i) ft_bucket((const struct vm_flows *)(t), (i))

static inline struct flow_bucket *ft_bucket(const struct vm_flows *t, __u32 i)
{
	return i < t->nb ? &t->b[i] : NULL;
}

#include "veil/flowtab.h"

__u32 vm_flows_buckets_for(__u32 flows)
{
	return vm_ft_buckets_for(flows);
}

int vm_flows_open(struct vm_flows *t, int flows_fd, int seed_fd)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);
	void *p;

	memset(t, 0, sizeof(*t));
	t->fd = -1;
	memset(&info, 0, sizeof(info));
	if (flows_fd < 0 || bpf_obj_get_info_by_fd(flows_fd, &info, &len))
		return flows_fd < 0 ? -EBADF : -errno;
	if (info.type != BPF_MAP_TYPE_ARRAY || info.value_size != sizeof(struct flow_bucket) || !info.max_entries ||
	    !(info.map_flags & BPF_F_MMAPABLE))
		return -EINVAL;   /* not a flow table (an older build's LRU hash, say) */
	t->len = (size_t)info.max_entries * sizeof(struct flow_bucket);
	p = mmap(NULL, t->len, PROT_READ | PROT_WRITE, MAP_SHARED, flows_fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	t->b = p;
	t->nb = info.max_entries;
	t->fd = flows_fd;
	int err = vm_flows_seed(t, seed_fd);
	if (err)
		vm_flows_close(t);
	return err;
}

int vm_flows_seed(struct vm_flows *t, int seed_fd)
{
	__u32 zero = 0;

	memset(&t->seed, 0, sizeof(t->seed));
	if (seed_fd >= 0 && bpf_map_lookup_elem(seed_fd, &zero, &t->seed))
		return -errno;
	return 0;
}

void vm_flows_close(struct vm_flows *t)
{
	if (t->b)
		munmap(t->b, t->len);
	t->b = NULL;
	t->nb = 0;
	t->fd = -1;
}

int vm_flows_get(const struct vm_flows *t, const struct flow_key *k, struct flow_val *v)
{
	struct vm_ft_place pl;
	struct flow_bucket *b;
	struct flow_slot *s;
	int w;

	if (!t->b)
		return -EBADF;
	s = vm_ft_find((void *)t, k, &t->seed, t->nb, &b, &w, &pl);
	if (!s)
		return -ENOENT;
	if (v)
		memcpy(v, &s->val, sizeof(*v));
	return 0;
}

int vm_flows_put(struct vm_flows *t, const struct flow_key *k, const struct flow_val *v, int replace)
{
	struct vm_ft_place pl;
	struct flow_bucket *b;
	struct flow_slot *s;
	struct flow_key gone;
	int w, rc;

	if (!t->b)
		return -EBADF;
	s = vm_ft_find(t, k, &t->seed, t->nb, &b, &w, &pl);
	if (s) {
		if (!replace)
			return -EEXIST;
		memcpy(&s->val, v, sizeof(*v));
		return 0;
	}
	for (int tries = 0; (rc = vm_ft_put(t, k, v, &t->seed, t->nb, &gone)) == -1 && tries < 8; tries++)
		;   /* another writer claimed the way first: again */
	return rc == VM_FLOW_PUT_TAKEN ? -EEXIST : rc < 0 ? -ENOSPC : 0;
}

int vm_flows_del(struct vm_flows *t, const struct flow_key *k)
{
	if (!t->b)
		return -EBADF;
	return vm_ft_del(t, k, &t->seed, t->nb) ? -ENOENT : 0;
}

long vm_flows_walk(const struct vm_flows *t, vm_flows_fn fn, void *arg)
{
	long n = 0;

	for (__u32 i = 0; t->b && i < t->nb; i++) {
		struct flow_bucket *b = &t->b[i];

		for (int j = 0; j < VM_FT_WAYS; j++) {
			__u32 tag = __atomic_load_n(&b->tag[j], __ATOMIC_ACQUIRE);
			struct flow_key k;
			struct flow_val v;

			if (!(tag & 1))
				continue;       /* free, or being written */
			k = b->slot[j].key;
			memcpy(&v, &b->slot[j].val, sizeof(v));
			if (__atomic_load_n(&b->tag[j], __ATOMIC_ACQUIRE) != tag)
				continue;       /* rewritten while we read it */
			n++;
			if (fn && fn(arg, &k, &v))
				return n;
		}
	}
	return n;
}

long vm_flows_count(const struct vm_flows *t)
{
	long n = 0;

	for (__u32 i = 0; t->b && i < t->nb; i++)
		for (int j = 0; j < VM_FT_WAYS; j++)
			n += __atomic_load_n(&t->b[i].tag[j], __ATOMIC_RELAXED) & 1;
	return n;
}

/* Every slot freed, every spill count 0 (the re-seeding's refill). */
static void flows_clear(struct vm_flows *t)
{
	for (__u32 i = 0; t->b && i < t->nb; i++) {
		for (int j = 0; j < VM_FT_WAYS; j++)
			__atomic_store_n(&t->b[i].tag[j], 0, __ATOMIC_RELAXED);
		__atomic_store_n(&t->b[i].spill, 0, __ATOMIC_RELAXED);
	}
}

/* The flows a re-seeding moves, copied out (vm_flows_walk's copies). */
struct moving {
	struct flow_key *keys;
	struct flow_val *vals;
	long n, cap;
	int v6_only;     /* the hash's key stays: IPv4 flows stay where they are */
	int nomem;
};

static int take_moving(void *arg, const struct flow_key *k, const struct flow_val *v)
{
	struct moving *m = arg;

	if (m->v6_only && v->family != VM_AF_INET6)
		return 0;
	if (m->n == m->cap) {
		long nc = m->cap ? 2 * m->cap : 1024;
		struct flow_key *k2 = realloc(m->keys, nc * sizeof(*k2));
		struct flow_val *v2;

		if (k2)
			m->keys = k2;
		v2 = k2 ? realloc(m->vals, nc * sizeof(*v2)) : NULL;
		if (!v2) {
			m->nomem = 1;
			return 1;
		}
		m->vals = v2;
		m->cap = nc;
	}
	m->keys[m->n] = *k;
	m->vals[m->n] = *v;
	m->n++;
	return 0;
}

/* Every flow of the table to where seed ns puts it (IPv6 keys made again
 * from the tuples they hold, as the programs make them under ns): the
 * flows that move read, taken out, then put again.  Where the hash's key
 * stays (a new fold's multiplier, not a new seed), IPv4 flows stay where
 * they are and are not touched; else the table is emptied and refilled.
 * The programs running meanwhile miss a moving flow for that moment, and
 * keep the entries they make (a connection begun in it). */
int vm_flows_reseed(struct vm_flows *t, const struct flow_seed *ns, int *lost)
{
	int same = t->seed.k[0] == ns->k[0] && t->seed.k[1] == ns->k[1], moved = 0;
	struct moving m = { .v6_only = same };

	vm_flows_walk(t, take_moving, &m);
	if (m.nomem) {
		free(m.keys);
		free(m.vals);
		return -ENOMEM;
	}
	struct flow_key *keys = m.keys;
	struct flow_val *vals = m.vals;
	long n = m.n;

	if (same) {
		for (long i = 0; i < n; i++)
			vm_flows_del(t, &keys[i]);
	} else {
		flows_clear(t);
	}
	t->seed = *ns;
	for (long i = 0; i < n; i++) {
		struct flow_key k = keys[i];

		if (vals[i].family == VM_AF_INET6)
			vm_flow_key_make(VM_AF_INET6, vals[i].client, vals[i].vip, k.client_port_be, k.vip_port_be, ns,
					 &k);
		if (vm_flows_put(t, &k, &vals[i], 0))
			(*lost)++;
		else
			moved++;
	}
	free(keys);
	free(vals);
	return moved;
}

/* What the table's invariants say of it now (the programs quiet): each
 * slot's key placed in one of its two buckets under the handle's seed, its
 * spilled flag saying which; no tag twice in a bucket; each bucket's spill
 * the count of its keys in their other bucket.  Returns the slots and
 * buckets that break one, 0 when none (the tests). */
long vm_flows_check(const struct vm_flows *t)
{
	__u32 *spill = calloc(t->nb ? t->nb : 1, sizeof(*spill));
	long bad = 0;

	if (!spill)
		return -ENOMEM;
	for (__u32 i = 0; i < t->nb; i++) {
		for (int j = 0; j < VM_FT_WAYS; j++) {
			struct vm_ft_place pl;
			__u32 tg = t->b[i].tag[j];

			if (!(tg & 1))
				continue;
			for (int o = j + 1; o < VM_FT_WAYS; o++)
				bad += t->b[i].tag[o] == tg;
			vm_ft_place(&t->b[i].slot[j].key, &t->seed, t->nb, &pl);
			pl.other = vm_ft_other(&pl, t->nb);
			if (pl.tag != tg || (pl.home != i && pl.other != i) || t->b[i].slot[j].spilled != (pl.home != i))
				bad++;
			else if (pl.home != i)
				spill[pl.home]++;
		}
	}
	for (__u32 i = 0; i < t->nb; i++)
		bad += spill[i] != t->b[i].spill;
	free(spill);
	return bad;
}

// SPDX-License-Identifier: Apache-2.0
/*
 * The flow tables from user space: the gateway's flows map (or the node's
 * conns: an array of buckets, include/veil/flowtab.h) mapped into the
 * process, placed, found, put and freed by the same functions the BPF
 * programs run, with the same compare-and-swaps on the tags.  The daemons'
 * sweeps and filter rebuild, veilctl, the loaders' copies and re-keying,
 * the tests and the benchmarks read and write flows through it; bpftool
 * shows the buckets (`bpftool map dump pinned .../flows`: the tags, then
 * the slots' keys and values).
 */
#include <stddef.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "veil.h"

#define VM_FT_BUCKET(t, i) ft_bucket((const struct vm_flows *)(t), (i))

static inline struct vm_ft_head *ft_bucket(const struct vm_flows *t, __u32 i)
{
	return i < t->nb ? (struct vm_ft_head *)((char *)t->b + (size_t)i * t->bsz) : NULL;
}

#include "veil/flowtab.h"

/* The kinds of table there are, told apart by their buckets' size. */
static const struct vm_ft_kind kinds[] = {
	{ "flows", "flow_seed", sizeof(struct flow_val), offsetof(struct flow_val, family),
	  offsetof(struct flow_val, client), offsetof(struct flow_val, vip) },
	{ "conns", "conn_seed", sizeof(struct conn_val), offsetof(struct conn_val, family),
	  offsetof(struct conn_val, client), offsetof(struct conn_val, vip) },
};
_Static_assert(sizeof(struct flow_bucket) != sizeof(struct conn_bucket), "the kinds' buckets told apart by size");

_Static_assert(sizeof(struct flow_val) <= VM_FT_VALUE_MAX && sizeof(struct conn_val) <= VM_FT_VALUE_MAX,
	       "VM_FT_VALUE_MAX");

static size_t bucket_bytes(__u32 vs)
{
	return sizeof(struct vm_ft_head) + VM_FT_WAYS * VM_FT_STRIDE(vs);
}

__u32 vm_flows_buckets_for(__u32 flows)
{
	return vm_ft_buckets_for(flows);
}

/* The kind whose buckets are this size, or NULL. */
static const struct vm_ft_kind *kind_by_size(__u32 bucket_size)
{
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (bucket_size == bucket_bytes(kinds[i].vs))
			return &kinds[i];
	return NULL;
}

static const struct vm_ft_kind *kind_of(const struct bpf_map_info *info)
{
	if (info->type != BPF_MAP_TYPE_ARRAY || !info->max_entries || !(info->map_flags & BPF_F_MMAPABLE))
		return NULL;
	return kind_by_size(info->value_size);
}

int vm_flows_is_table(const struct bpf_map_info *info)
{
	return kind_of(info) != NULL;
}

const struct vm_ft_kind *vm_flows_kind(const char *name, __u32 bucket_size)
{
	const struct vm_ft_kind *k = kind_by_size(bucket_size);

	return k && !strcmp(k->name, name) ? k : NULL;
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
	t->kind = kind_of(&info);
	if (!t->kind)
		return -EINVAL;   /* not a flow table (an older build's LRU hash, say) */
	t->vs = t->kind->vs;
	t->bsz = info.value_size;
	t->len = (size_t)info.max_entries * t->bsz;
	p = mmap(NULL, t->len, PROT_READ | PROT_WRITE, MAP_SHARED, flows_fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	t->b = p;
	t->nb = info.max_entries;
	t->fd = flows_fd;
	t->id = info.id;
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

int vm_flows_get(const struct vm_flows *t, const struct flow_key *k, void *v)
{
	struct vm_ft_place pl;
	struct vm_ft_head *b;
	struct vm_ft_slot *s;
	int w;

	if (!t->b)
		return -EBADF;
	s = vm_ft_find((void *)t, k, &t->seed, t->nb, t->vs, &b, &w, &pl);
	if (!s)
		return -ENOENT;
	if (v)
		memcpy(v, vm_ft_val(s), t->vs);
	return 0;
}

int vm_flows_put(struct vm_flows *t, const struct flow_key *k, const void *v, int replace)
{
	struct vm_ft_place pl;
	struct vm_ft_head *b;
	struct vm_ft_slot *s;
	struct flow_key gone;
	int w, rc;

	if (!t->b)
		return -EBADF;
	s = vm_ft_find(t, k, &t->seed, t->nb, t->vs, &b, &w, &pl);
	if (s) {
		if (!replace)
			return -EEXIST;
		memcpy(vm_ft_val(s), v, t->vs);
		return 0;
	}
	rc = vm_ft_put_home(t, k, v, t->vs, &t->seed, t->nb);   /* as the programs put */
	for (int tries = 0; rc == VM_FT_NOT_HOME || (rc == -1 && tries < 8); tries++)
		rc = vm_ft_put(t, k, v, t->vs, &t->seed, t->nb, &gone);   /* -1: another writer claimed the way first: again */
	return rc == VM_FLOW_PUT_TAKEN ? -EEXIST : rc < 0 ? -ENOSPC : 0;
}

int vm_flows_del(struct vm_flows *t, const struct flow_key *k)
{
	if (!t->b)
		return -EBADF;
	return vm_ft_del(t, k, &t->seed, t->nb, t->vs) ? -ENOENT : 0;
}

long vm_flows_walk(const struct vm_flows *t, vm_flows_fn fn, void *arg)
{
	long n = 0;
	__u64 v[VM_FT_VALUE_MAX / 8];   /* a copy of any kind's value, 8-byte aligned */

	if (t->vs > sizeof(v))
		return -EINVAL;
	for (__u32 i = 0; t->b && i < t->nb; i++) {
		struct vm_ft_head *b = ft_bucket(t, i);

		for (int j = 0; j < VM_FT_WAYS; j++) {
			__u32 tag = __atomic_load_n(&b->tag[j], __ATOMIC_ACQUIRE);
			struct vm_ft_slot *s = vm_ft_slot_at(b, j, t->vs);
			struct flow_key k;

			if (!(tag & 1))
				continue;       /* free, or being written */
			k = s->key;
			memcpy(v, vm_ft_val(s), t->vs);
			if (__atomic_load_n(&b->tag[j], __ATOMIC_ACQUIRE) != tag)
				continue;       /* rewritten while we read it */
			n++;
			if (fn && fn(arg, &k, v))
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
			n += __atomic_load_n(&ft_bucket(t, i)->tag[j], __ATOMIC_RELAXED) & 1;
	return n;
}

/* Every slot freed, every spill count 0 (the re-seeding's refill). */
static void flows_clear(struct vm_flows *t)
{
	for (__u32 i = 0; t->b && i < t->nb; i++) {
		struct vm_ft_head *b = ft_bucket(t, i);

		for (int j = 0; j < VM_FT_WAYS; j++)
			__atomic_store_n(&b->tag[j], 0, __ATOMIC_RELAXED);
		__atomic_store_n(&b->spill, 0, __ATOMIC_RELAXED);
	}
}

/* The flows a re-seeding moves, copied out (vm_flows_walk's copies). */
struct moving {
	const struct vm_ft_kind *kind;
	struct flow_key *keys;
	char *vals;      /* kind->vs bytes each */
	long n, cap;
	int v6_only;     /* the hash's key stays: IPv4 flows stay where they are */
	int nomem;
};

/* The family a value of kind k holds. */
static __u8 val_family(const struct vm_ft_kind *k, const void *v)
{
	return ((const __u8 *)v)[k->family_off];
}

static int take_moving(void *arg, const struct flow_key *k, const void *v)
{
	struct moving *m = arg;
	__u32 vs = m->kind->vs;

	if (m->v6_only && val_family(m->kind, v) != VM_AF_INET6)
		return 0;
	if (m->n == m->cap) {
		long nc = m->cap ? 2 * m->cap : 1024;
		struct flow_key *k2 = realloc(m->keys, nc * sizeof(*k2));
		char *v2;

		if (k2)
			m->keys = k2;
		v2 = k2 ? realloc(m->vals, nc * vs) : NULL;
		if (!v2) {
			m->nomem = 1;
			return 1;
		}
		m->vals = v2;
		m->cap = nc;
	}
	m->keys[m->n] = *k;
	memcpy(m->vals + m->n * vs, v, vs);
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
	struct moving m = { .kind = t->kind, .v6_only = same };

	if (!t->kind)
		return -EBADF;
	vm_flows_walk(t, take_moving, &m);
	if (m.nomem) {
		free(m.keys);
		free(m.vals);
		return -ENOMEM;
	}
	struct flow_key *keys = m.keys;
	char *vals = m.vals;
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
		const __u8 *v = (const __u8 *)vals + i * t->vs;

		if (val_family(t->kind, v) == VM_AF_INET6)
			vm_flow_key_make(VM_AF_INET6, v + t->kind->client_off, v + t->kind->vip_off, k.client_port_be,
					 k.vip_port_be, ns, &k);
		if (vm_flows_put(t, &k, v, 0))
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
		struct vm_ft_head *b = ft_bucket(t, i);

		for (int j = 0; j < VM_FT_WAYS; j++) {
			struct vm_ft_slot *s = vm_ft_slot_at(b, j, t->vs);
			struct vm_ft_place pl;
			__u32 tg = b->tag[j];

			if (!(tg & 1))
				continue;
			for (int o = j + 1; o < VM_FT_WAYS; o++)
				bad += b->tag[o] == tg;
			vm_ft_place(&s->key, &t->seed, t->nb, &pl);
			pl.other = vm_ft_other(&pl, t->nb);
			if (pl.tag != tg || (pl.home != i && pl.other != i) || s->spilled != (pl.home != i))
				bad++;
			else if (pl.home != i)
				spill[pl.home]++;
		}
	}
	for (__u32 i = 0; i < t->nb; i++)
		bad += spill[i] != ft_bucket(t, i)->spill;
	free(spill);
	return bad;
}
